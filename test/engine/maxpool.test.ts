// Max pooling runs channels-last (src/torch/functional.ts: libtorch 1.13's NCHW kernel is several times
// slower), with autograd through a gather at the argmax positions: the same values, indices and gradients as
// PyTorch's F.max_pool2d on the NCHW tensor, NaN included; in ONNX export and for few channels the plain call
// stays. Adaptive average pooling to the input's own size is a copy, bit for bit PyTorch's pooling.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { Op, setOpInterceptor, setOpTracer } from '../../src/torch/ops';
import { runTorch } from '../helpers/pytorch';

/** The ops fn calls, by schema name. */
function opsOf(fn: () => void): string[] {
  const seen: string[] = [];
  const previous = setOpInterceptor((o: Op, args, inPlace) => (seen.push(o.spec), o.direct(args, inPlace)));
  try {
    T.tidy(fn);
  } finally {
    setOpInterceptor(previous);
  }
  return seen;
}

const CASES = [
  { name: '3×3, stride 2, padding 1 (ResNet, Xception)', shape: [2, 32, 37, 41], k: 3, o: { stride: 2, padding: 1 } },
  { name: '2×2, stride 2 (ENet, the CNN)', shape: [3, 16, 20, 30], k: 2, o: { stride: 2 } },
  { name: '3×3, stride 2, ceil mode, odd size', shape: [1, 24, 15, 17], k: 3, o: { stride: 2, ceilMode: true } },
  { name: '3×3, dilation 2, stride 1', shape: [1, 16, 12, 12], k: 3, o: { stride: 1, padding: 1, dilation: 2 } },
] as const;

test('max pooling without autograd: the values and indices of PyTorch on the NCHW tensor, NaN included, through the channels-last kernel', () => {
  T.manualSeed(5);
  const inputs: Record<string, T.Tensor> = {};
  const ours: Record<string, T.Tensor> = {};
  for (const [i, c] of CASES.entries()) {
    // Ties (ReLU's zeros) decide which index is kept; a NaN must come through.
    const values = T.randn([...c.shape]).relu().toArray() as Float32Array;
    values[7] = NaN;
    const x = T.fromArray(values, [...c.shape]);
    inputs[`x${i}`] = x;
    const seen = opsOf(() => {
      const y = T.maxPool2d(x, c.k, c.o);
      const r = T.maxPool2dWithIndices(x, c.k, c.o);
      ours[`y${i}`] = y.keep();
      ours[`v${i}`] = r.output.keep();
      ours[`i${i}`] = r.indices.keep();
    });
    assert.ok(seen.filter((s) => s === 'aten::contiguous').length >= 4, `${c.name}: reordered to channels-last and back (${seen.join(', ')})`);
  }
  for (const [i, c] of CASES.entries()) {
    for (const k of ['y', 'v']) assert.ok(ours[`${k}${i}`].isnan().sum().item() > 0, `${c.name}: the NaN comes through`);
  }
  const ref = runTorch(
    `
import json
cases = json.loads(${JSON.stringify(JSON.stringify(CASES.map((c) => [c.k, c.o])))})
for i, (k, o) in enumerate(cases):
    y, idx = F.max_pool2d(I[f'x{i}'], k, o.get('stride'), o.get('padding', 0), o.get('dilation', 1), o.get('ceilMode', False), return_indices=True)
    O[f'y{i}'], O[f'i{i}'] = y, idx
`,
    inputs,
  );
  // Equal element by element, NaN where the other has NaN.
  const same = (a: T.Tensor, b: T.Tensor): boolean => {
    const [x, y] = [a.toArray() as Float32Array, b.toArray() as Float32Array];
    return a.shape.join() === b.shape.join() && x.every((v, j) => Object.is(v, y[j]) || v === y[j]);
  };
  for (const [i, c] of CASES.entries()) {
    assert.ok(same(ours[`y${i}`], ref[`y${i}`]), `${c.name}: maxPool2d's values`);
    assert.ok(same(ours[`v${i}`], ref[`y${i}`]), `${c.name}: maxPool2dWithIndices' values`);
    assert.ok(ours[`i${i}`].eq(ref[`i${i}`]).all().item() === 1, `${c.name}: the indices`);
  }
});

