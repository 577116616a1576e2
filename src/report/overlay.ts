// Segmentation overlays as one PNG: a row per image — the image, the ground truth over it, the prediction
// over it — with a colour legend of the class names. The colouring runs in libtorch (a palette lookup and a
// blend); sharp encodes the pixels and draws the legend from SVG.
import sharp from 'sharp';
import { Tensor, cat, fromArray, interpolate, noGrad, tidy, where } from '../torch';
import { writeFileAtomic } from '../util/fs';

// Background (class 0) is left uncoloured; the others get distinct, saturated colours (tab10 + extras).
const COLOURS = ['#000000', '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#bcbd22', '#17becf', '#f4e409', '#7f7f7f', '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94', '#f7b6d2', '#dbdb8d'];
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
  const c = o.classes.length;
  if (c > COLOURS.length) throw new Error(`saveSegmentationOverlays: at most ${COLOURS.length} classes, got ${c}`);
  const scale = o.scale ?? 3;
  const alpha = o.alpha ?? 0.6;
  const { pixels, width, height } = tidy(() =>
    noGrad(() => {
      const [n, ch, h, w] = images.shape;
      let img = images.dtype === 'uint8' ? images.float() : images.mul(255);
      if (ch === 1) img = img.expand(n, 3, h, w);
      img = img.permute(0, 2, 3, 1); // [N, H, W, 3]
      const palette = fromArray(new Float32Array(COLOURS.slice(0, c).flatMap(rgb)), [c, 3]);
      const paint = (labels: Tensor): Tensor => {
        const l = labels.long();
        const valid = l.gt(0).logicalAnd(l.lt(c)).unsqueeze(3);
        const colour = palette.indexSelect(0, l.clamp(0, c - 1).flatten()).view(n, h, w, 3);
        return where(valid, img.mul(1 - alpha).add(colour.mul(alpha)), img);
      };
      const gap = img.narrow(2, 0, 2).mul(0).add(255); // a 2-px white column between panels
      const rows = cat([img, gap, paint(truth), gap, paint(prediction)], 2); // [N, H, 3W + 4, 3]
      const grid = rows.reshape(n * h, rows.size(2), 3).permute(2, 0, 1).unsqueeze(0);
      const big = interpolate(grid, { scaleFactor: [scale, scale], mode: 'nearest' }).squeeze(0).permute(1, 2, 0);
      return { pixels: big.round().clamp(0, 255).to('uint8').contiguous().toArray() as Uint8Array, width: big.size(1), height: big.size(0) };
    }),
  );
  const legendH = 24 * Math.ceil((c - 1) / 4) + 30;
  const cols = o.classes.slice(1).map((name, i) => {
    const x = 8 + (i % 4) * Math.floor((width - 16) / 4);
    const y = 30 + Math.floor(i / 4) * 24;
    return `<rect x="${x}" y="${y - 11}" width="14" height="14" fill="${COLOURS[i + 1]}"/><text x="${x + 20}" y="${y}">${esc(name)}</text>`;
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${legendH}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="8" y="16">image · ground truth · prediction</text>${cols.join('')}</svg>`;
  const grid = await sharp(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength), { raw: { width, height, channels: 3 } }).png().toBuffer();
  const legend = await sharp(Buffer.from(svg)).png().toBuffer();
  const png = await sharp({ create: { width, height: height + legendH, channels: 3, background: '#ffffff' } })
    .composite([{ input: grid, top: 0, left: 0 }, { input: legend, top: height, left: 0 }])
    .png()
    .toBuffer();
  writeFileAtomic(file, png);
}
