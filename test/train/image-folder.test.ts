// Training any registered model on a folder of images (class per sub-folder), end to end.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { train } from '../../src/train/trainer';

async function makeFolder(root: string, n: number): Promise<void> {
  // Two classes a convnet separates at once: bright squares on the left vs on the right.
  for (const [cls, left] of [['left', true], ['right', false]] as const) {
    fs.mkdirSync(path.join(root, cls), { recursive: true });
    for (let i = 0; i < n; i++) {
      const px = Buffer.alloc(16 * 16 * 3, 20);
      for (let y = 4; y < 12; y++) for (let x = 0; x < 6; x++) px.fill(200 + (i % 50), ((y * 16) + (left ? x : 15 - x)) * 3, ((y * 16) + (left ? x : 15 - x)) * 3 + 3);
      await sharp(px, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(path.join(root, cls, `${i}.png`));
    }
  }
}

test('a model trains on image folders and learns an easy two-class task', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsv-folder-'));
  await makeFolder(path.join(dir, 'train'), 24);
  await makeFolder(path.join(dir, 'test'), 8);
  const r = await train(
    { model: 'cnn', modelOptions: { widths: [8, 16], hidden: 16 }, data: { kind: 'image-folder', train: path.join(dir, 'train'), test: path.join(dir, 'test'), size: 16, channels: 3 }, epochs: 3, batchSize: 8, lr: 0.01, optimizer: 'adam', weightDecay: 0, outDir: path.join(dir, 'run'), threads: 1 },
    () => {},
  );
  assert.equal(r.status, 'finished');
  assert.equal(r.history.length, 3);
  assert.ok(r.final!.testTop1 >= 0.9, `test accuracy ${r.final!.testTop1}`);
  assert.ok(fs.existsSync(r.weights) && fs.existsSync(r.curves));
});
