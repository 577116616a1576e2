// Autograd against finite differences (float64), for the ops whose backward is most intricate.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { gradcheck } from '../helpers/gradcheck';

const R = (...s: number[]) => T.randn(s, { dtype: 'float64' });
const TOL = 1e-6;

const checks: [string, (...xs: T.Tensor[]) => T.Tensor, () => T.Tensor[]][] = [
  ['conv2d dilated grouped strided', (x, w, b) => T.conv2d(x, w, b, { stride: 2, padding: 2, dilation: 2, groups: 2 }), () => [R(1, 4, 6, 6), R(4, 2, 3, 3), R(4)]],
  ['conv2d asymmetric 1x5', (x, w) => T.conv2d(x, w, null, { padding: [0, 2] }), () => [R(1, 2, 4, 5), R(2, 2, 1, 5)]],
  ['conv transpose2d', (x, w) => T.convTranspose2d(x, w, null, { stride: 2, padding: 1, outputPadding: 1 }), () => [R(1, 2, 3, 3), R(2, 2, 3, 3)]],
  ['batch norm (training)', (x, w, b) => T.batchNorm(x, null, null, { weight: w, bias: b, training: true }), () => [R(3, 2, 3, 3), R(2), R(2)]],
  ['prelu', (x, a) => T.prelu(x, a), () => [R(2, 3, 2, 2), R(3)]],
  ['max unpool of max pool', (x) => { const p = T.maxPool2dWithIndices(x, 2); return T.maxUnpool2d(p.output, p.indices, [4, 4]); }, () => [R(1, 2, 4, 4)]],
  ['bilinear interpolate align corners', (x) => T.interpolate(x, { size: [5, 7], mode: 'bilinear', alignCorners: true }), () => [R(1, 2, 3, 4)]],
  ['bilinear interpolate half pixel', (x) => T.interpolate(x, { size: [6, 5], mode: 'bilinear' }), () => [R(1, 1, 3, 4)]],
  ['adaptive avg pool', (x) => T.adaptiveAvgPool2d(x, [2, 3]), () => [R(1, 2, 5, 7)]],
  ['avg pool', (x) => T.avgPool2d(x, 3, { stride: 2, padding: 1 }), () => [R(1, 2, 5, 5)]],
  ['softmax', (x) => T.softmax(x, 1), () => [R(3, 5)]],
  ['cross entropy with weights and ignore index', (x) => T.crossEntropy(x, T.tensor([[0, 2], [255, 1]]), { weight: T.tensor([0.5, 2, 1.5], { dtype: 'float64' }), ignoreIndex: 255 }).reshape(1), () => [R(2, 3, 2)]],
  ['mse', (a, b) => T.mseLoss(a, b).reshape(1), () => [R(3, 4), R(3, 4)]],
  ['kl div', (a, b) => T.klDiv(T.logSoftmax(a, 1), T.softmax(b, 1), { reduction: 'batchmean' }).reshape(1), () => [R(2, 4), R(2, 4)]],
  ['matmul', (a, b) => a.matmul(b), () => [R(2, 3), R(3, 2)]],
  ['gather and index select', (x) => x.gather(1, T.tensor([[0, 2], [1, 1]])).add(x.indexSelect(1, T.tensor([2, 0]))), () => [R(2, 3)]],
];

for (const [name, fn, inputs] of checks) {
  test(`finite differences: ${name}`, () => {
    T.manualSeed(3);
    const err = gradcheck(fn, inputs());
    assert.ok(err < TOL, `max relative gradient error ${err.toExponential(3)} >= ${TOL}`);
  });
}

test('a wrong gradient is caught (the check can fail)', () => {
  // detach() in the middle hides part of the dependency, so autograd's gradient is wrong on purpose.
  const err = gradcheck((x) => x.mul(x.detach()), [R(4)]);
  assert.ok(err > 0.1, `expected a large error, got ${err}`);
});
