// Semantic-segmentation metrics from one confusion matrix (ConfusionMatrix): per-class IoU =
// TP / (TP + FP + FN), their mean (mIoU) over the classes that occur, and pixel accuracy. Pixels labelled
// ignoreIndex (255, as Cityscapes' "void") count nowhere.
import { ConfusionMatrix } from './confusion';

export class SegmentationMeter extends ConfusionMatrix {
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
}
