// Eval-mode CPU convolutions reuse weights prepacked in oneDNN's layout (nn.Conv2d.forwardPrepacked):
// the results must equal the plain path and PyTorch, and follow every change of the weights.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import * as nn from '../../src/nn';
import { assertClose, runTorch } from '../helpers/pytorch';

interface Case {
  name: string;
  make: () => nn.Conv2d;
  input: number[];
  py: string;
}
const cases: Case[] = [
  { name: '3×3 stride 2', make: () => new nn.Conv2d(8, 16, 3, { stride: 2, padding: 1 }), input: [1, 8, 40, 40], py: 'nn.Conv2d(8, 16, 3, 2, 1)' },
  { name: 'depthwise 3×3', make: () => new nn.Conv2d(16, 16, 3, { padding: 1, groups: 16, bias: false }), input: [2, 16, 24, 24], py: 'nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False)' },
  { name: 'dilated 3×3, rate 2', make: () => new nn.Conv2d(8, 8, 3, { padding: 2, dilation: 2 }), input: [1, 8, 48, 48], py: 'nn.Conv2d(8, 8, 3, 1, 2, 2)' },
  { name: 'asymmetric 5×1', make: () => new nn.Conv2d(8, 8, [5, 1], { padding: [2, 0] }), input: [2, 8, 20, 20], py: 'nn.Conv2d(8, 8, (5, 1), 1, (2, 0))' },
  { name: '1×1 pointwise', make: () => new nn.Conv2d(32, 24, 1, { bias: false }), input: [1, 32, 30, 30], py: 'nn.Conv2d(32, 24, 1, bias=False)' },
];

T.manualSeed(3);
const layers = cases.map((c) => c.make().eval());
const inputs: Record<string, T.Tensor> = {};
layers.forEach((l, i) => {
  for (const [k, t] of Object.entries(l.stateDict())) inputs[`${i}.${k}`] = t;
  inputs[`${i}.x`] = T.randn(cases[i].input);
});
const ref = runTorch(
  'import torch.nn as nn\n' +
  cases
    .map(
      (c, i) => `m = ${c.py}
m.load_state_dict({k[len('${i}.'):]: v for k, v in I.items() if k.startswith('${i}.') and k != '${i}.x'})
with torch.no_grad():
    O['${i}'] = m.eval()(I['${i}.x'])`,
    )
    .join('\n'),
  inputs,
);

cases.forEach((c, i) => {
  test(`prepacked ${c.name} conv equals PyTorch and the plain path exactly`, () => {
    const l = layers[i];
    const x = inputs[`${i}.x`];
    const packed = T.noGrad(() => l.forward(x)); // first call packs, second reuses
    const again = T.noGrad(() => l.forward(x));
    nn.Conv2d.prepackForInference = false;
    const plain = T.noGrad(() => l.forward(x));
    nn.Conv2d.prepackForInference = true;
    assertClose(packed, ref[`${i}`], 1e-5, c.name);
    assert.equal(again.sub(packed).abs().max().item(), 0);
    assert.equal(plain.sub(packed).abs().max().item(), 0, 'the prepacked path runs the same oneDNN primitive');
  });
});

test('prepacked weights follow in-place updates and loadStateDict, and are dropped in training mode', () => {
  const l = new nn.Conv2d(4, 6, 3, { padding: 1 }).eval();
  const x = T.randn([2, 4, 16, 16]);
  const plain = (): T.Tensor => {
    nn.Conv2d.prepackForInference = false;
    try {
      return T.noGrad(() => l.forward(x));
    } finally {
      nn.Conv2d.prepackForInference = true;
    }
  };
  const before = T.liveTensors();
  T.noGrad(() => l.forward(x)).dispose();
  assert.equal(T.liveTensors(), before + 1, 'one prepacked copy is kept');
  T.noGrad(() => l.weight.mul_(-2));
  assertClose(T.noGrad(() => l.forward(x)), plain(), 1e-6, 'after an in-place update');
  l.loadStateDict({ weight: T.randn([6, 4, 3, 3]), bias: T.randn([6]) });
  assertClose(T.noGrad(() => l.forward(x)), plain(), 1e-6, 'after loadStateDict');
  // Gradients enabled, or training mode: the plain path, and the copy is freed.
  const held = T.liveTensors();
  l.forward(x).dispose();
  assert.equal(T.liveTensors(), held - 1, 'the prepacked copy is freed once autograd is on');
  T.noGrad(() => l.forward(x)).dispose();
  l.train();
  T.noGrad(() => l.forward(x)).dispose();
  assert.equal(T.liveTensors(), held - 1, 'and in training mode');
});

test('each input shape decides once whether the prepacked weights are kept: only where they are far slower', () => {
  // Both ways compute the same oneDNN convolution; the choice is speed alone (1×1 convolutions on 10×10
  // maps in bfloat16 ran 60× slower prepacked on an AVX-512 BF16 host).
  assert.equal(nn.keepPrepacked(2, 2), true);
  assert.equal(nn.keepPrepacked(5.9, 2), true, 'under 3×');
  assert.equal(nn.keepPrepacked(0.5, 0.1), true, '5× but 0.4 ms: noise on a small layer');
  assert.equal(nn.keepPrepacked(127, 2), false);
  const l = new nn.Conv2d(8, 16, 3, { padding: 1 }).eval();
  const decisions = (): Map<string, boolean> => (l as unknown as { prepacked: { faster: Map<string, boolean> } }).prepacked.faster;
  const [a, b] = [T.randn([1, 8, 64, 64]), T.randn([2, 8, 12, 16])];
  const ya = T.noGrad(() => l.forward(a));
  T.noGrad(() => l.forward(a)).dispose();
  const yb = T.noGrad(() => l.forward(b));
  assert.deepEqual([...decisions().keys()], ['1x8x64x64', '2x8x12x16']);
  nn.Conv2d.prepackForInference = false;
  try {
    assert.equal(T.noGrad(() => l.forward(a)).sub(ya).abs().max().item(), 0);
    assert.equal(T.noGrad(() => l.forward(b)).sub(yb).abs().max().item(), 0);
  } finally {
    nn.Conv2d.prepackForInference = true;
  }
  // Fed ever new sizes, a layer times only its first PREPACK_TRIALS of them.
  for (let i = 0; i < nn.Conv2d.PREPACK_TRIALS + 2; i++) T.noGrad(() => l.forward(T.randn([1, 8, 64, 65 + i]))).dispose();
  assert.equal(decisions().size, nn.Conv2d.PREPACK_TRIALS);
});
