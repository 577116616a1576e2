// The SE block against torchvision.ops.SqueezeExcitation, and an SE bottleneck (SE on the residual branch
// before the addition, Hu et al. Fig. 3) against torchvision's Bottleneck with the same block added —
// forward and backward, same weights, one Python process.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Tensor, randn, tidy } from '../../src/torch';
import { Bottleneck, SqueezeExcite } from '../../src/models';
import { assertClose, runTorch } from '../helpers/pytorch';

const se = new SqueezeExcite(32); // 32 → 2 → 32 at the paper's r = 16
const block = new Bottleneck(64, 16, { stride: 1, downsample: null, dilation: 1, se: 16 });

const inputs: Record<string, Tensor> = { 'se.x': randn([2, 32, 5, 7]).keep(), 'b.x': randn([2, 64, 6, 6]).keep() };
for (const [k, t] of Object.entries(se.stateDict())) inputs[`se.sd.${k}`] = t;
for (const [k, t] of Object.entries(block.stateDict())) inputs[`b.sd.${k}`] = t;
// Output cotangents (the outputs keep their input's shape).
inputs['se.g'] = randn([2, 32, 5, 7]).keep();
inputs['b.g'] = randn([2, 64, 6, 6]).keep();

const PY = `
from torchvision.ops import SqueezeExcitation
from torchvision.models.resnet import Bottleneck

def sd(tag):
    p = tag + '.sd.'
    return {k[len(p):]: v for k, v in I.items() if k.startswith(p)}

def run(tag, m, fwd):
    m.load_state_dict(sd(tag))
    x = I[tag + '.x'].clone().requires_grad_()
    y = fwd(m, x)
    (y * I[tag + '.g']).sum().backward()
    O[tag + '.y'] = y.detach(); O[tag + '.dx'] = x.grad
    for k, p in m.named_parameters():
        O[tag + '.d.' + k] = p.grad

run('se', SqueezeExcitation(32, 2), lambda m, x: m(x))

def se_bottleneck(m, x):
    out = m.relu(m.bn1(m.conv1(x)))
    out = m.relu(m.bn2(m.conv2(out)))
    out = m.se(m.bn3(m.conv3(out)))
    return m.relu(out + x)
b = Bottleneck(64, 16)
b.se = SqueezeExcitation(64, 4)
run('b', b.train(), se_bottleneck)
`;

const ref = runTorch(PY, inputs);

function check(tag: string, m: SqueezeExcite | Bottleneck): void {
  const x = inputs[`${tag}.x`].clone().requiresGrad_();
  tidy(() => {
    const y = m.forward(x);
    assertClose(y, ref[`${tag}.y`], 1e-5, 'output');
    y.backward(inputs[`${tag}.g`]);
    return null;
  });
  assertClose(x.grad!, ref[`${tag}.dx`], 1e-5, 'input gradient');
  const params = m.namedParameters();
  assert.ok(params.length > 0);
  for (const [k, p] of params) assertClose(p.grad!, ref[`${tag}.d.${k}`], 1e-5, `gradient of ${k}`);
}

test('SqueezeExcite(32, r=16) equals torchvision.ops.SqueezeExcitation(32, 2): output and all gradients', () => {
  assert.deepEqual(Object.keys(se.stateDict()), ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']);
  check('se', se);
});

test('SE bottleneck (train mode) equals torchvision Bottleneck + SE before the addition: output and all gradients', () => {
  block.train();
  check('b', block);
});
