// A validation set held out of the training images: the split by hand, the subsets against their base
// datasets, the best epoch's weights against the history that chose them, early stopping, and the flags.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { BatchSubset, TensorDataset, stratifiedSplit } from '../../src/data';
import { TrainConfig, evaluate, train } from '../../src/train/trainer';
import { makeLoaders } from '../../src/train/datasets';
import { readWeights } from '../../src/train/checkpoint';
import { restoreNetwork } from '../../src/infer/restore';
import { evaluateSegmentation, segmentationData, trainSegmentation } from '../../src/train/segment';
import type { SegmentationNet } from '../../src/models/segmentation';
import * as T from '../../src/torch';
import { tmpDir } from '../helpers/tmp';

const tmp = (): string => tmpDir('tsv-val-');
const quiet = (): void => {};
const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

test('stratifiedSplit, by hand: round(fraction · count) of each class, at least one of a class of two or more, never its last', () => {
  // Classes 0 ×10, 1 ×5, 2 ×1, 3 ×2, interleaved.
  const labels = [0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 0, 1, 0];
  const { train, val } = stratifiedSplit(labels, 0.2, 3);
  const count = (idx: Int32Array, c: number) => Array.from(idx).filter((i) => labels[i] === c).length;
  // 0.2·10 = 2, 0.2·5 = 1, a single sample stays in training, 0.2·2 = 0.4 rounds to 0 but a class of two gives one.
  assert.deepEqual([0, 1, 2, 3].map((c) => count(val, c)), [2, 1, 0, 1]);
  assert.deepEqual([...train, ...val].sort((a, b) => a - b), labels.map((_, i) => i));
  assert.deepEqual([...train], [...train].sort((a, b) => a - b));
  assert.deepEqual(stratifiedSplit(labels, 0.2, 3), { train, val });
  const others = [4, 5, 6, 7].map((seed) => stratifiedSplit(labels, 0.2, seed).val.join());
  assert.ok(others.some((v) => v !== val.join()), 'another seed draws another split');
  assert.throws(() => stratifiedSplit(labels, 1, 0), /must lie in \(0, 1\), got 1/);
  assert.throws(() => stratifiedSplit(labels, 0, 0), /must lie in \(0, 1\), got 0/);
});

test('a subset of an in-memory dataset batches its own rows of the base', () => {
  const images = T.arange(0, 5 * 4, 1, { dtype: 'float32' }).reshape(5, 1, 2, 2);
  const base = new TensorDataset(images, T.tensor([4, 3, 2, 1, 0], { dtype: 'int64' }));
  const sub = new BatchSubset(base, Int32Array.of(4, 1, 3));
  assert.equal(sub.length, 3);
  const b = sub.getBatch(T.tensor([2, 0], { dtype: 'int64' }));
  // Rows 3 and 4 of the base: images 12…15 and 16…19, labels 1 and 0.
  assert.deepEqual(Array.from(b.x.toArray() as Float32Array), [12, 13, 14, 15, 16, 17, 18, 19]);
  assert.deepEqual(Array.from(b.y.toArray() as BigInt64Array, Number), [1, 0]);
  b.x.dispose();
  b.y.dispose();
  sub.dispose();
  base.dispose();
});

test('Fashion-MNIST with a validation split: a tenth of each class held out of the 60,000 training images', async () => {
  const l = makeLoaders({ kind: 'fashion-mnist', valSplit: 0.1 }, { batchSize: 1000, seed: 0, augment: false });
  assert.equal(l.train.dataset.length + l.val!.dataset.length, 60000);
  assert.equal(l.val!.dataset.length, 6000);
  const counts = new Array<number>(10).fill(0);
  for await (const b of l.val!.epoch(0)) {
    for (const y of b.y.toArray() as BigInt64Array) counts[Number(y)]++;
    b.x.dispose();
    b.y.dispose();
  }
  assert.deepEqual(counts, new Array(10).fill(600));
});

