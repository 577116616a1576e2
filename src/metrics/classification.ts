// Classification metrics computed in libtorch: top-k hits per batch, accumulated in JavaScript numbers.
import { Tensor, noGrad, tidy } from '../torch';

/** Number of samples whose label is among the k highest logits, for each k. */
export function topkHits(logits: Tensor, labels: Tensor, ks: number[]): number[] {
  return tidy(() =>
    noGrad(() => {
      const kmax = Math.min(Math.max(...ks), logits.size(1));
      const top = logits.topk(kmax, 1).indices; // [N, kmax], best first
      const hit = top.eq(labels.unsqueeze(1)); // [N, kmax]
      const cum = hit.to('int32').cumsum(1); // cum[:, k-1] = 1 if the label is within the top k
      return ks.map((k) => cum.select(1, Math.min(k, kmax) - 1).sum().item());
    }),
  );
}

/** Running averages of loss and top-k accuracy over an epoch. */
export class ClassificationMeter {
  private lossSum = 0;
  private hits: number[];
  count = 0;
  constructor(readonly ks: number[] = [1, 5]) {
    this.hits = ks.map(() => 0);
  }
  update(loss: number, logits: Tensor, labels: Tensor): void {
    const n = labels.size(0);
    this.lossSum += loss * n;
    this.count += n;
    topkHits(logits, labels, this.ks).forEach((h, i) => (this.hits[i] += h));
  }
  get loss(): number {
    return this.lossSum / Math.max(1, this.count);
  }
  /** Accuracy in [0, 1] for the i-th k. */
  accuracy(i = 0): number {
    return this.hits[i] / Math.max(1, this.count);
  }
  /** The running sums, as one list [loss sum, hits per k…, count]: what a checkpoint saves, or ranks add up. */
  sums(): number[] {
    return [this.lossSum, ...this.hits, this.count];
  }
  /** Takes up sums() saved mid-epoch, so that the epoch's numbers cover its batches before an interruption. */
  restore(sums: readonly number[]): void {
    if (sums.length !== this.ks.length + 2) throw new Error(`ClassificationMeter.restore: expected ${this.ks.length + 2} sums, got ${sums.length}`);
    [this.lossSum, ...this.hits] = sums.slice(0, -1);
    this.count = sums[sums.length - 1];
  }
}

/**
 * Per-class recall from a confusion matrix (rows: true classes): the share of each class's images given
 * that class, null for a class without any; and their mean over the classes present, the balanced
 * accuracy (sklearn's balanced_accuracy_score), which an imbalanced test set does not flatter.
 */
export function recallPerClass(confusion: readonly (readonly number[])[]): { recall: (number | null)[]; balanced: number } {
  const recall = confusion.map((row, c) => {
    const n = row.reduce((a, x) => a + x, 0);
    return n > 0 ? row[c] / n : null;
  });
  const present = recall.filter((r): r is number => r !== null);
  return { recall, balanced: present.length ? present.reduce((a, r) => a + r, 0) / present.length : 0 };
}
