// What eval finds wrong: evaluate's mistakes are the test images the network misclassifies (checked by
// running the network on each image alone), and `tsvision eval -o` names their files, draws them in
// mistakes.png and writes the per-class table, calibration and calibration.png.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import * as T from '../../src/torch';
import { createModel } from '../../src/models/registry';
import { evaluate, train } from '../../src/train/trainer';
import { makeLoaders } from '../../src/train/datasets';
import { sampleImage } from '../../src/data/inspect';
import { FASHION_MNIST_MEAN, FASHION_MNIST_STD } from '../../src/data';
import { Predictor } from '../../src/infer/predict';
import { classificationReport, mostConfused } from '../../src/metrics/classification';
import { writeLeftRightFolder } from '../helpers/folders';
import { evaluateSegmentation, trainSegmentation } from '../../src/train/segment';
import { restoreNetwork } from '../../src/infer/restore';
import { BatchSubset, DataLoader, compose, normalize, toFloat } from '../../src/data';
import { FashionScenes } from '../../src/data/fashion-scenes';
import type { SegmentationNet } from '../../src/models/segmentation';
import { tmpDir } from '../helpers/tmp';

const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
const tmp = (): string => tmpDir('tsv-evalrep-');

test('evaluate({ mistakes }): each listed image, run alone, gets the listed answer at the listed probability; none is missed', async () => {
  T.manualSeed(4);
  const loaders = makeLoaders({ kind: 'fashion-mnist' }, { batchSize: 64, seed: 0, augment: false });
  const model = createModel('cnn', { widths: [4, 8], hidden: 16, inChannels: 1 });
  // Two batches of 500: the second one's indices continue from the first's.
  const r = await evaluate(model, loaders.test, 2, { mistakes: true });
  const wrong = r.confusion.reduce((a, row, i) => a + row.reduce((b, x, j) => b + (i === j ? 0 : x), 0), 0);
  assert.equal(r.mistakes!.length, wrong);
  assert.ok(wrong > 20, `an untrained network errs often (${wrong})`);
  for (let i = 1; i < r.mistakes!.length; i++) assert.ok(r.mistakes![i - 1].confidence >= r.mistakes![i].confidence, 'the most confident first');
  model.eval();
  const test = loaders.test.dataset as Parameters<typeof sampleImage>[0];
  const labels = Array.from((loaders.test.dataset as unknown as { labels: T.Tensor }).labels.toArray() as BigInt64Array, Number);
  const picks = [...r.mistakes!.slice(0, 3), ...r.mistakes!.filter((m) => m.index >= 500).slice(0, 3)];
  assert.ok(picks.some((m) => m.index >= 500), 'a mistake from the second batch');
  for (const m of picks) {
    const img = await sampleImage(test, m.index);
    const probs = T.noGrad(() => T.softmax(model.forward(img.float().div(255).sub(FASHION_MNIST_MEAN).div(FASHION_MNIST_STD).unsqueeze(0)), 1).squeeze(0));
    const p = Array.from(probs.toArray() as Float32Array);
    const top = p.indexOf(Math.max(...p));
    assert.equal(labels[m.index], m.label, `image ${m.index}'s label`);
    assert.equal(top, m.predicted, `image ${m.index}'s answer`);
    assert.notEqual(top, m.label);
    assert.ok(Math.abs(p[top] - m.confidence) < 1e-5, `image ${m.index}: ${p[top]} vs ${m.confidence}`);
  }
});

