// Held-out sets: a validation set out of a training set (model selection and early stopping never look at
// the test set), or a test set out of a lone training folder; the same share of every class, drawn by seed.
import { Tensor, keep, tensor } from '../torch';
import { BatchData } from './transforms';
import { BatchSource, Dataset, Sample } from './loader';
import { Rng } from './rng';

// Its own stream: the split never shares random numbers with shuffling or augmentation of the same seed.
const SPLIT_STREAM = 0x53504c54;
const SAMPLE_STREAM = 0x4c41424c;

/**
 * Indices of `labels` (one class per sample) split into training and validation: from each class,
 * round(fraction · its count) samples for validation, at least one where the class has two or more and
 * never its last one, drawn by `seed` (the same seed, the same split). Both lists in ascending order.
 */
export function stratifiedSplit(labels: ArrayLike<number>, fraction: number, seed: number): { train: Int32Array; val: Int32Array } {
  if (!(fraction > 0 && fraction < 1)) throw new RangeError(`stratifiedSplit: the validation fraction must lie in (0, 1), got ${fraction}`);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i];
    const list = byClass.get(c);
    if (list) list.push(i);
    else byClass.set(c, [i]);
  }
  const isVal = new Uint8Array(labels.length);
  for (const [c, members] of byClass) {
    const n = members.length;
    const k = Math.min(n - 1, Math.max(n >= 2 ? 1 : 0, Math.round(fraction * n)));
    const order = Rng.from(seed, SPLIT_STREAM, c).permutation(n);
    for (let j = 0; j < k; j++) isVal[members[order[j]]] = 1;
  }
  const pick = (v: number) => Int32Array.from(isVal.reduce<number[]>((a, f, i) => (f === v ? (a.push(i), a) : a), []));
  return { train: pick(0), val: pick(1) };
}

// The test split's seed: the same test images whatever the run's --seed, so runs compare on equal terms.
export const TEST_SPLIT_SEED = 0x7e57;

/** 0, 1, …, n − 1. */
export const allOf = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => i);

/**
 * `indices` (of samples with these labels) in two: `out`, that share of every class (stratifiedSplit, drawn
 * by `seed`), and `keep`, the rest; both as indices of the whole set, ascending.
 */
export function splitOff(labels: readonly number[], indices: Int32Array, fraction: number, seed: number): { keep: Int32Array; out: Int32Array } {
  const { train, val } = stratifiedSplit(Array.from(indices, (i) => labels[i]), fraction, seed);
  return { keep: train.map((j) => indices[j]), out: val.map((j) => indices[j]) };
}

/** Samples `indices` of a per-sample dataset (classified or pixel-labelled), in that order. */
export class SampleSubset<S = Sample> implements Dataset<S> {
  constructor(readonly dataset: Dataset<S>, readonly indices: Int32Array) {}

  get length(): number {
    return this.indices.length;
  }

  get(i: number): S | Promise<S> {
    if (!Number.isInteger(i) || i < 0 || i >= this.indices.length) throw new RangeError(`SampleSubset.get(${i}): index out of range [0, ${this.indices.length})`);
    return this.dataset.get(this.indices[i]);
  }
}

/** Two datasets one after the other (a training set and a transfer set of unlabelled images, say). */
export class ConcatDataset<S> implements Dataset<S> {
  constructor(readonly first: Dataset<S>, readonly second: Dataset<S>) {}

  get length(): number {
    return this.first.length + this.second.length;
  }

  get(i: number): S | Promise<S> {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) throw new RangeError(`ConcatDataset.get(${i}): index out of range [0, ${this.length})`);
    return i < this.first.length ? this.first.get(i) : this.second.get(i - this.first.length);
  }
}

/** Samples `indices` of an in-memory dataset; a batch is still one index_select, through the index map. */
export class BatchSubset implements BatchSource {
  private readonly map: Tensor;

  constructor(readonly dataset: BatchSource, indices: Int32Array) {
    this.map = keep(tensor(Array.from(indices), { dtype: 'int64' }));
  }

  get length(): number {
    return this.map.size(0);
  }

  getBatch(indices: Tensor): BatchData {
    const rows = this.map.indexSelect(0, indices);
    try {
      return this.dataset.getBatch(rows);
    } finally {
      rows.dispose();
    }
  }

  dispose(): void {
    this.map.dispose();
  }
}

/**
 * `n` of `indices` (of samples with these labels), the same share of every class: each class gets n × its
 * share of `indices`, rounded by largest remainder so the quotas sum to n exactly, drawn by `seed`. `keep`:
 * the n drawn; `rest`: the others. Both as indices of the whole set, ascending.
 */
export function stratifiedSample(labels: readonly number[], indices: Int32Array, n: number, seed: number): { keep: Int32Array; rest: Int32Array } {
  if (!Number.isInteger(n) || n < 1 || n > indices.length) throw new RangeError(`stratifiedSample: n must be an integer in [1, ${indices.length}] (the images to draw from), got ${n}`);
  const byClass = new Map<number, number[]>();
  for (const i of indices) {
    const list = byClass.get(labels[i]);
    if (list) list.push(i);
    else byClass.set(labels[i], [i]);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const exact = classes.map((c) => (n * byClass.get(c)!.length) / indices.length);
  const quota = exact.map(Math.floor);
  // Largest remainders first (ties to the lower class): the quotas then add up to n.
  const order = classes.map((_, j) => j).sort((a, b) => exact[b] - quota[b] - (exact[a] - quota[a]) || a - b);
  for (let k = 0, left = n - quota.reduce((a, q) => a + q, 0); k < left; k++) quota[order[k]]++;
  const drawn = new Set<number>();
  classes.forEach((c, j) => {
    const members = byClass.get(c)!;
    const perm = Rng.from(seed, SAMPLE_STREAM, c).permutation(members.length);
    for (let k = 0; k < quota[j]; k++) drawn.add(members[perm[k]]);
  });
  const sorted = Int32Array.from(indices).sort();
  return { keep: sorted.filter((i) => drawn.has(i)), rest: sorted.filter((i) => !drawn.has(i)) };
}
