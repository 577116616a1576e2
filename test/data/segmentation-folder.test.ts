// The user's own segmentation data: images/ and masks/ folders decoded to exactly the pixels written (checked
// against the bytes), masks resized without inventing classes, every bad input named, and `segment` training
// on such folders end to end.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import * as zlib from 'node:zlib';
import * as T from '../../src/torch';
import { SegmentationFiles, SegmentationFolder } from '../../src/data/segmentation-folder';
import { DataLoader, compose, disposeBatch, normalize, segmentationAugment, toFloat } from '../../src/data';
import { evaluateSegmentCheckpoint, evaluateSegmentation, segmentationData, trainSegmentation } from '../../src/train/segment';
import { forwardAnySize, predictMultiScale } from '../../src/models/segmentation';
import { optimizeForInference } from '../../src/infer/optimize';
import { runTorch } from '../helpers/pytorch';
import { writeSegmentationFolder as writeFolder, writeSegmentationSizes as writeSizes } from '../helpers/folders';
import { tmpDir } from '../helpers/tmp';

const tmp = (): string => tmpDir('tsv-segfolder-');

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
  await assert.rejects(SegmentationFolder.load(root, { numClasses: 2 }), /mask of im000.png has label 2, but there are 2 classes \(0..1, 255 ignored\)/);
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
  await assert.rejects(trainSegmentation({ folders: { train, test: testDir, channels: 3, size: [30, 30] }, outDir: tmp() }, () => {}), /image size must be a multiple of 8 for enet, got 30×30 \(set --image-size or --crop\)/);
});

test('SegmentationFiles decodes pairs on demand at their own sizes; the loader augments each to one crop, as the batch path does', async () => {
  const root = tmp();
  const sizes = [[16, 24], [20, 20], [32, 16], [24, 40]];
  const { images, masks } = await writeSizes(root, sizes, 5);
  const files = SegmentationFiles.open(root);
  const s = await files.get(3);
  assert.deepEqual([...s.x.shape, ...s.y.shape], [3, 24, 40, 24, 40]);
  assert.deepEqual(Buffer.from(s.x.permute(1, 2, 0).contiguous().toArray() as Uint8Array), images[3]);
  assert.deepEqual(Buffer.from(s.y.toArray() as Uint8Array), masks[3]);
  disposeBatch(s);
  // Pixels per label over every mask, against the bytes written.
  const want = new Float64Array(256);
  for (const m of masks) for (const v of m) want[v]++;
  assert.deepEqual(await files.labelCounts(), want);
  // A process's share under launch: files rank, rank + N, …; the shares' sums are the whole folder's.
  const share = (rank: number): Float64Array => {
    const c = new Float64Array(256);
    masks.forEach((m, i) => i % 3 === rank && m.forEach((v) => c[v]++));
    return c;
  };
  const shares = await Promise.all([0, 1, 2].map((rank) => files.labelCounts(undefined, { rank, worldSize: 3 })));
  shares.forEach((c, rank) => assert.deepEqual(c, share(rank)));
  assert.deepEqual(shares.reduce((a, c) => a.map((v, i) => v + c[i])), want);
  // Per-sample augmentation (streamed, sizes differ) gives one batch size; the same seed, the same batch.
  const norm = compose(toFloat(), normalize([0.5], [0.25]));
  const aug = segmentationAugment({ crop: [16, 16] });
  const load = (): DataLoader => new DataLoader(files, { batchSize: 4, shuffle: true, seed: 3, sampleTransform: compose(norm, aug), transform: (b) => b });
  const [a] = await collect(load());
  const [b] = await collect(load());
  assert.deepEqual([...a.x.shape, ...a.y.shape], [4, 3, 16, 16, 4, 16, 16]);
  assert.ok(T.tidy(() => a.x.eq(b.x).all().item() === 1 && a.y.eq(b.y).all().item() === 1));
  assert.ok(T.tidy(() => a.y.lt(3).logicalOr(a.y.eq(255)).all().item() === 1));
  // Where all samples share a size, augmenting sample by sample draws exactly what augmenting the batch does.
  const same = tmp();
  await writeFolder(same, 4, 20, 28, 9);
  const perSample = new DataLoader(SegmentationFiles.open(same), { batchSize: 4, seed: 1, sampleTransform: compose(norm, aug), transform: (x) => x });
  const perBatch = new DataLoader(await SegmentationFolder.load(same), { batchSize: 4, seed: 1, transform: compose(norm, aug) });
  const [p] = await collect(perSample);
  const [q] = await collect(perBatch);
  assert.ok(T.tidy(() => p.x.sub(q.x).abs().max().item() < 1e-6 && p.y.eq(q.y).all().item() === 1), 'per-sample = per-batch augmentation');
});

