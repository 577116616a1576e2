// Segmentation end to end: Fashion-MNIST scenes are labelled exactly where garments are, ENet's class
// weights follow the paper's formula, the overlays colour the right pixels, a short training run of ENet
// learns (loss falls, mIoU well above chance), and ICNet trains with its own recipe and loss.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import * as T from '../../src/torch';
import { FashionScenes, SCENE_CLASSES } from '../../src/data/fashion-scenes';
import { labelCounts } from '../../src/data';
import { enetClassWeights, evaluateSegmentation, segmentationData, trainSegmentation } from '../../src/train/segment';
import { createSegmentationModel } from '../../src/models/registry';
import { saveSegmentationOverlays } from '../../src/report/overlay';
import { loadWeights, readCheckpoint } from '../../src/train/checkpoint';
import { train } from '../../src/train/trainer';
import { tmpDir } from '../helpers/tmp';

const tmp = (): string => tmpDir('tsv-seg-');

test('Fashion-MNIST scenes: labels mark exactly the garment pixels; layouts are reproducible per seed and split', () => {
  const a = new FashionScenes({ split: 'train', count: 300, size: 48, seed: 5 });
  const b = new FashionScenes({ split: 'train', count: 300, size: 48, seed: 5 });
  const c = new FashionScenes({ split: 'train', count: 300, size: 48, seed: 6 });
  const t = new FashionScenes({ split: 'test', count: 300, size: 48, seed: 5 });
  assert.deepEqual(a.images.shape, [300, 1, 48, 48]);
  assert.deepEqual(a.labels.shape, [300, 48, 48]);
  T.tidy(() => {
    const img = a.images.squeeze(1);
    const fg = a.labels.gt(0);
    // Labelled pixels are the garment pixels above the threshold (30); everything else is black canvas.
    assert.equal(fg.logicalAnd(img.le(30)).sum().item(), 0, 'a labelled pixel that is not a garment pixel');
    assert.equal(fg.logicalNot().logicalAnd(img.ne(0)).sum().item(), 0, 'an unlabelled pixel that is not black');
    assert.ok(a.labels.max().item() === 10 && a.labels.min().item() === 0);
    const perScene = fg.flatten(1).sum(1);
    assert.equal(perScene.eq(0).sum().item(), 0, 'every scene has at least one garment');
    assert.equal(a.images.ne(b.images).sum().item(), 0, 'same seed, same scenes');
    assert.ok(a.images.ne(c.images).sum().item() > 0, 'another seed, other scenes');
    assert.ok(a.images.ne(t.images).sum().item() > 0, 'test scenes differ from train scenes');
  });
  const batch = a.getBatch(T.tensor([3, 1], { dtype: 'int64' }));
  assert.equal(batch.y.dtype, 'int64');
  assert.deepEqual(batch.y.shape, [2, 48, 48]);
  assert.throws(() => new FashionScenes({ split: 'train', size: 20 }), /size must be an integer ≥ 28/);
});

test('ENet class weights are 1 / ln(1.02 + p)', () => {
  const w = enetClassWeights(labelCounts(T.tensor([0, 0, 0, 1, 0, 1, 0, 0], { dtype: 'int64' })), 3).toNumbers();
  [6 / 8, 2 / 8, 0].forEach((p, i) => assert.ok(Math.abs(w[i] - 1 / Math.log(1.02 + p)) < 1e-5, `class ${i}: ${w[i]}`));
});

test('overlays: the prediction panel colours a pixel of class k with k\'s colour over the image', async () => {
  const file = path.join(tmp(), 'o.png');
  const images = T.full([1, 1, 8, 8], 100, { dtype: 'uint8' });
  const truth = T.zeros([1, 8, 8], { dtype: 'int64' });
  const pred = T.zeros([1, 8, 8], { dtype: 'int64' });
  T.callOp('aten::fill_.Scalar', pred.select(1, 2).select(1, 5), 3); // pixel (2, 5) predicted as class 3
  await saveSegmentationOverlays(file, images, truth, pred, { classes: SCENE_CLASSES, scale: 2, alpha: 0.6 });
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.width, (3 * 8 + 4) * 2);
  const at = (x: number, y: number): number[] => Array.from(data.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3));
  // Prediction panel starts at x = (2 · 8 + 4) · 2; class 3's colour is #2ca02c.
  const x0 = (2 * 8 + 4) * 2;
  assert.deepEqual(at(x0 + 5 * 2, 2 * 2), [0x2c, 0xa0, 0x2c].map((c) => Math.round(0.4 * 100 + 0.6 * c)));
  assert.deepEqual(at(x0 + 4 * 2, 2 * 2), [100, 100, 100], 'background stays the image');
  assert.deepEqual(at(8 * 2 + 4 + 5 * 2, 2 * 2), [100, 100, 100], 'ground truth panel: all background');
});

