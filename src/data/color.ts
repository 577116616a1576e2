// Colour jitter (photometric augmentation) as torchvision 0.14's ColorJitter does it on tensors
// (transforms.functional_tensor): brightness, contrast, saturation and hue factors drawn per image, the four
// adjustments applied in a random order per image, each with torchvision's formula. All of it is libtorch ops
// on the whole batch: factors are [N, 1, 1, 1] tensors, and each of the four steps runs an adjustment once on
// the images whose order puts it there.
import { Tensor, callOp, cat, fromArray, stack } from '../torch';
import { Rng } from './rng';
import { BatchTransform } from './transforms';

/**
 * How much to jitter, as torchvision's ColorJitter(brightness, contrast, saturation, hue). A number v draws
 * factors uniformly from [max(0, 1 − v), 1 + v] (hue: a shift from [−v, v], v ≤ 0.5); a pair [lo, hi] draws
 * from [lo, hi] itself (lo ≥ 0; hue within [−0.5, 0.5]). 0, absent, or [1, 1] ([0, 0] for hue): off.
 */
export interface ColorJitterOptions {
  brightness?: JitterAmount;
  contrast?: JitterAmount;
  saturation?: JitterAmount;
  hue?: JitterAmount;
}
/** A spread around the identity (number) or an explicit range [lo, hi], as torchvision's ColorJitter takes. */
export type JitterAmount = number | readonly [number, number];

/** The adjustments in torchvision's numbering (its fn_idx): 0 brightness, 1 contrast, 2 saturation, 3 hue. */
export const JITTER_KINDS = ['brightness', 'contrast', 'saturation', 'hue'] as const;
export type JitterKind = (typeof JITTER_KINDS)[number];

/** One image's draw: the order of the four adjustments (a permutation of 0..3) and the factors (null: off). */
export interface ColorJitterDraw {
  order: readonly number[];
  brightness: number | null;
  contrast: number | null;
  saturation: number | null;
  hue: number | null;
}

/** The options checked and filled in (absent: 0); throws naming the bad value. */
export function checkColorJitter(o: ColorJitterOptions): Required<ColorJitterOptions> {
  const out: Required<ColorJitterOptions> = { brightness: 0, contrast: 0, saturation: 0, hue: 0 };
  for (const k of JITTER_KINDS) {
    const v = o[k] ?? 0;
    if (Array.isArray(v)) {
      // torchvision's _check_input: bound[0] ≤ lo ≤ hi ≤ bound[1], bounds [0, ∞) or, for hue, [−0.5, 0.5].
      const [lo, hi] = v as readonly number[];
      const [min, max] = k === 'hue' ? [-0.5, 0.5] : [0, Infinity];
      if (v.length !== 2 || !Number.isFinite(lo) || !Number.isFinite(hi) || lo > hi || lo < min || hi > max)
        throw new Error(`colorJitter: ${k} as a range must be [lo, hi] with ${min} ≤ lo ≤ hi ≤ ${max}, got [${v.join(', ')}]`);
      out[k] = [lo, hi];
      continue;
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`colorJitter: ${k} must be a finite number ≥ 0, got ${v}`);
    if (k === 'hue' && v > 0.5) throw new Error(`colorJitter: hue must be at most 0.5 (a shift of half the colour circle), got ${v}`);
    out[k] = v;
  }
  return out;
}

/** The range a factor is drawn from, torchvision's _check_input; null where the adjustment is off. */
export function jitterRange(kind: JitterKind, v: JitterAmount): [number, number] | null {
  if (typeof v === 'number') {
    if (v === 0) return null;
    return kind === 'hue' ? [-v, v] : [Math.max(0, 1 - v), 1 + v];
  }
  const centre = kind === 'hue' ? 0 : 1;
  return v[0] === centre && v[1] === centre ? null : [v[0], v[1]];
}

/** One image's draw from rng: the order (Fisher–Yates, 3 numbers), then each factor that is on, in kind order. */
export function drawColorJitter(rng: Rng, o: Required<ColorJitterOptions>): ColorJitterDraw {
  const order = Array.from(rng.permutation(4));
  const draw = (k: JitterKind): number | null => {
    const r = jitterRange(k, o[k]);
    return r && r[0] + (r[1] - r[0]) * rng.next();
  };
  const brightness = draw('brightness');
  const contrast = draw('contrast');
  const saturation = draw('saturation');
  return { order, brightness, contrast, saturation, hue: draw('hue') };
}

// torchvision's rgb_to_grayscale weights (0.2989, not ITU-R 601's 0.299): parity needs its exact numbers.
const GREY = [0.2989, 0.587, 0.114] as const;

/** A factor per image as an [N, 1, 1, 1] tensor of x's dtype (float32 for bytes, as torchvision computes them). */
function perImage(f: number | readonly number[], x: Tensor): Tensor {
  const n = x.size(0);
  const v = typeof f === 'number' ? new Array<number>(n).fill(f) : f;
  if (v.length !== n) throw new Error(`colour jitter: ${v.length} factors for ${n} images`);
  return fromArray(Float64Array.from(v), [n, 1, 1, 1]).to(x.dtype === 'uint8' ? 'float32' : x.dtype);
}