test('segment on folders of mixed sizes: augmented crops for training, test images at their own size padded for the network, padding in no metric', async () => {
  const train = tmp();
  const testDir = tmp();
  await writeSizes(train, [[32, 40], [40, 32], [48, 48], [36, 44], [32, 32], [40, 40], [44, 36], [48, 40]], 11);
  await writeSizes(testDir, [[30, 34], [26, 38]], 12);
  const out = tmp();
  const r = await trainSegmentation({ folders: { train, test: testDir, channels: 3 }, augment: { crop: [32, 32], scale: [0.75, 1.5], rotate: 5, flip: true }, epochs: 2, batchSize: 4, threads: 2, outDir: out }, () => {});
  assert.equal(r.history.length, 2);
  assert.ok(fs.existsSync(r.overlays));
  // The test metric by hand: each image through the padded network, predictions cut to the image, counted
  // against the mask bytes (255 left out).
  const cfg = { folders: { train, test: testDir, channels: 3 as const }, scenes: { size: 64, trainCount: 0, testCount: 0, maxItems: 1 }, seed: 0 };
  const data = await segmentationData(cfg, { train: false });
  const model = r.model.eval();
  const byHand = async (predict: (x: T.Tensor) => T.Tensor): Promise<{ right: number; counted: number }> => {
    let right = 0;
    let counted = 0;
    for await (const b of data.test.epoch(0)) {
      T.tidy(() => T.noGrad(() => {
        const pred = predict(b.x).argmax(1);
        assert.deepEqual(pred.shape, b.y.shape);
        const y = b.y.toNumbers();
        pred.toNumbers().forEach((v, i) => {
          if (y[i] === 255) return;
          counted++;
          if (v === y[i]) right++;
        });
      }));
      disposeBatch(b);
    }
    return { right, counted };
  };
  const { right, counted } = await byHand((x) => forwardAnySize(model, x));
  const ev = await evaluateSegmentation(model, data.test, 3, null);
  assert.ok(Math.abs(ev.pixelAccuracy - right / counted) < 1e-12, `pixel accuracy ${ev.pixelAccuracy} vs ${right}/${counted}`);
  assert.equal(counted, 30 * 34 + 26 * 38 - 34 - 38, 'every labelled pixel, and no padding, is counted');
  // Sliding windows (eval --slide 16x16) reach the evaluation: its score is that of the windows' prediction.
  const windows = await byHand((x) => predictMultiScale(model, x, { crop: [16, 16] }));
  const slid = await evaluateSegmentation(model, data.test, 3, null, 0, { crop: [16, 16] });
  assert.ok(Math.abs(slid.pixelAccuracy - windows.right / windows.counted) < 1e-12, `sliding windows: pixel accuracy ${slid.pixelAccuracy} vs ${windows.right}/${windows.counted}`);
  assert.notEqual(slid.loss, ev.loss, 'windows see less context than the whole image, so the loss differs');
  // `tsvision eval` of the checkpoint: the run's own test score; another folder by --test-dir.
  const again = await evaluateSegmentCheckpoint(r.checkpoint);
  assert.equal(again.mIoU, r.final!.testMIoU);
  assert.equal(again.count, 2);
  // eval -o's worst images: both test files, named, lowest mIoU first, drawn though their sizes differ.
  const worstPng = path.join(tmp(), 'worst.png');
  const { worst } = await evaluateSegmentCheckpoint(r.checkpoint, { worst: 5, worstPng });
  assert.deepEqual(worst!.map((w) => w.file).sort(), ['im000.png', 'im001.png'].map((f) => path.join(testDir, 'images', f)));
  assert.ok(worst![0].mIoU <= worst![1].mIoU);
  assert.equal((await sharp(worstPng).metadata()).format, 'png');
  assert.equal((await evaluateSegmentCheckpoint(r.checkpoint, { crop: [16, 16] })).mIoU, slid.mIoU, 'eval --slide 16x16');
  // eval --bf16: the score of the network as `predict --bf16` runs it (folded, in bfloat16), counted by hand.
  const shipped = await evaluateSegmentCheckpoint(r.checkpoint, { precision: 'bfloat16' });
  const low = optimizeForInference(model, T.zeros([1, 3, 64, 64]), { precision: 'bfloat16', layout: 'ordinary' });
  const lowHand = await byHand((x) => forwardAnySize({ sizeMultiple: model.sizeMultiple, forward: (y) => low.forward(y) }, x));
  // The layouts may round differently: a near tie may fall the other way at one pixel.
  assert.ok(Math.abs(shipped.pixelAccuracy - lowHand.right / lowHand.counted) <= 1 / lowHand.counted + 1e-12, `bfloat16: ${shipped.pixelAccuracy} vs ${lowHand.right}/${lowHand.counted}`);
  assert.notEqual(shipped.loss, again.loss, 'bfloat16 rounds the logits, so the loss moves');
  assert.ok(Math.abs(shipped.loss - again.loss) < 0.05 * again.loss, `bfloat16 loss ${shipped.loss} vs float32 ${again.loss}`);
  const other = await evaluateSegmentCheckpoint(r.checkpoint, { testDir: train, scales: [0.75, 1], flip: true });
  assert.equal(other.count, 8);
  assert.ok(other.mIoU >= 0 && other.mIoU <= 1);
});

