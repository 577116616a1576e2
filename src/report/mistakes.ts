// The images a classifier got wrong, most confident first, as a contact sheet: each image as the network saw
// it (before normalization), its true class and the answer with its probability. Confident mistakes are
// where mislabelled data, look-alike classes and shortcuts show themselves.
import sharp from 'sharp';
import { Tensor, tidy } from '../torch';
import { writeFileAtomic } from '../util/fs';
import { heatmapPng } from './overlay';

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export interface MistakeTile {
  /** [1 or 3, H, W] uint8 (or float in [0, 1]). */
  image: Tensor;
  label: string;
  predicted: string;
  confidence: number;
  /** Grad-CAM of the answer [H, W] in [0, 1] at the image's size: drawn over the image beside it (why that answer). */
  heatmap?: Tensor;
}

/** Side of a tile's image in pixels; small images are enlarged by nearest neighbour, so pixels stay sharp. */
export const TILE = 112;

/** The contact sheet as a PNG, written atomically; `columns` tiles a row. */
export async function saveMistakesPng(file: string, tiles: readonly MistakeTile[], title: string, columns = 6): Promise<void> {
  if (!tiles.length) throw new Error('saveMistakesPng: no mistakes to show');
  const cols = Math.min(columns, tiles.length);
  // With Grad-CAM every tile is two images wide: the image, then the evidence for the answer over it.
  const explained = tiles.some((t) => t.heatmap);
  const [cellW, cellH, head] = [(explained ? 2 * TILE + 4 : TILE) + 16, TILE + 40, 30];
  const width = cols * cellW;
  const height = head + Math.ceil(tiles.length / cols) * cellH;
  const images = await Promise.all(tiles.map((t) => tilePng(t.image)));
  const heat = await Promise.all(tiles.map(async (t) => (t.heatmap ? fitTile(await heatmapPng(t.image, t.heatmap), t.image.size(1), t.image.size(2)) : null)));
  const text: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="11"><text x="8" y="19" font-size="13">${esc(title)}</text>`];
  const at = (i: number) => ({ left: (i % cols) * cellW + 8, top: head + Math.floor(i / cols) * cellH });
  tiles.forEach((t, i) => {
    const { left, top } = at(i);
    text.push(`<text x="${left}" y="${top + TILE + 14}" fill="#2ca02c">${esc(clip(t.label))}</text>`);
    text.push(`<text x="${left}" y="${top + TILE + 28}" fill="#d62728">${esc(clip(t.predicted))} ${(100 * t.confidence).toFixed(0)}%</text>`);
  });
  text.push('</svg>');
  const png = await sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .composite([
      ...images.map((input, i) => ({ input, ...at(i) })),
      ...heat.flatMap((input, i) => (input ? [{ input, top: at(i).top, left: at(i).left + TILE + 4 }] : [])),
      { input: Buffer.from(text.join('')), left: 0, top: 0 },
    ])
    .png()
    .toBuffer();
  writeFileAtomic(file, png);
}

/** A class name cut to what fits under a tile. */
const clip = (s: string): string => (s.length > 17 ? `${s.slice(0, 16)}…` : s);

/** One image fitted into TILE × TILE (aspect kept, white around it). */
async function tilePng(image: Tensor): Promise<Buffer> {
  if (image.dim() !== 3 || (image.size(0) !== 1 && image.size(0) !== 3)) throw new Error(`saveMistakesPng: images must be [1 or 3, H, W], got [${image.shape}]`);
  const [c, h, w] = image.shape;
  const bytes = tidy(() => (image.dtype === 'uint8' ? image : image.mul(255).round().clamp(0, 255).to('uint8')).permute(1, 2, 0).contiguous().toArray() as Uint8Array);
  return fitTile(sharp(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { raw: { width: w, height: h, channels: c as 1 | 3 } }), h, w);
}

/** An image (sharp input or PNG bytes) of h × w fitted into TILE × TILE; small ones enlarged by nearest neighbour. */
function fitTile(img: sharp.Sharp | Buffer, h: number, w: number): Promise<Buffer> {
  const small = Math.max(h, w) <= TILE / 2;
  return (Buffer.isBuffer(img) ? sharp(img) : img).resize(TILE, TILE, { fit: 'contain', background: '#ffffff', kernel: small ? 'nearest' : 'lanczos3' }).png().toBuffer();
}
