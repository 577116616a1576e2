// Each layer against its torch.nn twin with the same weights: output, input gradient, every parameter
// gradient, and buffers after the step (BatchNorm running statistics).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import * as nn from '../../src/nn';
import { assertClose, runTorch } from '../helpers/pytorch';

type Layer = nn.Module & { forward(x: T.Tensor): T.Tensor };
interface LayerCase {
  name: string;
  make: () => Layer;
  input: number[];
  py: string;
  train?: boolean;
  seed?: number;
}

const cases: LayerCase[] = [
  { name: 'Conv2d stride padding bias', make: () => new nn.Conv2d(3, 5, 3, { stride: 2, padding: 1 }), input: [2, 3, 9, 9], py: 'nn.Conv2d(3, 5, 3, stride=2, padding=1)' },
  { name: 'Conv2d groups dilation', make: () => new nn.Conv2d(4, 6, 3, { groups: 2, dilation: 2, padding: 2, bias: false }), input: [2, 4, 10, 10], py: 'nn.Conv2d(4, 6, 3, groups=2, dilation=2, padding=2, bias=False)' },
  { name: 'Conv2d asymmetric 5x1', make: () => new nn.Conv2d(3, 3, [5, 1], { padding: [2, 0] }), input: [1, 3, 9, 9], py: 'nn.Conv2d(3, 3, (5, 1), padding=(2, 0))' },
  { name: 'Conv2d asymmetric 1x5', make: () => new nn.Conv2d(3, 3, [1, 5], { padding: [0, 2] }), input: [1, 3, 9, 9], py: 'nn.Conv2d(3, 3, (1, 5), padding=(0, 2))' },
  { name: 'Conv2d reflect padding', make: () => new nn.Conv2d(2, 3, 3, { padding: 1, paddingMode: 'reflect' }), input: [1, 2, 6, 6], py: "nn.Conv2d(2, 3, 3, padding=1, padding_mode='reflect')" },
  { name: 'Conv2d replicate padding', make: () => new nn.Conv2d(2, 3, 3, { padding: 2, paddingMode: 'replicate' }), input: [1, 2, 6, 6], py: "nn.Conv2d(2, 3, 3, padding=2, padding_mode='replicate')" },
  { name: 'ConvTranspose2d', make: () => new nn.ConvTranspose2d(4, 3, 3, { stride: 2, padding: 1, outputPadding: 1 }), input: [2, 4, 5, 5], py: 'nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1)' },
  { name: 'BatchNorm2d training', make: () => new nn.BatchNorm2d(3), input: [4, 3, 5, 5], py: 'nn.BatchNorm2d(3)', train: true },
  { name: 'BatchNorm2d eval', make: () => new nn.BatchNorm2d(3), input: [2, 3, 4, 4], py: 'nn.BatchNorm2d(3)', train: false },
  { name: 'Linear', make: () => new nn.Linear(7, 4), input: [5, 7], py: 'nn.Linear(7, 4)' },
  { name: 'PReLU per channel', make: () => new nn.PReLU(3), input: [2, 3, 4, 4], py: 'nn.PReLU(3)' },
  { name: 'MaxPool2d', make: () => new nn.MaxPool2d(3, { stride: 2, padding: 1 }), input: [2, 3, 9, 9], py: 'nn.MaxPool2d(3, 2, 1)' },
  { name: 'AvgPool2d', make: () => new nn.AvgPool2d(2), input: [2, 3, 8, 8], py: 'nn.AvgPool2d(2)' },
  { name: 'AdaptiveAvgPool2d', make: () => new nn.AdaptiveAvgPool2d([3, 2]), input: [2, 3, 7, 5], py: 'nn.AdaptiveAvgPool2d((3, 2))' },
  { name: 'Upsample bilinear align corners', make: () => new nn.Upsample({ scaleFactor: 2, mode: 'bilinear', alignCorners: true }), input: [1, 2, 4, 5], py: "nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True)" },
  { name: 'Upsample bilinear', make: () => new nn.Upsample({ size: [7, 9], mode: 'bilinear' }), input: [1, 2, 4, 5], py: "nn.Upsample(size=(7, 9), mode='bilinear')" },
  { name: 'Dropout (same seed, same mask)', make: () => new nn.Dropout(0.4), input: [4, 30], py: 'nn.Dropout(0.4)', train: true, seed: 21 },
  { name: 'Dropout2d (same seed, same mask)', make: () => new nn.Dropout2d(0.5), input: [4, 8, 3, 3], py: 'nn.Dropout2d(0.5)', train: true, seed: 22 },
  {
    name: 'Sequential of conv, BN, ReLU6, pool, flatten, linear',
    make: () => new nn.Sequential(new nn.Conv2d(2, 4, 3, { padding: 1 }), new nn.BatchNorm2d(4), new nn.ReLU6(), new nn.MaxPool2d(2), new nn.Flatten(), new nn.Linear(16, 3)),
    input: [3, 2, 4, 4],
    py: 'nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU6(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3))',
    train: true,
  },
];