async function collect(loader: DataLoader): Promise<{ x: T.Tensor; y: T.Tensor }[]> {
  const out: { x: T.Tensor; y: T.Tensor }[] = [];
  for await (const b of loader.epoch(0)) out.push(b);
  return out;
}

test('a streamed, augmented folder run resumes after its last finished epoch and ends exactly as an uninterrupted one', async () => {
  const train = tmp();
  const testDir = tmp();
  await writeSizes(train, [[32, 40], [40, 32], [48, 48], [36, 44], [32, 32], [40, 40]], 21);
  await writeSizes(testDir, [[32, 32], [24, 40]], 22);
  const cfg = { folders: { train, test: testDir, channels: 3 as const }, augment: { crop: [32, 32] as [number, number], scale: [0.5, 2] as [number, number], rotate: 10, flip: true }, epochs: 2, batchSize: 3, threads: 1 };
  const full = await trainSegmentation({ ...cfg, outDir: tmp() }, () => {});
  const dir = tmp();
  const cut = await trainSegmentation({ ...cfg, outDir: dir }, (l) => {
    if (l.startsWith('epoch 1/2:')) process.emit('SIGINT');
  });
  assert.equal(cut.status, 'interrupted');
  const resumed = await trainSegmentation({ resume: path.join(dir, 'checkpoint.safetensors'), outDir: dir }, () => {});
  assert.equal(resumed.history.length, 2);
  assert.equal(resumed.final!.testMIoU, full.final!.testMIoU);
  for (const [k, t] of Object.entries(full.model.stateDict())) {
    assert.equal(T.tidy(() => t.sub(resumed.model.stateDict()[k]).abs().max().item()), 0, `${k} equal after resume`);
  }
});

/** PASCAL VOC's colour map: class i's colour from the bits of i (the devkit's bitget construction). */
function vocPalette(n = 256): Uint8Array {
  const p = new Uint8Array(3 * n);
  for (let i = 0; i < n; i++) {
    let [r, g, b, c] = [0, 0, 0, i];
    for (let j = 0; j < 8; j++) {
      r |= ((c >> 0) & 1) << (7 - j);
      g |= ((c >> 1) & 1) << (7 - j);
      b |= ((c >> 2) & 1) << (7 - j);
      c >>= 3;
    }
    p.set([r, g, b], 3 * i);
  }
  return p;
}

