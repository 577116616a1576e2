// The segmentation papers' data augmentation, applied to an image and its label map together: random scale
// (DeepLab-V3 §4 and PSPNet §5.1: 0.5 to 2.0), random rotation (PSPNet: −10° to 10°), a random crop of a
// fixed size (padded where the scaled image is smaller: the image with the mean colour — 0 after
// normalization —, the labels with "ignore") and a random left-right mirror.
//
// All four are one affine map from each output pixel to the source, so a whole batch is one affine_grid and
// two grid_samples: bilinear for the images, nearest for the labels (a label is never blended into a class
// that is not there). The per-sample draws come from the loader's Rng, so a run is reproducible and a
// resumed run augments exactly as the uninterrupted one.
import { Tensor, affineGrid, callOp, conv2d, fromArray, gridSample, where } from '../torch';
import { IGNORE_LABEL } from './segmentation-folder';
import { BatchContext, BatchData, BatchTransform } from './transforms';

export interface SegmentationAugmentOptions {
  /** Output (H, W); a number: square. */
  crop: number | readonly [number, number];
  /** Scale factor drawn uniformly from [lo, hi]. Default [0.5, 2] (the papers'); [1, 1] turns it off. */
  scale?: readonly [number, number];
  /** Rotation drawn uniformly from ±rotate degrees. Default 0 (DeepLab-V3); PSPNet and ICNet use 10. */
  rotate?: number;
  /** Mirror left-right with probability 1/2. Default true. */
  flip?: boolean;
  /**
   * Probability of PSPNet's random Gaussian blur of the image (its authors' code: 1/2, a 5×5 kernel with
   * OpenCV's σ = 1.1 for that size, mirrored borders). Applied to the crop; labels untouched. Default 0.
   */
  blur?: number;
}

/** OpenCV's σ for a k×k Gaussian given σ = 0: 0.3·((k − 1)/2 − 1) + 0.8; 1.1 for k = 5. */
export const BLUR_KERNEL = 5;
export const BLUR_SIGMA = 0.3 * ((BLUR_KERNEL - 1) / 2 - 1) + 0.8;

/** A separable Gaussian blur of x [N, C, H, W], borders mirrored without repeating the edge (reflect-101). */
export function gaussianBlur(x: Tensor, kernel = BLUR_KERNEL, sigma = BLUR_SIGMA): Tensor {
  const r = (kernel - 1) / 2;
  const taps = Array.from({ length: kernel }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const sum = taps.reduce((a, b) => a + b, 0);
  const c = x.size(1);
  const k1 = fromArray(Float32Array.from(taps, (t) => t / sum)).to(x.dtype);
  const padded = callOp('aten::reflection_pad2d', x, [r, r, r, r]) as Tensor;
  const rows = conv2d(padded, k1.view(1, 1, kernel, 1).expand(c, 1, kernel, 1).contiguous(), null, { groups: c });
  return conv2d(rows, k1.view(1, 1, 1, kernel).expand(c, 1, 1, kernel).contiguous(), null, { groups: c });
}

/** One sample's draw: scale, rotation (radians), mirror, and the crop's offset in the scaled image. */
export interface AugmentDraw {
  scale: number;
  angle: number;
  flip: boolean;
  top: number;
  left: number;
}

type Mat3 = [number, number, number, number, number, number, number, number, number];
const mul = (a: Mat3, b: Mat3): Mat3 => {
  const r = new Array<number>(9).fill(0) as Mat3;
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) r[3 * i + j] += a[3 * i + k] * b[3 * k + j];
  return r;
};

/**
 * The map, as grid_sample's theta (2×3, normalized coordinates with align_corners=false), that reads a crop
 * of size (h, w) out of an (H, W) source under draw d. In pixel-edge coordinates (a pixel's centre at i + ½)
 * an output point (X, Y) is mirrored (X → w − X), shifted by the crop offset, divided by the scale and
 * rotated about the source's centre; at scale 1 without rotation, output pixel (i, j) is exactly source pixel
 * (i + top, j + left).
 */
export function augmentTheta(d: AugmentDraw, src: readonly [number, number], out: readonly [number, number]): number[] {
  const [H, W] = src;
  const [h, w] = out;
  const fromNormalizedOut: Mat3 = [w / 2, 0, w / 2, 0, h / 2, h / 2, 0, 0, 1];
  const mirror: Mat3 = d.flip ? [-1, 0, w, 0, 1, 0, 0, 0, 1] : [1, 0, 0, 0, 1, 0, 0, 0, 1];
  const shift: Mat3 = [1, 0, d.left, 0, 1, d.top, 0, 0, 1];
  const unscale: Mat3 = [1 / d.scale, 0, 0, 0, 1 / d.scale, 0, 0, 0, 1];
  const [c, s] = [Math.cos(d.angle), Math.sin(d.angle)];
  const [cx, cy] = [W / 2, H / 2];
  const rotate: Mat3 = [c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy, 0, 0, 1];
  const toNormalizedSrc: Mat3 = [2 / W, 0, -1, 0, 2 / H, -1, 0, 0, 1];
  const m = [toNormalizedSrc, rotate, unscale, shift, mirror, fromNormalizedOut].reduce(mul);
  return m.slice(0, 6);
}

