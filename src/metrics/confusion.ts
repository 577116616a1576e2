// A confusion matrix accumulated in libtorch (a bincount over target · C + prediction, no per-sample
// JavaScript): rows are true classes, columns predicted ones. Labels equal to ignoreIndex (255, as
// Cityscapes' "void") count nowhere. Classification (labels [N]) and segmentation (labels [N, H, W]) alike.
import { Tensor, callOp, noGrad, tidy, zeros } from '../torch';

export class ConfusionMatrix {
  /** [C, C] int64: rows are true classes, columns predicted ones. */
  private matrix: Tensor;

  constructor(
    readonly numClasses: number,
    readonly ignoreIndex = 255,
  ) {
    if (!Number.isInteger(numClasses) || numClasses < 1) throw new RangeError(`${this.constructor.name}: numClasses must be a positive integer, got ${numClasses}`);
    this.matrix = zeros([numClasses, numClasses], { dtype: 'int64' }).keep();
  }

  /**
   * Adds a batch of targets ([N] or [N, H, W]) and predictions: logits with one more dimension, the classes
   * at dimension 1 ([N, C] or [N, C, H, W]; their argmax counts), or predicted labels shaped as the targets.
   */
  update(prediction: Tensor, target: Tensor): void {
    tidy(() =>
      noGrad(() => {
        const c = this.numClasses;
        const pred = prediction.ndim === target.ndim + 1 ? prediction.argmax(1) : prediction.long();
        const name = this.constructor.name;
        if (pred.shape.join(',') !== target.shape.join(',')) throw new Error(`${name}: prediction [${pred.shape}] and target [${target.shape}] differ`);
        const t = target.long().flatten().to('cpu');
        const p = pred.flatten().to('cpu');
        const valid = t.ne(this.ignoreIndex);
        const tv = t.maskedSelect(valid);
        if (tv.numel() && (tv.min().item() < 0 || tv.max().item() >= c)) {
          throw new Error(`${name}: target labels must be in [0, ${c}) or ${this.ignoreIndex}, got ${tv.min().item()}..${tv.max().item()}`);
        }
        const counts = callOp('aten::bincount', tv.mul(c).add(p.maskedSelect(valid)), null, c * c) as Tensor;
        this.matrix.add_(counts.view(c, c));
      }),
    );
  }

  /** Counts: [true class][predicted class]. */
  confusion(): number[][] {
    const flat = this.matrix.toNumbers();
    return Array.from({ length: this.numClasses }, (_, i) => flat.slice(i * this.numClasses, (i + 1) * this.numClasses));
  }

  /** Replaces the counts by sum(counts): e.g. an all-reduce over data-parallel ranks, for the global score. */
  reduce(sum: (t: Tensor) => Tensor): void {
    tidy(() => {
      const r = sum(this.matrix); // an all-reduce works in place
      if (r !== this.matrix) this.matrix.copy_(r);
    });
  }

  reset(): void {
    this.matrix.zero_();
  }

  dispose(): void {
    this.matrix.dispose();
  }
}
