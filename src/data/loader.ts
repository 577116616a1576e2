// Datasets and the DataLoader.
//
// Ownership: every tensor in a yielded batch is keep()'d — it belongs to the caller, not to any scope. That
// matters because the loader prepares batch k+1 while the caller trains on batch k: for an async dataset
// (image decoding) the assembly runs in a promise continuation, possibly while the caller's tidy()/scope()
// for step k is open, and without keep() that scope would free the next batch. The caller disposes a
// batch after its step (disposeBatch), or leaves it to the garbage collector.
import { Tensor, fromArray, keep, stack, tidy } from '../torch';
import { Rng } from './rng';
import { BatchContext, BatchData, BatchTransform, toFloat } from './transforms';

/** Anything indexable; get may be async (e.g. decoding an image file). */
export interface Dataset<S> {
  readonly length: number;
  get(i: number): S | Promise<S>;
}

/**
 * One example: an image tensor [C, H, W] and its class. A dataset returns a fresh tensor that the loader
 * takes over (and disposes after collating); an async get() should keep() it, since it is created in a
 * continuation that may run inside someone else's scope.
 */
export interface Sample {
  x: Tensor;
  y: number;
}

/**
 * The class of an image without a label (a transfer set's): such images teach only through a teacher's
 * logits (mimic learning); training refuses them with a plain cross-entropy, and accuracy leaves them out.
 */
export const NO_LABEL = -1;

/** One example with a label per pixel (segmentation): x [C, H, W] and y [H, W]. */
export interface PixelSample {
  x: Tensor;
  y: Tensor;
}

/** A dataset that can assemble a whole batch from an int64 index tensor in libtorch (the fast path). */
export interface BatchSource {
  readonly length: number;
  getBatch(indices: Tensor): BatchData;
}

/** What the loader yields: x [N, C, H, W] (float32 with the default transform), y int64 [N], batch index. */
export interface Batch {
  x: Tensor;
  y: Tensor;
  index: number;
  /** The dataset indices of its samples, in the batch's order: what was computed once per image is looked up by them. */
  samples: Int32Array;
}

/** Frees a batch's tensors now rather than at the next garbage collection. */
export function disposeBatch(b: BatchData): void {
  b.x.dispose();
  b.y.dispose();
}

const isBatchSource = (d: unknown): d is BatchSource => typeof (d as BatchSource).getBatch === 'function';

/** Throws naming the first label outside [0, numClasses); the scan runs in libtorch. */
export function checkLabelRange(labels: Tensor, numClasses: number, source: string): void {
  tidy(() => {
    const bad = labels.lt(0).logicalOr(labels.ge(numClasses));
    if (bad.any().item() === 0) return;
    // argmax returns the first maximal position, i.e. the first bad label.
    const i = bad.to('uint8').argmax().item();
    const v = labels.select(0, i).item();
    throw new Error(`${source}: label ${v} at index ${i} is outside [0, ${numClasses})`);
  });
}

/** Whole images and labels in memory (e.g. Fashion-MNIST): batches are one index_select each. */
export class TensorDataset implements Dataset<Sample>, BatchSource {
  readonly images: Tensor;
  readonly labels: Tensor;
  readonly classes: readonly string[] | undefined;

  /** images [N, C, H, W] (any dtype), labels int64 [N]. Both are kept (they outlive scopes) until dispose(). */
  constructor(images: Tensor, labels: Tensor, classes?: readonly string[]) {
    if (images.ndim !== 4) throw new Error(`TensorDataset: images must be [N, C, H, W], got [${images.shape}]`);
    if (labels.ndim !== 1 || labels.dtype !== 'int64') throw new Error(`TensorDataset: labels must be int64 [N], got ${labels.dtype} [${labels.shape}]`);
    if (images.size(0) !== labels.size(0)) throw new Error(`TensorDataset: ${images.size(0)} images but ${labels.size(0)} labels`);
    this.images = images.keep();
    this.labels = labels.keep();
    this.classes = classes;
    if (classes) checkLabelRange(labels, classes.length, 'TensorDataset');
  }

  get length(): number {
    return this.labels.size(0);
  }

  get(i: number): Sample {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) throw new RangeError(`TensorDataset.get(${i}): index out of range [0, ${this.length})`);
    return { x: this.images.select(0, i).clone(), y: this.labels.select(0, i).item() };
  }

  getBatch(indices: Tensor): BatchData {
    return { x: this.images.indexSelect(0, indices), y: this.labels.indexSelect(0, indices) };
  }

  dispose(): void {
    this.images.dispose();
    this.labels.dispose();
  }
}

