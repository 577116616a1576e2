// Image folders for training tests: <root>/<class>/<i>.png.
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
