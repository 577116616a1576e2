// Output shapes: MobileNet at every width α and resolution ρ, the ImageNet-size models at their native input
// sizes, the spatial sizes the small-input stems are meant to keep, options, the registry. (Every registered
// model on 28/32/64 px images: shapes-small.test.ts.)
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Tensor, noGrad, randn, tidy } from '../../src/torch';
import { Module } from '../../src/nn';
import { Classifier, createModel, isModelName, listModels, ModelName, resnet18, Xception } from '../../src/models';
import { summary } from '../../src/metrics/summary';

const outShape = (m: Classifier, shape: number[]): number[] => tidy(() => noGrad(() => m.eval().forward(randn(shape)).shape));

test('the registry lists every model and rejects unknown names', () => {
  assert.deepEqual(listModels().sort(), ['cnn', 'mobilenet_v1', 'resnet101', 'resnet18', 'resnet34', 'resnet50', 'resnet_small', 'se_resnet50', 'shallow', 'xception']);
  assert.ok(isModelName('xception') && !isModelName('vgg16'));
  assert.throws(() => createModel('vgg16' as ModelName, {}), /unknown model 'vgg16'.*resnet18/);
});

/** The output shapes of the modules named, from one summary pass. */
function shapesAt(m: Module, input: number[], names: string[]): number[][] {
  const rows = summary(m, input).rows;
  return names.map((n) => {
    const r = rows.find((x) => x.name === n);
    if (!r) throw new Error(`no row ${n}`);
    return r.outputShape;
  });
}

test('small-input stems keep resolution: 28 px enters the first stage at 28×28 and ends at 4×4 / 2×2', () => {
  // ResNet: no stride or max-pool before layer1; layers 2–4 halve: 28 → 14 → 7 → 4.
  assert.deepEqual(shapesAt(resnet18({ inChannels: 1, smallInput: true }), [1, 1, 28, 28], ['layer1.1.bn2', 'layer4.1.bn2']), [[1, 64, 28, 28], [1, 512, 4, 4]]);
  // MobileNet: a stride-1 stem, then its four stride-2 blocks: 28 → 14 → 7 → 4 → 2.
  assert.deepEqual(
    shapesAt(createModel('mobilenet_v1', { inChannels: 1, smallInput: true }), [1, 1, 28, 28], ['features.0.0', 'features.13.pointwise.0']),
    [[1, 32, 28, 28], [1, 1024, 2, 2]],
  );
  // Xception: padded stride-1 stem convolutions, then the four pooling blocks.
  assert.deepEqual(shapesAt(new Xception({ inChannels: 1, smallInput: true }), [1, 1, 28, 28], ['conv2', 'bn4']), [[1, 64, 28, 28], [1, 2048, 2, 2]]);
  // The compact CNN: two 2×2 pools, 28 → 7, the head's native size.
  assert.deepEqual(shapesAt(createModel('cnn', { inChannels: 1 }), [1, 1, 28, 28], ['features.5']), [[1, 64, 7, 7]]);
});

test('ImageNet stems: ResNet-18 224 → 7×7, Xception 299 → 10×10 (Fig. 5: 149, 147, 74, 37, 19, 10)', () => {
  assert.deepEqual(shapesAt(resnet18(), [1, 3, 224, 224], ['maxpool', 'layer4.1.bn2', 'fc']), [[1, 64, 56, 56], [1, 512, 7, 7], [1, 1000]]);
  assert.deepEqual(
    shapesAt(new Xception(), [1, 3, 299, 299], ['conv1', 'conv2', 'block1.rep.5', 'block2.rep.6', 'block3.rep.6', 'block11.rep.8', 'block12.rep.6', 'bn4', 'fc']),
    [[1, 32, 149, 149], [1, 64, 147, 147], [1, 128, 74, 74], [1, 256, 37, 37], [1, 728, 19, 19], [1, 728, 19, 19], [1, 1024, 10, 10], [1, 2048, 10, 10], [1, 1000]],
  );
});

test('MobileNet v1 at every width α and resolution ρ: final map ρ/32, width 1024·α, 1000 logits', () => {
  for (const alpha of [1, 0.75, 0.5, 0.25]) {
    const m = createModel('mobilenet_v1', { alpha });
    for (const size of [224, 192, 160, 128]) {
      const [last, logits] = shapesAt(m, [1, 3, size, size], ['features.13.pointwise.2', 'fc']);
      assert.deepEqual(last, [1, 1024 * alpha, size / 32, size / 32], `α=${alpha} ρ=${size}`);
      assert.deepEqual(logits, [1, 1000]);
    }
  }
});

test('SE variants and options build and run: mobilenet/xception/resnet_small with se, resnet_small depth 32', () => {
  const variants: Classifier[] = [
    createModel('mobilenet_v1', { alpha: 0.25, se: 16, numClasses: 10, inChannels: 1, smallInput: true }),
    createModel('xception', { se: 16, middleRepeats: 2, numClasses: 10, inChannels: 1, smallInput: true }),
    createModel('resnet_small', { depth: 32, se: 16, numClasses: 10, inChannels: 1 }),
    createModel('resnet_small', { numClasses: 10, smallInput: false }),
  ];
  const inputs = [[2, 1, 28, 28], [2, 1, 32, 32], [2, 1, 28, 28], [2, 3, 64, 64]];
  variants.forEach((m, i) => assert.deepEqual(outShape(m, inputs[i]), [2, 10]));
  const keys = Object.keys(variants[0].stateDict());
  assert.ok(keys.includes('features.1.se.fc1.weight') && keys.includes('features.13.se.fc2.bias'));
  assert.ok(Object.keys(variants[1].stateDict()).includes('block6.se.fc1.weight'));
  assert.equal(Object.keys(variants[1].stateDict()).some((k) => k.startsWith('block7.')), false, 'middleRepeats: 2 → block4, block5, exit block6');
});

test('zeroInitResidual zeroes each block’s last BN γ; the default init is torchvision’s (BN γ = 1, β = 0)', () => {
  const z = resnet18({ zeroInitResidual: true });
  const sd = z.stateDict();
  const sum = (t: Tensor): number => t.abs().sum().item();
  assert.equal(sum(sd['layer1.0.bn2.weight']), 0);
  assert.equal(sum(sd['layer1.0.bn1.weight']), 64);
  const plain = resnet18().stateDict();
  assert.equal(sum(plain['layer1.0.bn2.weight']), 64);
  assert.equal(sum(plain['bn1.bias']), 0);
  // He-normal, fan_out: std √(2 / (64·7·7)) for conv1 (3 → 64, 7×7).
  const w = plain['conv1.weight'];
  const std = w.std().item();
  assert.ok(Math.abs(std - Math.sqrt(2 / (64 * 49))) < 0.1 * std, `conv1 std ${std}`);
});
