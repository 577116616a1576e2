// eval's measurements beyond accuracy: precision, recall and F1 per class (sklearn's classification_report)
// and calibration (ECE, MCE, the reliability diagram of Guo et al. 2017), each by hand.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import sharp from 'sharp';
import * as T from '../../src/torch';
import { classificationReport, mostConfused } from '../../src/metrics/classification';
import { CalibrationMeter } from '../../src/metrics/calibration';
import { reliabilitySvg, saveReliabilityPng } from '../../src/report/calibration';
import { tmpDir } from '../helpers/tmp';

const close = (a: number | null, b: number | null, what: string): void => {
  if (a === null || b === null) return assert.equal(a, b, what);
  assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);
};

test('classificationReport by hand: a class never predicted, a class without test images, macro and weighted averages', () => {
  const r = classificationReport([
    [5, 1, 0, 0],
    [2, 3, 0, 0],
    [0, 0, 0, 0], // no test images, never predicted: left out of the averages
    [1, 0, 0, 0], // one test image, never predicted: precision undefined, recall and F1 0
  ]);
  const want = [
    { precision: 5 / 8, recall: 5 / 6, f1: 5 / 7, support: 6 },
    { precision: 3 / 4, recall: 3 / 5, f1: 2 / 3, support: 5 },
    { precision: null, recall: null, f1: null, support: 0 },
    { precision: null, recall: 0, f1: 0, support: 1 },
  ];
  want.forEach((w, c) => {
    for (const k of ['precision', 'recall', 'f1'] as const) close(r.perClass[c][k], w[k], `class ${c} ${k}`);
    assert.equal(r.perClass[c].support, w.support);
  });
  // sklearn's macro over the labels seen (0, 1, 3), an undefined precision counting 0; weighted by 6, 5, 1.
  close(r.macro.precision, 11 / 24, 'macro precision');
  close(r.macro.recall, 43 / 90, 'macro recall');
  close(r.macro.f1, 29 / 63, 'macro F1');
  close(r.weighted.precision, 0.625, 'weighted precision');
  close(r.weighted.recall, 2 / 3, 'weighted recall (= accuracy)');
  close(r.weighted.f1, 40 / 63, 'weighted F1');
});

test('mostConfused by hand: the largest off-diagonal cells, most images first, with their share of the true class', () => {
  const pairs = mostConfused([
    [5, 1, 0, 0],
    [2, 3, 0, 0],
    [0, 0, 0, 0],
    [2, 0, 0, 0],
  ], 2);
  // Two cells of 2 images: class 3's are all its images (100%), class 1's two fifths; the larger share first.
  assert.deepEqual(pairs, [
    { label: 3, predicted: 0, count: 2, share: 1 },
    { label: 1, predicted: 0, count: 2, share: 0.4 },
  ]);
  assert.deepEqual(mostConfused([[3, 0], [0, 4]]), [], 'nothing confused');
});

test('CalibrationMeter by hand (5 bins, a confidence of exactly 1 in the last), and on random batches against a plain loop', () => {
  const m = new CalibrationMeter(5);
  // Confidences .9 (right), .7 (wrong), .95 (right), .55 (wrong), 1 (right).
  m.update(T.tensor([[0.9, 0.1], [0.3, 0.7], [0.05, 0.95], [0.55, 0.45], [1, 0]]), T.tensor([0, 0, 1, 1, 0], { dtype: 'int64' }));
  const c = m.result();
  assert.deepEqual(c.bins.map((b) => b.count), [0, 0, 1, 1, 3]);
  assert.deepEqual(c.bins.map((b) => b.accuracy), [0, 0, 0, 0, 1]);
  assert.ok(Math.abs(c.bins[4].confidence - 0.95) < 1e-6 && Math.abs(c.bins[2].confidence - 0.55) < 1e-6);
  // ECE = (1/5)·0.55 + (1/5)·0.7 + (3/5)·0.05; MCE = 0.7.
  assert.ok(Math.abs(c.ece - 0.28) < 1e-6, `${c.ece}`);
  assert.ok(Math.abs(c.mce - 0.7) < 1e-6, `${c.mce}`);

  // Two random batches of 10 classes in the paper's 15 bins, against the same sums taken in JavaScript.
  T.manualSeed(9);
  const meter = new CalibrationMeter();
  const [count, conf, hits] = [0, 1, 2].map(() => new Array<number>(15).fill(0));
  for (const n of [300, 77]) {
    const probs = T.softmax(T.randn([n, 10]).mul(2), 1);
    const labels = T.randint(0, 10, [n]);
    meter.update(probs, labels);
    const p = Array.from(probs.toArray() as Float32Array);
    const y = Array.from(labels.toArray() as BigInt64Array, Number);
    for (let i = 0; i < n; i++) {
      const row = p.slice(10 * i, 10 * i + 10);
      const top = Math.max(...row);
      const b = Math.min(14, Math.floor(top * 15));
      count[b]++;
      conf[b] += top;
      hits[b] += row.indexOf(top) === y[i] ? 1 : 0;
    }
  }
  const got = meter.result();
  let ece = 0;
  got.bins.forEach((b, i) => {
    assert.equal(b.count, count[i], `bin ${i}`);
    if (!count[i]) return;
    assert.ok(Math.abs(b.confidence - conf[i] / count[i]) < 1e-6 && Math.abs(b.accuracy - hits[i] / count[i]) < 1e-12, `bin ${i}`);
    ece += (count[i] / 377) * Math.abs(hits[i] / count[i] - conf[i] / count[i]);
  });
  assert.ok(Math.abs(got.ece - ece) < 1e-6, `${got.ece} vs ${ece}`);
});

test('calibration.png: each bin\'s accuracy is a bar, the gap to its confidence shaded', async () => {
  const m = new CalibrationMeter(5);
  m.update(T.tensor([[0.9, 0.1], [0.3, 0.7], [0.05, 0.95], [0.55, 0.45], [1, 0]]), T.tensor([0, 0, 1, 1, 0], { dtype: 'int64' }));
  const file = path.join(tmpDir('tsv-calib-'), 'calibration.png');
  await saveReliabilityPng(file, [{ calibration: m.result(), title: 'test' }]);
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.width, 520);
  // The plot's frame (report/calibration.ts): x = 64 + 432·confidence, y = 40 + 400·(1 − accuracy).
  const px = (conf: number, acc: number): number[] => {
    const [x, y] = [Math.round(64 + 432 * conf), Math.round(40 + 400 * (1 - acc))];
    return Array.from(data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3));
  };
  assert.deepEqual(px(0.9, 0.5), [0x1f, 0x77, 0xb4], 'the last bin (accuracy 1): its bar');
  const gap = px(0.5, 0.25); // the middle bin: accuracy 0, confidence 0.55, all gap
  assert.ok(gap[0] > 200 && gap[1] < 200 && gap[2] < 200, `the middle bin's gap is shaded red: ${gap}`);
  assert.deepEqual(px(0.5, 0.75), [255, 255, 255], 'above the gap: nothing');
  // The histogram's axis names what was counted: images by default, a segmentation network's pixels.
  assert.match(reliabilitySvg(m.result(), 'test'), />images<\/text>/);
  assert.match(reliabilitySvg(m.result(), 'test', 'pixels'), />pixels<\/text>/);
});