test('tsvision eval -o on image folders: the table, report.json\'s mistakes with their files (as Predictor answers them), mistakes.png and calibration.png', async () => {
  const dir = tmp();
  await writeLeftRightFolder(path.join(dir, 'train'), 8);
  await writeLeftRightFolder(path.join(dir, 'test'), 7, 5);
  // A network trained for one step at rate 0: the initial one, which gets many of the images wrong.
  const data = { kind: 'image-folder' as const, train: path.join(dir, 'train'), test: path.join(dir, 'test'), size: 16, channels: 3 as const };
  const run = await train({ model: 'cnn', modelOptions: { widths: [4, 8], hidden: 8, dropout: 0 }, data, epochs: 1, batchSize: 16, lr: 0, seed: 1, outDir: path.join(dir, 'run'), threads: 1 }, () => {});
  const out = path.join(dir, 'eval');
  const e = spawnSync(process.execPath, [CLI, 'eval', '-c', run.weights, '-o', out, '--mistakes', '4'], { encoding: 'utf8' });
  assert.equal(e.status, 0, e.stderr);
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as {
    confusion: number[][];
    classReport: ReturnType<typeof classificationReport>;
    mostConfused: ReturnType<typeof mostConfused>;
    calibration: { ece: number };
    wrong: number;
    mistakes: { file: string; labelName: string; predictedName: string; confidence: number; index: number }[];
  };
  assert.deepEqual(report.classReport, classificationReport(report.confusion));
  assert.deepEqual(report.mostConfused, mostConfused(report.confusion));
  assert.equal(report.wrong, report.confusion[0][1] + report.confusion[1][0]);
  assert.ok(report.wrong >= 1, 'the initial network errs');
  assert.match(e.stdout, new RegExp(`macro F1 ${(100 * report.classReport.macro.f1).toFixed(2)}%`));
  assert.match(e.stdout, new RegExp(`calibration: ECE ${(100 * report.calibration.ece).toFixed(2)}%`));
  assert.equal(report.mistakes.length, Math.min(4, report.wrong));
  const predictor = await Predictor.load(run.weights);
  for (const m of report.mistakes) {
    // The file is the test image of that class, and the network answers it as listed.
    assert.equal(path.basename(path.dirname(m.file)), m.labelName);
    assert.ok(m.file.startsWith(path.join(dir, 'test')), m.file);
    const [best] = await predictor.classify(m.file, { topK: 1 });
    assert.equal(best.class, m.predictedName);
    assert.notEqual(best.class, m.labelName);
    assert.ok(Math.abs(best.probability - m.confidence) < 1e-5, `${m.file}: ${best.probability} vs ${m.confidence}`);
  }
  const sheet = await sharp(path.join(out, 'mistakes.png')).metadata();
  assert.equal(sheet.width, report.mistakes.length * 128);
  assert.equal((await sharp(path.join(out, 'calibration.png')).metadata()).format, 'png');
  // --gradcam: each tile two images wide (the image, then the answer's Grad-CAM over it), the heat visible.
  const g = spawnSync(process.execPath, [CLI, 'eval', '-c', run.weights, '-o', path.join(dir, 'eval-gc'), '--mistakes', '4', '--gradcam'], { encoding: 'utf8' });
  assert.equal(g.status, 0, g.stderr);
  const sheetFile = path.join(dir, 'eval-gc', 'mistakes.png');
  assert.equal((await sharp(sheetFile).metadata()).width, report.mistakes.length * (2 * 112 + 4 + 16));
  const { data: pixels, info } = await sharp(sheetFile).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const tile = (left: number): number[] => {
    const px: number[] = [];
    for (let y = 30; y < 30 + 112; y++) for (let x = left; x < left + 112; x++) px.push(...pixels.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3));
    return px;
  };
  const [plain, explained] = [tile(8), tile(8 + 112 + 4)];
  assert.ok(plain.some((v, i) => v !== explained[i]), 'the Grad-CAM tile is the image with the heat map over it, not the image again');
  assert.match(spawnSync(process.execPath, [CLI, 'eval', '-c', run.weights, '--mistakes', '-1'], { encoding: 'utf8' }).stderr, /--mistakes must be an integer >= 0/);
});

