// Parameter counts and state-dict layouts against independent references: torchvision's ResNets, SE-ResNet-50,
// Xception and MobileNet v1 in PyTorch (scripts/reference_models.py; one Python process for the file), the
// papers' published totals, and TF-slim's MobileNet v1 table.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { BatchNorm2d, Conv2d, Linear, Module } from '../../src/nn';
import { createModel, ModelName, MOBILENET_V1_LAYERS } from '../../src/models';
import { summary } from '../../src/metrics/summary';
import { runTorchWithMeta } from '../helpers/pytorch';

// The references: torchvision's ResNets, and SE-ResNet-50, Xception and MobileNet v1 as written independently
// in scripts/reference_models.py (shared with bench/models_torch.py).
const PY = `
import json, torchvision
import reference_models as R

refs = {
    'resnet18': torchvision.models.resnet18(), 'resnet34': torchvision.models.resnet34(),
    'resnet50': torchvision.models.resnet50(), 'resnet101': torchvision.models.resnet101(),
    'se_resnet50': R.se_resnet50(), 'xception': R.Xception(), 'mobilenet_v1': R.MobileNetV1(),
}
for name, m in refs.items():
    META[name] = json.dumps({k: list(v.shape) for k, v in m.state_dict().items()})
    META[name + '.params'] = str(sum(p.numel() for p in m.parameters()))
`;

const { metadata: ref } = runTorchWithMeta(PY);

const shapes = (m: Module): Record<string, number[]> => Object.fromEntries(Object.entries(m.stateDict()).map(([k, t]) => [k, t.shape]));

const referenced: ModelName[] = ['resnet18', 'resnet34', 'resnet50', 'resnet101', 'se_resnet50', 'xception', 'mobilenet_v1'];
for (const name of referenced) {
  test(`${name}: parameter count and every state-dict key and shape equal the PyTorch reference`, () => {
    const m = createModel(name, {});
    assert.equal(m.numParameters(), Number(ref[`${name}.params`]));
    assert.deepEqual(shapes(m), JSON.parse(ref[name]) as Record<string, number[]>);
  });
}

test('published totals: SE-ResNet-50 28.09M (Hu et al. §4: ResNet-50 + ~2.5M), Xception 22,855,952 (Chollet Table 3)', () => {
  // The exact counts of the two papers' architectures at 1000 classes, as the reference ports report them.
  assert.equal(createModel('se_resnet50', {}).numParameters(), 28_088_024);
  assert.equal(createModel('xception', {}).numParameters(), 22_855_952);
  assert.equal((createModel('resnet50', {}).numParameters() / 1e6).toFixed(1), '25.6'); // He et al.: 25.6M (torchvision doc)
});

/**
 * TF-slim's MobileNet v1 table (mobilenet_v1.md) counts the checkpoint's variables: convolution and logits
 * weights and biases, and per BatchNorm channel β plus the two moving averages — slim's batch_norm has no γ
 * by default (scale=False). In PyTorch's convention (γ and β trainable, running stats as buffers) the same
 * network has one fewer number per BN channel than TF-slim counts and two fewer than torchinfo would list
 * with buffers.
 */
function tfSlimCount(m: Module): number {
  let n = 0;
  for (const mod of m.modules()) {
    if (mod instanceof Conv2d || mod instanceof Linear) n += mod.parameters().reduce((a, p) => a + p.numel(), 0);
    else if (mod instanceof BatchNorm2d) n += 3 * mod.numFeatures;
  }
  return n;
}

/** Table 1 by hand: the parameters of MobileNet v1 at width α in PyTorch's convention. */
function table1Params(alpha: number, classes: number): number {
  const d = (c: number): number => Math.max(8, Math.round(c * alpha));
  let c = d(32);
  let n = 3 * 9 * c + 2 * c; // stem conv + BN γ, β
  for (const [out] of MOBILENET_V1_LAYERS) {
    n += 9 * c + 2 * c; // depthwise 3×3 + BN
    n += c * d(out) + 2 * d(out); // pointwise 1×1 + BN
    c = d(out);
  }
  return n + c * classes + classes;
}

test('MobileNet v1 parameters: TF-slim 4.24M / 2.59M / 1.34M / 0.47M for α = 1, 0.75, 0.5, 0.25', () => {
  const table: [number, number][] = [[1, 4.24], [0.75, 2.59], [0.5, 1.34], [0.25, 0.47]];
  for (const [alpha, millions] of table) {
    const m = createModel('mobilenet_v1', { alpha, numClasses: 1000 });
    assert.equal(m.numParameters(), table1Params(alpha, 1000), `α=${alpha}: PyTorch-convention count`);
    assert.equal(Math.round(tfSlimCount(m) / 1e4) / 100, millions, `α=${alpha}: TF-slim-convention count ${tfSlimCount(m)}`);
  }
});

test('MobileNet v1 mult-adds (convs + classifier, no bias adds): 569 / 418 / 291 / 186 M at 224 / 192 / 160 / 128 px', () => {
  const m = createModel('mobilenet_v1', { alpha: 1 });
  const table: [number, number][] = [[224, 569], [192, 418], [160, 291], [128, 186]];
  for (const [size, millions] of table) {
    const s = summary(m, [1, 3, size, size]);
    assert.equal(Math.round(s.totalMultAdds / 1e6), millions, `${size} px: ${s.totalMultAdds}`);
  }
  // Paper Table 6 (224 px, width multiplier): 569 / 325 / 149 / 41 M for α = 1, 0.75, 0.5, 0.25.
  const widths: [number, number][] = [[0.75, 325], [0.5, 149], [0.25, 41]];
  for (const [alpha, millions] of widths) {
    const s = summary(createModel('mobilenet_v1', { alpha }), [1, 3, 224, 224]);
    assert.equal(Math.round(s.totalMultAdds / 1e6), millions, `α=${alpha}: ${s.totalMultAdds}`);
  }
});

test('options change the counts as the papers say: SE adds 2C²/r + C/r + C per block, numClasses and inChannels resize the ends', () => {
  const plain = createModel('resnet_small', { depth: 20 }).numParameters();
  const se = createModel('resnet_small', { depth: 20, se: 16 }).numParameters();
  // Three stages of three BasicBlocks on 16, 32, 64 channels.
  const seBlock = (c: number): number => { const h = Math.max(1, Math.round(c / 16)); return c * h + h + h * c + c; };
  assert.equal(se - plain, 3 * (seBlock(16) + seBlock(32) + seBlock(64)));
  const r10 = createModel('resnet18', { numClasses: 10, inChannels: 1 }).numParameters();
  assert.equal(createModel('resnet18', {}).numParameters() - r10, 512 * 990 + 990 + 64 * 2 * 49);
});
