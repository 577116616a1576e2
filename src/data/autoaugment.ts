// TrivialAugment (Müller & Hutter, ICCV 2021) as torchvision 0.14's TrivialAugmentWide does it on uint8
// tensors, and random erasing (Zhong et al., AAAI 2020) as its RandomErasing: the two augmentations of
// torchvision's current classification recipe beyond crops and flips. TrivialAugment has no knobs to tune: each
// image gets one operation, drawn uniformly from fourteen, at a strength drawn uniformly from 31 steps. Every
// operation is torchvision's formula in libtorch ops, with its roundings, so that a draw gives its pixels.
import { Tensor, callOp, cat, conv2d, fromArray, gridSample, ones, stack, tidy, where } from '../torch';
import { Rng } from './rng';
import type { Box } from './decode';
import { BatchTransform, randomBox } from './transforms';
import { adjustBrightness, adjustContrast, adjustSaturation, blend } from './color';

/** The operations, in torchvision's order (its op_index). */
export const TRIVIAL_AUGMENT_OPS = [
  'identity', 'shearX', 'shearY', 'translateX', 'translateY', 'rotate', 'brightness', 'color', 'contrast', 'sharpness', 'posterize', 'solarize', 'autoContrast', 'equalize',
] as const;
export type TrivialAugmentOp = (typeof TRIVIAL_AUGMENT_OPS)[number];

/** Strength steps (torchvision's num_magnitude_bins). */
export const TRIVIAL_AUGMENT_BINS = 31;

const linspace = (a: number, b: number, n: number): number[] => Array.from({ length: n }, (_, i) => Math.fround(a + ((b - a) * i) / (n - 1)));

/** Each operation's strengths (null: none) and whether a strength is negated half the time (the "wide" space). */
const SPACE: Record<TrivialAugmentOp, { magnitudes: number[] | null; signed: boolean }> = {
  identity: { magnitudes: null, signed: false },
  shearX: { magnitudes: linspace(0, 0.99, TRIVIAL_AUGMENT_BINS), signed: true },
  shearY: { magnitudes: linspace(0, 0.99, TRIVIAL_AUGMENT_BINS), signed: true },
  translateX: { magnitudes: linspace(0, 32, TRIVIAL_AUGMENT_BINS), signed: true },
  translateY: { magnitudes: linspace(0, 32, TRIVIAL_AUGMENT_BINS), signed: true },
  rotate: { magnitudes: linspace(0, 135, TRIVIAL_AUGMENT_BINS), signed: true },
  brightness: { magnitudes: linspace(0, 0.99, TRIVIAL_AUGMENT_BINS), signed: true },
  color: { magnitudes: linspace(0, 0.99, TRIVIAL_AUGMENT_BINS), signed: true },
  contrast: { magnitudes: linspace(0, 0.99, TRIVIAL_AUGMENT_BINS), signed: true },
  sharpness: { magnitudes: linspace(0, 0.99, TRIVIAL_AUGMENT_BINS), signed: true },
  // 8 bits down to 2 in 31 steps: 8 − round(i / 5).
  posterize: { magnitudes: Array.from({ length: TRIVIAL_AUGMENT_BINS }, (_, i) => 8 - Math.round(i / ((TRIVIAL_AUGMENT_BINS - 1) / 6))), signed: false },
  solarize: { magnitudes: linspace(255, 0, TRIVIAL_AUGMENT_BINS), signed: false },
  autoContrast: { magnitudes: null, signed: false },
  equalize: { magnitudes: null, signed: false },
};

/** One image's draw: the operation and its strength (0 for those without one). */
export interface TrivialAugmentDraw {
  op: TrivialAugmentOp;
  magnitude: number;
}

/** torchvision's draw: the operation, then (if it has strengths) the step, then (if signed) the sign. */
export function drawTrivialAugment(rng: Rng): TrivialAugmentDraw {
  const op = TRIVIAL_AUGMENT_OPS[rng.int(TRIVIAL_AUGMENT_OPS.length)];
  const { magnitudes, signed } = SPACE[op];
  let magnitude = magnitudes ? magnitudes[rng.int(magnitudes.length)] : 0;
  if (signed && rng.int(2) === 1) magnitude = -magnitude;
  return { op, magnitude };
}

