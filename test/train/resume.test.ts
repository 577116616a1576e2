// The trainer: exact resume, NaN detection that keeps the last good checkpoint, checkpoint validation.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TrainConfig, NonFiniteLossError, train } from '../../src/train/trainer';
import { readCheckpoint, restoreCheckpoint, saveCheckpoint } from '../../src/train/checkpoint';
import { createModel } from '../../src/models/registry';
import { Tensor, loadSafetensors, saveSafetensors } from '../../src/torch';
import { tmpDir } from '../helpers/tmp';

const tmp = (): string => tmpDir('tsv-train-');
// Small and quick, yet with dropout (the RNG must be restored) and momentum (optimizer state must be too).
const base = (outDir: string): Partial<TrainConfig> => ({
  model: 'cnn',
  modelOptions: { widths: [8, 16], hidden: 32, dropout: 0.3 },
  epochs: 2,
  batchSize: 32,
  limitBatches: 5,
  lr: 0.05,
  augment: true,
  seed: 7,
  outDir,
  threads: 1,
});
const quiet = (): void => {};

function maxDiff(a: Record<string, Tensor>, b: Record<string, Tensor>): number {
  let worst = 0;
  for (const k of Object.keys(a)) {
    const x = a[k].to('float64').toArray() as Float64Array;
    const y = b[k].to('float64').toArray() as Float64Array;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
  }
  return worst;
}

test('a run interrupted mid-epoch and resumed ends with bitwise the same weights', async () => {
  const full = await train(base(tmp()), quiet);
  assert.equal(full.status, 'finished');
  const dir = tmp();
  const part = await train({ ...base(dir), stopAfterSteps: 3 }, quiet);
  assert.equal(part.status, 'interrupted');
  const state = readCheckpoint(part.checkpoint).state;
  assert.deepEqual([state.epoch, state.batch, state.step], [0, 3, 3]);
  const resumed = await train({ resume: part.checkpoint, outDir: dir }, quiet);
  assert.equal(resumed.status, 'finished');
  const d = maxDiff(full.model.stateDict(), resumed.model.stateDict());
  assert.equal(d, 0, `weights differ by up to ${d}`);
  // The interrupted epoch's training loss and top-1 cover its batches before the stop too, as the whole run's.
  const numbers = (h: typeof full.history) => h.map((e) => [e.trainLoss, e.trainTop1, e.testLoss, e.testTop1]);
  assert.deepEqual(numbers(resumed.history), numbers(full.history));
  // And the control: a different seed does give different weights, so the comparison can fail.
  const other = await train({ ...base(tmp()), seed: 8 }, quiet);
  assert.ok(maxDiff(full.model.stateDict(), other.model.stateDict()) > 0);
});

test('NaN loss stops with a clear message and leaves the last good checkpoint untouched', async () => {
  const dir = tmp();
  const ok = await train({ ...base(dir), epochs: 1 }, quiet);
  const before = crypto.createHash('sha1').update(fs.readFileSync(ok.checkpoint)).digest('hex');
  await assert.rejects(train({ ...base(dir), lr: 1e30, momentum: 0, epochs: 1 }, quiet), (e: Error) => e instanceof NonFiniteLossError && /loss became (NaN|Infinity|-Infinity)/.test(e.message) && e.message.includes(ok.checkpoint));
  const after = crypto.createHash('sha1').update(fs.readFileSync(ok.checkpoint)).digest('hex');
  assert.equal(after, before);
});

test('a checkpoint with a missing or mis-shaped tensor is refused, naming each problem', async () => {
  const dir = tmp();
  const model = createModel('cnn', { widths: [8, 16], hidden: 32, numClasses: 10, inChannels: 1, smallInput: true });
  const file = path.join(dir, 'c.safetensors');
  saveCheckpoint(file, model, null, { epoch: 1, batch: 0, step: 10 });
  const { tensors, metadata } = loadSafetensors(file);
  delete tensors['model.classifier.0.weight'];
  tensors['model.classifier.3.bias'] = tensors['model.classifier.3.bias'].slice(0, 0, 5);
  const broken = path.join(dir, 'broken.safetensors');
  saveSafetensors(broken, tensors, metadata);
  const fresh = createModel('cnn', { widths: [8, 16], hidden: 32, numClasses: 10, inChannels: 1, smallInput: true });
  const w0 = fresh.stateDict()['classifier.3.weight'].toNumbers();
  assert.throws(() => restoreCheckpoint(broken, fresh), (e: Error) => /classifier\.0\.weight: missing/.test(e.message) && /classifier\.3\.bias: shape \[5\]/.test(e.message));
  // Nothing was copied into the model.
  assert.deepEqual(fresh.stateDict()['classifier.3.weight'].toNumbers(), w0);
  fs.writeFileSync(path.join(dir, 'trunc.safetensors'), fs.readFileSync(file).subarray(0, 200));
  assert.throws(() => readCheckpoint(path.join(dir, 'trunc.safetensors')), /not a valid safetensors file/);
  assert.throws(() => readCheckpoint(path.join(dir, 'none.safetensors')), /no such file/);
});