export interface DataLoaderOptions {
  batchSize: number;
  /** A new permutation each epoch, a function of (seed, epoch) only. Default false. */
  shuffle?: boolean;
  /** Seeds the permutation and the transforms' Rng. Default 0. */
  seed?: number;
  /** Drop the last batch when it is smaller than batchSize. Default false. */
  dropLast?: boolean;
  /** Applied to each collated batch; default toFloat() (uint8 → float32 in [0, 1]). */
  transform?: BatchTransform;
  /**
   * Applied to each sample of a per-sample dataset before collating, as a batch of one, in the batch's order
   * and with the batch's Rng: samples of different sizes become one size here (e.g. a random crop), which
   * `transform` cannot do. Default none.
   */
  sampleTransform?: BatchTransform;
  /** How many batches to prepare ahead of the one being consumed. Default 1; 0 prepares on demand. */
  prefetch?: number;
  /**
   * Picks this loader's part of each epoch's order (e.g. one rank's shard in data-parallel training); a
   * function of the order alone, so every epoch's part has the same size.
   */
  sampler?: (order: Int32Array) => Int32Array;
}

export interface EpochOptions {
  /** Skip the first startBatch batches without preparing them (resume from a mid-epoch checkpoint). */
  startBatch?: number;
}

// Distinct streams so the permutation and the augmentation never share random numbers.
const PERMUTATION_STREAM = 0x5045524d;
const TRANSFORM_STREAM = 0x5846524d;

/**
 * Batches from a dataset, shuffled reproducibly:
 *
 *   for await (const b of loader.epoch(e)) {
 *     tidy(() => step(b.x, b.y));
 *     disposeBatch(b);
 *   }
 */
export class DataLoader {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  readonly prefetch: number;
  /** Applied to each collated batch (default toFloat()): what the dataset's samples become for the network. */
  readonly transform: BatchTransform;
  private readonly sampler: ((order: Int32Array) => Int32Array) | null;
  /** Samples per epoch (after the sampler). */
  private readonly epochSize: number;
  private readonly options: DataLoaderOptions;

  constructor(
    readonly dataset: Dataset<Sample> | Dataset<PixelSample> | BatchSource,
    o: DataLoaderOptions,
  ) {
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new RangeError(`DataLoader: batchSize must be a positive integer, got ${o.batchSize}`);
    this.batchSize = o.batchSize;
    this.shuffle = o.shuffle ?? false;
    this.seed = o.seed ?? 0;
    this.dropLast = o.dropLast ?? false;
    this.prefetch = o.prefetch ?? 1;
    if (!Number.isInteger(this.prefetch) || this.prefetch < 0) throw new RangeError(`DataLoader: prefetch must be a non-negative integer, got ${o.prefetch}`);
    this.transform = o.transform ?? toFloat();
    this.sampler = o.sampler ?? null;
    this.epochSize = this.sampler ? this.sampler(new Int32Array(dataset.length)).length : dataset.length;
    this.options = o;
  }

  /**
   * Every sample once, in dataset order (no shuffle, sampler or dropped batch), fed through the same
   * transforms: to compute something per image once, e.g. a teacher's logits.
   */
  inOrder(batchSize = this.batchSize): DataLoader {
    return new DataLoader(this.dataset, { ...this.options, batchSize, shuffle: false, dropLast: false, sampler: undefined });
  }