/**
 * torchvision's _get_inverse_affine_matrix: the 2×3 map from output to input pixel coordinates (origin at the
 * image centre) of a rotation by `angle` degrees, shear (degrees) and translation, about `center`.
 */
export function inverseAffineMatrix(center: readonly [number, number], angle: number, translate: readonly [number, number], shear: readonly [number, number]): number[] {
  const rad = (d: number): number => (d * Math.PI) / 180;
  const [rot, sx, sy] = [rad(angle), rad(shear[0]), rad(shear[1])];
  const [cx, cy] = center;
  const [tx, ty] = translate;
  const a = Math.cos(rot - sy) / Math.cos(sy);
  const b = (-Math.cos(rot - sy) * Math.tan(sx)) / Math.cos(sy) - Math.sin(rot);
  const c = Math.sin(rot - sy) / Math.cos(sy);
  const d = (-Math.sin(rot - sy) * Math.tan(sx)) / Math.cos(sy) + Math.cos(rot);
  const m = [d, -b, 0, -c, a, 0];
  m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
  m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
  m[2] += cx;
  m[5] += cy;
  return m;
}

/**
 * An affine warp of uint8 images [N, C, H, W] by `matrix` (inverseAffineMatrix), nearest neighbour, zeros
 * outside: torchvision's _gen_affine_grid (its own pixel-centre grid, then bmm) and grid_sample, rounded back.
 */
function warp(x: Tensor, matrix: readonly number[]): Tensor {
  const [n, , h, w] = x.shape;
  const theta = fromArray(Float32Array.from(matrix), [1, 2, 3]);
  // Pixel centres relative to the image centre: −w/2 + ½ … w/2 − ½ (exact halves, as its linspace).
  const xs = callOp('aten::arange.start', 0, w, 'float32', null, null, null) as Tensor;
  const ys = callOp('aten::arange.start', 0, h, 'float32', null, null, null) as Tensor;
  const base = stack([xs.add(-w * 0.5 + 0.5).view(1, w).expand(h, w), ys.add(-h * 0.5 + 0.5).view(h, 1).expand(h, w), ones([h, w])], 2);
  const scaled = theta.transpose(1, 2).div(fromArray(Float32Array.of(0.5 * w, 0.5 * h)));
  const grid = (callOp('aten::bmm', base.reshape(1, h * w, 3), scaled) as Tensor).view(1, h, w, 2).expand(n, h, w, 2);
  return gridSample(x.to('float32'), grid, { mode: 'nearest', paddingMode: 'zeros', alignCorners: false }).round().to('uint8');
}

/** torchvision's adjust_sharpness: a blend with the image smoothed by [[1,1,1],[1,5,1],[1,1,1]]/13 inside its border. */
function sharpness(x: Tensor, factor: number): Tensor {
  const [, c, h, w] = x.shape;
  if (h <= 2 || w <= 2) return x;
  const k = fromArray(Float32Array.of(1, 1, 1, 1, 5, 1, 1, 1, 1), [1, 1, 3, 3]).div(13).expand(c, 1, 3, 3);
  const smooth = conv2d(x.to('float32'), k, null, { groups: c }).round().to('uint8');
  // The border keeps the image's own pixels.
  const pad = (t: Tensor): Tensor => callOp('aten::constant_pad_nd', t, [1, 1, 1, 1], 0) as Tensor;
  const inside = pad(ones([1, 1, h - 2, w - 2])).to('bool');
  const degenerate = where(inside, pad(smooth), x);
  return blend(x, degenerate, factor);
}

