// One rank of a distributed test, run as its own process by distributed.test.ts:
//   node worker.js <scenario> <json options>
// It prints one line `RESULT <json>` on stdout; errors go to stderr with a non-zero exit.
import { Tensor, crossEntropy, fromArray, manualSeed, randn, saveSafetensors, setNumThreads, tidy } from '../../src/torch';
import { nn } from '../../src';
import { SGD } from '../../src/optim';
import * as dist from '../../src/distributed';

export interface WorkerOptions {
  initMethod?: string;
  rank?: number;
  worldSize?: number;
  timeoutMs?: number;
  /** ddp: where this rank writes its final weights. */
  out?: string;
  /** syncbn: convert the BatchNorm layers (false: the control, each rank normalizing its own share). */
  sync?: boolean;
}

/** The small conv net of the DDP test (also built by the test for its single-process reference). */
export function smallNet(): nn.Sequential {
  return new nn.Sequential(new nn.Conv2d(1, 4, 3, { padding: 1 }), new nn.ReLU(), new nn.Flatten(), new nn.Linear(4 * 6 * 6, 3));
}

/**
 * smallNet with two BatchNorms of one width (their statistics are where replicas differ without SyncBatchNorm;
 * two of a size would swap their gradient all-reduces unnoticed if the ranks ran them in different orders).
 */
export function bnNet(): nn.Sequential {
  return new nn.Sequential(
    new nn.Conv2d(1, 4, 3, { padding: 1 }), new nn.BatchNorm2d(4), new nn.ReLU(),
    new nn.Conv2d(4, 4, 3, { padding: 1 }), new nn.BatchNorm2d(4), new nn.ReLU(),
    new nn.Flatten(), new nn.Linear(4 * 6 * 6, 3),
  );
}

/** The DDP test's whole batch: 8 images 1×6×6 and labels, the same on every rank. */
export function ddpBatch(): { x: Tensor; y: Tensor } {
  manualSeed(7);
  return { x: randn([8, 1, 6, 6]).keep(), y: fromArray(new BigInt64Array([0n, 1n, 2n, 0n, 1n, 2n, 2n, 1n])).keep() };
}
export const DDP_STEPS = 4;
export const DDP_LR = 0.1;

const values = (t: Tensor): number[] => Array.from(t.toArray() as Float32Array);

async function main(): Promise<void> {
  const [scenario, json] = process.argv.slice(2);
  const o: WorkerOptions = JSON.parse(json ?? '{}');
  setNumThreads(1);
  await dist.initProcessGroup({ backend: 'gloo', initMethod: o.initMethod, rank: o.rank, worldSize: o.worldSize, timeoutMs: o.timeoutMs ?? 30000 });
  const rank = dist.getRank();
  const world = dist.getWorldSize();
  const result: Record<string, unknown> = { rank, world };
  if (scenario === 'collectives') {
    tidy(() => {
      // Rank r holds [r+1, 2(r+1), 3(r+1)] and [10r, -10r]: sums, means, extremes are easy by hand.
      const mk = (): Tensor => fromArray(new Float32Array([1, 2, 3].map((v) => v * (rank + 1))));
      result.sum = values(dist.allReduce(mk(), 'sum'));
      result.avg = values(dist.allReduce(mk(), 'avg'));
      result.max = values(dist.allReduce(mk(), 'max'));
      result.min = values(dist.allReduce(fromArray(new Float32Array([10 * rank, -10 * rank])), 'min'));
      result.sumInt = Array.from(dist.allReduce(fromArray(new BigInt64Array([BigInt(rank + 1)])), 'sum').toArray() as BigInt64Array, Number);
      result.broadcast = values(dist.broadcast(fromArray(new Float32Array([rank, rank + 0.5])), world - 1));
      result.allGather = dist.allGather(fromArray(new Float32Array([rank, 100 + rank]))).map(values);
      dist.barrier();
      try {
        dist.allReduce(fromArray(new Float32Array([1, 2, 3, 4]), [2, 2]).t(), 'sum');
        result.stridedError = null;
      } catch (e) {
        result.stridedError = (e as Error).message;
      }
      try {
        dist.allReduce(fromArray(new BigInt64Array([1n])), 'avg');
        result.avgIntError = null;
      } catch (e) {
        result.avgIntError = (e as Error).message;
      }
      result.afterErrors = values(dist.allReduce(mk(), 'sum')); // the group still works
    });
  } else if (scenario === 'interop') {
    // The same calls, in the same order, as test/distributed/torch_rank.py makes in PyTorch.
    tidy(() => {
      const mk = (): Tensor => fromArray(new Float32Array([1, 2, 3].map((v) => v * (rank + 1))));
      result.sum = values(dist.allReduce(mk(), 'sum'));
      result.max = values(dist.allReduce(mk(), 'max'));
      result.broadcast = values(dist.broadcast(fromArray(new Float32Array([rank, rank + 0.5])), 1));
      result.allGather = dist.allGather(fromArray(new Float32Array([rank, 100 + rank]))).map(values);
    });
  } else if (scenario === 'ddp' || scenario === 'syncbn') {
    const { x, y } = ddpBatch();
    // Different initial weights on each rank: the wrapper must replace them with rank 0's.
    manualSeed(100 + rank);
    const model = scenario === 'ddp' ? smallNet() : bnNet();
    if (scenario === 'syncbn' && o.sync !== false) result.converted = dist.convertSyncBatchNorm(model);
    const ddp = new dist.DistributedDataParallel(model, { bucketCapMb: 0.001 }); // several buckets
    const opt = new SGD(model.parameters(), { lr: DDP_LR, momentum: 0.9 });
    const share = x.size(0) / world;
    for (let s = 0; s < DDP_STEPS; s++) {
      tidy(() => {
        const loss = crossEntropy(ddp.forward(x.narrow(0, rank * share, share)), y.narrow(0, rank * share, share));
        opt.zeroGrad();
        loss.backward();
        ddp.syncGradients();
        opt.step();
      });
    }
    saveSafetensors(o.out!, model.stateDict());
  } else if (scenario === 'fail') {
    // For the launcher: rank 1 fails; the others would wait forever unless the launcher stops them.
    if (rank === 1) {
      process.stderr.write('rank 1 fails on purpose\n');
      process.exit(3);
    }
    await new Promise((r) => setTimeout(r, 120000));
  } else if (scenario === 'fail-in-collectives') {
    // Across machines: the last rank fails while the others are inside collectives with it. No launcher can
    // stop ranks on another machine: their next collective must fail on its own, and the rank exit non-zero.
    if (rank === world - 1) {
      dist.barrier();
      process.stderr.write(`rank ${rank} fails on purpose\n`);
      process.exit(3);
    }
    dist.barrier();
    for (;;) tidy(() => void dist.allReduce(fromArray(new Float32Array([rank])), 'sum'));
  } else {
    throw new Error(`worker: unknown scenario '${scenario}'`);
  }
  dist.barrier();
  dist.destroyProcessGroup();
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

if (require.main === module) {
  main().catch((e: Error) => {
    process.stderr.write(`worker: ${e.message}\n`);
    process.exit(1);
  });
}
