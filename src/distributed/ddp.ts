// Data parallelism as PyTorch's DistributedDataParallel does it: every rank holds a replica, rank 0's
// parameters and buffers are broadcast at the start, and after backward the gradients are averaged with
// all-reduces over ~25 MB flat buckets (few large messages rather than one per parameter). All the element
// work — flattening, averaging, copying back — is libtorch ops.
import { Tensor, cat, noGrad, tidy, zeros } from '../torch';
import { BatchNorm2d, Module } from '../nn';
import { allReduce, broadcast, getWorldSize } from './process-group';

export interface DdpOptions {
  /** Bucket size in MiB (PyTorch's bucket_cap_mb). Default 25. */
  bucketCapMb?: number;
  /** Broadcast rank 0's buffers (BatchNorm statistics) before every forward, as PyTorch does. Default true. */
  broadcastBuffers?: boolean;
}

/**
 * Runs fn on flat copies of `tensors`, grouped into buckets of at most capBytes of one dtype and device,
 * then copies each flat result back into the tensors (whose shapes are unchanged).
 */
export function bucketed(tensors: Tensor[], capBytes: number, fn: (flat: Tensor) => void): void {
  const buckets: Tensor[][] = [];
  let bytes = 0;
  let key = '';
  for (const t of tensors) {
    const k = `${t.dtype} ${t.device}`;
    const size = t.numel() * bytesPer(t);
    const last = buckets[buckets.length - 1];
    if (!last || k !== key || (bytes + size > capBytes && last.length > 0)) {
      buckets.push([t]);
      bytes = size;
      key = k;
    } else {
      last.push(t);
      bytes += size;
    }
  }
  for (const bucket of buckets) {
    tidy(() =>
      noGrad(() => {
        const flat = cat(bucket.map((t) => t.reshape(-1)));
        fn(flat);
        let at = 0;
        for (const t of bucket) {
          t.copy_(flat.narrow(0, at, t.numel()).view(...t.shape));
          at += t.numel();
        }
      }),
    );
  }
}

const bytesPer = (t: Tensor): number => ({ float64: 8, int64: 8, float32: 4, int32: 4, float16: 2, bfloat16: 2, int16: 2 } as Record<string, number>)[t.dtype] ?? 1;

/**
 * Wraps a model for data-parallel training in an initialized process group:
 *
 *   const ddp = new DistributedDataParallel(model);      // rank 0's weights everywhere
 *   const loss = crossEntropy(ddp.forward(x), y);       // x: this rank's share of the batch
 *   loss.backward();
 *   ddp.syncGradients();                                // gradients averaged over the ranks
 *   opt.step();
 *
 * With each rank's loss the mean over its share of equal size, the averaged gradient is the gradient of
 * the mean loss over the whole batch: the replicas take exactly the single-process step. (BatchNorm layers
 * normalize with each rank's own batch statistics, as in PyTorch's DDP without SyncBatchNorm.)
 */
export class DistributedDataParallel<M extends Module & { forward(x: Tensor): Tensor }> {
  private readonly capBytes: number;
  private readonly broadcastBuffers: boolean;

  constructor(
    readonly module: M,
    o: DdpOptions = {},
  ) {
    const mb = o.bucketCapMb ?? 25;
    if (!(mb > 0)) throw new RangeError(`DistributedDataParallel: bucketCapMb must be > 0, got ${mb}`);
    this.capBytes = mb * 1024 * 1024;
    this.broadcastBuffers = o.broadcastBuffers ?? true;
    bucketed([...module.parameters(), ...module.namedBuffers().map(([, b]) => b)], this.capBytes, (flat) => void broadcast(flat, 0));
  }

  forward(x: Tensor): Tensor {
    if (this.broadcastBuffers && this.module.training) this.syncBuffers();
    return this.module.forward(x);
  }

  /** Rank 0's buffers everywhere (forward does this in training mode unless broadcastBuffers is false). */
  syncBuffers(): void {
    const buffers = this.module.namedBuffers().map(([, b]) => b);
    if (buffers.length) bucketed(buffers, this.capBytes, (flat) => void broadcast(flat, 0));
  }

  /**
   * Averages the gradients over the ranks; call after backward, before the optimizer step. Buckets follow
   * the parameters in reverse (the order backward produces them, as PyTorch). A trainable parameter without
   * a gradient on this rank counts as zero and receives the average, so every rank's buckets line up.
   */
  syncGradients(): void {
    const world = getWorldSize();
    const params = this.module.parameters().filter((p) => p.requiresGrad).reverse();
    const grads = params.map((p) => {
      const g = p.grad;
      if (g) return g;
      const z = zeros(p.shape, { dtype: p.dtype, device: p.device });
      p.grad = z;
      return z;
    });
    try {
      bucketed(grads, this.capBytes, (flat) => {
        allReduce(flat, 'sum');
        flat.div_(world);
      });
    } finally {
      for (const g of grads) g.dispose(); // our references only; the parameters keep theirs
    }
  }
}

/** Wraps `model` in DistributedDataParallel (PyTorch's `DDP(model)`). */
export function ddp<M extends Module & { forward(x: Tensor): Tensor }>(model: M, o: DdpOptions = {}): DistributedDataParallel<M> {
  return new DistributedDataParallel(model, o);
}

/**
 * PyTorch's `SyncBatchNorm.convert_sync_batchnorm`: every BatchNorm2d in `model` normalizes, in training,
 * with the mean and variance of the global batch (all ranks' shares) and keeps identical running statistics
 * on every rank. Call after initProcessGroup, on every rank; returns how many layers it converted.
 */
export function convertSyncBatchNorm(model: Module): number {
  getWorldSize(); // names the missing process group now rather than at the first forward
  let n = 0;
  for (const m of model.modules()) {
    if (m instanceof BatchNorm2d) {
      m.crossReplicaSum = (t) => allReduce(t, 'sum');
      n++;
    }
  }
  return n;
}
