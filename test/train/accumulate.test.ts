// Gradient accumulation: the micro-batches by hand; a network without BatchNorm trained with --accumulate
// ends where the whole-batch run ends; BatchNorm sees every micro-batch; segment's step loss is the mean
// of the halves' losses computed directly; the CLI's flag and its refusals.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { backwardInParts, microBatches } from '../../src/train/accumulate';
import { TrainConfig, train } from '../../src/train/trainer';
import { buildSegmentationModel, resolveSegmentConfig, runClassWeights, segmentationData, trainSegmentation } from '../../src/train/segment';
import { Tensor, crossEntropy, manualSeed, noGrad, randn, tensor, tidy } from '../../src/torch';
import { Linear } from '../../src/nn';
import { tmpDir } from '../helpers/tmp';

const tmp = (): string => tmpDir('tsv-accum-');
const quiet = (): void => {};
const numbers = (t: Tensor): number[] => Array.from(t.to('float64').toArray() as Float64Array);

function relDiff(a: Record<string, Tensor>, b: Record<string, Tensor>): number {
  let worst = 0;
  for (const k of Object.keys(a)) {
    const [x, y] = [numbers(a[k]), numbers(b[k])];
    const scale = Math.max(1e-6, ...x.map(Math.abs));
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]) / scale);
  }
  return worst;
}

test('micro-batches: consecutive runs whose lengths differ by at most one; bad counts refused', () => {
  assert.deepEqual(microBatches(10, 3), [{ start: 0, length: 4 }, { start: 4, length: 3 }, { start: 7, length: 3 }]);
  assert.deepEqual(microBatches(8, 1), [{ start: 0, length: 8 }]);
  // An epoch's last batch smaller than the count: one sample each.
  assert.deepEqual(microBatches(2, 4), [{ start: 0, length: 1 }, { start: 1, length: 1 }]);
  assert.throws(() => microBatches(8, 0), /whole number of micro-batches >= 1, got 0/);
  assert.throws(() => microBatches(8, 1.5), /got 1\.5/);
});

test('backwardInParts: a mean loss backpropagated in uneven parts gives the whole batch\'s gradient and loss', () => {
  manualSeed(5);
  const fc = new Linear(6, 3);
  const x = randn([7, 6]);
  const y = tensor([0, 2, 1, 1, 0, 2, 2], { dtype: 'int64' });
  const loss = (a: Tensor, b: Tensor): Tensor => crossEntropy(fc.forward(a), b);
  const whole = tidy(() => {
    const l = loss(x, y);
    l.backward();
    return l.item();
  });
  const expected = [numbers(fc.weight.grad!), numbers(fc.bias!.grad!)];
  for (const p of fc.parameters()) p.grad!.zero_();
  const r = backwardInParts(7, 3, (s, n) => ({ loss: loss(x.narrow(0, s, n), y.narrow(0, s, n)), logits: noGrad(() => fc.forward(x.narrow(0, s, n))) }));
  assert.ok(Math.abs(r.loss - whole) < 1e-6, `${r.loss} vs ${whole}`);
  // The kept outputs are the three parts' (3 + 2 + 2 rows), in order.
  assert.deepEqual(r.logits!.shape, [7, 3]);
  const direct = numbers(noGrad(() => fc.forward(x)));
  numbers(r.logits!).forEach((v, i) => assert.ok(Math.abs(v - direct[i]) < 1e-6));
  [numbers(fc.weight.grad!), numbers(fc.bias!.grad!)].forEach((g, j) => g.forEach((v, i) => assert.ok(Math.abs(v - expected[j][i]) < 1e-6, `${v} vs ${expected[j][i]}`)));
});

// The shallow student has no BatchNorm: its gradient is a plain mean over the batch's images.
const shallow = (outDir: string, accumulate?: number): Partial<TrainConfig> => ({
  model: 'shallow',
  modelOptions: { conv: 8, grid: 4, hidden: 32 },
  epochs: 1,
  batchSize: 12,
  limitBatches: 3,
  lr: 0.1,
  labelSmoothing: 0.1,
  mixup: 0.4,
  augment: true,
  seed: 11,
  outDir,
  threads: 1,
  ...(accumulate ? { accumulate } : {}),
});

