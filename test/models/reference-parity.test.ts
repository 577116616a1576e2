// Xception, MobileNet v1 and SE-ResNet-50 against their independent PyTorch definitions
// (scripts/reference_models.py) with the same weights, in train mode: loss and every parameter gradient.
// This pins down the forward graph itself (order of ReLU/BN, shortcuts, in-place ops), not only the shapes.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Tensor, crossEntropy, tidy } from '../../src/torch';
import { createModel, ModelName } from '../../src/models';
import { assertClose, runTorch } from '../helpers/pytorch';

// (model, input size): inputs as small as each architecture allows, to keep the test quick.
const CASES: [ModelName, number][] = [['xception', 71], ['mobilenet_v1', 64], ['se_resnet50', 64]];

const ref = runTorch(`
import reference_models as R
for i, (name, size) in enumerate(${JSON.stringify(CASES)}):
    torch.manual_seed(10 + i)
    m = R.MODELS[name](num_classes=10).train()
    if hasattr(m, 'dropout'):
        m.dropout.p = 0.0
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.2, 0.2)
    for k, v in m.state_dict().items():
        O[name + '.sd.' + k] = v.clone()  # before the step updates the running statistics
    x, t = torch.randn(2, 3, size, size), torch.tensor([1, 8])
    loss = F.cross_entropy(m(x), t)
    loss.backward()
    O[name + '.x'], O[name + '.t'], O[name + '.loss'] = x, t, loss.detach()
    for k, p in m.named_parameters():
        O[name + '.grad.' + k] = p.grad
    O[name + '.running_mean'] = next(v for k, v in m.state_dict().items() if k.endswith('running_mean'))
`);

const prefixed = (p: string): Record<string, Tensor> =>
  Object.fromEntries(Object.entries(ref).filter(([k]) => k.startsWith(p)).map(([k, t]) => [k.slice(p.length), t]));

for (const [name, size] of CASES) {
  test(`${name} (train mode, ${size} px): loss, every gradient and BN running statistics equal the PyTorch reference`, () => {
    // Dropout off on both sides (p = 0 there): its random masks cannot be matched across libraries.
    const m = name === 'se_resnet50' ? createModel(name, { numClasses: 10 }) : createModel(name, { numClasses: 10, dropout: 0 });
    const { missing, unexpected } = m.loadStateDict(prefixed(`${name}.sd.`));
    assert.deepEqual([missing, unexpected], [[], []]);
    m.train();
    tidy(() => {
      const loss = crossEntropy(m.forward(ref[`${name}.x`]), ref[`${name}.t`]);
      loss.backward();
      assertClose(loss, ref[`${name}.loss`], 1e-5, `${name} loss`);
    });
    const grads = prefixed(`${name}.grad.`);
    const params = m.namedParameters();
    assert.equal(params.length, Object.keys(grads).length);
    for (const [k, p] of params) assertClose(p.grad!, grads[k], 2e-4, `${name} grad ${k}`);
    const firstMean = Object.entries(m.stateDict()).find(([k]) => k.endsWith('running_mean'))![1];
    assertClose(firstMean, ref[`${name}.running_mean`], 1e-5, `${name} first running_mean after one step`);
  });
}
