// Calibration: does a network's confidence mean what it says? Guo et al. (2017), "On Calibration of Modern
// Neural Networks": the top-1 probabilities are sorted into equal-width bins, and each bin's accuracy is set
// against its mean confidence. The expected calibration error (ECE) weighs the gaps by the bins' shares of
// the images; the maximum calibration error (MCE) is the largest gap. The counting runs in libtorch.
import { Tensor, callOp, crossEntropy, noGrad, tidy } from '../torch';

/** The paper's 15 bins. */
export const CALIBRATION_BINS = 15;

export interface CalibrationBin {
  /** Confidence range [lo, hi) (the last bin includes 1). */
  lo: number;
  hi: number;
  count: number;
  /** Mean top-1 probability and accuracy of the bin's images (0 in an empty bin). */
  confidence: number;
  accuracy: number;
}

export interface Calibration {
  bins: CalibrationBin[];
  /** Σ_b (n_b / N) · |accuracy_b − confidence_b|. */
  ece: number;
  /** max_b |accuracy_b − confidence_b| over non-empty bins. */
  mce: number;
}

export class CalibrationMeter {
  private readonly count: number[];
  private readonly confidence: number[];
  private readonly correct: number[];

  constructor(readonly numBins = CALIBRATION_BINS) {
    if (!Number.isInteger(numBins) || numBins < 1) throw new RangeError(`CalibrationMeter: numBins must be a positive integer, got ${numBins}`);
    [this.count, this.confidence, this.correct] = [0, 1, 2].map(() => new Array<number>(numBins).fill(0));
  }

  /** Adds a batch: class probabilities [N, K] (rows summing to 1) and labels [N]. */
  update(probabilities: Tensor, labels: Tensor): void {
    const b = this.numBins;
    const sums = tidy(() =>
      noGrad(() => {
        const { values, indices } = probabilities.float().maxDim(1);
        // Bin i holds confidences in [i/B, (i+1)/B); a confidence of exactly 1 goes to the last bin.
        const bin = values.mul(b).floor().long().clamp(0, b - 1);
        const hit = indices.eq(labels).to('float32');
        const count = callOp('aten::bincount', bin, null, b) as Tensor;
        const conf = callOp('aten::bincount', bin, values.double(), b) as Tensor;
        const corr = callOp('aten::bincount', bin, hit.double(), b) as Tensor;
        return [count, conf, corr].map((t) => Array.from(t.to('float64').toArray() as Float64Array));
      }),
    );
    for (let i = 0; i < b; i++) {
      this.count[i] += sums[0][i];
      this.confidence[i] += sums[1][i];
      this.correct[i] += sums[2][i];
    }
  }

  result(): Calibration {
    const n = this.count.reduce((a, x) => a + x, 0);
    const bins = this.count.map((count, i): CalibrationBin => ({ lo: i / this.numBins, hi: (i + 1) / this.numBins, count, confidence: count ? this.confidence[i] / count : 0, accuracy: count ? this.correct[i] / count : 0 }));
    const gaps = bins.filter((x) => x.count > 0).map((x) => ({ w: x.count / n, gap: Math.abs(x.accuracy - x.confidence) }));
    return { bins, ece: gaps.reduce((a, g) => a + g.w * g.gap, 0), mce: gaps.reduce((a, g) => Math.max(a, g.gap), 0) };
  }
}

/**
 * Temperature scaling (Guo et al. 2017, §4.2): the T > 0 that minimizes the negative log-likelihood of
 * softmax(logits / T) on held-out images. The NLL is convex in 1/T, so a golden-section search over log T
 * (from 1/20 to 20, to a relative 1e-6) finds it; each step is one cross-entropy in libtorch.
 * logits [N, K], labels [N].
 */
export const TEMPERATURE_RANGE = [1 / 20, 20] as const;

export function fitTemperature(logits: Tensor, labels: Tensor): number {
  if (logits.ndim !== 2 || labels.ndim !== 1 || logits.size(0) !== labels.size(0) || logits.size(0) === 0) throw new Error(`fitTemperature: logits [N, K] and labels [N] of N > 0 images, got [${logits.shape}] and [${labels.shape}]`);
  const nll = (logT: number): number => tidy(() => noGrad(() => crossEntropy(logits.double().div(Math.exp(logT)), labels).item()));
  const phi = (Math.sqrt(5) - 1) / 2;
  let [a, b] = TEMPERATURE_RANGE.map(Math.log);
  let [c, d] = [b - phi * (b - a), a + phi * (b - a)];
  let [fc, fd] = [nll(c), nll(d)];
  while (b - a > 1e-6) {
    if (fc < fd) {
      [b, d, fd] = [d, c, fc];
      c = b - phi * (b - a);
      fc = nll(c);
    } else {
      [a, c, fc] = [c, d, fd];
      d = a + phi * (b - a);
      fd = nll(d);
    }
  }
  return Math.exp((a + b) / 2);
}
