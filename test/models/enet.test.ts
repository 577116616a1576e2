// ENet against an independent PyTorch definition (scripts/reference_models.py, written from the paper and
// the authors' Torch code) with the same weights: per-pixel loss, every gradient and the BN statistics in
// train mode, logits in eval mode; the paper's parameter count; the input-size check.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { ENet } from '../../src/models/enet';
import { assertClose, runTorch } from '../helpers/pytorch';

const ref = runTorch(`
import reference_models as R
torch.manual_seed(3)
m = R.ENet(num_classes=5).train()
for mod in m.modules():
    if isinstance(mod, torch.nn.Dropout2d):
        mod.p = 0.0
with torch.no_grad():
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.2, 0.2)
        if isinstance(mod, torch.nn.PReLU):
            mod.weight.uniform_(0.1, 0.4)
for k, v in m.state_dict().items():
    O['sd.' + k] = v.clone()
x, t = torch.randn(2, 3, 32, 48), torch.randint(0, 5, (2, 32, 48))
loss = F.cross_entropy(m(x), t)
loss.backward()
O['x'], O['t'], O['loss'] = x, t, loss.detach()
for k, p in m.named_parameters():
    O['grad.' + k] = p.grad
O['stage3.7.expand.1.running_var'] = m.stage3[7].expand[1].running_var
m.eval()
with torch.no_grad():
    O['eval'] = m(x)
O['params'] = torch.tensor(sum(p.numel() for p in R.ENet(num_classes=19).parameters()))
`);

const prefixed = (p: string): Record<string, T.Tensor> =>
  Object.fromEntries(Object.entries(ref).filter(([k]) => k.startsWith(p)).map(([k, t]) => [k.slice(p.length), t]));

test('ENet (train mode): per-pixel loss, every gradient and BN statistics equal the PyTorch reference', () => {
  const m = new ENet({ numClasses: 5, dropoutStage1: 0, dropout: 0 });
  const { missing, unexpected } = m.loadStateDict(prefixed('sd.'));
  assert.deepEqual([missing, unexpected], [[], []]);
  m.train();
  T.tidy(() => {
    const loss = T.crossEntropy(m.forward(ref.x), ref.t);
    loss.backward();
    assertClose(loss, ref.loss, 1e-5, 'loss');
  });
  const grads = prefixed('grad.');
  const params = m.namedParameters();
  assert.equal(params.length, Object.keys(grads).length);
  for (const [k, p] of params) assertClose(p.grad!, grads[k], 2e-4, `grad ${k}`);
  assertClose(m.stateDict()['stage3.7.expand.1.running_var'], ref['stage3.7.expand.1.running_var'], 1e-5, 'running_var after one step');
  m.eval();
  assertClose(T.noGrad(() => m.forward(ref.x)), ref.eval, 1e-4, 'eval-mode logits');
});

test('ENet has the paper\'s 0.37M parameters, keeps the input resolution and refuses sizes it cannot restore', () => {
  const m = new ENet({ numClasses: 19 });
  assert.equal(m.numParameters(), ref.params.item());
  assert.ok(Math.abs(m.numParameters() / 1e6 - 0.37) < 0.01, `${m.numParameters()} parameters`);
  m.eval();
  assert.deepEqual(T.noGrad(() => m.forward(T.randn([1, 3, 24, 40]))).shape, [1, 19, 24, 40]);
  assert.throws(() => m.forward(T.randn([1, 3, 30, 40])), /multiples of 8.*30×40/);
});
