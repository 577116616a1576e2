// Segmentation overlays as one PNG: a row per image — the image, the ground truth over it, the prediction
// over it — with a colour legend of the class names; and, for `predict`, one image's overlay and its mask.
// The colouring runs in libtorch (a palette lookup and a blend); sharp encodes the pixels and draws the
// legend from SVG.
import sharp from 'sharp';
import { Tensor, cat, fromArray, interpolate, noGrad, tidy, where } from '../torch';
import { writeFileAtomic } from '../util/fs';

// Background (class 0) is left uncoloured; the others get distinct, saturated colours (tab10 + extras).
export const OVERLAY_COLOURS: readonly string[] = ['#000000', '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#bcbd22', '#17becf', '#f4e409', '#7f7f7f', '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94', '#f7b6d2', '#dbdb8d'];
const rgb = (hex: string): number[] => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export interface OverlayOptions {
  /** Class names; index 0 is drawn transparent (background). */
  classes: readonly string[];
  /** Pixels per input pixel (nearest neighbour), so that small maps are visible. */
  scale?: number;
  /** Weight of the class colour over the image. */
  alpha?: number;
}

/**
 * images: [N, 1 or 3, H, W] in [0, 1] (float) or 0–255 (uint8); truth and prediction: class ids [N, H, W]
 * (truth may hold an ignore label ≥ classes, drawn uncoloured).
 */
export async function saveSegmentationOverlays(file: string, images: Tensor, truth: Tensor, prediction: Tensor, o: OverlayOptions): Promise<void> {
  const c = checkClasses(o.classes, 'saveSegmentationOverlays');
  const scale = o.scale ?? 3;
  const alpha = o.alpha ?? 0.6;
  const { pixels, width, height } = tidy(() =>
    noGrad(() => {
      const img = rgb255(images); // [N, H, W, 3]
      const [n, h] = img.shape;
      const gap = img.narrow(2, 0, 2).mul(0).add(255); // a 2-px white column between panels
      const rows = cat([img, gap, paintLabels(img, truth, c, alpha), gap, paintLabels(img, prediction, c, alpha)], 2); // [N, H, 3W + 4, 3]
      const grid = rows.reshape(n * h, rows.size(2), 3).permute(2, 0, 1).unsqueeze(0);
      const big = interpolate(grid, { scaleFactor: [scale, scale], mode: 'nearest' }).squeeze(0).permute(1, 2, 0);
      return rawPixels(big);
    }),
  );
  writeFileAtomic(file, await withLegend(pixels, width, height, o.classes, 'image · ground truth · prediction'));
}

/**
 * One image with its class map blended over it, as PNG bytes at the image's size (so that it lines up pixel
 * for pixel with the image and its mask), optionally with the legend strip below. image: [1 or 3, H, W] uint8
 * or [0, 1] float; labels: class ids [H, W].
 */
export async function overlayPng(image: Tensor, labels: Tensor, o: Omit<OverlayOptions, 'scale'> & { legend?: boolean }): Promise<Buffer> {
  const c = checkClasses(o.classes, 'overlayPng');
  const { pixels, width, height } = tidy(() =>
    noGrad(() => {
      const img = rgb255(image.unsqueeze(0));
      return rawPixels(paintLabels(img, labels.unsqueeze(0), c, o.alpha ?? 0.6).squeeze(0));
    }),
  );
  // One small image's legend would squeeze the names: it gets room for four columns of them.
  return o.legend ? withLegend(pixels, width, height, o.classes, 'classes', 456) : encodePng(pixels, width, height, 3);
}

/** A class map [H, W] as an 8-bit grey PNG whose values are the class ids (the training masks' convention). */
export async function maskPng(labels: Tensor): Promise<Buffer> {
  if (labels.dim() !== 2) throw new Error(`maskPng: labels must be [H, W], got [${labels.shape}]`);
  const pixels = tidy(() => labels.to('uint8').contiguous().toArray() as Uint8Array);
  return encodePng(pixels, labels.size(1), labels.size(0), 1);
}

function checkClasses(classes: readonly string[], what: string): number {
  if (classes.length > OVERLAY_COLOURS.length) throw new Error(`${what}: at most ${OVERLAY_COLOURS.length} classes, got ${classes.length}`);
  return classes.length;
}

/** [N, 1 or 3, H, W] (uint8 0–255 or float 0–1) → float [N, H, W, 3] in 0–255. */
function rgb255(images: Tensor): Tensor {
  const [n, ch, h, w] = images.shape;
  let img = images.dtype === 'uint8' ? images.float() : images.mul(255);
  if (ch === 1) img = img.expand(n, 3, h, w);
  return img.permute(0, 2, 3, 1);
}

