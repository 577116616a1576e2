// Batch transforms, all in libtorch ops on whole batches [N, C, H, W]. Per-sample randomness (crop offsets,
// flips) comes from the JavaScript Rng the loader derives from (seed, epoch, batch), so a run is
// reproducible and a resumed run augments exactly as the uninterrupted one would have.
import { Tensor, fromArray, interpolate, pad, where } from '../torch';
import { Rng } from './rng';

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
