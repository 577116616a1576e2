// oneDNN-layout inference (src/torch/onednn.ts) against the ordinary path, which the parity tests hold to
// PyTorch: every architecture gives the same output, what stays in oneDNN's layout does, ops without a
// oneDNN kernel see ordinary tensors, and misuse is refused with a clear error.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import * as nn from '../../src/nn';
import { evalArchitectures, first, randomBatchNorms, relMaxDiff } from '../helpers/inference';

test('withOneDnnLayout: every architecture gives the ordinary output (float rounding apart), and leaks nothing', () => {
  for (const { name, model, x } of evalArchitectures(1)) {
    T.tidy(() =>
      T.noGrad(() => {
        const plain = first(model.forward(x));
        const fast = first(T.withOneDnnLayout(() => model.forward(x)));
        assert.equal(T.isOneDnnLayout(fast), false, `${name}: the result leaves in the ordinary layout`);
        assert.deepEqual(fast.shape, plain.shape);
        const d = relMaxDiff(plain, fast);
        assert.ok(d <= 1e-5, `${name}: max |Δ| / max |y| = ${d}`);
      }),
    );
    const live = T.liveTensors();
    for (let i = 0; i < 3; i++) T.tidy(() => T.noGrad(() => void T.withOneDnnLayout(() => model.forward(x))));
    assert.equal(T.liveTensors(), live, `${name}: tensors left alive`);
  }
});

test('withOneDnnLayout: convolution outputs stay in oneDNN layout through BatchNorm, ReLU and additions', () => {
  T.manualSeed(2);
  const conv = new nn.Conv2d(8, 16, 3, { padding: 1 }).eval();
  const bn = new nn.BatchNorm2d(16);
  randomBatchNorms(bn);
  bn.eval();
  const x = T.randn([2, 8, 12, 12]);
  T.noGrad(() => {
    const layouts: boolean[] = [];
    const inside = T.withOneDnnLayout(() => {
      const y = conv.forward(x);
      const z = bn.forward(y).relu();
      const w = z.add(z);
      layouts.push(T.isOneDnnLayout(y), T.isOneDnnLayout(z), T.isOneDnnLayout(w));
      return { w, list: [z] };
    });
    assert.deepEqual(layouts, [true, true, true]);
    assert.equal(T.isOneDnnLayout(inside.w) || T.isOneDnnLayout(inside.list[0]), false, 'results in objects and arrays come back ordinary');
    const plain = bn.forward(conv.forward(x)).relu();
    assert.ok(relMaxDiff(plain.add(plain), inside.w) <= 1e-6);
  });
});

test('withOneDnnLayout: ops without a oneDNN kernel, and kernels libtorch gets wrong, see ordinary tensors', () => {
  T.manualSeed(3);
  const conv = new nn.Conv2d(4, 6, 3, { padding: 1 }).eval();
  // libtorch 1.13's conv_transpose2d accepts a oneDNN tensor and then runs a plain strided convolution.
  const up = new nn.ConvTranspose2d(6, 6, 3, { stride: 2, padding: 1, outputPadding: 1 }).eval();
  // Large enough for libtorch to pick oneDNN at all (ATen's use_mkldnn; tiny inputs take its own kernel).
  const x = T.randn([1, 4, 80, 80]);
  T.noGrad(() => {
    const expect = (y: T.Tensor): T.Tensor[] => [up.forward(y), T.cat([y, y.sigmoid()], 1), T.interpolate(y, { size: [115, 115], mode: 'bilinear', alignCorners: false }), T.adaptiveAvgPool2d(y, [3, 3])];
    const plain = expect(conv.forward(x));
    const fast = T.withOneDnnLayout(() => {
      const y = conv.forward(x);
      assert.ok(T.isOneDnnLayout(y), 'the ops below get a oneDNN tensor');
      return expect(y);
    });
    plain.forEach((p, i) => {
      assert.deepEqual(fast[i].shape, p.shape, `result ${i}`);
      assert.ok(relMaxDiff(p, fast[i]) <= 1e-6, `result ${i}: ${relMaxDiff(p, fast[i])}`);
    });
  });
});

test('withOneDnnLayout: refused with autograd on or an async fn, and an in-place op without a kernel names itself', () => {
  const conv = new nn.Conv2d(2, 2, 3).eval();
  const x = T.randn([1, 2, 128, 128]);
  assert.throws(() => T.withOneDnnLayout(() => conv.forward(x)), /for inference only; call it inside noGrad/);
  assert.throws(() => T.noGrad(() => T.withOneDnnLayout(async () => conv.forward(x))), /fn must be synchronous/);
  T.noGrad(() => {
    assert.throws(() => T.withOneDnnLayout(() => conv.forward(x).clamp_(0, 1)), /aten::clamp_: no kernel for a tensor in oneDNN's layout/);
    // The interceptor is gone afterwards: ordinary calls run as before.
    assert.equal(T.isOneDnnLayout(conv.forward(x)), false);
  });
});