test('--val-seed holds out the same validation images whatever the run\'s seed (classifiers and segmentation); without it the seed draws them', async () => {
  // The first validation batch stands for the split (its images in the subset's order).
  const firstVal = async (l: { epoch(e: number): AsyncGenerator<{ x: T.Tensor; y: T.Tensor }> }): Promise<T.Tensor> => {
    for await (const b of l.epoch(0)) {
      b.y.dispose();
      return b.x;
    }
    throw new Error('no validation batch');
  };
  const same = (a: T.Tensor, b: T.Tensor): boolean => a.shape.join() === b.shape.join() && a.sub(b).abs().max().item() === 0;
  const cls = async (seed: number, valSeed?: number) => firstVal(makeLoaders({ kind: 'fashion-mnist', valSplit: 0.1, ...(valSeed === undefined ? {} : { valSeed }) }, { batchSize: 500, seed, augment: false }).val!);
  assert.ok(same(await cls(0, 3), await cls(5, 3)), 'valSeed fixed: the same images');
  assert.ok(same(await cls(3), await cls(7, 3)), 'valSeed 3 is seed 3\'s split');
  assert.ok(!same(await cls(0), await cls(5)), 'without it, each seed its own');
  // Segmentation on folders (the scenes' layouts follow the seed, so their images would differ anyway): the
  // validation files by their grey value, 12 pairs of 8×8 images with value 20·k.
  const root = tmpDir('tsv-valseed-');
  for (const sub of ['images', 'masks']) fs.mkdirSync(path.join(root, sub), { recursive: true });
  for (let k = 0; k < 12; k++) {
    await sharp(Buffer.alloc(8 * 8 * 3, 20 * k), { raw: { width: 8, height: 8, channels: 3 } }).png().toFile(path.join(root, 'images', `${k}.png`));
    await sharp(Buffer.alloc(8 * 8, 0), { raw: { width: 8, height: 8, channels: 1 } }).png().toFile(path.join(root, 'masks', `${k}.png`));
  }
  const folders = { train: root, test: root, channels: 3 as const, numClasses: 2 };
  const seg = async (seed: number, valSeed?: number) => firstVal((await segmentationData({ valSplit: 0.5, ...(valSeed === undefined ? {} : { valSeed }), folders, scenes: { size: 8, trainCount: 0, testCount: 0, maxItems: 1 }, seed, batchSize: 6 }, { train: true })).val!);
  assert.ok(same(await seg(0, 1), await seg(4, 1)));
  assert.ok(!same(await seg(0), await seg(4)));
});

const small = (outDir: string): Partial<TrainConfig> => ({
  model: 'cnn',
  modelOptions: { widths: [8, 16], hidden: 32 },
  data: { kind: 'fashion-mnist', valSplit: 0.1 },
  epochs: 4,
  batchSize: 64,
  limitBatches: 6,
  lr: 0.05,
  seed: 3,
  outDir,
});

test('the best epoch by validation top-1: its weights in best.safetensors score its recorded test top-1 again', async () => {
  const dir = tmp();
  const r = await train(small(dir), quiet);
  const vals = r.history.map((h) => h.valTop1!);
  assert.ok(vals.every((v) => v > 0 && v <= 1), JSON.stringify(vals));
  const bestEpoch = vals.indexOf(Math.max(...vals)) + 1;
  assert.equal(r.best?.epoch, bestEpoch);
  assert.equal(r.stoppedEarly, null);
  const report = JSON.parse(fs.readFileSync(r.report, 'utf8')) as { best: { epoch: number; testTop1: number } };
  assert.equal(report.best.epoch, bestEpoch);
  assert.equal((readWeights(r.best!.weights).run as { epoch: number }).epoch, bestEpoch);
  // Re-scored here on the same test batches the run used: the run's number for that epoch, exactly.
  const net = restoreNetwork(r.best!.weights);
  const loaders = makeLoaders({ kind: 'fashion-mnist' }, { batchSize: 64, seed: 3, augment: false });
  const ev = await evaluate(net.model, loaders.test, 6);
  assert.equal(ev.top1, r.history[bestEpoch - 1].testTop1);
  // The check can fail: the epochs' test scores differ, so another epoch's weights would not match.
  assert.ok(new Set(r.history.map((h) => h.testTop1)).size > 1, JSON.stringify(r.history));
  // And the last epoch's weights (model.safetensors) give the last epoch's number.
  const last = await evaluate(restoreNetwork(r.weights).model, loaders.test, 6);
  assert.equal(last.top1, r.history[r.history.length - 1].testTop1);
});

test('early stopping: with nothing learned (lr 0, no BatchNorm) the first epoch stays best and patience 2 ends the run after epoch 3', async () => {
  const dir = tmp();
  const r = await train({ ...small(dir), model: 'shallow', modelOptions: {}, lr: 0, epochs: 8, patience: 2 }, quiet);
  assert.equal(r.history.length, 3);
  assert.equal(new Set(r.history.map((h) => h.valTop1)).size, 1);
  assert.equal(r.best?.epoch, 1);
  assert.equal(r.stoppedEarly, 3);
  assert.equal(r.status, 'finished');
  const report = JSON.parse(fs.readFileSync(r.report, 'utf8')) as { stoppedEarly: number };
  assert.equal(report.stoppedEarly, 3);
});