test('a short ENet run on Fashion-MNIST scenes learns and writes its checkpoint, report, curves and overlays', async () => {
  const out = tmp();
  const r = await trainSegmentation({ epochs: 2, lr: 2e-3, limitBatches: 50, batchSize: 16, threads: 2, scenes: { size: 48, trainCount: 800, testCount: 200, maxItems: 3 }, outDir: out }, () => {});
  assert.equal(r.history.length, 2);
  assert.ok(r.history[1].trainLoss < r.history[0].trainLoss, `train loss ${r.history.map((h) => h.trainLoss)}`);
  assert.equal(r.status, 'finished');
  assert.ok(r.final!.testMIoU > 0.04, `test mIoU ${r.final!.testMIoU}`);
  for (const f of [r.checkpoint, r.weights, r.report, r.curves, r.overlays]) assert.ok(fs.existsSync(f), f);
  const meta = await sharp(r.overlays).metadata();
  assert.equal(meta.width, (3 * 48 + 4) * 3);
  assert.equal(r.classWeights!.length, 11);
  assert.ok(r.classWeights![0] < r.classWeights![1], 'background weighs least');
});

test('a run with fewer than six test scenes draws all of them in its overlays', async () => {
  const out = tmp();
  const r = await trainSegmentation({ epochs: 1, limitBatches: 2, batchSize: 4, threads: 2, scenes: { size: 32, trainCount: 16, testCount: 4, maxItems: 2 }, outDir: out }, () => {});
  assert.equal(r.status, 'finished');
  const meta = await sharp(r.overlays).metadata();
  // Four rows of 32-px panels at 3× (the legend below adds less than two more rows).
  assert.ok(meta.height! >= 4 * 32 * 3 && meta.height! < 6 * 32 * 3, `overlay height ${meta.height}`);
});