test('train --accumulate: without BatchNorm the run ends where the whole-batch run ends (mixup and label smoothing on)', async () => {
  const whole = await train(shallow(tmp()), quiet);
  const lines: string[] = [];
  const parts = await train(shallow(tmp(), 5), (l) => lines.push(l));
  assert.match(lines.join('\n'), /3 batches of 12 \(in 5 micro-batches of 2–3\)/);
  const d = relDiff(whole.model.stateDict(), parts.model.stateDict());
  assert.ok(d < 2e-5, `weights differ by ${d} of their scale`);
  assert.ok(Math.abs(whole.history[0].trainLoss - parts.history[0].trainLoss) < 1e-5, `${whole.history[0].trainLoss} vs ${parts.history[0].trainLoss}`);
  assert.equal(whole.history[0].trainTop1, parts.history[0].trainTop1);
  // The three steps moved the weights well beyond that tolerance: the comparison is not of untrained nets.
  const fresh = await train({ ...shallow(tmp()), lr: 0 }, quiet);
  assert.ok(relDiff(whole.model.stateDict(), fresh.model.stateDict()) > 1e-3);
});

test('train --accumulate: BatchNorm normalizes every micro-batch (its counter moves once per micro-batch)', async () => {
  const cfg = (accumulate?: number): Partial<TrainConfig> => ({ model: 'cnn', modelOptions: { widths: [8, 16], hidden: 32 }, epochs: 1, batchSize: 16, limitBatches: 2, seed: 2, outDir: tmp(), threads: 1, ...(accumulate ? { accumulate } : {}) });
  const counter = (r: Awaited<ReturnType<typeof train>>): number => {
    const [, t] = Object.entries(r.model.stateDict()).find(([k]) => k.endsWith('num_batches_tracked'))!;
    return Number(numbers(t)[0]);
  };
  assert.equal(counter(await train(cfg(), quiet)), 2);
  assert.equal(counter(await train(cfg(4), quiet)), 8);
});

test('segment --accumulate: the step\'s loss is the mean of its halves\' losses (ENet, BatchNorm per half), not the whole batch\'s', async () => {
  const settings = { model: 'enet' as const, batchSize: 8, seed: 4, threads: 1, scenes: { size: 32, trainCount: 16, testCount: 4, maxItems: 2 } };
  // The run's first batch and fresh network, built in the order a run builds them.
  const cfg = resolveSegmentConfig(settings);
  manualSeed(cfg.seed);
  const data = await segmentationData(cfg, { train: true });
  const model = buildSegmentationModel(cfg, data, quiet);
  const weight = await runClassWeights(cfg, data);
  model.train();
  let expected = 0;
  let whole = 0;
  for await (const b of data.train!.epoch(0)) {
    tidy(() => {
      const half = (s: number): number => model.trainingLoss(b.x.narrow(0, s, 4), b.y.narrow(0, s, 4), { weight }).item();
      expected = (half(0) + half(4)) / 2;
      whole = model.trainingLoss(b.x, b.y, { weight }).item();
    });
    break;
  }
  data.dispose();
  const run = await trainSegmentation({ ...settings, accumulate: 2, epochs: 1, limitBatches: 1, outDir: tmp() }, quiet);
  const got = run.history[0].trainLoss;
  assert.ok(Math.abs(got - expected) <= 1e-6 * expected, `run ${got}, halves ${expected}`);
  assert.ok(Math.abs(whole - expected) > 1e-4 * expected, `the halves (${expected}) must differ from the whole batch (${whole}) for this to tell`);
});

test('tsvision train --accumulate: the log names the micro-batches; counts beyond the batch or below 1 are refused', () => {
  const cli = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'train', '--opt', 'widths=4,8', '--opt', 'hidden=16', '--epochs', '1', '--limit-batches', '1', '--threads', '1', '-o', tmp(), ...args], { encoding: 'utf8' });
  const ok = run('-b', '32', '--accumulate', '4');
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stderr, /1 batches of 32 \(in 4 micro-batches of 8\)/);
  assert.match(run('-b', '8', '--accumulate', '9').stderr, /--accumulate 9 splits each batch of 8 images into more micro-batches than images; use at most 8/);
  assert.match(run('--accumulate', '0').stderr, /--accumulate must be/);
});