/** torchvision's autocontrast: each channel stretched from its [min, max] to [0, 255] (flat channels kept). */
function autoContrast(x: Tensor): Tensor {
  const lo = (callOp('aten::amin', x, [2, 3], true) as Tensor).to('float32');
  const hi = (callOp('aten::amax', x, [2, 3], true) as Tensor).to('float32');
  const flat = hi.eq(lo);
  // 255 / (max − min) as Python computes a number over a tensor: the reciprocal times 255 (Tensor.__rtruediv__);
  // a flat channel (infinite scale) keeps its pixels.
  const scale = where(flat, ones(hi.shape), hi.sub(lo).reciprocal().mul(255));
  const min = where(flat, ones(lo.shape).mul(0), lo);
  return x.sub(min).mul(scale).clamp(0, 255).to('uint8');
}

/**
 * torchvision's equalize, image by image and channel by channel: the histogram's cumulative sum, in steps of
 * the non-zero bins' count without the last bin over 255, as a lookup table; a channel with too few pixels
 * outside its top value (step 0) is kept.
 */
function equalize(x: Tensor): Tensor {
  const [n, c, h, w] = x.shape;
  const images: Tensor[] = [];
  for (let i = 0; i < n; i++) {
    const planes: Tensor[] = [];
    for (let k = 0; k < c; k++) {
      const plane = x.select(0, i).select(0, k);
      const hist = callOp('aten::bincount', plane.reshape(-1), null, 256) as Tensor;
      const nonzero = hist.maskedSelect(hist.ne(0));
      const step = Math.floor(nonzero.narrow(0, 0, nonzero.size(0) - 1).sum().item() / 255);
      if (step === 0) {
        planes.push(plane);
        continue;
      }
      const cum = callOp('aten::div.Scalar_mode', hist.cumsum(0).add(Math.floor(step / 2)), step, 'floor') as Tensor;
      const lut = (callOp('aten::constant_pad_nd', cum, [1, 0], 0) as Tensor).narrow(0, 0, 256).clamp(0, 255);
      planes.push(lut.indexSelect(0, plane.reshape(-1).to('int64')).view(h, w).to('uint8'));
    }
    images.push(stack(planes, 0));
  }
  return stack(images, 0);
}

/** One operation on uint8 images [N, C, H, W], as torchvision's _apply_op with nearest interpolation and no fill. */
export function applyTrivialAugmentOp(x: Tensor, op: TrivialAugmentOp, magnitude: number): Tensor {
  if (x.dtype !== 'uint8') throw new Error(`trivialAugment: images must be uint8 [N, C, H, W] (before toFloat()), got ${x.dtype}`);
  const [, , h, w] = x.shape;
  const deg = (t: number): number => (Math.atan(t) * 180) / Math.PI;
  // Shears pivot on the top-left corner (its centre [0, 0] in pixels is (−w/2, −h/2) from the middle).
  const corner: [number, number] = [-w * 0.5, -h * 0.5];
  switch (op) {
    case 'identity':
      return x;
    case 'shearX':
      return warp(x, inverseAffineMatrix(corner, 0, [0, 0], [deg(magnitude), 0]));
    case 'shearY':
      return warp(x, inverseAffineMatrix(corner, 0, [0, 0], [0, deg(magnitude)]));
    case 'translateX':
      return warp(x, inverseAffineMatrix([0, 0], 0, [Math.trunc(magnitude), 0], [0, 0]));
    case 'translateY':
      return warp(x, inverseAffineMatrix([0, 0], 0, [0, Math.trunc(magnitude)], [0, 0]));
    case 'rotate':
      // F.rotate turns counter-clockwise: the affine matrix of −angle.
      return warp(x, inverseAffineMatrix([0, 0], -magnitude, [0, 0], [0, 0]));
    case 'brightness':
      return adjustBrightness(x, 1 + magnitude);
    case 'color':
      return adjustSaturation(x, 1 + magnitude);
    case 'contrast':
      return adjustContrast(x, 1 + magnitude);
    case 'sharpness':
      return sharpness(x, 1 + magnitude);
    case 'posterize':
      // Keep the top `bits` bits: & ~(2^(8 − bits) − 1), written as the unsigned byte.
      return callOp('aten::bitwise_and.Scalar', x, 256 - 2 ** (8 - Math.trunc(magnitude))) as Tensor;
    case 'solarize':
      return where(x.ge(magnitude), x.neg().add(255).to('uint8'), x);
    case 'autoContrast':
      return autoContrast(x);
    case 'equalize':
      return equalize(x);
  }
}

