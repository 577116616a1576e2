// Module bookkeeping: keys found from fields, modes, dtype moves, freezing, and strict state-dict loading.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import * as nn from '../../src/nn';
import { runTorchWithMeta } from '../helpers/pytorch';

class Block extends nn.Module {
  conv1 = new nn.Conv2d(2, 2, 3, { padding: 1, bias: false });
  bn1 = new nn.BatchNorm2d(2);
  forward(x: T.Tensor): T.Tensor {
    return this.bn1.forward(this.conv1.forward(x)).relu();
  }
}
class Net extends nn.Module {
  stem = new nn.Conv2d(1, 2, 3);
  layer1 = [new Block(), new Block()];
  head = new nn.Sequential(new nn.Flatten(), new nn.Linear(2, 3));
  notAChild = 5;
  forward(x: T.Tensor): T.Tensor {
    let h = this.stem.forward(x);
    for (const b of this.layer1) h = b.forward(h);
    return this.head.forward(T.adaptiveAvgPool2d(h, 1));
  }
}

class Heads extends nn.Module {
  // A ModuleList and a nested Sequential holding a Sequential: indices at every level.
  branches = new nn.ModuleList([new nn.Conv2d(2, 2, 1), new nn.Sequential(new nn.BatchNorm2d(2), new nn.Sequential(new nn.PReLU(2)))]);
  proj = new nn.ConvTranspose2d(2, 1, 2, { stride: 2 });
  forward(x: T.Tensor): T.Tensor {
    return x;
  }
}

test('state-dict keys follow fields, arrays, ModuleList and Sequential indices, in PyTorch\'s order', () => {
  const { metadata: ref } = runTorchWithMeta(
    [
      'import torch.nn as nn',
      'class Block(nn.Module):',
      '    def __init__(s): super().__init__(); s.conv1 = nn.Conv2d(2, 2, 3, padding=1, bias=False); s.bn1 = nn.BatchNorm2d(2)',
      'class Net(nn.Module):',
      '    def __init__(s):',
      '        super().__init__(); s.stem = nn.Conv2d(1, 2, 3); s.layer1 = nn.ModuleList([Block(), Block()]); s.head = nn.Sequential(nn.Flatten(), nn.Linear(2, 3))',
      'class Heads(nn.Module):',
      '    def __init__(s):',
      '        super().__init__(); s.branches = nn.ModuleList([nn.Conv2d(2, 2, 1), nn.Sequential(nn.BatchNorm2d(2), nn.Sequential(nn.PReLU(2)))]); s.proj = nn.ConvTranspose2d(2, 1, 2, stride=2)',
      'for name, m in [("net", Net()), ("heads", Heads())]:',
      '    META[name + ".state"] = ",".join(m.state_dict().keys())',
      '    META[name + ".params"] = ",".join(k for k, _ in m.named_parameters())',
      '    META[name + ".buffers"] = ",".join(k for k, _ in m.named_buffers())',
      '    META[name + ".modules"] = ",".join(k for k, _ in m.named_modules())',
      '    META[name + ".shapes"] = ",".join("x".join(map(str, v.shape)) for v in m.state_dict().values())',
    ].join('\n'),
  );
  for (const [name, m] of [['net', new Net()], ['heads', new Heads()]] as [string, nn.Module][]) {
    // Order matters, not just the set: optimizers number parameters in this order (state.<i>.*).
    assert.equal(Object.keys(m.stateDict()).join(','), ref[`${name}.state`], `${name} state-dict keys`);
    assert.equal(m.namedParameters().map(([k]) => k).join(','), ref[`${name}.params`], `${name} parameters`);
    assert.equal(m.namedBuffers().map(([k]) => k).join(','), ref[`${name}.buffers`], `${name} buffers`);
    // A plain array is not a module itself (torch's ModuleList is), so module names agree only without one.
    if (name === 'heads') assert.equal(m.namedModules().map(([k]) => k).join(','), ref[`${name}.modules`], `${name} modules`);
    assert.equal(Object.values(m.stateDict()).map((t) => t.shape.join('x')).join(','), ref[`${name}.shapes`], `${name} shapes`);
  }
});

