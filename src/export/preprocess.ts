// In-graph pre- and post-processing (`tsvision export --with-preprocessing`): a module around a trained
// network whose forward does what every deployment otherwise writes itself — raw pixels to the network's
// normalized input, logits to answers — so that the tracer (onnx.ts) puts it into the ONNX graph and a server
// or page feeds decoded bytes and reads results. The arithmetic is the data loaders' own (toFloat, then
// normalize), the same ops in the same order as tsvision's Predictor, so both compute the same numbers.
import { Module } from '../nn';
import { DType, Tensor, softmax } from '../torch';
import { BatchTransform, compose, normalize, toFloat } from '../data/transforms';
import { Rng } from '../data/rng';
import { SegmentationNet, forwardAnySize } from '../models/segmentation';
import { ExportableModule } from './onnx';
import { classMapDtype } from './card';

/** Input and output names of a graph with in-graph processing (its card records them). */
export const PIXELS_INPUT = 'pixels';
export const PROBABILITIES_OUTPUT = 'probabilities';
export const CLASSES_OUTPUT = 'classes';
export const LOGITS_OUTPUT = 'logits';

export interface PixelPipelineOptions {
  task: 'classify' | 'segment';
  /** Per channel, on pixel / 255: what training normalized with. */
  normalization: { mean: readonly number[]; std: readonly number[] };
  /** Also return the network's logits (a second output, 'logits'). */
  keepLogits?: boolean;
}

/**
 * pixels uint8 [N, H, W, C] (interleaved, as sharp's raw output and ImageData rows without alpha) →
 * classifiers: { probabilities: float [N, K] } (softmax over classes);
 * segmentation: { classes: uint8 [N, H, W] } (argmax over classes; int64 beyond 256 classes).
 * With keepLogits, also { logits } as the network returned them.
 */
export class PixelPipeline extends Module {
  private readonly transform: BatchTransform;

  constructor(
    readonly network: ExportableModule,
    private readonly o: PixelPipelineOptions,
  ) {
    super();
    this.transform = compose(toFloat(), normalize(o.normalization.mean, o.normalization.std));
  }

  forward(pixels: Tensor): Record<string, Tensor> {
    if (pixels.dtype !== 'uint8' || pixels.dim() !== 4) throw new Error(`PixelPipeline: expected uint8 pixels [N, H, W, C], got ${pixels.dtype} [${pixels.shape}]`);
    // Transposed while still bytes (a quarter of the float traffic); the loaders' transform takes NCHW.
    const nchw = pixels.permute(0, 3, 1, 2);
    const x = this.transform({ x: nchw, y: nchw }, { epoch: 0, index: 0, rng: Rng.from(0) }).x;
    const net = this.network as ExportableModule & Partial<Pick<SegmentationNet, 'sizeMultiple'>>;
    // As Predictor runs segmentation nets: padded to their size multiple where the size is not one.
    const logits = (this.o.task === 'segment' && typeof net.sizeMultiple === 'number' ? forwardAnySize(net as SegmentationNet, x) : net.forward(x)) as Tensor;
    const keep: Record<string, Tensor> = this.o.keepLogits ? { [LOGITS_OUTPUT]: logits } : {};
    if (this.o.task === 'classify') return { [PROBABILITIES_OUTPUT]: softmax(logits, 1), ...keep };
    const ids = logits.argmax(1);
    const dtype: DType = classMapDtype(logits.size(1));
    return { [CLASSES_OUTPUT]: dtype === 'int64' ? ids : ids.to(dtype), ...keep };
  }

  /** Output names in forward's order. */
  get outputNames(): string[] {
    return [this.o.task === 'classify' ? PROBABILITIES_OUTPUT : CLASSES_OUTPUT, ...(this.o.keepLogits ? [LOGITS_OUTPUT] : [])];
  }
}

/** The traced input shape of a pipeline: the network's N×C×H×W as N×H×W×C. */
export function pixelShape(nchw: readonly number[]): number[] {
  const [n, c, h, w] = nchw;
  return [n, h, w, c];
}

/**
 * Where a class map differs from a reference one, and how many of those pixels are not ties: a pixel is a tie
 * where the reference logits of the two classes differ by at most `tolerance` — two executors' rounding
 * (about 1e-6 of the logits' scale) can order such classes either way. `logits` is the reference's
 * [N, K, H, W] row-major and `planeSize` its H·W; the maps are [N, H, W].
 */
export function classMapDifferences(
  got: ArrayLike<number | bigint>,
  want: ArrayLike<number>,
  logits: ArrayLike<number>,
  numClasses: number,
  planeSize: number,
  tolerance: number,
): { differ: number; unexplained: number } {
  if (got.length !== want.length || logits.length !== want.length * numClasses || want.length % planeSize) throw new Error('classMapDifferences: sizes do not match');
  let differ = 0;
  let unexplained = 0;
  for (let p = 0; p < want.length; p++) {
    const [a, b] = [Number(got[p]), want[p]];
    if (a === b) continue;
    differ++;
    const base = Math.floor(p / planeSize) * numClasses * planeSize + (p % planeSize);
    if (!(a >= 0 && a < numClasses) || Math.abs(logits[base + a * planeSize] - logits[base + b * planeSize]) > tolerance) unexplained++;
  }
  return { differ, unexplained };
}