/**
 * torchvision's _blend: ratio·a + (1 − ratio)·b clamped to [0, 1] (bytes: to [0, 255], then truncated back to
 * uint8 as its .to(uint8) does); 1 − ratio in double, as Python computes it.
 */
export function blend(a: Tensor, b: Tensor | null, ratio: number | readonly number[]): Tensor {
  const bound = a.dtype === 'uint8' ? 255 : 1;
  const r = perImage(ratio, a);
  const ra = a.mul(r);
  const rest = perImage(typeof ratio === 'number' ? 1 - ratio : ratio.map((v) => 1 - v), a);
  // Blending with zeros: (1 − ratio)·0 adds nothing.
  const out = (b ? ra.add(b.mul(rest)) : ra).clamp(0, bound);
  return a.dtype === 'uint8' ? out.to('uint8') : out;
}

/** Checks [N, C, H, W] with 1 or 3 channels, float in [0, 1] (or with `bytes`, also uint8); returns C. */
function checkImages(x: Tensor, what: string, bytes = false): number {
  if (x.ndim !== 4) throw new Error(`${what}: images must be [N, C, H, W], got [${x.shape}]`);
  if (!x.dtype.startsWith('float') && !(bytes && x.dtype === 'uint8')) throw new Error(`${what}: images are ${x.dtype}; put toFloat() before it (pixels in [0, 1])`);
  const c = x.size(1);
  if (c !== 1 && c !== 3) throw new Error(`${what}: images need 1 or 3 channels, got ${c}`);
  return c;
}

/**
 * 0.2989 R + 0.587 G + 0.114 B as [N, 1, H, W], summed in torchvision's order (bytes: truncated back to uint8,
 * as torchvision does); a grey image as it is.
 */
export function rgbToGrayscale(x: Tensor): Tensor {
  if (checkImages(x, 'rgbToGrayscale', true) === 1) return x;
  const [r, g, b] = x.unbind(1);
  const l = r.mul(GREY[0]).add(g.mul(GREY[1])).add(b.mul(GREY[2])).unsqueeze(1);
  return x.dtype === 'uint8' ? l.to('uint8') : l;
}

/**
 * Pixels times the factor (a blend with black), clamped to [0, 1]; factor ≥ 0, one or one per image. This and
 * the contrast and saturation adjustments also take uint8 images, computed as torchvision computes them.
 */
export function adjustBrightness(x: Tensor, factor: number | readonly number[]): Tensor {
  checkImages(x, 'adjustBrightness', true);
  return blend(x, null, factor);
}

/** A blend with the mean of each image's greyscale (a grey image: its mean), clamped to [0, 1]. */
export function adjustContrast(x: Tensor, factor: number | readonly number[]): Tensor {
  checkImages(x, 'adjustContrast', true);
  const grey = rgbToGrayscale(x);
  return blend(x, (grey.dtype === 'uint8' ? grey.to('float32') : grey).mean([1, 2, 3], { keepdim: true }), factor);
}

/** A blend with each image's greyscale, clamped to [0, 1]; grey images are returned unchanged (as torchvision). */
export function adjustSaturation(x: Tensor, factor: number | readonly number[]): Tensor {
  if (checkImages(x, 'adjustSaturation', true) === 1) return x;
  return blend(x, rgbToGrayscale(x), factor);
}

/**
 * Shifts hue by factor (in turns, [−0.5, 0.5]) through HSV, torchvision's _rgb2hsv and _hsv2rgb op for op;
 * grey images are returned unchanged (as torchvision). The result is clamped to [0, 1] (a no-op for pixels in
 * [0, 1], which is where torchvision leaves it too).
 */
export function adjustHue(x: Tensor, factor: number | readonly number[]): Tensor {
  if (checkImages(x, 'adjustHue') === 1) return x;
  const fs = typeof factor === 'number' ? [factor] : factor;
  for (const f of fs) if (!(f >= -0.5 && f <= 0.5)) throw new Error(`adjustHue: factor must be in [-0.5, 0.5], got ${f}`);
  const [h, s, v] = rgbToHsv(x);
  const shifted = h.add(perImage(factor, x).squeeze(1)).remainder(1);
  return hsvToRgb(shifted, s, v).clamp(0, 1);
}