/**
 * torchvision's TrivialAugmentWide on uint8 batches: per image, one draw (drawTrivialAugment, from the batch's
 * Rng in the batch's order) and its operation. Put it before toFloat(); images need 1 or 3 channels.
 */
export function trivialAugment(): BatchTransform {
  return (b, ctx) => {
    if (b.x.dtype !== 'uint8') throw new Error(`trivialAugment: images must be uint8 (put it before toFloat()), got ${b.x.dtype}`);
    const c = b.x.size(1);
    if (c !== 1 && c !== 3) throw new Error(`trivialAugment: images need 1 or 3 channels, got ${c}`);
    const n = b.x.size(0);
    const out = Array.from({ length: n }, (_, i) => {
      const d = drawTrivialAugment(ctx.rng);
      // Each image's intermediates freed at once (as a per-image pipeline frees them), not held for the batch.
      return tidy(() => applyTrivialAugmentOp(b.x.narrow(0, i, 1), d.op, d.magnitude));
    });
    return { x: n === 1 ? out[0] : cat(out, 0), y: b.y };
  };
}

export interface RandomErasingOptions {
  /** Chance that an image gets a box erased. Default 0.5 (torchvision's RandomErasing; its recipe uses 0.1–0.25). */
  p?: number;
  /** Range of the box's area as a share of the image's. Default [0.02, 0.33]. */
  scale?: readonly [number, number];
  /** Range of the box's height / width. Default [0.3, 3.3]. */
  ratio?: readonly [number, number];
}

/**
 * torchvision's RandomErasing.get_params: up to ten tries at a box of random area share and log-uniform
 * height/width ratio that fits strictly inside H×W, at a random place; null after ten misses (no erasing).
 */
export function erasingBox(rng: Rng, height: number, width: number, scale: readonly [number, number], ratio: readonly [number, number]): Box | null {
  return randomBox(rng, height, width, scale, ratio, 'height', (h, w) => h < height && w < width);
}

/**
 * torchvision's RandomErasing(p, scale, ratio, value=0) per image: with probability p a box (erasingBox) set
 * to 0 in every channel. torchvision erases normalized images, so it goes after normalize() (0 is then the
 * mean colour).
 */
export function randomErasing(o: RandomErasingOptions = {}): BatchTransform {
  const p = o.p ?? 0.5;
  const scale = o.scale ?? [0.02, 0.33];
  const ratio = o.ratio ?? [0.3, 3.3];
  if (!(p >= 0 && p <= 1)) throw new RangeError(`randomErasing: p must lie in [0, 1], got ${p}`);
  if (!(scale[0] > 0 && scale[0] <= scale[1] && scale[1] < 1)) throw new RangeError(`randomErasing: scale must satisfy 0 < min <= max < 1, got [${scale.join(', ')}]`);
  if (!(ratio[0] > 0 && ratio[0] <= ratio[1])) throw new RangeError(`randomErasing: ratio must satisfy 0 < min <= max, got [${ratio.join(', ')}]`);
  return (b, ctx) => {
    const [n, , h, w] = b.x.shape;
    const erase = new Uint8Array(n * h * w);
    let any = false;
    for (let i = 0; i < n; i++) {
      if (!(ctx.rng.next() < p)) continue;
      const box = erasingBox(ctx.rng, h, w, scale, ratio);
      if (!box) continue;
      any = true;
      for (let r = box.top; r < box.top + box.height; r++) erase.fill(1, (i * h + r) * w + box.left, (i * h + r) * w + box.left + box.width);
    }
    if (!any) return b;
    // Set, not multiplied: a negative pixel times 0 would be −0.
    return { x: b.x.maskedFill(fromArray(erase, [n, 1, h, w], { dtype: 'bool' }), 0), y: b.y };
  };
}