  /** The same loader over the part of each epoch `sampler` picks. */
  withSampler(sampler: (order: Int32Array) => Int32Array): DataLoader {
    return new DataLoader(this.dataset, { ...this.options, sampler });
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.epochSize;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** The dataset indices of epoch e in order (the permutation depends only on seed and e), as sampled. */
  order(epoch: number): Int32Array {
    const n = this.dataset.length;
    let o: Int32Array;
    if (this.shuffle) o = Rng.from(this.seed, epoch, PERMUTATION_STREAM).permutation(n);
    else {
      o = new Int32Array(n);
      for (let i = 0; i < n; i++) o[i] = i;
    }
    return this.sampler ? this.sampler(o) : o;
  }

  /** The batches of epoch e; batch k+1 is being prepared while the caller holds batch k. */
  async *epoch(epoch: number, o: EpochOptions = {}): AsyncGenerator<Batch, void, undefined> {
    const start = o.startBatch ?? 0;
    const total = this.length;
    if (!Number.isInteger(start) || start < 0 || start > total) throw new RangeError(`DataLoader: startBatch must be an integer in [0, ${total}], got ${start}`);
    const order = this.order(epoch);
    // The fast path indexes libtorch with the order itself; kept so no caller scope can free it mid-epoch.
    const orderT = isBatchSource(this.dataset) ? keep(tidy(() => fromArray(order).to('int64'))) : null;
    const queue: Promise<Batch>[] = [];
    let next = start;
    const launch = (): void => {
      const p = this.prepare(epoch, next++, order, orderT);
      p.catch(() => {}); // it is awaited later; this only stops Node reporting an "unhandled" rejection meanwhile
      queue.push(p);
    };
    try {
      for (;;) {
        if (queue.length === 0) {
          if (next >= total) break;
          launch();
        }
        const batch = await queue.shift()!;
        while (queue.length < this.prefetch && next < total) launch();
        yield batch;
      }
    } finally {
      // An early exit (break, exception) leaves prefetched batches nobody will see: free them.
      for (const p of queue.splice(0)) p.then(disposeBatch, () => {});
      orderT?.dispose();
    }
  }

  private async prepare(epoch: number, index: number, order: Int32Array, orderT: Tensor | null): Promise<Batch> {
    const lo = index * this.batchSize;
    const hi = Math.min(lo + this.batchSize, order.length);
    const ctx: BatchContext = { epoch, index, rng: Rng.from(this.seed, epoch, index, TRANSFORM_STREAM) };
    if (orderT) {
      const src = this.dataset as BatchSource;
      return this.finish(() => src.getBatch(orderT.narrow(0, lo, hi - lo)), ctx, order.slice(lo, hi));
    }
    const ds = this.dataset as Dataset<Sample | PixelSample>;
    const pending: Promise<Sample | PixelSample>[] = [];
    for (let i = lo; i < hi; i++) pending.push(Promise.resolve(ds.get(order[i])).then(keep));
    const settled = await Promise.allSettled(pending);
    const samples = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    try {
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;
      const each = this.options.sampleTransform;
      return this.finish(() => collate(each ? samples.map((s) => transformOne(s, each, ctx)) : samples, order.subarray(lo, hi)), ctx, order.slice(lo, hi));
    } finally {
      for (const s of samples) {
        s.x.dispose();
        if (typeof s.y !== 'number') s.y.dispose();
      }
    }
  }

  /** Collates and transforms inside one tidy, keeping only the finished batch. */
  private finish(make: () => BatchData, ctx: BatchContext, samples: Int32Array): Batch {
    return tidy(() => {
      const out = this.transform(make(), ctx);
      return keep({ x: out.x, y: out.y, index: ctx.index, samples });
    });
  }
}

/** A sample through a batch transform as a batch of one, back to a sample of its kind. */
function transformOne(s: Sample | PixelSample, t: BatchTransform, ctx: BatchContext): Sample | PixelSample {
  if (typeof s.y === 'number') {
    const out = t({ x: s.x.unsqueeze(0), y: fromArray(new BigInt64Array([BigInt(s.y)])) }, ctx);
    return { x: out.x.squeeze(0), y: out.y.item() };
  }
  const out = t({ x: s.x.unsqueeze(0), y: s.y.unsqueeze(0) }, ctx);
  return { x: out.x.squeeze(0), y: out.y.squeeze(0) };
}

/** Stacks samples into x [N, C, H, W] and y: int64 [N] for class labels, int64 [N, H, W] for label maps. */
function collate(samples: (Sample | PixelSample)[], indices: Int32Array): BatchData {
  const shape = samples[0].x.shape.join(',');
  samples.forEach((s, i) => {
    if (s.x.shape.join(',') !== shape) {
      throw new Error(`DataLoader: sample ${indices[i]} has shape [${s.x.shape}], sample ${indices[0]} has [${shape}]; resize them to one size`);
    }
    if (typeof s.y === 'number' && !Number.isInteger(s.y)) throw new Error(`DataLoader: sample ${indices[i]} has a non-integer label ${s.y}`);
  });
  const x = stack(samples.map((s) => s.x));
  const labels = samples.map((s) => s.y);
  if (labels.every((y): y is number => typeof y === 'number')) return { x, y: fromArray(BigInt64Array.from(labels, (y) => BigInt(y))) };
  if (labels.some((y) => typeof y === 'number')) throw new Error('DataLoader: a batch mixes class labels and label maps');
  return { x, y: stack((labels as Tensor[]).map((y) => y.long())) };
}
