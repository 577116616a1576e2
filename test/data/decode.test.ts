// The one image decode (data/decode.ts): the centre-crop box by hand, exact pixels of each fit (sizes chosen so
// that no resampling blurs them), and EXIF orientation applied as a browser shows the photo.
import { test, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { centerCropBox, decodeRaw, uprightSize } from '../../src/data/decode';
import { ImageFolder } from '../../src/data';
import { tmpDir } from '../helpers/tmp';

const dir = tmpDir('tsv-decode-');
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A 40×80 (H×W) PNG whose red is the column and green the row of each pixel. */
async function coordinates(): Promise<Buffer> {
  const [h, w] = [40, 80];
  const px = Buffer.alloc(h * w * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px.set([x, y, 7], (y * w + x) * 3);
  return sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

/** Red (column) and green (row) of every pixel of a decoded RGB image. */
const coords = (img: { data: Buffer; width: number; height: number }): { cols: number[]; rows: number[] } => ({
  cols: Array.from({ length: img.width }, (_, x) => img.data[x * 3]),
  rows: Array.from({ length: img.height }, (_, y) => img.data[y * img.width * 3 + 1]),
});
const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

test('centerCropBox by hand: the largest centred region of the size\'s shape, a fraction of it, floor-centred', () => {
  // 100×200 to a square: scale min(100, 200) / 32 = 3.125 → 100×100 in the middle.
  assert.deepEqual(centerCropBox(100, 200, [32, 32]), { top: 0, left: 50, height: 100, width: 100 });
  // torchvision's 0.875: 87.5 px rounds to 88; (100 − 88) / 2 = 6, (200 − 88) / 2 = 56.
  assert.deepEqual(centerCropBox(100, 200, [32, 32], 0.875), { top: 6, left: 56, height: 88, width: 88 });
  // A wide input on a square image: the whole width, half the height.
  assert.deepEqual(centerCropBox(100, 100, [20, 40]), { top: 25, left: 0, height: 50, width: 100 });
  // Odd leftovers go to the bottom and right (floor), as torchvision's CenterCrop for an even crop of an odd side.
  assert.deepEqual(centerCropBox(7, 7, [4, 4], 4 / 7), { top: 1, left: 1, height: 4, width: 4 });
  assert.throws(() => centerCropBox(10, 10, [5, 5], 0), /crop fraction must lie in \(0, 1\]/);
  assert.throws(() => centerCropBox(10, 10, [5, 5], 1.5), /crop fraction/);
});

test('decodeRaw: fill squashes; center-crop takes exactly the box; shorter-side keeps the aspect and never enlarges', async () => {
  const png = await coordinates();
  // Box = all rows, columns 20…59; 40×40 is the box's own size, so the pixels are the file's.
  const crop = await decodeRaw(png, { channels: 3, size: [40, 40], fit: 'center-crop' });
  assert.deepEqual([crop.height, crop.width], [40, 40]);
  assert.deepEqual(coords(crop), { cols: range(20, 40), rows: range(0, 40) });
  // Fraction 0.5 at 20×20: scale min(40, 80) / 20 · 0.5 = 1 → rows 10…29, columns 30…49.
  const half = await decodeRaw(png, { channels: 3, size: [20, 20], fit: 'center-crop', cropFraction: 0.5 });
  assert.deepEqual(coords(half), { cols: range(30, 20), rows: range(10, 20) });
  // Fill at 40×40 by nearest neighbour: every second column of all 80, every row.
  const fill = await decodeRaw(png, { channels: 3, size: [40, 40], kernel: 'nearest' });
  const { cols, rows } = coords(fill);
  assert.deepEqual(rows, range(0, 40));
  assert.equal(cols[0] <= 1 && cols[39] >= 78, true, `columns span the whole width: ${cols[0]}…${cols[39]}`);
  assert.ok(cols.every((c, i) => i === 0 || c - cols[i - 1] === 2), 'every second column');
  // Shorter side to 20: 20×40; to 100: the image is smaller, so it stays 40×80.
  const shorter = await decodeRaw(png, { channels: 3, size: [20, 20], fit: 'shorter-side' });
  assert.deepEqual([shorter.height, shorter.width], [20, 40]);
  const kept = await decodeRaw(png, { channels: 3, size: [100, 100], fit: 'shorter-side' });
  assert.deepEqual([kept.height, kept.width, coords(kept).cols[79]], [40, 80, 79]);
});

test('a photo with EXIF orientation 6 decodes upright (as browsers show it), its size swapped; folders and crops see it so', async () => {
  // Stored 40×80: dark left half, bright right half. Orientation 6 shows it turned a quarter clockwise:
  // 80 high, 40 wide, the stored right half at the bottom.
  const px = Buffer.alloc(40 * 80 * 3, 20);
  for (let y = 0; y < 40; y++) px.fill(230, (y * 80 + 40) * 3, (y * 80 + 80) * 3);
  const jpeg = await sharp(px, { raw: { width: 80, height: 40, channels: 3 } }).withMetadata({ orientation: 6 }).jpeg({ quality: 100 }).toBuffer();
  assert.equal((await sharp(jpeg).metadata()).orientation, 6);
  assert.deepEqual(await uprightSize(jpeg), { width: 40, height: 80 });
  const img = await decodeRaw(jpeg, { channels: 1 });
  assert.deepEqual([img.height, img.width], [80, 40]);
  const rowMean = (y: number): number => img.data.subarray(y * 40, y * 40 + 40).reduce((a, v) => a + v, 0) / 40;
  assert.ok(rowMean(5) < 40 && rowMean(74) > 210, `top dark, bottom bright: ${rowMean(5)}, ${rowMean(74)}`);
  // The centre crop of the upright image: rows 20…59 of 80 — the middle, where dark meets bright.
  const crop = await decodeRaw(jpeg, { channels: 1, size: [40, 40], fit: 'center-crop' });
  const cropRow = (y: number): number => crop.data.subarray(y * 40, y * 40 + 40).reduce((a, v) => a + v, 0) / 40;
  assert.ok(cropRow(2) < 40 && cropRow(37) > 210, `upper half dark, lower bright: ${cropRow(2)}, ${cropRow(37)}`);
  // An ImageFolder decodes the same way.
  fs.mkdirSync(path.join(dir, 'photos', 'a'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'photos', 'a', 'p.jpg'), jpeg);
  const s = await new ImageFolder(path.join(dir, 'photos'), { channels: 1, size: 40, fit: 'center-crop' }).get(0);
  assert.deepEqual(s.x.shape, [1, 40, 40]);
  assert.deepEqual(Array.from(s.x.toArray() as Uint8Array), Array.from(crop.data));
  assert.throws(() => new ImageFolder(path.join(dir, 'photos'), { cropFraction: 2 }), /cropFraction must lie in \(0, 1\]/);
});