T.manualSeed(0);
const inputs: Record<string, T.Tensor> = {};
const prepared = cases.map((c, i) => {
  const layer = c.make().train(c.train ?? true);
  // Random BN statistics and affine parameters, so that mistakes in using them would show.
  for (const m of layer.modules()) {
    if (m instanceof nn.BatchNorm2d) {
      T.noGrad(() => {
        m.running_mean!.copy_(T.randn([m.numFeatures]));
        m.running_var!.copy_(T.rand([m.numFeatures]).add(0.5));
        m.weight!.copy_(T.randn([m.numFeatures]));
      });
    }
  }
  for (const [k, t] of Object.entries(layer.stateDict())) inputs[`c${i}.p.${k}`] = t.clone().keep();
  inputs[`c${i}.x`] = T.randn(c.input).keep();
  return layer;
});
// Output shapes, for the cotangents.
const outs = prepared.map((l, i) => {
  if (cases[i].seed !== undefined) T.manualSeed(cases[i].seed!);
  return T.noGrad(() => l.forward(inputs[`c${i}.x`].clone())).keep();
});
outs.forEach((o, i) => (inputs[`c${i}.cot`] = T.randn(o.shape).keep()));
// Forward above ran in train mode and moved BN statistics: restore them for the real comparison.
prepared.forEach((l, i) => {
  const sd: Record<string, T.Tensor> = {};
  for (const k of Object.keys(l.stateDict())) sd[k] = inputs[`c${i}.p.${k}`];
  l.loadStateDict(sd);
});

const py: string[] = ['import torch.nn as nn'];
cases.forEach((c, i) => {
  py.push(
    `m = ${c.py}`,
    `m.load_state_dict({k[len("c${i}.p."):]: v for k, v in I.items() if k.startswith("c${i}.p.")})`,
    `m.train(${c.train ?? true ? 'True' : 'False'})`,
    `x = I["c${i}.x"].clone().requires_grad_()`,
    c.seed !== undefined ? `torch.manual_seed(${c.seed})` : 'pass',
    'y = m(x)',
    `(y * I["c${i}.cot"]).sum().backward()`,
    `O["c${i}.y"] = y.detach(); O["c${i}.gx"] = x.grad`,
    `for k, p in m.named_parameters(): O[f"c${i}.g.{k}"] = p.grad`,
    `for k, b in m.named_buffers(): O[f"c${i}.b.{k}"] = b`,
  );
});
const ref = runTorch(py.join('\n'), inputs);

cases.forEach((c, i) => {
  test(`${c.name} matches torch.nn`, () => {
    const layer = prepared[i];
    const x = inputs[`c${i}.x`].clone().requiresGrad_();
    if (c.seed !== undefined) T.manualSeed(c.seed);
    const y = layer.forward(x);
    y.backward(inputs[`c${i}.cot`]);
    assertClose(y, ref[`c${i}.y`], 1e-5, 'output');
    assertClose(x.grad!, ref[`c${i}.gx`], 1e-5, 'input gradient');
    for (const [k, p] of layer.namedParameters()) assertClose(p.grad!, ref[`c${i}.g.${k}`], 1e-5, `gradient of ${k}`);
    for (const [k, b] of layer.namedBuffers()) {
      const want = ref[`c${i}.b.${k}`];
      assert.ok(want, `PyTorch has no buffer ${k}`);
      assert.deepEqual(b.toNumbers().map((v) => Number(v.toFixed(5))), want.toNumbers().map((v) => Number(v.toFixed(5))), `buffer ${k}`);
    }
  });
});

test('state-dict keys equal torch.nn.Sequential\'s', () => {
  const ours = Object.keys(prepared[prepared.length - 1].stateDict());
  const theirs = Object.keys(ref).filter((k) => k.startsWith(`c${cases.length - 1}.g.`) || k.startsWith(`c${cases.length - 1}.b.`)).map((k) => k.replace(/^c\d+\.[gb]\./, ''));
  assert.deepEqual([...ours].sort(), [...theirs].sort());
});

test('untrained layers are distributed like PyTorch\'s (same init scheme)', () => {
  T.manualSeed(5);
  const conv = new nn.Conv2d(64, 128, 3);
  const lin = new nn.Linear(300, 50);
  const stats = (t: T.Tensor): number[] => [t.std().item(), t.abs().max().item()];
  const r = runTorch('torch.manual_seed(5)\nc = torch.nn.Conv2d(64, 128, 3); l = torch.nn.Linear(300, 50)\nfor n, t in [("c", c.weight), ("cb", c.bias), ("l", l.weight), ("lb", l.bias)]: O[n] = torch.stack([t.std(), t.abs().max()]).detach()');
  const pairs: [string, T.Tensor][] = [['c', conv.weight], ['cb', conv.bias!], ['l', lin.weight], ['lb', lin.bias!]];
  for (const [k, t] of pairs) {
    const [s, m] = stats(t);
    const [rs, rm] = r[k].toNumbers();
    assert.ok(Math.abs(s - rs) / rs < 0.1, `${k}: std ${s} vs PyTorch ${rs}`);
    assert.ok(Math.abs(m - rm) / rm < 0.1, `${k}: bound ${m} vs PyTorch ${rm}`);
  }
});
