// Global metrics from per-rank sums: one float64 all-reduce, so the accuracy every rank prints is the one
// over the whole data set.
import { fromArray, tidy } from '../torch';
import { allReduce } from './process-group';

/** Element-wise sums of `values` over all ranks (float64; exact for counts below 2^53). */
export function sumAcrossRanks(values: number[]): number[] {
  return tidy(() => Array.from(allReduce(fromArray(Float64Array.from(values)), 'sum').toArray() as Float64Array));
}
