// Global metrics from per-rank sums: one float64 all-reduce, so the accuracy every rank prints is the one
// over the whole data set. Alone (no process group, or a group of one) each helper is the identity, so that
// code run with and without `launch` reads the same.
import { DataLoader } from '../data';
import { Tensor, fromArray, tidy } from '../torch';
import { allReduce, getRank, getWorldSize, isInitialized } from './process-group';
import { shardLoader } from './sampler';

const parallel = (): boolean => isInitialized() && getWorldSize() > 1;

/** Element-wise sums of `values` over all ranks (float64; exact for counts below 2^53); alone, the values. */
export function sumAcrossRanks(values: number[]): number[] {
  if (!parallel()) return values;
  return tidy(() => Array.from(allReduce(fromArray(Float64Array.from(values)), 'sum').toArray() as Float64Array));
}

/**
 * This rank's share of an evaluation loader (the ranks' shares are disjoint and cover the set, without
 * padding), or the loader itself alone: each rank scores its share and the sums make the whole set's score,
 * in 1/N of the time. (`limitBatches` then counts a rank's batches.)
 */
export function evalShare(loader: DataLoader): DataLoader {
  return parallel() ? shardLoader(loader, { rank: getRank(), worldSize: getWorldSize(), pad: false }) : loader;
}

/** A tensor summed over the ranks in place (evaluateSegmentation's crossReplicaSum), or undefined alone. */
export function rankSum(): ((t: Tensor) => Tensor) | undefined {
  return parallel() ? (t: Tensor) => allReduce(t, 'sum') : undefined;
}