test('segment stops mid-epoch on SIGTERM or after --stop-after-steps, and --resume ends exactly as an uninterrupted run', async () => {
  const cfg = { epochs: 2, lr: 2e-3, limitBatches: 6, batchSize: 8, threads: 1, scenes: { size: 32, trainCount: 120, testCount: 16, maxItems: 2 } };
  const full = await trainSegmentation({ ...cfg, outDir: tmp() }, () => {});
  const same = (r: typeof full): void => {
    assert.equal(r.history.length, 2);
    // The epoch cut in two reports the loss of all its batches, summed in the same order.
    assert.deepEqual(r.history.map((h) => [h.trainLoss, h.testMIoU]), full.history.map((h) => [h.trainLoss, h.testMIoU]));
    for (const [k, t] of Object.entries(full.model.stateDict())) {
      assert.equal(t.sub(r.model.stateDict()[k]).abs().max().item(), 0, `${k} equal after resume`);
    }
  };
  // SIGTERM (a job system stopping the run) arrives as epoch 1 is reported: the next step finishes and is saved.
  const dir = tmp();
  const cut = await trainSegmentation({ ...cfg, outDir: dir }, (l) => {
    if (l.startsWith('epoch 1/2:')) process.emit('SIGTERM');
  });
  assert.equal(cut.status, 'interrupted');
  assert.equal(cut.history.length, 1);
  assert.deepEqual([readCheckpoint(cut.checkpoint).state.epoch, readCheckpoint(cut.checkpoint).state.batch], [1, 1]);
  same(await trainSegmentation({ resume: path.join(dir, 'checkpoint.safetensors'), outDir: dir }, () => {}));
  // Stopped in the middle of epoch 2 (step 9 of 12: its third batch), resumed from there.
  const dir2 = tmp();
  const stopped = await trainSegmentation({ ...cfg, outDir: dir2, stopAfterSteps: 9 }, () => {});
  assert.equal(stopped.status, 'interrupted');
  const state = readCheckpoint(stopped.checkpoint).state;
  assert.deepEqual([state.epoch, state.batch, state.step], [1, 3, 9]);
  same(await trainSegmentation({ resume: stopped.checkpoint, outDir: dir2 }, () => {}));
  await assert.rejects(trainSegmentation({ resume: '/nonexistent/c.safetensors' }, () => {}), /no such file/);
  // The other command's checkpoint: each error says which command continues it.
  await assert.rejects(train({ resume: stopped.checkpoint }, () => {}), /is a checkpoint of `tsvision segment`: continue it with tsvision segment --resume/);
  const cls = await train({ epochs: 1, limitBatches: 1, batchSize: 16, threads: 1, outDir: tmp() }, () => {});
  await assert.rejects(trainSegmentation({ resume: cls.checkpoint }, () => {}), /is not a checkpoint of `tsvision segment`: a classifier's; continue it with tsvision train --resume/);
});

test('segment trains ICNet with its recipe (SGD, momentum 0.9) and cascade loss; its checkpoint rebuilds the same network', async () => {
  const out = tmp();
  const scenes = { size: 32, trainCount: 192, testCount: 32, maxItems: 2 };
  const r = await trainSegmentation({ model: 'icnet', modelOptions: { width: 8, pspChannels: 32, cffChannels: 16 }, epochs: 2, batchSize: 16, threads: 2, scenes, outDir: out }, () => {});
  assert.ok(r.history[1].trainLoss < r.history[0].trainLoss, `train loss ${r.history.map((h) => h.trainLoss)}`);
  const report = JSON.parse(fs.readFileSync(r.report, 'utf8'));
  assert.equal(report.model, 'icnet');
  // The recipe's scene options, with the caller's merged over them key by key.
  assert.deepEqual(report.config.modelOptions, { backbone: 'resnet18', width: 8, bins: [1, 2], pspChannels: 32, cffChannels: 16 });
  assert.deepEqual([report.config.optimizer, report.config.lr, report.config.momentum, report.config.weightDecay], ['sgd', 0.01, 0.9, 1e-4]);
  const ck = readCheckpoint(r.checkpoint);
  assert.ok(Object.keys(ck.optimizer!.tensors).some((k) => k.includes('momentum')), 'SGD momentum buffers in the checkpoint');
  // Rebuilt from the checkpoint's own config, the network scores exactly the mIoU the run reported.
  const cfg = ck.state.config as { model: 'icnet'; modelOptions: Record<string, unknown> };
  const m = createSegmentationModel(cfg.model, { ...cfg.modelOptions, numClasses: 11, inChannels: 1 });
  loadWeights(r.weights, m);
  const ev = await evaluateSegmentation(m, (await segmentationData({ scenes, seed: 0 }, { train: false })).test, 11, null);
  assert.equal(ev.mIoU, r.final!.testMIoU);
  await assert.rejects(trainSegmentation({ model: 'enet', scenes: { ...scenes, size: 36 }, outDir: tmp() }, () => {}), /image size must be a multiple of 8 for enet, got 36×36/);
  await assert.rejects(trainSegmentation({ model: 'segnet' as 'enet', outDir: tmp() }, () => {}), /unknown model 'segnet'; known: enet, deeplabv3, pspnet, icnet/);
});

test('segment --ema: the average follows ema ← d·ema + (1 − d)·w step by step, re-scores from ema.safetensors, competes for best.safetensors and resumes exactly', async () => {
  const cfg = { epochs: 2, lr: 5e-3, limitBatches: 4, batchSize: 8, threads: 1, ema: 0.8, valSplit: 0.25, scenes: { size: 32, trainCount: 96, testCount: 16, maxItems: 2 } };
  const full = await trainSegmentation({ ...cfg, outDir: tmp() }, () => {});
  assert.equal(full.history.length, 2);
  for (const h of full.history) assert.ok(h.emaTestMIoU !== undefined && h.emaValMIoU !== undefined, 'scored every epoch');
  // The file holds what was scored: rebuilt from it, the average scores exactly the last epoch's number.
  const m = createSegmentationModel('enet', { numClasses: 11, inChannels: 1 });
  loadWeights(full.ema!, m);
  const data = await segmentationData({ scenes: cfg.scenes, seed: 0, valSplit: cfg.valSplit }, { train: false });
  assert.equal((await evaluateSegmentation(m, data.test, 11, full.classWeights ? T.tensor(full.classWeights) : null, cfg.limitBatches)).mIoU, full.final!.emaTestMIoU);
  // The best of every epoch's trained weights and averages by validation mIoU (trained weights first on a tie).
  const candidates = full.history.flatMap((h) => [{ epoch: h.epoch, v: h.valMIoU!, ema: false }, { epoch: h.epoch, v: h.emaValMIoU!, ema: true }]);
  const best = candidates.reduce((a, c) => (c.v > a.v ? c : a));
  assert.deepEqual([full.best!.epoch, full.best!.valMIoU, Boolean(full.best!.ema)], [best.epoch, best.v, best.ema]);

  // Steps 2 and 3 from their checkpoints: ema₃ = d·ema₂ + (1 − d)·w₃ with the warmed-up d = min(0.8, 3 / 12).
  const at = async (steps: number) => readCheckpoint((await trainSegmentation({ ...cfg, outDir: tmp(), stopAfterSteps: steps }, () => {})).checkpoint);
  const [two, three] = [await at(2), await at(3)];
  const d = Math.min(0.8, 3 / 12);
  for (const [k, w] of Object.entries(three.model)) {
    if (!w.dtype.startsWith('float')) continue;
    const want = two.ema[k].mul(d).add(w.mul(1 - d));
    assert.ok(want.sub(three.ema[k]).abs().max().item() <= 1e-6 * (1 + want.abs().max().item()), k);
  }
  // Resumed from step 3, the run ends with the uninterrupted run's average, bit for bit.
  const dir = tmp();
  await trainSegmentation({ ...cfg, outDir: dir, stopAfterSteps: 3 }, () => {});
  const resumed = await trainSegmentation({ resume: path.join(dir, 'checkpoint.safetensors'), outDir: dir }, () => {});
  const [a, b] = [T.loadSafetensors(full.ema!).tensors, T.loadSafetensors(resumed.ema!).tensors];
  for (const k of Object.keys(a)) assert.equal(a[k].sub(b[k]).abs().max().item(), 0, k);
});
