// torchvision ResNets with random weights (BatchNorm running statistics randomized so that eval mode
// depends on them) go through safetensors into tsvision unchanged, and give torchvision's logits.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Tensor, crossEntropy, noGrad, tidy } from '../../src/torch';
import { ResNet, resnet101, resnet18, resnet50 } from '../../src/models';
import { assertClose, runTorch } from '../helpers/pytorch';

const PY = `
import torchvision
def randomized(ctor, seed, **kw):
    torch.manual_seed(seed)
    m = ctor(**kw)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.2, 0.2)
                mod.running_mean.normal_(0, 0.2); mod.running_var.uniform_(0.5, 2.0)
                mod.num_batches_tracked.fill_(7)
    return m.eval()

def export(tag, m, x, extra=None):
    for k, v in m.state_dict().items():
        O[tag + '.sd.' + k] = v
    O[tag + '.x'] = x
    with torch.no_grad():
        O[tag + '.y'] = m(x)

r50 = randomized(torchvision.models.resnet50, 0)
export('r50', r50, torch.randn(1, 3, 224, 224))
# The same weights with layer3/layer4 strides replaced by dilation (output stride 8, DeepLab's setting).
d50 = torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True]).eval()
d50.load_state_dict(r50.state_dict())
O['d50.x'] = torch.randn(2, 3, 64, 64)
with torch.no_grad():
    O['d50.y'] = d50(O['d50.x'])
export('r101', randomized(torchvision.models.resnet101, 1), torch.randn(2, 3, 64, 64))

# Train mode (batch statistics) with gradients: the blocks' in-place ReLU and addition must leave every
# gradient as torchvision's (which uses ReLU(inplace=True) and out += identity the same way).
r18 = randomized(torchvision.models.resnet18, 2, num_classes=10).train()
for k, v in r18.state_dict().items():
    O['r18.sd.' + k] = v
O['r18.x'] = torch.randn(2, 3, 32, 32)
O['r18.t'] = torch.tensor([3, 7])
loss = F.cross_entropy(r18(O['r18.x']), O['r18.t'])
loss.backward()
O['r18.loss'] = loss.detach()
for k, p in r18.named_parameters():
    O['r18.grad.' + k] = p.grad
`;

const ref = runTorch(PY);

function stateDictOf(tag: string): Record<string, Tensor> {
  const prefix = `${tag}.sd.`;
  return Object.fromEntries(Object.entries(ref).filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t]));
}

function check(m: ResNet, tag: string, xTag = tag): void {
  const { missing, unexpected } = m.loadStateDict(stateDictOf(tag));
  assert.deepEqual([missing, unexpected], [[], []]);
  m.eval();
  const y = tidy(() => noGrad(() => m.forward(ref[`${xTag}.x`])));
  assertClose(y, ref[`${xTag}.y`], 1e-4, `${xTag} logits`);
}

test('torchvision ResNet-50 weights load unchanged and give the same logits (224×224, eval)', () => {
  check(resnet50(), 'r50');
});

test('dilated ResNet-50 (replaceStrideWithDilation [false, true, true]) matches torchvision with the same weights', () => {
  const m = resnet50({ replaceStrideWithDilation: [false, true, true] });
  check(m, 'r50', 'd50');
  const feats = tidy(() => noGrad(() => m.forwardFeatures(ref['d50.x']).map((t) => t.shape)));
  assert.deepEqual(feats, [[2, 256, 16, 16], [2, 512, 8, 8], [2, 1024, 8, 8], [2, 2048, 8, 8]]);
});

test('torchvision ResNet-101 weights load unchanged and give the same logits (2×64×64, eval)', () => {
  check(resnet101(), 'r101');
});

test('ResNet-18 in train mode: loss and every parameter gradient equal torchvision (in-place ReLU and addition)', () => {
  const m = resnet18({ numClasses: 10 });
  m.loadStateDict(stateDictOf('r18'));
  m.train();
  tidy(() => {
    const loss = crossEntropy(m.forward(ref['r18.x']), ref['r18.t']);
    loss.backward();
    assertClose(loss, ref['r18.loss'], 1e-5, 'loss');
  });
  for (const [k, p] of m.namedParameters()) assertClose(p.grad!, ref[`r18.grad.${k}`], 1e-4, `grad ${k}`);
});
