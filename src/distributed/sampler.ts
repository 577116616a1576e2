// PyTorch's DistributedSampler for tsvision's DataLoader: every rank takes the same seeded permutation of the
// epoch (the loader's own) and keeps every worldSize-th index from its rank on, so the shards are disjoint
// and together cover the epoch.
import { DataLoader } from '../data';

export interface ShardOptions {
  rank: number;
  worldSize: number;
  /**
   * Pad the order by repeating its start until it divides evenly (DistributedSampler's default), so every
   * rank runs the same number of steps — training needs that, since each step is a collective. Evaluation
   * passes false: shards then differ by at most one sample and no sample is counted twice. Default true.
   */
  pad?: boolean;
}

/** Rank's shard of an epoch's order: order (padded to a multiple of worldSize) [rank : : worldSize]. */
export function shardOrder(order: Int32Array, o: ShardOptions): Int32Array {
  const { rank, worldSize } = o;
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`shardOrder: worldSize must be a positive integer, got ${worldSize}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new RangeError(`shardOrder: rank must be an integer in [0, ${worldSize}), got ${rank}`);
  const n = order.length;
  const total = (o.pad ?? true) ? Math.ceil(n / worldSize) * worldSize : n;
  if (n === 0 && total > 0) throw new RangeError('shardOrder: cannot pad an empty order');
  const out = new Int32Array(Math.max(0, Math.ceil((total - rank) / worldSize)));
  // Index i of the padded order is order[i mod n]: DistributedSampler's `indices += indices[:padding]`,
  // repeated when the padding is longer than the order itself.
  for (let k = 0, i = rank; i < total; k++, i += worldSize) out[k] = order[i % n];
  return out;
}

/** The same loader restricted to one rank's shard of every epoch (batch size, transforms and prefetching kept). */
export function shardLoader(loader: DataLoader, o: ShardOptions): DataLoader {
  return loader.withSampler((order) => shardOrder(order, o));
}
