// The moving average of the weights: its updates by hand (warm-up included, integer buffers copied), and a
// run with --ema whose ema.safetensors re-scores its recorded number and survives an interruption exactly.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { BatchNorm2d, Linear, Module } from '../../src/nn';
import { ExponentialMovingAverage } from '../../src/optim';
import { EpochRecord, bestEpoch, evaluate, train } from '../../src/train/trainer';
import { readWeights } from '../../src/train/checkpoint';
import { makeLoaders } from '../../src/train/datasets';
import { restoreNetwork } from '../../src/infer/restore';
import { tmpDir } from '../helpers/tmp';

class Tiny extends Module {
  fc = new Linear(1, 1, { bias: false });
  bn = new BatchNorm2d(1);
  forward(x: T.Tensor): T.Tensor {
    return x;
  }
}

test('ExponentialMovingAverage by hand: ema ← d·ema + (1 − d)·w, d = min(decay, (1 + t) / (10 + t)); integers copied', () => {
  const m = new Tiny();
  const w = m.fc.weight;
  const set = (v: number) => T.noGrad(() => w.fill_(v));
  set(1);
  const ema = new ExponentialMovingAverage(m, 0.9);
  set(2);
  ema.update(0); // d = min(0.9, 1/10) = 0.1: 0.1·1 + 0.9·2 = 1.9
  assert.ok(Math.abs(ema.shadow['fc.weight'].item() - 1.9) < 1e-6);
  set(4);
  ema.update(5); // d = min(0.9, 6/15) = 0.4: 0.4·1.9 + 0.6·4 = 3.16
  assert.ok(Math.abs(ema.shadow['fc.weight'].item() - 3.16) < 1e-6);
  set(0);
  T.noGrad(() => m.bn.num_batches_tracked!.fill_(7));
  ema.update(100); // d = min(0.9, 101/110) = 0.9: 0.9·3.16
  assert.ok(Math.abs(ema.shadow['fc.weight'].item() - 2.844) < 1e-6);
  assert.equal(ema.shadow['bn.num_batches_tracked'].item(), 7);
  // The model's own weights are untouched.
  assert.equal(w.item(), 0);
  assert.throws(() => new ExponentialMovingAverage(m, 1), /decay must lie in \(0, 1\), got 1/);
  assert.throws(() => ema.load({}), /'fc.weight' is missing/);
  ema.dispose();
});

test('train with --ema: ema.safetensors re-scores the last epoch\'s EMA number, and an interrupted run resumes to the same average', async () => {
  const tmp = () => tmpDir('tsv-ema-');
  const base = { modelOptions: { widths: [8, 16], hidden: 32 }, epochs: 2, batchSize: 32, limitBatches: 4, seed: 6, threads: 1, ema: 0.9 };
  const full = await train({ ...base, outDir: tmp() }, () => {});
  const last = full.history[full.history.length - 1];
  assert.ok(last.emaTestTop1 !== undefined && full.ema !== null);
  const net = restoreNetwork(full.ema!);
  const loaders = makeLoaders({ kind: 'fashion-mnist' }, { batchSize: 32, seed: 6, augment: false });
  const ev = await evaluate(net.model, loaders.test, 4);
  assert.equal(ev.top1, last.emaTestTop1);
  // The average is not the last weights.
  assert.notEqual(last.emaTestLoss, last.testLoss);
  const dir = tmp();
  const part = await train({ ...base, outDir: dir, stopAfterSteps: 3 }, () => {});
  const resumed = await train({ resume: part.checkpoint, outDir: dir }, () => {});
  const [a, b] = [T.loadSafetensors(full.ema!).tensors, T.loadSafetensors(resumed.ema!).tensors];
  for (const k of Object.keys(a)) assert.equal(T.tidy(() => a[k].sub(b[k]).abs().max().item()), 0, k);
});

test('the best epoch with a moving average: its weights compete after the trained ones of each epoch, by hand', () => {
  const rec = (epoch: number, valTop1: number, emaValTop1?: number): EpochRecord => ({ epoch, trainLoss: 0, trainTop1: 0, testLoss: 0, testTop1: epoch / 10, testTop5: 0, testRecall: [], testBalancedTop1: 0, seconds: 1, samplesPerSecond: 1, valTop1, ...(emaValTop1 === undefined ? {} : { emaValTop1, emaTestTop1: epoch / 100 }) });
  assert.deepEqual(bestEpoch([rec(1, 0.5, 0.4), rec(2, 0.6, 0.7), rec(3, 0.7, 0.65)], 'b'), { epoch: 2, valTop1: 0.7, testTop1: 0.02, ema: true, weights: 'b' });
  // A tie goes to the trained weights, the earlier epoch first.
  assert.deepEqual(bestEpoch([rec(1, 0.5, 0.5), rec(2, 0.5, 0.5)], 'b'), { epoch: 1, valTop1: 0.5, testTop1: 0.1, ema: false, weights: 'b' });
  assert.deepEqual(bestEpoch([rec(1, 0.5), rec(2, 0.6)], 'b'), { epoch: 2, valTop1: 0.6, testTop1: 0.2, ema: false, weights: 'b' });
});

test('train with --ema and --val-split: best.safetensors holds the winner, the average or the weights, and re-scores its validation top-1', async () => {
  const dir = tmpDir('tsv-ema-best-');
  const r = await train({ modelOptions: { widths: [8, 16], hidden: 32 }, data: { kind: 'fashion-mnist', valSplit: 0.1 }, epochs: 1, batchSize: 32, limitBatches: 4, seed: 6, threads: 1, ema: 0.9, outDir: dir }, () => {});
  assert.ok(r.best);
  // After these 4 steps the average scores above the weights on the validation images (28.1% against 27.7%
  // when written), so the file must hold the average's weights, not the trained ones.
  assert.ok(r.best.ema, `the moving average did not win: ${JSON.stringify(r.history)}`);
  const h = r.history[r.best.epoch - 1];
  assert.equal(r.best.valTop1, r.best.ema ? h.emaValTop1 : h.valTop1);
  const vals = r.history.flatMap((x) => [x.valTop1!, x.emaValTop1!]);
  assert.equal(r.best.valTop1, Math.max(...vals));
  const net = restoreNetwork(r.best.weights);
  assert.equal((net.config !== null && readWeights(r.best.weights).run?.ema) ?? false, r.best.ema);
  const loaders = makeLoaders({ kind: 'fashion-mnist', valSplit: 0.1 }, { batchSize: 32, seed: 6, augment: false });
  assert.equal((await evaluate(net.model, loaders.val!, 4)).top1, r.best.valTop1);
});
