// The user's own segmentation data: images/ and masks/ folders decoded to exactly the pixels written (checked
// against the bytes), masks resized without inventing classes, every bad input named, and `segment` training
// on such folders end to end.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import * as T from '../../src/torch';
import { SegmentationFolder } from '../../src/data/segmentation-folder';
import { trainSegmentation } from '../../src/train/segment';

/** n RGB images h×w: noise, a bright box (class 1) and a dark box (class 2), a strip of 255 (ignored). */
async function writeFolder(root: string, n: number, h: number, w: number, seed: number): Promise<{ images: Buffer[]; masks: Buffer[] }> {
  fs.mkdirSync(path.join(root, 'images'), { recursive: true });
  fs.mkdirSync(path.join(root, 'masks'), { recursive: true });
  fs.writeFileSync(path.join(root, 'classes.txt'), 'background\nbright\ndark\n');
  let s = seed;
  const rnd = (k: number): number => ((s = (s * 1103515245 + 12345) % 2 ** 31), s % k);
  const images: Buffer[] = [];
  const masks: Buffer[] = [];
  for (let i = 0; i < n; i++) {
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

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'tsv-segfolder-'));

test('SegmentationFolder reads exactly the pixels and labels written; resizing keeps masks to real classes', async () => {
  const root = tmp();
  const { images, masks } = await writeFolder(root, 3, 16, 24, 7);
  const ds = await SegmentationFolder.load(root);
  assert.deepEqual(ds.classes, ['background', 'bright', 'dark']);
  assert.deepEqual([...ds.images.shape, ...ds.labels.shape], [3, 3, 16, 24, 3, 16, 24]);
  images.forEach((b, i) => assert.deepEqual(Buffer.from(ds.images.select(0, i).permute(1, 2, 0).contiguous().toArray() as Uint8Array), b, `image ${i}`));
  masks.forEach((b, i) => assert.deepEqual(Buffer.from(ds.labels.select(0, i).contiguous().toArray() as Uint8Array), b, `mask ${i}`));
  const batch = ds.getBatch(T.tensor([2, 0], { dtype: 'int64' }));
  assert.equal(batch.y.dtype, 'int64');
  assert.deepEqual(batch.y.select(0, 0).toNumbers(), Array.from(masks[2]));
  const small = await SegmentationFolder.load(root, { size: [8, 12], channels: 1 });
  assert.deepEqual(small.images.shape, [3, 1, 8, 12]);
  const values = new Set(small.labels.toNumbers());
  assert.ok([...values].every((v) => [0, 1, 2, 255].includes(v)), `nearest resizing invents no class: ${[...values]}`);
});

test('SegmentationFolder names every bad input', async () => {
  const root = tmp();
  await writeFolder(root, 2, 16, 16, 1);
  await assert.rejects(SegmentationFolder.load(path.join(root, 'nope')), /nope\/images is not a folder \(expected .*\/images and .*\/masks\)/);
  fs.rmSync(path.join(root, 'classes.txt'));
  await assert.rejects(SegmentationFolder.load(root), /has no classes.txt; give the number of classes/);
  await assert.rejects(SegmentationFolder.load(root, { numClasses: 2 }), /mask of im000.png has label 2, but there are 2 classes \(0..1, 255 ignored\); 1 more masks too/);
  const ok = await SegmentationFolder.load(root, { numClasses: 3 });
  assert.deepEqual(ok.classes, ['class 0', 'class 1', 'class 2']);
  await sharp({ create: { width: 20, height: 16, channels: 3, background: '#808080' } }).png().toFile(path.join(root, 'images', 'wide.png'));
  await assert.rejects(SegmentationFolder.load(root, { numClasses: 3 }), /images\/wide.png has no mask .*masks\/wide.png/);
  fs.copyFileSync(path.join(root, 'masks', 'im000.png'), path.join(root, 'masks', 'wide.png'));
  await assert.rejects(SegmentationFolder.load(root, { numClasses: 3 }), /wide.png is 16×20, im000.png 16×16; give a size to resize them/);
  fs.writeFileSync(path.join(root, 'images', 'wide.png'), 'not a png');
  await assert.rejects(SegmentationFolder.load(root, { numClasses: 3 }), /cannot decode .*images\/wide.png/);
});

test('segment trains ENet on image/mask folders: loss falls, classes from classes.txt, ignored pixels left out', async () => {
  const train = tmp();
  const testDir = tmp();
  await writeFolder(train, 48, 32, 32, 3);
  await writeFolder(testDir, 16, 32, 32, 4);
  const r = await trainSegmentation({ folders: { train, test: testDir, channels: 3 }, epochs: 3, batchSize: 8, threads: 2, outDir: tmp() }, () => {});
  assert.deepEqual(r.classes, ['background', 'bright', 'dark']);
  assert.ok(r.history[2].trainLoss < r.history[0].trainLoss, `train loss ${r.history.map((h) => h.trainLoss)}`);
  // Class weights count labelled pixels only: the 255 strip is in no class.
  assert.equal(r.classWeights!.length, 3);
  await assert.rejects(trainSegmentation({ folders: { train, test: testDir, channels: 3, size: [30, 30] }, outDir: tmp() }, () => {}), /image size must be a multiple of 8 for enet, got 30×30 \(set --image-size\)/);
});