/** Class colours over images [N, H, W, 3] where labels [N, H, W] name a class other than the background. */
function paintLabels(img: Tensor, labels: Tensor, c: number, alpha: number): Tensor {
  const [n, h, w] = img.shape;
  const palette = fromArray(new Float32Array(OVERLAY_COLOURS.slice(0, c).flatMap(rgb)), [c, 3]);
  const l = labels.long();
  const valid = l.gt(0).logicalAnd(l.lt(c)).unsqueeze(3);
  const colour = palette.indexSelect(0, l.clamp(0, c - 1).flatten()).view(n, h, w, 3);
  return where(valid, img.mul(1 - alpha).add(colour.mul(alpha)), img);
}

/** Float [H, W, 3] in 0–255 → bytes for sharp. */
const rawPixels = (hw3: Tensor): { pixels: Uint8Array; width: number; height: number } => ({
  pixels: hw3.round().clamp(0, 255).to('uint8').contiguous().toArray() as Uint8Array,
  width: hw3.size(1),
  height: hw3.size(0),
});

/** PNG bytes; one channel stays an 8-bit grey PNG (sharp would otherwise write raw single-channel input as sRGB). */
function encodePng(pixels: Uint8Array, width: number, height: number, channels: 1 | 3): Promise<Buffer> {
  const img = sharp(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength), { raw: { width, height, channels } });
  return (channels === 1 ? img.toColourspace('b-w') : img).png().toBuffer();
}

/** The pixels with a legend of the class colours (background left out) below, drawn from SVG, at least minWidth wide. */
async function withLegend(pixels: Uint8Array, width: number, height: number, classes: readonly string[], title: string, minWidth = 0): Promise<Buffer> {
  const w = Math.max(width, minWidth);
  const legendH = 24 * Math.ceil((classes.length - 1) / 4) + 30;
  const cols = classes.slice(1).map((name, i) => {
    const x = 8 + (i % 4) * Math.floor((w - 16) / 4);
    const y = 30 + Math.floor(i / 4) * 24;
    return `<rect x="${x}" y="${y - 11}" width="14" height="14" fill="${OVERLAY_COLOURS[i + 1]}"/><text x="${x + 20}" y="${y}">${esc(name)}</text>`;
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${legendH}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="8" y="16">${esc(title)}</text>${cols.join('')}</svg>`;
  const grid = await encodePng(pixels, width, height, 3);
  const legend = await sharp(Buffer.from(svg)).png().toBuffer();
  return sharp({ create: { width: w, height: height + legendH, channels: 3, background: '#ffffff' } })
    .composite([{ input: grid, top: 0, left: 0 }, { input: legend, top: height, left: 0 }])
    .png()
    .toBuffer();
}

/**
 * A heatmap [H, W] in [0, 1] (Grad-CAM's) over an image [1 or 3, H, W] (uint8, or float in [0, 1]), as PNG
 * bytes at the image's size: the jet colour map (blue 0 → red 1), blended in by `alpha` where the map is warm,
 * so that the image stays readable where the network found nothing.
 */
export async function heatmapPng(image: Tensor, heatmap: Tensor, o: { alpha?: number } = {}): Promise<Buffer> {
  const [h, w] = heatmap.shape;
  if (heatmap.dim() !== 2 || image.dim() !== 3 || image.size(1) !== h || image.size(2) !== w) throw new Error(`heatmapPng: image [C, H, W] and heatmap [H, W] of one size, got [${image.shape}] and [${heatmap.shape}]`);
  const alpha = o.alpha ?? 0.5;
  const { pixels } = tidy(() =>
    noGrad(() => {
      const img = rgb255(image.unsqueeze(0)).squeeze(0); // [H, W, 3]
      const v = heatmap.float().clamp(0, 1).unsqueeze(2);
      // Jet: each channel a tent around its own quarter of the range (red at 3/4, green 1/2, blue 1/4).
      const centres = fromArray(Float32Array.of(3, 2, 1), [1, 1, 3]);
      const colour = v.mul(4).sub(centres).abs().neg().add(1.5).clamp(0, 1).mul(255);
      const weight = v.mul(alpha);
      return rawPixels(img.mul(weight.neg().add(1)).add(colour.mul(weight)));
    }),
  );
  return encodePng(pixels, w, h, 3);
}