test('the flags: --val-split in [0, 1), --patience only with it; the run names its best epoch', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, 'train', ...args], { encoding: 'utf8' });
  assert.match(run('--val-split', '1').stderr, /--val-split must be a fraction in \[0, 1\), got '1'/);
  assert.match(run('--patience', '2').stderr, /--patience watches the validation accuracy: give --val-split too/);
  const dir = tmp();
  const r = run('--val-split', '0.05', '--epochs', '2', '--limit-batches', '3', '-b', '32', '-o', dir);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /best epoch [12] of 2 by validation top-1 [\d.]+%: test top-1 [\d.]+%/);
  assert.match(r.stdout, new RegExp(`best: +${path.join(dir, 'best.safetensors').replace(/[.]/g, '\\.')} \\(epoch [12]\\)`));
  assert.match(r.stderr, /epoch 1\/2: .*val top-1 [\d.]+%, test top-1/);
  // eval reads the weights file's run record (no --model needed), as predict and export do.
  const e = spawnSync(process.execPath, [CLI, 'eval', '-c', path.join(dir, 'best.safetensors')], { encoding: 'utf8' });
  assert.equal(e.status, 0, e.stderr);
  assert.match(e.stdout, /^cnn on 10000 test images: loss [\d.]+, top-1 [\d.]+%/);
  // Progress on stderr, as predict shows it (into a pipe: at least the last line, all images done).
  assert.match(e.stderr, /^\[10000\/10000\] [\d.]+ images\/s$/m);
  // And export --int8 calibrates and scores on the images that record names.
  const q = spawnSync(process.execPath, [CLI, 'export', path.join(dir, 'best.safetensors'), '-o', path.join(dir, 'best.int8.onnx'), '--int8', '--calibration-images', '32', '--eval-images', '100'], { encoding: 'utf8' });
  assert.equal(q.status, 0, q.stderr);
  assert.match(q.stdout, /calibrated on 32 training images/);
  assert.match(q.stdout, /vs float32 \(tsvision\) on 100 test images: top-1/);
});

test('segment with a validation split: scenes held out of training, class weights from the rest, best.safetensors re-scores its epoch\'s test mIoU', async () => {
  const cfg = { valSplit: 0.25, scenes: { size: 64, trainCount: 64, testCount: 16, maxItems: 3 }, seed: 2, batchSize: 8 };
  const data = await segmentationData(cfg, { train: true });
  assert.deepEqual([data.train!.dataset.length, data.val!.dataset.length], [48, 16]);
  // Training and validation label counts add up to those of all 64 scenes.
  const all = await (await segmentationData({ ...cfg, valSplit: undefined }, { train: true })).trainLabelCounts();
  const trainCounts = await data.trainLabelCounts();
  let valPixels = 0;
  for await (const b of data.val!.epoch(0)) {
    valPixels += b.y.numel();
    b.x.dispose();
    b.y.dispose();
  }
  assert.equal(trainCounts.reduce((a, c) => a + c, 0), 48 * 64 * 64);
  assert.equal(all.reduce((a, c) => a + c, 0) - trainCounts.reduce((a, c) => a + c, 0), valPixels);

  const dir = tmp();
  const r = await trainSegmentation({ ...cfg, epochs: 3, limitBatches: 2, outDir: dir }, quiet);
  const vals = r.history.map((h) => h.valMIoU!);
  assert.equal(r.best?.epoch, vals.indexOf(Math.max(...vals)) + 1);
  assert.ok(new Set(r.history.map((h) => h.testMIoU)).size > 1, 'the epochs score differently, so the check below can fail');
  const net = restoreNetwork(r.best!.weights);
  const ev = await evaluateSegmentation(net.model as SegmentationNet, data.test, data.classes.length, null, 2);
  assert.equal(ev.mIoU, r.history[r.best!.epoch - 1].testMIoU);
  // `tsvision eval` on the weights file: the same 16 test scenes, the same mIoU.
  const e = spawnSync(process.execPath, [CLI, 'eval', '-c', r.best!.weights], { encoding: 'utf8' });
  assert.equal(e.status, 0, e.stderr);
  assert.match(e.stdout, new RegExp(`^enet on 16 test images \\(single scale\\): .*mIoU ${(100 * ev.mIoU).toFixed(2)}%`));
});

test('segment on folders with a validation split: files held out, and the class weights count only the training masks', async () => {
  // Six 16×16 image/mask pairs; mask k is all class k % 3.
  const root = tmp();
  for (const part of ['train', 'test']) {
    for (const sub of ['images', 'masks']) fs.mkdirSync(path.join(root, part, sub), { recursive: true });
    for (let k = 0; k < 6; k++) {
      await sharp(Buffer.alloc(16 * 16 * 3, 40 * k), { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(path.join(root, part, 'images', `${k}.png`));
      await sharp(Buffer.alloc(16 * 16, k % 3), { raw: { width: 16, height: 16, channels: 1 } }).png().toFile(path.join(root, part, 'masks', `${k}.png`));
    }
  }
  const folders = { train: path.join(root, 'train'), test: path.join(root, 'test'), channels: 3 as const, numClasses: 3 };
  const data = await segmentationData({ valSplit: 0.34, folders, scenes: { size: 16, trainCount: 0, testCount: 0, maxItems: 1 }, seed: 4, batchSize: 2 }, { train: true });
  assert.deepEqual([data.train!.dataset.length, data.val!.dataset.length], [4, 2]);
  // The held-out files, by their masks' class: what the validation loader yields.
  const valClasses: number[] = [];
  for await (const b of data.val!.epoch(0)) {
    for (let i = 0; i < b.y.size(0); i++) valClasses.push(T.tidy(() => b.y.select(0, i).max().item()));
    b.x.dispose();
    b.y.dispose();
  }
  const counts = await data.trainLabelCounts();
  // All six masks hold classes 0, 1, 2 twice each; the training part is what the two held-out ones leave.
  const want = [2, 2, 2];
  for (const c of valClasses) want[c]--;
  assert.deepEqual(Array.from(counts.slice(0, 3)), want.map((n) => n * 256));
});
