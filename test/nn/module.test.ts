// Module bookkeeping: keys found from fields, modes, dtype moves, freezing, and strict state-dict loading.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import * as nn from '../../src/nn';
import { runTorch } from '../helpers/pytorch';

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

test('state-dict keys follow fields, arrays and Sequential indices, as PyTorch names them', () => {
  const keys = Object.keys(new Net().stateDict());
  const ref = runTorch(
    [
      'import torch.nn as nn',
      'class Block(nn.Module):',
      '    def __init__(s): super().__init__(); s.conv1 = nn.Conv2d(2, 2, 3, padding=1, bias=False); s.bn1 = nn.BatchNorm2d(2)',
      'class Net(nn.Module):',
      '    def __init__(s):',
      '        super().__init__(); s.stem = nn.Conv2d(1, 2, 3); s.layer1 = nn.ModuleList([Block(), Block()]); s.head = nn.Sequential(nn.Flatten(), nn.Linear(2, 3))',
      'for k, v in Net().state_dict().items(): O[k] = v',
    ].join('\n'),
  );
  assert.deepEqual([...keys].sort(), Object.keys(ref).sort());
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

test('loadStateDict names every problem and copies nothing when there is one', () => {
  const a = new Net();
  const b = new Net();
  const before = b.stateDict()['stem.weight'].toNumbers();
  const sd = { ...a.stateDict() };
  delete sd['head.1.bias'];
  sd['stem.weight'] = T.zeros([3, 1, 3, 3]);
  sd['extra.weight'] = T.zeros([1]);
  assert.throws(
    () => b.loadStateDict(sd),
    (e: Error) => /head\.1\.bias: missing/.test(e.message) && /stem\.weight: shape \[3,1,3,3\] in the file, \[2,1,3,3\]/.test(e.message) && /extra\.weight: not in the model/.test(e.message),
  );
  assert.deepEqual(b.stateDict()['stem.weight'].toNumbers(), before);
  b.loadStateDict(a.stateDict());
  assert.deepEqual(b.stateDict()['stem.weight'].toNumbers(), a.stateDict()['stem.weight'].toNumbers());
});
