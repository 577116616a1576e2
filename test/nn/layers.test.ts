// Each layer against its torch.nn twin with the same weights: output, input gradient, every parameter
// gradient, and buffers after the step (BatchNorm running statistics). One Python run serves every case.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import * as nn from '../../src/nn';
import { assertClose, runTorch, runTorchWithMeta } from '../helpers/pytorch';

type Layer = nn.Module & { forward(x: T.Tensor): T.Tensor };
interface LayerCase {
  name: string;
  make: () => nn.Module;
  input: number[];
  /** A Python expression building the torch.nn module (PoolUnpool and friends defined below). */
  py: string;
  /** The tsvision call when it is not forward(x): outputs after the first are compared but not differentiated. */
  run?: (m: nn.Module, x: T.Tensor) => T.Tensor[];
  /** The matching Python call over m and x (default m(x)); may return a tuple. */
  pyRun?: string;
  train?: boolean;
  seed?: number;
}

/** Max pooling with indices feeding max unpooling, as ENet's encoder/decoder pair does. */
class PoolUnpool extends nn.Module {
  pool: nn.MaxPool2dWithIndices;
  unpool: nn.MaxUnpool2d;
  constructor(k: number, s: number, p: number, readonly explicitSize: boolean) {
    super();
    this.pool = new nn.MaxPool2dWithIndices(k, { stride: s, padding: p });
    this.unpool = new nn.MaxUnpool2d(k, { stride: s, padding: p });
  }
  forward(x: T.Tensor): T.Tensor[] {
    const { output, indices } = this.pool.forward(x);
    const size = this.explicitSize ? (x.shape.slice(-2) as [number, number]) : undefined;
    return [this.unpool.forward(output.mul(2), indices, size), indices];
  }
}
const PY_CLASSES = [
  'import torch.nn as nn',
  'class PoolUnpool(nn.Module):',
  '    def __init__(s, k, st, p, explicit):',
  '        super().__init__(); s.pool = nn.MaxPool2d(k, st, p, return_indices=True); s.unpool = nn.MaxUnpool2d(k, st, p); s.explicit = explicit',
  '    def forward(s, x):',
  '        y, i = s.pool(x)',
  '        return s.unpool(y * 2, i, output_size=x.shape[-2:] if s.explicit else None), i',
];

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
  { name: 'Conv2d same padding, even kernel, reflect', make: () => new nn.Conv2d(2, 3, 4, { padding: 'same', dilation: [1, 2], paddingMode: 'reflect' }), input: [1, 2, 9, 9], py: "nn.Conv2d(2, 3, 4, padding='same', dilation=(1, 2), padding_mode='reflect')" },
  { name: 'Conv2d same padding, zeros', make: () => new nn.Conv2d(2, 3, [3, 4], { padding: 'same' }), input: [1, 2, 6, 7], py: "nn.Conv2d(2, 3, (3, 4), padding='same')" },
  { name: 'ConvTranspose2d groups dilation no bias', make: () => new nn.ConvTranspose2d(4, 6, [3, 2], { stride: [2, 1], padding: [1, 0], groups: 2, dilation: 2, bias: false }), input: [2, 4, 5, 4], py: 'nn.ConvTranspose2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), groups=2, dilation=2, bias=False)' },
  {
    name: 'ConvTranspose2d with an output size',
    make: () => new nn.ConvTranspose2d(3, 2, 3, { stride: 2, padding: 1 }),
    input: [1, 3, 5, 6],
    py: 'nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1)',
    run: (m, x) => [(m as nn.ConvTranspose2d).forward(x, [10, 12])],
    pyRun: 'm(x, output_size=[10, 12])',
  },
  { name: 'BatchNorm2d cumulative average (momentum null)', make: () => new nn.BatchNorm2d(3, { momentum: null, eps: 1e-3 }), input: [3, 3, 4, 4], py: 'nn.BatchNorm2d(3, momentum=None, eps=1e-3)', train: true },
  { name: 'BatchNorm2d without running statistics', make: () => new nn.BatchNorm2d(3, { trackRunningStats: false, affine: false }), input: [3, 3, 4, 4], py: 'nn.BatchNorm2d(3, track_running_stats=False, affine=False)', train: false },
  { name: 'PReLU shared', make: () => new nn.PReLU(), input: [2, 3, 4, 4], py: 'nn.PReLU()' },
  { name: 'LeakyReLU', make: () => new nn.LeakyReLU(0.2), input: [2, 3, 4], py: 'nn.LeakyReLU(0.2)' },
  { name: 'Tanh', make: () => new nn.Tanh(), input: [2, 3, 4], py: 'nn.Tanh()' },
  { name: 'Sigmoid', make: () => new nn.Sigmoid(), input: [2, 3, 4], py: 'nn.Sigmoid()' },
  { name: 'ReLU6', make: () => new nn.ReLU6(), input: [2, 3, 4], py: 'nn.ReLU6()' },
  { name: 'Softmax', make: () => new nn.Softmax(1), input: [2, 5, 3], py: 'nn.Softmax(1)' },
  { name: 'MaxPool2d ceil mode dilation', make: () => new nn.MaxPool2d(2, { stride: 2, dilation: 2, ceilMode: true }), input: [1, 2, 9, 8], py: 'nn.MaxPool2d(2, 2, dilation=2, ceil_mode=True)' },
  {
    name: 'MaxPool2d with indices + MaxUnpool2d (size from kernel)',
    make: () => new PoolUnpool(3, 2, 1, false),
    input: [2, 3, 9, 9],
    py: 'PoolUnpool(3, 2, 1, False)',
    run: (m, x) => (m as PoolUnpool).forward(x),
  },
  {
    name: 'MaxPool2d with indices + MaxUnpool2d (explicit odd size)',
    make: () => new PoolUnpool(2, 2, 0, true),
    input: [2, 3, 11, 7],
    py: 'PoolUnpool(2, 2, 0, True)',
    run: (m, x) => (m as PoolUnpool).forward(x),
  },
  { name: 'AvgPool2d padding, no pad counted, ceil', make: () => new nn.AvgPool2d(3, { stride: 2, padding: 1, countIncludePad: false, ceilMode: true }), input: [2, 3, 8, 8], py: 'nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)' },
  { name: 'AdaptiveMaxPool2d', make: () => new nn.AdaptiveMaxPool2d([3, 2]), input: [2, 3, 7, 5], py: 'nn.AdaptiveMaxPool2d((3, 2))' },
  { name: 'Upsample nearest by 1.5', make: () => new nn.Upsample({ scaleFactor: 1.5 }), input: [1, 2, 4, 5], py: 'nn.Upsample(scale_factor=1.5)' },
  { name: 'Upsample nearest to a size', make: () => new nn.Upsample({ size: [7, 3], mode: 'nearest' }), input: [1, 2, 4, 5], py: "nn.Upsample(size=(7, 3), mode='nearest')" },
  {
    // ReLU(inplace) overwrites the BN output; the gradients through BN must be unaffected, as in PyTorch.
    name: 'Sequential of conv, BN, in-place ReLU, conv, BN, in-place ReLU',
    make: () => new nn.Sequential(new nn.Conv2d(2, 4, 3, { padding: 1 }), new nn.BatchNorm2d(4), new nn.ReLU({ inplace: true }), new nn.Conv2d(4, 3, 1), new nn.BatchNorm2d(3), new nn.ReLU({ inplace: true })),
    input: [3, 2, 4, 4],
    py: 'nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Conv2d(4, 3, 1), nn.BatchNorm2d(3), nn.ReLU(inplace=True))',
    train: true,
  },
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
const runOf = (c: LayerCase) => c.run ?? ((m: nn.Module, x: T.Tensor) => [(m as Layer).forward(x)]);
const prepared = cases.map((c, i) => {
  const layer = c.make().train(c.train ?? true);
  // Random BN statistics and affine parameters, so that mistakes in using them would show.
  for (const m of layer.modules()) {
    if (m instanceof nn.BatchNorm2d) {
      T.noGrad(() => {
        m.running_mean?.copy_(T.randn([m.numFeatures]));
        m.running_var?.copy_(T.rand([m.numFeatures]).add(0.5));
        m.weight?.copy_(T.randn([m.numFeatures]));
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
  return T.noGrad(() => runOf(cases[i])(l, inputs[`c${i}.x`].clone())[0]).keep();
});
outs.forEach((o, i) => (inputs[`c${i}.cot`] = T.randn(o.shape).keep()));
// Forward above ran in train mode and moved BN statistics: restore them for the real comparison.
prepared.forEach((l, i) => {
  const sd: Record<string, T.Tensor> = {};
  for (const k of Object.keys(l.stateDict())) sd[k] = inputs[`c${i}.p.${k}`];
  l.loadStateDict(sd);
});

const py: string[] = [...PY_CLASSES];
cases.forEach((c, i) => {
  py.push(
    `m = ${c.py}`,
    `m.load_state_dict({k[len("c${i}.p."):]: v for k, v in I.items() if k.startswith("c${i}.p.")})`,
    `m.train(${c.train ?? true ? 'True' : 'False'})`,
    `x = I["c${i}.x"].clone().requires_grad_()`,
    c.seed !== undefined ? `torch.manual_seed(${c.seed})` : 'pass',
    `ys = ${c.pyRun ?? 'm(x)'}`,
    'ys = list(ys) if isinstance(ys, (tuple, list)) else [ys]',
    `(ys[0] * I["c${i}.cot"]).sum().backward()`,
    `for k, y in enumerate(ys): O[f"c${i}.y{k}"] = y.detach()`,
    `O["c${i}.gx"] = x.grad`,
    `for k, p in m.named_parameters(): O[f"c${i}.g.{k}"] = p.grad`,
    `for k, b in m.named_buffers(): O[f"c${i}.b.{k}"] = b`,
    `META["c${i}.keys"] = ",".join(m.state_dict().keys())`,
  );
});
const { tensors: ref, metadata: refMeta } = runTorchWithMeta(py.join('\n'), inputs);

cases.forEach((c, i) => {
  test(`${c.name} matches torch.nn`, () => {
    const layer = prepared[i];
    const x = inputs[`c${i}.x`].clone().requiresGrad_();
    if (c.seed !== undefined) T.manualSeed(c.seed);
    const ys = runOf(c)(layer, x);
    ys[0].backward(inputs[`c${i}.cot`]);
    ys.forEach((y, k) => {
      assert.ok(ref[`c${i}.y${k}`], `PyTorch gave no output ${k}`);
      assert.equal(y.dtype, ref[`c${i}.y${k}`].dtype, `dtype of output ${k}`);
      assertClose(y, ref[`c${i}.y${k}`], 1e-5, `output ${k}`);
    });
    assertClose(x.grad!, ref[`c${i}.gx`], 1e-5, 'input gradient');
    assert.equal(Object.keys(layer.stateDict()).join(','), refMeta[`c${i}.keys`], 'state-dict keys, in order');
    const theirParams = Object.keys(ref).filter((k) => k.startsWith(`c${i}.g.`)).map((k) => k.slice(`c${i}.g.`.length));
    assert.deepEqual(layer.namedParameters().map(([k]) => k).sort(), theirParams.sort(), 'parameter names');
    for (const [k, p] of layer.namedParameters()) assertClose(p.grad!, ref[`c${i}.g.${k}`], 1e-5, `gradient of ${k}`);
    for (const [k, b] of layer.namedBuffers()) {
      const want = ref[`c${i}.b.${k}`];
      assert.ok(want, `PyTorch has no buffer ${k}`);
      assert.deepEqual(b.toNumbers().map((v) => Number(v.toFixed(5))), want.toNumbers().map((v) => Number(v.toFixed(5))), `buffer ${k}`);
    }
  });
});

test('Sequential state-dict keys equal torch.nn.Sequential\'s, in order', () => {
  const i = cases.length - 1;
  const ours = Object.keys(prepared[i].stateDict());
  assert.deepEqual(ours, refMeta[`c${i}.keys`].split(','));
  assert.ok(ours.includes('1.num_batches_tracked') && ours.includes('5.weight'));
});

test('untrained layers are distributed like PyTorch\'s (same init scheme, fans included)', () => {
  // RNG draws need not line up between the two, so compare statistics: std and largest magnitude.
  const make: [string, () => T.Tensor[], string][] = [
    ['conv', () => { const m = new nn.Conv2d(64, 128, 3); return [m.weight, m.bias!]; }, 'nn.Conv2d(64, 128, 3)'],
    ['grouped', () => { const m = new nn.Conv2d(64, 128, 3, { groups: 4 }); return [m.weight, m.bias!]; }, 'nn.Conv2d(64, 128, 3, groups=4)'],
    ['linear', () => { const m = new nn.Linear(300, 500); return [m.weight, m.bias!]; }, 'nn.Linear(300, 500)'],
    // Transposed: fan_in from weight dim 1 = out/groups · k²: 16·16 here, where in·k² would halve the bound.
    ['transposed', () => { const m = new nn.ConvTranspose2d(256, 16, 4); return [m.weight, m.bias!]; }, 'nn.ConvTranspose2d(256, 16, 4)'],
    ['transposed grouped', () => { const m = new nn.ConvTranspose2d(256, 64, 3, { groups: 4 }); return [m.weight, m.bias!]; }, 'nn.ConvTranspose2d(256, 64, 3, groups=4)'],
  ];
  T.manualSeed(5);
  const ours = make.map(([, f]) => f());
  const r = runTorch(
    ['import torch.nn as nn', 'torch.manual_seed(11)']
      .concat(make.map(([k, , py]) => `m = ${py}; O["${k}.w"] = torch.stack([m.weight.std(), m.weight.abs().max()]).detach(); O["${k}.b"] = torch.stack([m.bias.std(), m.bias.abs().max()]).detach()`))
      .join('\n'),
  );
  make.forEach(([k], i) => {
    const [w, b] = ours[i];
    const [ws, wm] = r[`${k}.w`].toNumbers();
    const [bs, bm] = r[`${k}.b`].toNumbers();
    // Tens of thousands of weights: std to well under 3%; the maximum sits just below the uniform bound.
    const rel = (a: number, e: number) => Math.abs(a - e) / e;
    assert.ok(rel(w.std().item(), ws) < 0.03, `${k} weight std ${w.std().item()} vs PyTorch ${ws}`);
    assert.ok(rel(w.abs().max().item(), wm) < 0.01, `${k} weight bound ${w.abs().max().item()} vs PyTorch ${wm}`);
    // Biases are few (16 to 500): a looser check, still far from the factor-of-2 a wrong fan would give.
    assert.ok(rel(b.std().item(), bs) < 0.3, `${k} bias std ${b.std().item()} vs PyTorch ${bs}`);
    assert.ok(rel(b.abs().max().item(), bm) < 0.2, `${k} bias bound ${b.abs().max().item()} vs PyTorch ${bm}`);
  });
});

test('BatchNorm2d refuses one value per channel in training, as PyTorch does, and accepts it in eval', () => {
  const bn = new nn.BatchNorm2d(4);
  const one = T.randn([1, 4, 1, 1]);
  assert.throws(() => bn.forward(one), /more than 1 value per channel.*\[1,4,1,1\]/);
  // Its running statistics are untouched by the refused call.
  assert.equal(bn.num_batches_tracked!.item(), 0);
  bn.eval();
  assert.deepEqual(bn.forward(one).shape, [1, 4, 1, 1]);
  bn.train();
  assert.deepEqual(bn.forward(T.randn([2, 4, 1, 1])).shape, [2, 4, 1, 1]);
});

test('synchronized BatchNorm under bfloat16 autocast: output, gradients and running statistics as ATen\'s BatchNorm', () => {
  // One replica (the all-reduce is the identity), so the synchronized path must give what ATen's batch_norm
  // gives. Inputs of mean 3: the gradient reaching the convolution is then a small difference of large terms,
  // which is where bfloat16 arithmetic inside the layer shows (26% off before it worked in float32).
  T.manualSeed(0);
  const conv = new nn.Conv2d(3, 8, 3, { padding: 1 });
  const x = T.randn([4, 3, 16, 16]).mul(2).add(3);
  const run = (sync: boolean, bf16: boolean): { y: T.Tensor; grad: T.Tensor; mean: T.Tensor; variance: T.Tensor } =>
    T.tidy(() => {
      const bn = new nn.BatchNorm2d(8);
      if (sync) bn.crossReplicaSum = (t) => t;
      for (const p of conv.parameters()) p.grad = null;
      const f = (): T.Tensor => bn.forward(conv.forward(x));
      const y = bf16 ? T.autocast(f) : f();
      y.to('float32').mul(T.arange(0, y.numel()).view(...y.shape).remainder(7)).sum().backward();
      return { y, grad: conv.weight.grad!.clone(), mean: bn.running_mean!.clone(), variance: bn.running_var!.clone() };
    });
  const exact = run(false, false);
  const aten = run(false, true);
  const ours = run(true, true);
  const rel = (a: T.Tensor, b: T.Tensor): number => T.tidy(() => a.to('float64').sub(b.to('float64')).norm().item() / b.to('float64').norm().item());
  assert.equal(ours.y.dtype, 'bfloat16');
  assert.equal(aten.y.dtype, 'bfloat16');
  assert.ok(rel(ours.y, aten.y) < 2 ** -8, `output ${rel(ours.y, aten.y)}`);
  const atenErr = rel(aten.grad, exact.grad);
  const ourErr = rel(ours.grad, exact.grad);
  assert.ok(atenErr < 0.02, `ATen's own error ${atenErr}`);
  assert.ok(ourErr < 1.5 * atenErr + 1e-3, `conv weight gradient ${ourErr} off, ATen's BatchNorm ${atenErr}`);
  // Running statistics stay float32 and are not rounded to bfloat16 on the way.
  assert.equal(ours.mean.dtype, 'float32');
  assert.ok(rel(ours.mean, aten.mean) < 1e-4, `running mean ${rel(ours.mean, aten.mean)}`);
  assert.ok(rel(ours.variance, aten.variance) < 1e-4, `running variance ${rel(ours.variance, aten.variance)}`);
});
