// Magnitude pruning for DSD: the masks keep exactly the top-K |w| per layer (checked against an argsort in
// PyTorch), skip the first layer and every bias / BatchNorm parameter, and hold through optimizer steps.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as T from '../../src/torch';
import { MagnitudeMasks, prunableWeights, topKMask } from '../../src/methods/prune';
import { createMethod } from '../../src/methods/method';
import { createModel } from '../../src/models/registry';
import { train } from '../../src/train/trainer';
import { readCheckpoint } from '../../src/train/checkpoint';
import { SGD, Adam } from '../../src/optim';
import { Parameter } from '../../src/nn';
import { runTorch } from '../helpers/pytorch';
import { tmpDir } from '../helpers/tmp';

const tmp = (): string => tmpDir('tsv-prune-');
const quiet = (): void => {};
const small = { widths: [8, 16] as [number, number], hidden: 32 };
const same = (a: T.Tensor, b: T.Tensor): boolean => JSON.stringify(Array.from(a.toArray() as ArrayLike<number | bigint>, String)) === JSON.stringify(Array.from(b.toArray() as ArrayLike<number | bigint>, String));

test('topKMask keeps exactly the k largest magnitudes, as an argsort in PyTorch does', () => {
  T.manualSeed(3);
  const cases: [number[], number][] = [[[7], 3], [[16, 8, 3, 3], 807], [[10, 20], 0], [[10, 20], 200], [[5, 1, 5, 5], 1]];
  const inputs: Record<string, T.Tensor> = {};
  cases.forEach(([shape], i) => (inputs[`w${i}`] = T.randn(shape)));
  const ref = runTorch(
    cases
      .map(([, k], i) => `w = I["w${i}"]; m = torch.zeros(w.numel()); m[w.abs().flatten().argsort(descending=True)[:${k}]] = 1; O["m${i}"] = m.view_as(w)`)
      .join('\n'),
    inputs,
  );
  cases.forEach(([shape, k], i) => {
    const m = topKMask(inputs[`w${i}`], k);
    assert.deepEqual(m.shape, shape);
    assert.equal(m.sum().item(), k);
    assert.deepEqual(m.toNumbers(), ref[`m${i}`].toNumbers(), `case ${i}`);
  });
  assert.throws(() => topKMask(inputs.w0, 8), /k must be an integer in \[0, 7\]/);
});

test('MagnitudeMasks.topK prunes floor(s·N) weights of every conv/linear layer but the first, and nothing else', () => {
  T.manualSeed(1);
  const model = createModel('cnn', { ...small, numClasses: 10, inChannels: 1 });
  const before = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, t.clone().keep()]));
  const masks = MagnitudeMasks.topK(model, { sparsity: 0.4 });
  masks.apply();
  const prunable = prunableWeights(model).map(([n]) => n);
  assert.deepEqual([...masks.masks.keys()], prunable.slice(1), 'all prunable weights but the first');
  const ref = runTorch(
    prunable.map((n) => `w = I["${n}"]; k = w.numel() - int(0.4 * w.numel()); m = torch.zeros(w.numel()); m[w.abs().flatten().argsort(descending=True)[:k]] = 1; O["${n}"] = w * m.view_as(w)`).join('\n'),
    Object.fromEntries(prunable.map((n) => [n, before[n]])),
  );
  for (const [name, t] of Object.entries(model.stateDict())) {
    if (masks.masks.has(name)) {
      assert.deepEqual(t.toNumbers(), ref[name].toNumbers(), `${name}: the kept weights and only those`);
      assert.equal(t.eq(0).sum().item(), Math.floor(0.4 * t.numel()), name);
    } else {
      assert.ok(same(t, before[name]), `${name} untouched`);
    }
  }
  const rep = masks.report();
  assert.equal(rep[0].sparsity, 0);
  assert.ok(rep.slice(1).every((l) => l.pruned && Math.abs(l.sparsity - 0.4) < 0.01));
  assert.equal(MagnitudeMasks.topK(model, { sparsity: 0.4, skipFirst: false }).masks.size, prunable.length);
  assert.throws(() => MagnitudeMasks.topK(model, { sparsity: 1 }), /sparsity must be in \[0, 1\)/);
});

for (const [name, makeOpt] of [
  ['SGD with Nesterov momentum and weight decay', (p: Parameter[]) => new SGD(p, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-3 })],
  ['Adam', (p: Parameter[]) => new Adam(p, { lr: 0.01 })],
] as const) {
  test(`the sparse method holds its masks through ${name} steps, and the kept weights still train`, () => {
    T.manualSeed(2);
    const model = createModel('cnn', { ...small, numClasses: 10, inChannels: 1 });
    const method = createMethod({ kind: 'sparse', sparsity: 0.5 }, model, null, { numClasses: 10, inChannels: 1, data: { kind: 'fashion-mnist' } });
    const pruned = prunableWeights(model).slice(1).map(([n, p]) => [n, p.eq(0).keep(), p.clone().keep()] as const);
    const opt = makeOpt(model.parameters());
    const x = T.randn([8, 1, 28, 28]).keep();
    const y = T.randint(0, 10, [8]).keep();
    for (let i = 0; i < 5; i++) {
      T.tidy(() => {
        const loss = T.crossEntropy(model.forward(x), y);
        opt.zeroGrad();
        loss.backward();
        method.beforeStep!();
        opt.step();
        method.afterStep!();
      });
    }
    const params = new Map(model.namedParameters());
    for (const [n, zeroMask, start] of pruned) {
      const p = params.get(n)!;
      assert.equal(p.maskedSelect(zeroMask).abs().max().item(), 0, `${n}: pruned weights still exactly zero`);
      assert.ok(p.sub(start).abs().max().item() > 0, `${n}: kept weights moved`);
    }
  });
}

test('a sparse run saves its masks in the checkpoint and a resumed run keeps them', async () => {
  const dir = tmp();
  const init = path.join(dir, 'dense', 'model.safetensors');
  const base = { model: 'cnn' as const, modelOptions: small, epochs: 1, batchSize: 32, limitBatches: 6, threads: 1, seed: 4 };
  await train({ ...base, outDir: path.join(dir, 'dense') }, quiet);
  const sparse = { ...base, init, method: { kind: 'sparse' as const, sparsity: 0.3 } };
  const full = await train({ ...sparse, outDir: path.join(dir, 'full') }, quiet);
  const cut = await train({ ...sparse, outDir: path.join(dir, 'cut'), stopAfterSteps: 3 }, quiet);
  assert.equal(cut.status, 'interrupted');
  const saved = readCheckpoint(cut.checkpoint).method;
  assert.deepEqual(Object.keys(saved).sort(), prunableWeights(full.model).slice(1).map(([n]) => n).sort());
  const resumed = await train({ resume: cut.checkpoint, outDir: path.join(dir, 'cut') }, quiet);
  assert.equal(resumed.status, 'finished');
  for (const [k, t] of Object.entries(full.model.stateDict())) assert.ok(same(t, resumed.model.stateDict()[k]), `${k} equal after resume`);
  const report = JSON.parse(fs.readFileSync(full.report, 'utf8')) as { method: { overallSparsity: number } };
  assert.ok(Math.abs(report.method.overallSparsity - 0.3) < 0.01, `report: overall sparsity ${report.method.overallSparsity}`);
});
