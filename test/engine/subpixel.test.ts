// Strided transposed convolutions as sub-pixel convolutions (src/torch/functional.ts): values and gradients
// against PyTorch's F.conv_transpose2d on the same inputs, in float64 and float32, for ENet's two kinds and
// for kernels that reach the output phases unevenly (larger than, smaller than, not a multiple of the stride;
// rectangular; asymmetric padding).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { ConvTranspose2dOptions, SUBPIXEL_MIN_OUTPUT, convTranspose2dAsSubpixel } from '../../src/torch/functional';
import { setOpTracer } from '../../src/torch/ops';
import { relError, runTorch } from '../helpers/pytorch';

type Kernel = number | [number, number];
interface Case {
  name: string;
  n: number;
  cin: number;
  cout: number;
  k: Kernel;
  stride: number;
  padding: number | [number, number];
  outputPadding: number;
  h: number;
  w: number;
}

const CASES: Case[] = [
  { name: "ENet's fullconv (2×2, stride 2)", n: 1, cin: 16, cout: 19, k: 2, stride: 2, padding: 0, outputPadding: 0, h: 64, w: 96 },
  { name: "ENet's upsampling bottleneck (3×3, stride 2, output padding 1)", n: 2, cin: 8, cout: 8, k: 3, stride: 2, padding: 1, outputPadding: 1, h: 48, w: 64 },
  { name: '4×4, stride 2, padding 1 (DCGAN)', n: 2, cin: 3, cout: 5, k: 4, stride: 2, padding: 1, outputPadding: 0, h: 50, w: 40 },
  { name: '5×5, stride 3, padding 2, output padding 2', n: 2, cin: 2, cout: 3, k: 5, stride: 3, padding: 2, outputPadding: 2, h: 40, w: 45 },
  { name: '3×5, stride 2, padding (1, 2)', n: 2, cin: 3, cout: 4, k: [3, 5], stride: 2, padding: [1, 2], outputPadding: 1, h: 60, w: 56 },
  { name: '1×1, stride 2: every other output only the bias', n: 2, cin: 3, cout: 4, k: 1, stride: 2, padding: 0, outputPadding: 1, h: 64, w: 64 },
  { name: '4×4, stride 4, padding 1, output padding 2', n: 2, cin: 3, cout: 4, k: 4, stride: 4, padding: 1, outputPadding: 2, h: 30, w: 30 },
];

const kernel = (k: Kernel): [number, number] => (typeof k === 'number' ? [k, k] : k);
const options = (c: Case): ConvTranspose2dOptions => ({ stride: c.stride, padding: c.padding, outputPadding: c.outputPadding });

for (const dtype of ['float64', 'float32'] as const) {
  test(`sub-pixel transposed convolutions: values and gradients match PyTorch's conv_transpose2d (${dtype})`, () => {
    T.manualSeed(7);
    const tol = dtype === 'float64' ? 1e-12 : 1e-5; // float32: the project's parity bound (weight gradients sum thousands of products)
    const inputs: Record<string, T.Tensor> = {};
    const ours: Record<string, T.Tensor> = {};
    for (const [i, c] of CASES.entries()) {
      const x = T.randn([c.n, c.cin, c.h, c.w], { dtype }).requiresGrad_();
      const w = T.randn([c.cin, c.cout, ...kernel(c.k)], { dtype }).requiresGrad_();
      const b = T.randn([c.cout], { dtype }).requiresGrad_();
      const y = convTranspose2dAsSubpixel(x, w, b, options(c));
      assert.ok(y, `${c.name}: the sub-pixel form applies`);
      // The public op takes the same path: bitwise the same answer.
      assert.equal(T.convTranspose2d(x, w, b, options(c)).sub(y).abs().max().item(), 0, `${c.name}: convTranspose2d goes through the sub-pixel form`);
      const g = T.randn(y.shape, { dtype });
      y.mul(g).sum().backward();
      Object.assign(inputs, { [`x${i}`]: x.detach(), [`w${i}`]: w.detach(), [`b${i}`]: b.detach(), [`g${i}`]: g });
      Object.assign(ours, { [`y${i}`]: y.detach(), [`gx${i}`]: x.grad!, [`gw${i}`]: w.grad!, [`gb${i}`]: b.grad! });
    }
    const ref = runTorch(
      `
cases = ${JSON.stringify(CASES.map((c) => [c.stride, c.padding, c.outputPadding]))}
for i, (s, p, op) in enumerate(cases):
    x, w, b = (I[f'{k}{i}'].requires_grad_() for k in 'xwb')
    y = F.conv_transpose2d(x, w, b, stride=s, padding=tuple(p) if isinstance(p, list) else p, output_padding=op)
    (y * I[f'g{i}']).sum().backward()
    O[f'y{i}'], O[f'gx{i}'], O[f'gw{i}'], O[f'gb{i}'] = y.detach(), x.grad, w.grad, b.grad
`,
      inputs,
    );
    for (const [i, c] of CASES.entries()) {
      for (const k of ['y', 'gx', 'gw', 'gb']) {
        const e = relError(ours[`${k}${i}`], ref[`${k}${i}`]);
        assert.ok(e <= tol, `${c.name}, ${k}: relative error ${e.toExponential(2)} > ${tol}`);
      }
    }
  });
}

test("libtorch's own kernel stays where the sub-pixel form does not apply or does not pay", () => {
  const x = T.randn([1, 4, 8, 8]);
  const w = T.randn([4, 4, 3, 3]);
  const big = T.randn([1, 4, 128, 128]);
  assert.equal(convTranspose2dAsSubpixel(x, w, null, { stride: 2, padding: 1, outputPadding: 1 }), null, `under ${SUBPIXEL_MIN_OUTPUT} output elements`);
  assert.equal(convTranspose2dAsSubpixel(big, w, null, { stride: 1, padding: 1 }), null, 'stride 1');
  assert.equal(convTranspose2dAsSubpixel(big, w, null, { stride: 2, padding: 1 }), null, 'an output of odd size (255): not whole phases');
  assert.equal(convTranspose2dAsSubpixel(big, T.randn([4, 2, 3, 3]), null, { stride: 2, padding: 1, outputPadding: 1, groups: 2 }), null, 'groups');
  assert.equal(convTranspose2dAsSubpixel(big, w, null, { stride: 2, padding: 2, outputPadding: 1, dilation: 2 }), null, 'dilation');
  assert.equal(convTranspose2dAsSubpixel(big, w, null, { stride: [2, 1], padding: 1, outputPadding: [1, 0] }), null, 'unequal strides');
  assert.equal(convTranspose2dAsSubpixel(big.to('bfloat16'), w.to('bfloat16'), null, { stride: 2, padding: 1, outputPadding: 1 }), null, 'bfloat16 (convTranspose2d computes it in float32, which takes the form)');
  // An ONNX export traces one aten::conv_transpose2d (onnxruntime's ConvTranspose), not the composition.
  const seen: string[] = [];
  const previous = setOpTracer({ record: (op) => seen.push(op.spec) });
  try {
    assert.equal(convTranspose2dAsSubpixel(big, w, null, { stride: 2, padding: 1, outputPadding: 1 }), null, 'while tracing');
    T.tidy(() => void T.convTranspose2d(big, w, null, { stride: 2, padding: 1, outputPadding: 1 }));
  } finally {
    setOpTracer(previous);
  }
  assert.deepEqual(seen, ['aten::conv_transpose2d.input']);
});
