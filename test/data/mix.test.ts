// mixup and CutMix: the Beta draws, the mixed images and λ by hand, the mixed loss against PyTorch, and a run
// that mixes, interrupted and resumed, ending with the same weights.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { Rng } from '../../src/data';
import { applyMix, drawMix, mixedCrossEntropy } from '../../src/data/mix';
import { train } from '../../src/train/trainer';
import { runTorch } from '../helpers/pytorch';
import { tmpDir } from '../helpers/tmp';

test('Rng.beta: Beta(α, α) draws have mean 1/2 and variance 1 / (4(2α + 1))', () => {
  for (const a of [0.2, 1, 5]) {
    const rng = new Rng(3);
    const xs = Array.from({ length: 40000 }, () => rng.beta(a, a));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length;
    const want = 1 / (4 * (2 * a + 1));
    // Standard errors at 40,000 draws: mean about 0.002, variance about 1–3% of it.
    assert.ok(Math.abs(mean - 0.5) < 0.01, `α ${a}: mean ${mean}`);
    assert.ok(Math.abs(variance / want - 1) < 0.06, `α ${a}: variance ${variance}, want ${want}`);
    assert.ok(xs.every((x) => x >= 0 && x <= 1));
  }
  assert.throws(() => new Rng(0).gamma(0), /shape must be positive/);
});

test('mixup and CutMix images by hand: the blend, the pasted box, and λ as the share of the own image left', () => {
  const x = T.arange(0, 2 * 1 * 4 * 4, 1, { dtype: 'float32' }).reshape(2, 1, 4, 4);
  const y = T.tensor([3, 7], { dtype: 'int64' });
  const swap = Int32Array.of(1, 0);
  const m = applyMix(x, y, { kind: 'mixup', lambda: 0.25, partner: swap, box: null });
  // Sample 0: 0.25·x0 + 0.75·x1 = 0.25·k + 0.75·(16 + k) = k + 12.
  assert.deepEqual(Array.from(m.x.select(0, 0).flatten().toArray() as Float32Array), Array.from({ length: 16 }, (_, k) => k + 12));
  assert.deepEqual(Array.from(m.partnerY.toArray() as BigInt64Array, Number), [7, 3]);
  const c = applyMix(x, y, { kind: 'cutmix', lambda: 0.75, partner: swap, box: { y0: 1, y1: 3, x0: 0, x1: 2 } });
  const got = Array.from(c.x.select(0, 0).flatten().toArray() as Float32Array);
  // Rows 1–2, columns 0–1 from sample 1 (16 + k); the rest sample 0's own.
  const want = Array.from({ length: 16 }, (_, k) => (Math.floor(k / 4) >= 1 && Math.floor(k / 4) < 3 && k % 4 < 2 ? 16 + k : k));
  assert.deepEqual(got, want);
  // drawMix: λ is recomputed from the (clipped) box; both kinds appear when both are on.
  const kinds = new Set<string>();
  for (let s = 0; s < 40; s++) {
    const d = drawMix({ mixup: 0.2, cutmix: 1 }, 8, 28, 28, new Rng(s));
    kinds.add(d.kind);
    assert.deepEqual([...d.partner].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7]);
    if (d.box) assert.equal(d.lambda, 1 - ((d.box.y1 - d.box.y0) * (d.box.x1 - d.box.x0)) / (28 * 28));
    assert.ok(d.lambda >= 0 && d.lambda <= 1);
  }
  assert.deepEqual([...kinds].sort(), ['cutmix', 'mixup']);
});

test('the mixed loss λ·CE(y) + (1 − λ)·CE(y_partner), with label smoothing, and its gradient, as PyTorch\'s', () => {
  T.manualSeed(4);
  const logits = T.randn([6, 5]).requiresGrad_();
  const y = T.tensor([0, 1, 2, 3, 4, 0], { dtype: 'int64' });
  const yb = T.tensor([4, 3, 2, 1, 0, 1], { dtype: 'int64' });
  const loss = mixedCrossEntropy(logits, y, yb, 0.3, { labelSmoothing: 0.1 });
  loss.backward();
  const ref = runTorch(`
l = I['logits'].clone().requires_grad_()
loss = 0.3 * F.cross_entropy(l, I['y'], label_smoothing=0.1) + 0.7 * F.cross_entropy(l, I['yb'], label_smoothing=0.1)
loss.backward()
O['loss'], O['grad'] = loss.detach(), l.grad
`, { logits: logits.detach(), y, yb });
  assert.ok(Math.abs(loss.item() - ref.loss.item()) < 1e-6);
  assert.ok(T.tidy(() => logits.grad!.sub(ref.grad).abs().max().item()) < 1e-6);
});

test('training with mixup and CutMix, interrupted and resumed, ends with bitwise the same weights', async () => {
  const tmp = () => tmpDir('tsv-mix-');
  const base = { modelOptions: { widths: [8, 16], hidden: 32 }, epochs: 2, batchSize: 32, limitBatches: 4, seed: 5, threads: 1, mixup: 0.4, cutmix: 1 };
  const full = await train({ ...base, outDir: tmp() }, () => {});
  const dir = tmp();
  const part = await train({ ...base, outDir: dir, stopAfterSteps: 3 }, () => {});
  assert.equal(part.status, 'interrupted');
  const resumed = await train({ resume: part.checkpoint, outDir: dir }, () => {});
  const a = full.model.stateDict();
  const b = resumed.model.stateDict();
  for (const k of Object.keys(a)) assert.equal(T.tidy(() => a[k].sub(b[k]).abs().max().item()), 0, k);
  // And mixing changes training: without it the weights differ.
  const plain = await train({ ...base, mixup: 0, cutmix: 0, outDir: tmp() }, () => {});
  assert.ok(Object.keys(a).some((k) => T.tidy(() => a[k].sub(plain.model.stateDict()[k]).abs().max().item()) > 0));
});
