// Semantic-segmentation metrics from one confusion matrix (ConfusionMatrix): per-class IoU =
// TP / (TP + FP + FN), their mean (mIoU) over the classes that occur, and pixel accuracy. Pixels labelled
// ignoreIndex (255, as Cityscapes' "void") count nowhere.
import { Tensor, arange, callOp, noGrad, tidy } from '../torch';
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

/**
 * Each image's own mIoU (over the classes in its ground truth or its prediction) and pixel accuracy, from
 * class maps [N, H, W] (prediction) and targets [N, H, W] (ignoreIndex counting nowhere): which images a
 * network segments worst. Counted in libtorch, one bincount per quantity over image · C + class.
 * An image whose pixels are all ignored scores NaN.
 */
export function perImageScores(prediction: Tensor, target: Tensor, numClasses: number, ignoreIndex = 255): { mIoU: number[]; pixelAccuracy: number[] } {
  if (prediction.ndim !== 3 || prediction.shape.join() !== target.shape.join()) throw new Error(`perImageScores: class maps and targets [N, H, W] of one shape, got [${prediction.shape}] and [${target.shape}]`);
  const [n] = target.shape;
  const c = numClasses;
  const [inter, predicted, truth] = tidy(() =>
    noGrad(() => {
      const t = target.long().flatten(1);
      const p = prediction.long().flatten(1);
      const valid = t.ne(ignoreIndex);
      // Image i's class k counts at i · C + k; ignored pixels go nowhere.
      const base = arange(0, n, 1, { dtype: 'int64' }).mul(c).unsqueeze(1);
      const at = (labels: Tensor, where: Tensor): Tensor => callOp('aten::bincount', labels.clamp(0, c - 1).add(base).maskedSelect(where), null, n * c) as Tensor;
      const counts = [at(t, valid.logicalAnd(p.eq(t))), at(p, valid), at(t, valid)];
      return counts.map((x) => Array.from(x.to('float64').toArray() as Float64Array));
    }),
  );
  const mIoU: number[] = [];
  const pixelAccuracy: number[] = [];
  for (let i = 0; i < n; i++) {
    let [sum, classes, hits, pixels] = [0, 0, 0, 0];
    for (let k = 0; k < c; k++) {
      const j = i * c + k;
      const union = predicted[j] + truth[j] - inter[j];
      if (union > 0) {
        sum += inter[j] / union;
        classes++;
      }
      hits += inter[j];
      pixels += truth[j];
    }
    mIoU.push(classes ? sum / classes : NaN);
    pixelAccuracy.push(pixels ? hits / pixels : NaN);
  }
  return { mIoU, pixelAccuracy };
}

/**
 * Per-pixel scores [N, K, H, W] (logits or probabilities) and labels [N, H, W] as rows [M, K] and labels [M]:
 * the labelled pixels (ignoreIndex left out), every stride-th of them — what per-pixel calibration counts.
 */
export function labelledPixels(scores: Tensor, labels: Tensor, ignoreIndex = 255, stride = 1): [Tensor, Tensor] {
  const y = labels.flatten().long();
  const at = arange(0, y.size(0), 1, { dtype: 'int64' }).maskedSelect(y.ne(ignoreIndex)).slice(0, 0, undefined, stride);
  return [scores.permute(0, 2, 3, 1).reshape(-1, scores.size(1)).indexSelect(0, at), y.indexSelect(0, at)];
}