/** Draws one sample's augmentation: scale, angle, mirror, then the crop offset (row, column). */
export function drawAugment(rng: BatchContext['rng'], src: readonly [number, number], out: readonly [number, number], o: Required<Omit<SegmentationAugmentOptions, 'crop' | 'blur'>>): AugmentDraw {
  const [lo, hi] = o.scale;
  const scale = lo + (hi - lo) * rng.next();
  const angle = ((2 * rng.next() - 1) * o.rotate * Math.PI) / 180;
  const flip = o.flip && rng.next() < 0.5;
  // An offset anywhere the crop overlaps the scaled image: inside it when the image is larger, otherwise
  // the image lands at a random place in the crop (negative offset) and the rest is padding.
  const offset = (scaled: number, size: number): number => {
    const slack = Math.floor(Math.abs(scaled - size));
    const k = rng.int(slack + 1);
    return scaled >= size ? k : -k;
  };
  const top = offset(scale * src[0], out[0]);
  const left = offset(scale * src[1], out[1]);
  return { scale, angle, flip, top, left };
}

/**
 * Random scale, rotation, crop and mirror of images (float, normalized: padding is 0) and label maps
 * (int64 [N, H, W]; padding and pixels rotated in from outside are IGNORE_LABEL) alike.
 */
export function segmentationAugment(o: SegmentationAugmentOptions): BatchTransform {
  const out: [number, number] = typeof o.crop === 'number' ? [o.crop, o.crop] : [o.crop[0], o.crop[1]];
  const opts = { scale: o.scale ?? ([0.5, 2] as const), rotate: o.rotate ?? 0, flip: o.flip ?? true };
  const blur = o.blur ?? 0;
  if (!(blur >= 0 && blur <= 1)) throw new Error(`segmentationAugment: blur is a probability in [0, 1], got ${blur}`);
  if (!out.every((v) => Number.isInteger(v) && v > 0)) throw new Error(`segmentationAugment: crop must be positive integers, got ${out.join('×')}`);
  const [lo, hi] = opts.scale;
  if (!(lo > 0 && hi >= lo)) throw new Error(`segmentationAugment: scale must be a range 0 < lo ≤ hi, got [${lo}, ${hi}]`);
  if (!(opts.rotate >= 0 && opts.rotate < 180)) throw new Error(`segmentationAugment: rotate must be in [0, 180) degrees, got ${opts.rotate}`);
  return (b: BatchData, ctx: BatchContext): BatchData => {
    if (!b.x.dtype.startsWith('float')) throw new Error(`segmentationAugment: images are ${b.x.dtype}; put it after toFloat() and normalize() (padding is 0, the mean colour)`);
    if (b.y.ndim !== 3) throw new Error(`segmentationAugment: labels must be [N, H, W], got [${b.y.shape}]`);
    const [H, W] = b.x.shape.slice(2);
    const draws = Array.from({ length: b.x.size(0) }, () => drawAugment(ctx.rng, [H, W], out, opts));
    const warped = warpSegmentation(b, draws, out);
    if (blur === 0) return warped;
    // Drawn after the geometry, so that turning blur on leaves every other draw where it was.
    const blurred = Uint8Array.from(draws, () => (ctx.rng.next() < blur ? 1 : 0));
    const m = fromArray(blurred, [draws.length, 1, 1, 1], { dtype: 'bool' });
    return { x: where(m, gaussianBlur(warped.x), warped.x), y: warped.y };
  };
}

/** Images and labels of a batch, each sample under its own draw, as (h, w) crops. */
export function warpSegmentation(b: BatchData, draws: readonly AugmentDraw[], out: readonly [number, number]): BatchData {
  const [n, c, H, W] = b.x.shape;
  if (draws.length !== n) throw new Error(`warpSegmentation: ${draws.length} draws for ${n} samples`);
  const theta = new Float32Array(n * 6);
  draws.forEach((d, i) => theta.set(augmentTheta(d, [H, W], out), 6 * i));
  const grid = affineGrid(fromArray(theta, [n, 2, 3]).to(b.x.dtype), [n, c, out[0], out[1]]);
  return { x: gridSample(b.x, grid, { mode: 'bilinear', paddingMode: 'zeros' }), y: sampleLabels(b.y, grid) };
}

/** Nearest-neighbour labels at the grid; outside the source (grid_sample's zero padding) is IGNORE_LABEL. */
function sampleLabels(y: Tensor, grid: Tensor): Tensor {
  // Shifted by one so that the padding's 0 is told apart from class 0; exact in float for any label < 2^24.
  const shifted = y.unsqueeze(1).to(grid.dtype).add(1);
  const got = gridSample(shifted, grid, { mode: 'nearest', paddingMode: 'zeros' }).squeeze(1).round().long().sub(1);
  return where(got.lt(0), IGNORE_LABEL, got);
}
