// torch.autocast (mixed precision) against PyTorch's own: the same dispatcher decides which op runs in
// bfloat16, so on the same weights a conv/BN/ReLU/linear step gives PyTorch's loss and gradients; the state
// nests and unwinds; transposed convolutions stay correct (libtorch 1.13's bfloat16 one is a plain conv).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import * as nn from '../../src/nn';
import { assertClose, runTorch } from '../helpers/pytorch';

// Without AVX-512 libtorch's own bfloat16 kernels sum in bfloat16; tsvision then computes convolutions and
// linear layers in float32 from the bfloat16 operands and rounds once (src/torch/functional.ts), as oneDNN does
// on AVX-512. The reference computes that rule itself there, from the operator definitions.
const EMULATE = T.bfloat16Support() === 'slow';
const ref = runTorch(`
EMULATE = ${EMULATE ? 'True' : 'False'}
def low(f, *ts):
    if not EMULATE: return f(*ts)
    with torch.autocast('cpu', enabled=False):
        return f(*[t.bfloat16().float() for t in ts]).bfloat16()
torch.manual_seed(3)
conv = torch.nn.Conv2d(3, 8, 3, padding=1)
bn = torch.nn.BatchNorm2d(8)
fc = torch.nn.Linear(8 * 8 * 8, 5)
x, t = torch.randn(4, 3, 16, 16), torch.tensor([0, 3, 1, 4])
for name, m in [('conv', conv), ('bn', bn), ('fc', fc)]:
    for k, v in m.state_dict().items():
        O[name + '.' + k] = v.clone()
O['x'], O['t'] = x, t
with torch.autocast('cpu', dtype=torch.bfloat16):
    h = low(lambda a, w, b: F.conv2d(a, w, b, padding=1), x, conv.weight, conv.bias)
    O['h_is_bf16'] = torch.tensor(h.dtype == torch.bfloat16)
    y = F.max_pool2d(F.relu(bn(h)), 2)
    logits = low(F.linear, y.flatten(1), fc.weight, fc.bias)
    loss = F.cross_entropy(logits, t)
O['logits'], O['loss'] = logits.float(), loss.float()
O['loss_is_f32'] = torch.tensor(loss.dtype == torch.float32)
loss.backward()
O['g.conv.weight'], O['g.fc.weight'], O['g.bn.weight'] = conv.weight.grad, fc.weight.grad, bn.weight.grad
`);

test('autocast: a conv/BN/ReLU/pool/linear step in bfloat16 gives PyTorch autocast\'s dtypes, loss and gradients', () => {
  const conv = new nn.Conv2d(3, 8, 3, { padding: 1 });
  const bn = new nn.BatchNorm2d(8);
  const fc = new nn.Linear(8 * 8 * 8, 5);
  for (const [name, m] of [['conv', conv], ['bn', bn], ['fc', fc]] as const) {
    const sd = Object.fromEntries(Object.entries(ref).filter(([k]) => k.startsWith(`${name}.`)).map(([k, v]) => [k.slice(name.length + 1), v]));
    const { missing, unexpected } = m.loadStateDict(sd);
    assert.deepEqual([missing, unexpected], [[], []]);
  }
  assert.equal(T.isAutocastEnabled(), false);
  const { logits, loss, hDtype } = T.autocast(() => {
    assert.equal(T.isAutocastEnabled(), true);
    const h = conv.forward(ref.x);
    const y = T.maxPool2d(bn.forward(h).relu(), 2);
    const logits = fc.forward(y.flatten(1));
    return { logits, loss: T.crossEntropy(logits, ref.t), hDtype: h.dtype };
  });
  assert.equal(T.isAutocastEnabled(), false, 'autocast ends with fn');
  assert.equal(hDtype, 'bfloat16', 'the convolution ran in bfloat16');
  assert.deepEqual([Boolean(ref.h_is_bf16.item()), Boolean(ref.loss_is_f32.item())], [true, true], 'PyTorch: the same dtypes');
  assert.equal(loss.dtype, 'float32', 'cross-entropy is on autocast\'s float32 list');
  assertClose(logits.float(), ref.logits, 1e-3, 'logits');
  assertClose(loss, ref.loss, 1e-4, 'loss');
  loss.backward();
  // Parameters stay float32; their gradients arrive in float32 through the recorded casts.
  assert.equal(conv.weight.grad!.dtype, 'float32');
  assertClose(conv.weight.grad!, ref['g.conv.weight'], 2e-2, 'conv weight gradient');
  assertClose(fc.weight.grad!, ref['g.fc.weight'], 2e-2, 'linear weight gradient');
  assertClose(bn.weight!.grad!, ref['g.bn.weight'], 2e-2, 'BN weight gradient');
});

test('autocast nests, can be switched off inside, restores the state after an error, and refuses async fns', () => {
  const a = T.randn([4, 4]);
  T.autocast(() => {
    assert.equal(a.matmul(a).dtype, 'bfloat16');
    T.autocast(() => assert.equal(a.matmul(a).dtype, 'float32'), { enabled: false });
    assert.equal(a.matmul(a).dtype, 'bfloat16', 'the outer region is back');
  });
  assert.equal(a.matmul(a).dtype, 'float32');
  assert.throws(() => T.autocast(() => { throw new Error('boom'); }), /boom/);
  assert.equal(T.isAutocastEnabled(), false, 'an error unwinds the state');
  assert.throws(() => T.autocast(async () => 1), /fn must be synchronous/);
  assert.throws(() => T.autocast(() => 1, { dtype: 'float64' as never }), /dtype must be 'bfloat16' or 'float16'/);
});

test('a transposed convolution under autocast, fed a bfloat16 activation as in ENet\'s decoder, keeps its shape and values', () => {
  T.manualSeed(5);
  const up = new nn.ConvTranspose2d(6, 4, 3, { stride: 2, padding: 1, outputPadding: 1 });
  const x = T.randn([1, 6, 8, 16]);
  const want = up.forward(x);
  // CPU autocast leaves transposed convolutions to the input's dtype; libtorch 1.13's bfloat16 one is a plain conv.
  const got = T.autocast(() => up.forward(x.to('bfloat16')));
  assert.deepEqual(got.shape, [1, 4, 16, 32]);
  assertClose(got.float(), want, 2e-2, 'within bfloat16 rounding of float32');
});