test('tsvision eval -o on a segment run: the images of lowest mIoU, each scored alone as SegmentationMeter scores it, and worst.png', async () => {
  const dir = tmp();
  const scenes = { size: 32, trainCount: 16, testCount: 8, maxItems: 2 };
  const run = await trainSegmentation({ model: 'enet', scenes, epochs: 1, batchSize: 8, seed: 2, threads: 1, outDir: path.join(dir, 'run') }, () => {});
  const out = path.join(dir, 'eval');
  const e = spawnSync(process.execPath, [CLI, 'eval', '-c', run.checkpoint, '-o', out, '--worst', '3'], { encoding: 'utf8' });
  assert.equal(e.status, 0, e.stderr);
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as { worst: { index: number; mIoU: number; pixelAccuracy: number; file: null }[]; calibration: { ece: number; bins: { count: number }[] } };
  assert.equal(report.worst.length, 3);
  assert.match(e.stdout, /lowest mIoU:\n +[\d.]+% +pixel accuracy [\d.]+% +test image \d+/);
  // Every test scene scored alone by the meter (the run's test scenes, normalized as the run did).
  const net = restoreNetwork(run.checkpoint);
  const testSet = new FashionScenes({ split: 'test', count: 8, size: 32, maxItems: 2, seed: 2 });
  const alone: number[] = [];
  for (let i = 0; i < 8; i++) {
    const loader = new DataLoader(new BatchSubset(testSet, Int32Array.of(i)), { batchSize: 1, transform: compose(toFloat(), normalize(net.normalization.mean, net.normalization.std)) });
    alone.push((await evaluateSegmentation(net.model as SegmentationNet, loader, 11, null)).mIoU);
  }
  // Per-pixel calibration, counted here pixel by pixel from the network's probabilities on all 8 scenes.
  const all = new DataLoader(testSet, { batchSize: 8, transform: compose(toFloat(), normalize(net.normalization.mean, net.normalization.std)) });
  const [count, conf, hits] = [0, 1, 2].map(() => new Array<number>(15).fill(0));
  for await (const b of all.epoch(0)) {
    const p = Array.from(T.noGrad(() => T.softmax(net.model.forward(b.x), 1)).toArray() as Float32Array);
    const y = b.y.toNumbers();
    const [k, hw] = [11, 32 * 32];
    y.forEach((label, j) => {
      if (label === 255) return;
      const [n, at] = [Math.floor(j / hw), j % hw];
      const probs = Array.from({ length: k }, (_, c) => p[(n * k + c) * hw + at]);
      const top = Math.max(...probs);
      const bin = Math.min(14, Math.floor(top * 15));
      count[bin]++;
      conf[bin] += top;
      hits[bin] += probs.indexOf(top) === label ? 1 : 0;
    });
  }
  const pixels = count.reduce((a, x) => a + x, 0);
  const ece = count.reduce((a, c, i) => a + (c ? (c / pixels) * Math.abs(hits[i] / c - conf[i] / c) : 0), 0);
  assert.deepEqual(report.calibration.bins.map((b) => b.count), count);
  assert.ok(Math.abs(report.calibration.ece - ece) < 1e-5, `${report.calibration.ece} vs ${ece}`);
  assert.match(e.stdout, /calibration \(per pixel\): ECE [\d.]+%/);
  assert.ok(fs.existsSync(path.join(out, 'calibration.png')));
  testSet.dispose();
  for (const w of report.worst) assert.ok(Math.abs(w.mIoU - alone[w.index]) < 1e-9, `scene ${w.index}: ${w.mIoU} vs ${alone[w.index]}`);
  const sorted = [...alone].sort((a, b) => a - b);
  assert.deepEqual(report.worst.map((w) => w.mIoU.toFixed(9)), sorted.slice(0, 3).map((v) => v.toFixed(9)));
  // Three rows of 32-pixel scenes enlarged 6× (at most 3×: 96 px each) above the legend.
  const png = await sharp(path.join(out, 'worst.png')).metadata();
  assert.ok(png.height! > 3 * 96 && png.height! < 3 * 96 + 120, `${png.height}`);
});
