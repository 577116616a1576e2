// Every registered model on small one-channel images (28, 32, 64 px: Fashion-MNIST, CIFAR, downscaled
// ImageNet) with its small-input stem, 10 classes.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { noGrad, randn, tidy } from '../../src/torch';
import { Classifier, createModel, listModels, ModelName } from '../../src/models';

const outShape = (m: Classifier, shape: number[]): number[] => tidy(() => noGrad(() => m.eval().forward(randn(shape)).shape));

// The deep ResNets differ from resnet18 only in their blocks, which keep the spatial size, so 28 px (batch 2)
// covers them; the rest also run at 32 and 64 px.
const deep: ModelName[] = ['resnet34', 'resnet50', 'resnet101', 'se_resnet50'];
const sizesFor = (name: ModelName): number[] => (deep.includes(name) ? [] : [32, 64]);

for (const name of listModels()) {
  test(`${name}: [N, 1, s, s] → [N, 10] on small inputs (smallInput: true)`, () => {
    const m = createModel(name, { numClasses: 10, inChannels: 1, smallInput: true });
    assert.deepEqual(outShape(m, [2, 1, 28, 28]), [2, 10], '28 px, batch of 2');
    for (const s of sizesFor(name)) assert.deepEqual(outShape(m, [1, 1, s, s]), [1, 10], `${s} px`);
  });
}

