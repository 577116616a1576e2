// Batch transforms, all in libtorch ops on whole batches [N, C, H, W]. Per-sample randomness (crop offsets,
// flips) comes from the JavaScript Rng the loader derives from (seed, epoch, batch), so a run is
// reproducible and a resumed run augments exactly as the uninterrupted one would have.
import { Tensor, cat, fromArray, interpolate, pad, tidy, where } from '../torch';
import { Rng } from './rng';
import type { Box } from './decode';

/** Images and labels of one batch. */
export interface BatchData {
  x: Tensor;
  y: Tensor;
}

/** Where a batch sits in the run; rng is private to this (seed, epoch, batch). */
export interface BatchContext {
  epoch: number;
  index: number;
  rng: Rng;
}

/**
 * A function of one batch. It runs inside the loader's tidy(), so intermediates are freed; it must not
 * dispose its input (the loader owns it) and may return it unchanged.
 */
export type BatchTransform = (batch: BatchData, ctx: BatchContext) => BatchData;

/** Applies transforms left to right; they share the batch's Rng in that order. */
export function compose(...transforms: BatchTransform[]): BatchTransform {
  return (batch, ctx) => transforms.reduce((b, t) => t(b, ctx), batch);
}

/**
 * Runs t with its own Rng forked off the batch's (Rng.fork): t's draws then shift no draw of the transforms
 * after it, so that turning t on leaves their augmentation where it was.
 */
export function ownStream(t: BatchTransform, stream: number): BatchTransform {
  return (b, ctx) => t(b, { ...ctx, rng: ctx.rng.fork(stream) });
}

/** uint8 in [0, 255] to float32 in [0, 1]; floating input passes through unchanged. */
export function toFloat(): BatchTransform {
  return (b) => (b.x.dtype === 'uint8' ? { x: b.x.to('float32').div(255), y: b.y } : b);
}

/**
 * ImageNet's per-channel statistics, as torchvision's pretrained networks expect their inputs normalized;
 * for grey images their mean over the channels.
 */
export const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } as const;
export const IMAGENET_GREY = { mean: [0.449], std: [0.226] } as const;

/** (x - mean[c]) / std[c] per channel; one value applies to every channel. */
export function normalize(mean: readonly number[], std: readonly number[]): BatchTransform {
  if (mean.length === 0 || mean.length !== std.length) throw new Error(`normalize: mean (${mean.length}) and std (${std.length}) need the same non-zero length`);
  if (std.some((s) => !(s > 0))) throw new Error(`normalize: every std must be positive, got [${std.join(', ')}]`);
  return (b) => {
    const c = b.x.size(1);
    if (mean.length !== 1 && mean.length !== c) throw new Error(`normalize: ${mean.length} means for ${c} channels`);
    if (b.x.dtype === 'uint8' || b.x.dtype === 'bool' || b.x.dtype.startsWith('int')) {
      throw new Error(`normalize: input is ${b.x.dtype}; put toFloat() before normalize()`);
    }
    const shape = [1, mean.length, 1, 1];
    const m = fromArray(Float32Array.from(mean), shape).to(b.x.dtype);
    const s = fromArray(Float32Array.from(std), shape).to(b.x.dtype);
    return { x: b.x.sub(m).div(s), y: b.y };
  };
}

const pairOf = (size: number | readonly [number, number]): [number, number] => (typeof size === 'number' ? [size, size] : [size[0], size[1]]);

/**
 * Zero-pads each side by `padding`, then cuts a size×size window at a random offset chosen per sample
 * (torchvision's RandomCrop(size, padding)). One gather over the flattened planes does the whole batch.
 */
export function randomCrop(size: number | readonly [number, number], padding = 0): BatchTransform {
  const [h, w] = pairOf(size);
  return (b, ctx) => {
    const [n, c, H, W] = b.x.shape;
    const hp = H + 2 * padding;
    const wp = W + 2 * padding;
    if (h > hp || w > wp) throw new Error(`randomCrop: crop ${h}×${w} is larger than the padded image ${hp}×${wp}`);
    const xp = padding > 0 ? pad(b.x, [padding, padding, padding, padding]) : b.x;
    // Row and column indices of each sample's window, drawn row offset then column offset per sample.
    const rows = new Int32Array(n * h);
    const cols = new Int32Array(n * w);
    for (let i = 0; i < n; i++) {
      const oy = ctx.rng.int(hp - h + 1);
      const ox = ctx.rng.int(wp - w + 1);
      for (let r = 0; r < h; r++) rows[i * h + r] = oy + r;
      for (let q = 0; q < w; q++) cols[i * w + q] = ox + q;
    }
    // Flat positions in each padded plane, row * wp + col, gathered for every channel at once.
    const ri = fromArray(rows, [n, h, 1]).to('int64').mul(wp);
    const qi = fromArray(cols, [n, 1, w]).to('int64');
    const flat = ri.add(qi).view(n, 1, h * w).expand(n, c, h * w);
    return { x: xp.reshape(n, c, hp * wp).gather(2, flat).view(n, c, h, w), y: b.y };
  };
}