test('max pooling with autograd: values gathered at the channels-last argmax, gradients as PyTorch computes them', () => {
  T.manualSeed(6);
  const inputs: Record<string, T.Tensor> = {};
  const ours: Record<string, T.Tensor> = {};
  for (const [i, c] of CASES.entries()) {
    // ReLU's zeros make ties: the gradient must go to the same one of them as PyTorch's.
    const x = T.randn([...c.shape]).relu().requiresGrad_();
    const g = T.randn(T.noGrad(() => T.maxPool2d(x, c.k, c.o)).shape);
    const seen = opsOf(() => {
      T.maxPool2d(x, c.k, c.o).mul(g).sum().backward();
      ours[`gy${i}`] = x.grad!.clone().keep();
      x.grad = null;
      const r = T.maxPool2dWithIndices(x, c.k, c.o);
      r.output.mul(g).sum().backward();
      ours[`gv${i}`] = x.grad!.clone().keep();
      ours[`i${i}`] = r.indices.keep();
    });
    assert.ok(seen.includes('aten::gather') && !seen.includes('aten::max_pool2d'), `${c.name}: gathered at the channels-last argmax (${seen.join(', ')})`);
    Object.assign(inputs, { [`x${i}`]: x.detach(), [`g${i}`]: g });
  }
  const ref = runTorch(
    `
import json
cases = json.loads(${JSON.stringify(JSON.stringify(CASES.map((c) => [c.k, c.o])))})
for i, (k, o) in enumerate(cases):
    x = I[f'x{i}'].requires_grad_()
    y, idx = F.max_pool2d(x, k, o.get('stride'), o.get('padding', 0), o.get('dilation', 1), o.get('ceilMode', False), return_indices=True)
    (y * I[f'g{i}']).sum().backward()
    O[f'gx{i}'], O[f'i{i}'] = x.grad, idx
`,
    inputs,
  );
  for (const [i, c] of CASES.entries()) {
    assert.ok(ours[`i${i}`].eq(ref[`i${i}`]).all().item() === 1, `${c.name}: the indices`);
    for (const k of ['gy', 'gv']) {
      const e = ours[`${k}${i}`].sub(ref[`gx${i}`]).abs().max().item();
      assert.ok(e <= 1e-6, `${c.name}, ${k}: the gradient differs from PyTorch's by ${e}`);
    }
  }
});

test('max pooling keeps the plain NCHW call for few channels and in ONNX export', () => {
  const x = T.randn([1, 16, 8, 8]);
  assert.deepEqual(opsOf(() => void T.maxPool2d(T.randn([1, 3, 8, 8]), 2)), ['aten::randn', 'aten::max_pool2d'], '3 channels');
  const seen: string[] = [];
  const previous = setOpTracer({ record: (o) => seen.push(o.spec) });
  try {
    T.tidy(() => void T.maxPool2d(x, 2));
  } finally {
    setOpTracer(previous);
  }
  assert.deepEqual(seen, ['aten::max_pool2d']);
});

test('adaptive average pooling to the input\'s own size is a copy: the same values and gradient as PyTorch\'s pooling', () => {
  const x = T.randn([4, 16, 7, 7]).requiresGrad_();
  const g = T.randn([4, 16, 7, 7]);
  let y: T.Tensor | null = null;
  assert.deepEqual(opsOf(() => {
    y = T.adaptiveAvgPool2d(x, 7).keep();
    y.mul(g).sum().backward();
  }).filter((s) => s.includes('pool') || s === 'aten::clone'), ['aten::clone']);
  const ref = runTorch("x = I['x'].requires_grad_()\ny = F.adaptive_avg_pool2d(x, 7)\n(y * I['g']).sum().backward()\nO['y'], O['gx'] = y, x.grad", { x: x.detach(), g });
  assert.equal(y!.sub(ref.y).abs().max().item(), 0);
  assert.equal(x.grad!.sub(ref.gx).abs().max().item(), 0);
  assert.deepEqual(opsOf(() => void T.adaptiveAvgPool2d(x.detach(), [7, 3])), ['aten::detach', 'aten::adaptive_avg_pool2d'], 'another size pools');
});
