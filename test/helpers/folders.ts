// Image folders for training tests: <root>/<class>/<i>.png, and segmentation folders <root>/images, masks.
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';

/**
 * Two classes a convnet separates at once, `left` (n images) and `right` (m, default n): a bright block on
 * that side of a dark 16×16 RGB image, its brightness varied with the index.
 */
export async function writeLeftRightFolder(root: string, n: number, m = n): Promise<void> {
  for (const [cls, left, count] of [['left', true, n], ['right', false, m]] as const) {
    fs.mkdirSync(path.join(root, cls), { recursive: true });
    for (let i = 0; i < count; i++) {
      const px = Buffer.alloc(16 * 16 * 3, 20);
      for (let y = 4; y < 12; y++) for (let x = 0; x < 6; x++) px.fill(200 + (i % 50), ((y * 16) + (left ? x : 15 - x)) * 3, ((y * 16) + (left ? x : 15 - x)) * 3 + 3);
      await sharp(px, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(path.join(root, cls, `${i}.png`));
    }
  }
}

/** n RGB images h×w: noise, a bright box (class 1) and a dark box (class 2), a strip of 255 (ignored). */
export async function writeSegmentationFolder(root: string, n: number, h: number, w: number, seed: number): Promise<{ images: Buffer[]; masks: Buffer[] }> {
  return writeSegmentationSizes(root, Array.from({ length: n }, () => [h, w]), seed);
}

/** As writeSegmentationFolder, one image of each size (H, W). */
export async function writeSegmentationSizes(root: string, sizes: number[][], seed: number): Promise<{ images: Buffer[]; masks: Buffer[] }> {
  fs.mkdirSync(path.join(root, 'images'), { recursive: true });
  fs.mkdirSync(path.join(root, 'masks'), { recursive: true });
  fs.writeFileSync(path.join(root, 'classes.txt'), 'background\nbright\ndark\n');
  let s = seed;
  const rnd = (k: number): number => ((s = (s * 1103515245 + 12345) % 2 ** 31), s % k);
  const images: Buffer[] = [];
  const masks: Buffer[] = [];
  for (const [i, [h, w]] of sizes.entries()) {
    const img = Buffer.alloc(h * w * 3);
    const mask = Buffer.alloc(h * w);
    for (let p = 0; p < h * w * 3; p++) img[p] = 60 + rnd(80);
    const box = (cls: number, value: number): void => {
      const y0 = rnd(h - 8), x0 = rnd(w - 8);
      for (let y = y0; y < y0 + 8; y++) for (let x = x0; x < x0 + 8; x++) {
        mask[y * w + x] = cls;
        for (let c = 0; c < 3; c++) img[(y * w + x) * 3 + c] = value;
      }
    };
    box(1, 250);
    box(2, 5);
    for (let x = 0; x < w; x++) mask[x] = 255;
    await sharp(img, { raw: { width: w, height: h, channels: 3 } }).png().toFile(path.join(root, 'images', `im${String(i).padStart(3, '0')}.png`));
    await sharp(mask, { raw: { width: w, height: h, channels: 1 } }).png().toFile(path.join(root, 'masks', `im${String(i).padStart(3, '0')}.png`));
    images.push(img);
    masks.push(mask);
  }
  return { images, masks };
}