/** A paletted (colour type 3) PNG of the given indices, written chunk by chunk as VOC's masks are. */
function palettedPng(indices: Uint8Array, width: number, height: number, palette: Uint8Array): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 3, 0, 0, 0], 8); // 8-bit indices, colour type 3
  const rows = Buffer.alloc(height * (width + 1));
  for (let y = 0; y < height; y++) rows.set(indices.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, chunk('IHDR', ihdr), chunk('PLTE', Buffer.from(palette)), chunk('IDAT', zlib.deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

test('paletted masks (PASCAL VOC\'s) read as their palette indices, as PIL reads them; 255 (VOC\'s border) is ignored', async () => {
  const root = tmp();
  await writeFolder(root, 2, 16, 24, 31);
  fs.writeFileSync(path.join(root, 'classes.txt'), Array.from({ length: 21 }, (_, i) => `c${i}`).join('\n'));
  const written: Uint8Array[] = [];
  for (const i of [0, 1]) {
    const idx = new Uint8Array(16 * 24).map((_, p) => (p % 7 === 0 ? 255 : (p * 5 + i) % 21));
    written.push(idx);
    fs.writeFileSync(path.join(root, 'masks', `im00${i}.png`), palettedPng(idx, 24, 16, vocPalette()));
  }
  const ref = runTorch(`
import numpy as np
from PIL import Image
for i in (0, 1):
    O[f'm{i}'] = torch.from_numpy(np.array(Image.open(${JSON.stringify(root)} + f'/masks/im00{i}.png')).astype(np.int64))
`);
  const files = SegmentationFiles.open(root);
  for (const i of [0, 1]) {
    const s = await files.get(i);
    assert.deepEqual(Array.from(s.y.toArray() as Uint8Array), Array.from(written[i]), `mask ${i}: the indices written`);
    assert.deepEqual(s.y.long().toNumbers(), ref[`m${i}`].flatten().toNumbers(), `mask ${i}: as PIL reads it`);
    disposeBatch(s);
  }
  // Resized by nearest neighbour, a paletted mask still holds only indices it had.
  const small = await SegmentationFiles.open(root, { size: [8, 12] }).get(0);
  const seen = new Set(small.y.toNumbers());
  assert.ok([...seen].every((v) => written[0].includes(v)), `resized: ${[...seen]}`);
  disposeBatch(small);
  // An index that is no class (30 of 21) is named with the file, as in grey masks.
  const idx = new Uint8Array(16 * 24).fill(30);
  fs.writeFileSync(path.join(root, 'masks', 'im000.png'), palettedPng(idx, 24, 16, vocPalette()));
  await assert.rejects(files.get(0), /SegmentationFolder: mask of im000.png has label 30, but there are 21 classes/);
});

test('a Cityscapes-like layout: a folder per city, masks named by replacing _leftImg8bit, label ids mapped to train ids', async () => {
  const root = tmp();
  // Label ids of Cityscapes: 7 road, 26 car, 33 bicycle, 0 unlabeled, 4 static (no train id), 255.
  const ids = [7, 26, 33, 0, 4, 255];
  for (const city of ['aachen', 'bochum']) {
    fs.mkdirSync(path.join(root, 'images', city), { recursive: true });
    fs.mkdirSync(path.join(root, 'masks', city), { recursive: true });
    const img = Buffer.alloc(6 * 4 * 3, 90);
    const mask = Buffer.from(Array.from({ length: 24 }, (_, p) => ids[p % ids.length]));
    await sharp(img, { raw: { width: 6, height: 4, channels: 3 } }).png().toFile(path.join(root, 'images', city, `${city}_000000_000019_leftImg8bit.png`));
    await sharp(mask, { raw: { width: 6, height: 4, channels: 1 } }).toColourspace('b-w').png().toFile(path.join(root, 'masks', city, `${city}_000000_000019_gtFine_labelIds.png`));
  }
  const files = SegmentationFiles.open(root, { numClasses: 19, maskName: ['_leftImg8bit', '_gtFine_labelIds'], labelMap: 'cityscapes' });
  assert.deepEqual(files.files, ['aachen/aachen_000000_000019_leftImg8bit.png', 'bochum/bochum_000000_000019_leftImg8bit.png']);
  const s = await files.get(1);
  // By the official table: road 0, car 13, bicycle 18; unlabeled, static and 255 ignored.
  const want = Array.from({ length: 24 }, (_, p) => [0, 13, 18, 255, 255, 255][p % 6]);
  assert.deepEqual(s.y.toNumbers(), want);
  disposeBatch(s);
  assert.deepEqual(Array.from((await files.labelCounts()).slice(0, 19)).filter((n) => n > 0), [8, 8, 8], 'road, car, bicycle: 4 pixels of each per mask');
  // Without the renaming the masks are not found; a bad map entry is named.
  assert.throws(() => SegmentationFiles.open(root, { numClasses: 19 }), /aachen_000000_000019_leftImg8bit.png has no mask .*masks\/aachen\/aachen_000000_000019_leftImg8bit.png/);
  assert.throws(() => SegmentationFiles.open(root, { numClasses: 19, maskName: ['_leftImg8bit', '_gtFine_labelIds'], labelMap: { 7: 300 } }), /label map entry 7 → 300 is not a pair of values in 0\.\.255/);
});