/** Mirrors each sample left-right with probability p, independently. */
export function randomHorizontalFlip(p = 0.5): BatchTransform {
  return (b, ctx) => {
    const n = b.x.size(0);
    const mask = new Uint8Array(n);
    for (let i = 0; i < n; i++) mask[i] = ctx.rng.next() < p ? 1 : 0;
    const m = fromArray(mask, [n, 1, 1, 1], { dtype: 'bool' });
    return { x: where(m, b.x.flip(3), b.x), y: b.y };
  };
}

/** Bilinear resize to size (H, W), align_corners=false as torchvision; uint8 stays uint8 (rounded). */
export function resize(size: number | readonly [number, number]): BatchTransform {
  const [h, w] = pairOf(size);
  return (b) => {
    if (b.x.dtype === 'uint8') {
      const f = interpolate(b.x.to('float32'), { size: [h, w], mode: 'bilinear', alignCorners: false });
      return { x: f.round().clamp(0, 255).to('uint8'), y: b.y };
    }
    return { x: interpolate(b.x, { size: [h, w], mode: 'bilinear', alignCorners: false }), y: b.y };
  };
}

export interface RandomResizedCropOptions {
  /** Range of the crop's area as a share of the image's. Default [0.08, 1] (torchvision, Inception's recipe). */
  scale?: readonly [number, number];
  /** Range of the crop's width / height. Default [3/4, 4/3]. */
  ratio?: readonly [number, number];
}

export const RANDOM_RESIZED_CROP_SCALE: readonly [number, number] = [0.08, 1];
export const RANDOM_RESIZED_CROP_RATIO: readonly [number, number] = [3 / 4, 4 / 3];

/**
 * The draw torchvision's RandomResizedCrop and RandomErasing share: up to ten tries at a box whose area is a
 * uniform share (in `scale`) of the image's and whose aspect is log-uniform in `ratio` — width / height
 * (`aspect` 'width') or height / width ('height') —, each side rounded, until one `fits`; then its place,
 * top then left. null after ten misses.
 */
export function randomBox(rng: Rng, height: number, width: number, scale: readonly [number, number], ratio: readonly [number, number], aspect: 'width' | 'height', fits: (h: number, w: number) => boolean): Box | null {
  const area = height * width;
  const [lo, hi] = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (scale[0] + rng.next() * (scale[1] - scale[0]));
    const a = Math.exp(lo + rng.next() * (hi - lo));
    const [long, short] = [Math.round(Math.sqrt(target * a)), Math.round(Math.sqrt(target / a))];
    const [h, w] = aspect === 'width' ? [short, long] : [long, short];
    if (fits(h, w)) return { top: rng.int(height - h + 1), left: rng.int(width - w + 1), height: h, width: w };
  }
  return null;
}

/**
 * torchvision's RandomResizedCrop.get_params: up to ten tries at a box of random area (a share of the image
 * in `scale`) and random aspect ratio (log-uniform in `ratio`) that fits in H×W, at a random place; after ten
 * misses, the largest centred box whose ratio is clamped into `ratio`.
 */
export function resizedCropBox(rng: Rng, height: number, width: number, scale: readonly [number, number], ratio: readonly [number, number]): Box {
  const box = randomBox(rng, height, width, scale, ratio, 'width', (h, w) => w > 0 && w <= width && h > 0 && h <= height);
  if (box) return box;
  const inRatio = width / height;
  const [h, w] = inRatio < ratio[0] ? [Math.round(width / ratio[0]), width] : inRatio > ratio[1] ? [height, Math.round(height * ratio[1])] : [height, width];
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/**
 * torchvision's RandomResizedCrop(size, scale, ratio): per sample, a box drawn by resizedCropBox, resized to
 * `size` bilinearly with antialiasing (torchvision's default: a shrunk crop is averaged, not aliased). uint8
 * stays uint8, rounded. Meant as the loader's sampleTransform, where images still have their own sizes.
 */
export function randomResizedCrop(size: number | readonly [number, number], o: RandomResizedCropOptions = {}): BatchTransform {
  const [h, w] = pairOf(size);
  const scale = o.scale ?? RANDOM_RESIZED_CROP_SCALE;
  const ratio = o.ratio ?? RANDOM_RESIZED_CROP_RATIO;
  if (!(scale[0] > 0 && scale[0] <= scale[1] && scale[1] <= 1)) throw new RangeError(`randomResizedCrop: scale must satisfy 0 < min <= max <= 1, got [${scale.join(', ')}]`);
  if (!(ratio[0] > 0 && ratio[0] <= ratio[1])) throw new RangeError(`randomResizedCrop: ratio must satisfy 0 < min <= max, got [${ratio.join(', ')}]`);
  return (b, ctx) => {
    const [n, , H, W] = b.x.shape;
    const crops: Tensor[] = [];
    for (let i = 0; i < n; i++) {
      const box = resizedCropBox(ctx.rng, H, W, scale, ratio);
      crops.push(tidy(() => {
        const part = b.x.narrow(0, i, 1).narrow(2, box.top, box.height).narrow(3, box.left, box.width);
        const f = interpolate(part.dtype === 'float32' || part.dtype === 'float64' ? part : part.to('float32'), { size: [h, w], mode: 'bilinear', alignCorners: false, antialias: true });
        return b.x.dtype === 'uint8' ? f.round().clamp(0, 255).to('uint8') : f;
      }));
    }
    return { x: n === 1 ? crops[0] : cat(crops, 0), y: b.y };
  };
}