/** torchvision's _rgb2hsv on [N, 3, H, W]: hue in [0, 1), saturation and value, each [N, H, W]. */
export function rgbToHsv(x: Tensor): [Tensor, Tensor, Tensor] {
  const [r, g, b] = x.unbind(1);
  const maxc = x.maxDim(1).values;
  const minc = x.minDim(1).values;
  // Where max = min (grey pixels) hue and saturation are 0; dividing by 1 there instead keeps NaN out.
  const eqc = maxc.eq(minc);
  const cr = maxc.sub(minc);
  const s = cr.div(maxc.where(eqc.logicalNot(), 1));
  const crDivisor = cr.where(eqc.logicalNot(), 1);
  const rc = maxc.sub(r).div(crDivisor);
  const gc = maxc.sub(g).div(crDivisor);
  const bc = maxc.sub(b).div(crDivisor);
  const isR = maxc.eq(r);
  const isG = maxc.eq(g).logicalAnd(maxc.ne(r));
  const isB = maxc.ne(g).logicalAnd(maxc.ne(r));
  // Mask times value, summed in torchvision's order ((2 + rc) − bc, …): the same roundings.
  const hr = isR.to(x.dtype).mul(bc.sub(gc));
  const hg = isG.to(x.dtype).mul(rc.add(2).sub(bc));
  const hb = isB.to(x.dtype).mul(gc.add(4).sub(rc));
  const h = callOp('aten::fmod.Scalar', hr.add(hg).add(hb).div(6).add(1), 1) as Tensor;
  return [h, s, maxc];
}

/** torchvision's _hsv2rgb: h, s, v [N, H, W] to [N, 3, H, W]; a gather picks each pixel's sector. */
export function hsvToRgb(h: Tensor, s: Tensor, v: Tensor): Tensor {
  const h6 = h.mul(6);
  const fl = h6.floor();
  const f = h6.sub(fl);
  const i = fl.long().remainder(6).unsqueeze(1);
  const p = v.mul(s.neg().add(1)).clamp(0, 1);
  const q = v.mul(s.mul(f).neg().add(1)).clamp(0, 1);
  const t = v.mul(s.mul(f.neg().add(1)).neg().add(1)).clamp(0, 1);
  const pick = (sectors: Tensor[]): Tensor => stack(sectors, 1).gather(1, i);
  return cat([pick([v, q, p, p, t, v]), pick([t, v, v, q, p, p]), pick([p, p, t, v, v, q])], 1);
}

const ADJUST: Record<JitterKind, (x: Tensor, f: readonly number[]) => Tensor> = {
  brightness: adjustBrightness,
  contrast: adjustContrast,
  saturation: adjustSaturation,
  hue: adjustHue,
};

/**
 * Applies each image's draw to x [N, C, H, W] (float, in [0, 1]): at each of the four steps, every adjustment
 * runs once, on the images whose order puts it at that step (all of them: in place; some: index_select and
 * index_copy back).
 */
export function applyColorJitter(x: Tensor, draws: readonly ColorJitterDraw[]): Tensor {
  const c = checkImages(x, 'colorJitter');
  const n = x.size(0);
  if (draws.length !== n) throw new Error(`colorJitter: ${draws.length} draws for ${n} images`);
  let out = x;
  for (let step = 0; step < 4; step++) {
    for (let j = 0; j < 4; j++) {
      const kind = JITTER_KINDS[j];
      // Grey images: torchvision leaves saturation and hue alone.
      if (c === 1 && (kind === 'saturation' || kind === 'hue')) continue;
      const idx: number[] = [];
      const factors: number[] = [];
      draws.forEach((d, k) => {
        const f = d[kind];
        if (d.order[step] === j && f !== null) {
          idx.push(k);
          factors.push(f);
        }
      });
      if (idx.length === 0) continue;
      if (idx.length === n) {
        out = ADJUST[kind](out, factors);
        continue;
      }
      const at = fromArray(Int32Array.from(idx)).to('int64');
      const part = ADJUST[kind](out.indexSelect(0, at), factors);
      out = callOp('aten::index_copy', out, 0, at, part) as Tensor;
    }
  }
  return out;
}

/**
 * torchvision's ColorJitter per image: for each image of the batch, in order, its draw (order, then the factors
 * that are on) from the batch's Rng; pixels must be float in [0, 1], so it goes after toFloat() and before
 * normalize(). Grey images get brightness and contrast only (saturation and hue leave them unchanged, as in
 * torchvision). All adjustments off: the batch passes through and nothing is drawn.
 */
export function colorJitter(o: ColorJitterOptions): BatchTransform {
  const opts = checkColorJitter(o);
  if (JITTER_KINDS.every((k) => jitterRange(k, opts[k]) === null)) return (b) => b;
  return (b, ctx) => {
    checkImages(b.x, 'colorJitter');
    const draws = Array.from({ length: b.x.size(0) }, () => drawColorJitter(ctx.rng, opts));
    return { x: applyColorJitter(b.x, draws), y: b.y };
  };
}

/** "brightness 0.4, contrast 0.4, …" for logs, the adjustments that are on; "off" where none is. */
export function describeColorJitter(o: ColorJitterOptions): string {
  const on = JITTER_KINDS.filter((k) => jitterRange(k, o[k] ?? 0) !== null).map((k) => {
    const v = o[k] ?? 0;
    return `${k} ${Array.isArray(v) ? `${v[0]}:${v[1]}` : v}`;
  });
  return on.length ? on.join(', ') : 'off';
}