test('train()/eval() reach every module; to(float64) converts floats only; freeze stops gradients', () => {
  const net = new Net().eval();
  assert.ok(net.modules().every((m) => !m.training));
  net.train();
  assert.ok(net.modules().every((m) => m.training));
  net.to('float64');
  const sd = net.stateDict();
  assert.equal(sd['stem.weight'].dtype, 'float64');
  assert.equal(sd['layer1.0.bn1.num_batches_tracked'].dtype, 'int64');
  assert.equal(net.forward(T.randn([2, 1, 6, 6], { dtype: 'float64' })).dtype, 'float64');
  net.layer1[0].freeze();
  const y = net.forward(T.randn([2, 1, 6, 6], { dtype: 'float64' })).sum();
  y.backward();
  assert.equal(net.layer1[0].conv1.weight.grad, null);
  assert.notEqual(net.layer1[1].conv1.weight.grad, null);
  assert.equal(net.numParameters(true), net.numParameters() - net.layer1[0].numParameters());
});

const snapshot = (m: nn.Module): Record<string, number[]> => Object.fromEntries(Object.entries(m.stateDict()).map(([k, t]) => [k, t.toNumbers()]));

test('loadStateDict names every missing, unexpected and mis-shaped key and copies nothing when there is one', () => {
  const a = new Net();
  const b = new Net();
  const before = snapshot(b);
  const sd = { ...a.stateDict() };
  delete sd['head.1.bias'];
  delete sd['layer1.1.bn1.running_var'];
  sd['stem.weight'] = T.zeros([3, 1, 3, 3]);
  sd['layer1.0.bn1.num_batches_tracked'] = T.zeros([], { dtype: 'float32' }).add(0.5);
  sd['extra.weight'] = T.zeros([1]);
  sd['layer1.2.conv1.weight'] = T.zeros([2, 2, 3, 3]);
  let message = '';
  assert.throws(() => b.loadStateDict(sd), (e: Error) => ((message = e.message), true));
  for (const want of [
    /head\.1\.bias: missing/,
    /layer1\.1\.bn1\.running_var: missing/,
    /stem\.weight: shape \[3,1,3,3\] in the file, \[2,1,3,3\] in the model/,
    /layer1\.0\.bn1\.num_batches_tracked: dtype float32 in the file, int64 in the model/,
    /extra\.weight: not in the model/,
    /layer1\.2\.conv1\.weight: not in the model/,
  ]) assert.match(message, want);
  assert.match(message, /6 problem/);
  // Every tensor is as it was, including those the file had right.
  assert.deepEqual(snapshot(b), before);
  assert.notDeepEqual(snapshot(a), before);
  b.loadStateDict(a.stateDict());
  assert.deepEqual(snapshot(b), snapshot(a));
});

test('loadStateDict strict=false loads what matches and reports the rest; shapes are still enforced', () => {
  const a = new Net();
  const b = new Net();
  const sd = { ...a.stateDict() };
  delete sd['head.1.bias'];
  sd['extra.weight'] = T.zeros([1]);
  const before = b.stateDict()['head.1.bias'].toNumbers();
  assert.deepEqual(b.loadStateDict(sd, { strict: false }), { missing: ['head.1.bias'], unexpected: ['extra.weight'] });
  assert.deepEqual(b.stateDict()['stem.weight'].toNumbers(), a.stateDict()['stem.weight'].toNumbers());
  assert.deepEqual(b.stateDict()['head.1.bias'].toNumbers(), before);
  assert.throws(() => b.loadStateDict({ 'stem.weight': T.zeros([1]) }, { strict: false }), /stem\.weight: shape/);
});

test('loadStateDict copies in place: parameter objects (held by optimizers) stay the same', () => {
  const a = new Net();
  const b = new Net().to('float64');
  const params = b.parameters();
  b.loadStateDict(a.stateDict());
  b.parameters().forEach((p, i) => assert.equal(p, params[i]));
  assert.equal(b.stem.weight.dtype, 'float64');
  const diff = b.stem.weight.sub(a.stem.weight.double()).abs().max().item();
  assert.equal(diff, 0);
});

test('ReLU({ inplace: true }) overwrites its input and returns it; the default allocates', () => {
  const x = T.tensor([-1, 2, -3, 4]);
  const y = new nn.ReLU().forward(x);
  assert.deepEqual(x.toNumbers(), [-1, 2, -3, 4]);
  assert.deepEqual(y.toNumbers(), [0, 2, 0, 4]);
  const z = new nn.ReLU({ inplace: true }).forward(x);
  assert.deepEqual(x.toNumbers(), [0, 2, 0, 4]);
  assert.deepEqual(z.toNumbers(), [0, 2, 0, 4]);
});
