// Semantic-segmentation metrics from one confusion matrix accumulated in libtorch (a bincount over
// target · C + prediction, no per-pixel JavaScript): per-class IoU = TP / (TP + FP + FN), their mean (mIoU)
// over the classes that occur, and pixel accuracy. Pixels labelled ignoreIndex (255, as Cityscapes'
// "void") count nowhere.
import { Tensor, callOp, noGrad, tidy, zeros } from '../torch';

export class SegmentationMeter {
  /** [C, C] int64: rows are true classes, columns predicted ones. */
  private matrix: Tensor;

  constructor(
    readonly numClasses: number,
    readonly ignoreIndex = 255,
  ) {
    if (!Number.isInteger(numClasses) || numClasses < 1) throw new RangeError(`SegmentationMeter: numClasses must be a positive integer, got ${numClasses}`);
    this.matrix = zeros([numClasses, numClasses], { dtype: 'int64' }).keep();
  }

  /** Adds a batch: logits [N, C, H, W] (argmax over C) or predicted labels [N, H, W], and targets [N, H, W]. */
  update(prediction: Tensor, target: Tensor): void {
    tidy(() =>
      noGrad(() => {
        const c = this.numClasses;
        const pred = prediction.ndim === 4 ? prediction.argmax(1) : prediction.long();
        if (pred.shape.join(',') !== target.shape.join(',')) throw new Error(`SegmentationMeter: prediction [${pred.shape}] and target [${target.shape}] differ`);
        const t = target.long().flatten().to('cpu');
        const p = pred.flatten().to('cpu');
        const valid = t.ne(this.ignoreIndex);
        const tv = t.maskedSelect(valid);
        if (tv.numel() && (tv.min().item() < 0 || tv.max().item() >= c)) {
          throw new Error(`SegmentationMeter: target labels must be in [0, ${c}) or ${this.ignoreIndex}, got ${tv.min().item()}..${tv.max().item()}`);
        }
        const counts = callOp('aten::bincount', tv.mul(c).add(p.maskedSelect(valid)), null, c * c) as Tensor;
        this.matrix.add_(counts.view(c, c));
      }),
    );
  }

  confusion(): number[][] {
    const flat = this.matrix.toNumbers();
    return Array.from({ length: this.numClasses }, (_, i) => flat.slice(i * this.numClasses, (i + 1) * this.numClasses));
  }

  /** Per-class IoU; NaN for a class neither present nor predicted. */
  iou(): number[] {
    const m = this.confusion();
    return m.map((row, i) => {
      const tp = row[i];
      const fn = row.reduce((a, b) => a + b, 0) - tp;
      const fp = m.reduce((a, r) => a + r[i], 0) - tp;
      return tp + fp + fn === 0 ? NaN : tp / (tp + fp + fn);
    });
  }

  /** Mean IoU over the classes that occur (in targets or predictions). */
  meanIoU(): number {
    const v = this.iou().filter((x) => !Number.isNaN(x));
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
  }

  pixelAccuracy(): number {
    const m = this.confusion();
    const total = m.reduce((a, r) => a + r.reduce((x, y) => x + y, 0), 0);
    return total ? m.reduce((a, r, i) => a + r[i], 0) / total : NaN;
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
