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

/**
 * Running averages of loss and top-k accuracy over an epoch. Images without a label (NO_LABEL, a transfer
 * set's) count in the loss, which a teacher gave them, but not in the accuracy, which has nothing to check.
 */
export class ClassificationMeter {
  private lossSum = 0;
  private hits: number[];
  count = 0;
  /** Of `count`, the images with a label: accuracy's denominator. */
  labelled = 0;
  constructor(readonly ks: number[] = [1, 5]) {
    this.hits = ks.map(() => 0);
  }
  update(loss: number, logits: Tensor, labels: Tensor): void {
    const n = labels.size(0);
    this.lossSum += loss * n;
    this.count += n;
    // A class index is never NO_LABEL (negative), so such images are never hits: only the count needs them apart.
    topkHits(logits, labels, this.ks).forEach((h, i) => (this.hits[i] += h));
    this.labelled += tidy(() => labels.ge(0).sum().item());
  }
  get loss(): number {
    return this.lossSum / Math.max(1, this.count);
  }
  /** Accuracy in [0, 1] for the i-th k, over the labelled images. */
  accuracy(i = 0): number {
    return this.hits[i] / Math.max(1, this.labelled);
  }
  /** The running sums, as one list [loss sum, hits per k…, count, labelled]: what a checkpoint saves, or ranks add up. */
  sums(): number[] {
    return [this.lossSum, ...this.hits, this.count, this.labelled];
  }
  /**
   * Takes up sums() saved mid-epoch, so that the epoch's numbers cover its batches before an interruption.
   * Sums without the labelled count (checkpoints before transfer sets) had every image labelled.
   */
  restore(sums: readonly number[]): void {
    const k = this.ks.length;
    if (sums.length !== k + 2 && sums.length !== k + 3) throw new Error(`ClassificationMeter.restore: expected ${k + 3} sums, got ${sums.length}`);
    this.lossSum = sums[0];
    this.hits = sums.slice(1, k + 1);
    this.count = sums[k + 1];
    this.labelled = sums[k + 2] ?? this.count;
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

/** Precision, recall and F1 of one class (null where undefined: no image predicted as it, or none of it). */
export interface ClassScores {
  precision: number | null;
  recall: number | null;
  f1: number | null;
  /** Test images of the class. */
  support: number;
}

/**
 * sklearn's classification_report from a confusion matrix (rows: true classes, columns: predicted): each
 * class's precision (of the images given the class, the share that are it), recall and F1 (their harmonic
 * mean; 0 when both are 0), and their macro averages over the classes with test images — each class
 * counting alike, as rare classes should — and the averages weighted by support.
 */
export function classificationReport(confusion: readonly (readonly number[])[]): { perClass: ClassScores[]; macro: { precision: number; recall: number; f1: number }; weighted: { precision: number; recall: number; f1: number } } {
  const k = confusion.length;
  const perClass = confusion.map((row, c): ClassScores => {
    const support = row.reduce((a, x) => a + x, 0);
    let predicted = 0;
    for (let r = 0; r < k; r++) predicted += confusion[r][c];
    const tp = row[c];
    const precision = predicted > 0 ? tp / predicted : null;
    const recall = support > 0 ? tp / support : null;
    // Nothing predicted as a class it has images of: no hits, so F1 is 0 (precision itself stays undefined).
    const f1 = recall === null ? null : precision === null || precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    return { precision, recall, f1, support };
  });
  // A class with test images that nothing was predicted as has precision 0 there (sklearn's zero_division=0).
  const present = perClass.filter((s) => s.support > 0);
  const total = present.reduce((a, s) => a + s.support, 0);
  const avg = (v: (s: ClassScores) => number | null, weighted: boolean): number => {
    const w = (s: ClassScores) => (weighted ? s.support / Math.max(1, total) : 1 / Math.max(1, present.length));
    return present.reduce((a, s) => a + w(s) * (v(s) ?? 0), 0);
  };
  const of = (weighted: boolean) => ({ precision: avg((s) => s.precision, weighted), recall: avg((s) => s.recall, weighted), f1: avg((s) => s.f1, weighted) });
  return { perClass, macro: of(false), weighted: of(true) };
}

/** A pair of classes a network mixes up: `count` images of class `label` answered as `predicted` (`share` of the class's images). */
export interface ConfusedPair {
  label: number;
  predicted: number;
  count: number;
  share: number;
}

/** The `k` largest off-diagonal cells of a confusion matrix (rows: true classes), most images first. */
export function mostConfused(confusion: readonly (readonly number[])[], k = 5): ConfusedPair[] {
  const pairs: ConfusedPair[] = [];
  confusion.forEach((row, label) => {
    const n = row.reduce((a, x) => a + x, 0);
    row.forEach((count, predicted) => {
      if (predicted !== label && count > 0) pairs.push({ label, predicted, count, share: count / n });
    });
  });
  return pairs.sort((a, b) => b.count - a.count || b.share - a.share || a.label - b.label || a.predicted - b.predicted).slice(0, k);
}
