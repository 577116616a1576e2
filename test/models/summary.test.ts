// summary(): shapes, parameters and mult-adds per leaf module by one observed forward pass, leaving the
// model exactly as it was.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Tensor } from '../../src/torch';
import { BatchNorm2d, Conv2d, ConvTranspose2d, Flatten, Linear, Module, ReLU, Sequential } from '../../src/nn';
import { createModel, createSegmentationModel } from '../../src/models';
import { formatSummary, summary } from '../../src/metrics/summary';

test('a small network by hand: shapes, params and mult-adds per layer', () => {
  const net = new Sequential(
    new Conv2d(3, 8, 3, { stride: 2, padding: 1 }), // 8×8 out
    new BatchNorm2d(8),
    new ReLU(),
    new Conv2d(8, 8, 3, { padding: 1, groups: 8, bias: false }), // depthwise
    new Flatten(),
    new Linear(8 * 8 * 8, 5),
  );
  const s = summary(net, [2, 3, 16, 16]);
  assert.deepEqual(
    s.rows.map((r) => [r.name, r.type, r.outputShape, r.params, r.multAdds]),
    [
      ['0', 'Conv2d', [2, 8, 8, 8], 8 * 3 * 9 + 8, 8 * 8 * 8 * 3 * 9],
      ['1', 'BatchNorm2d', [2, 8, 8, 8], 16, 0],
      ['2', 'ReLU', [2, 8, 8, 8], 0, 0],
      ['3', 'Conv2d', [2, 8, 8, 8], 8 * 9, 8 * 8 * 8 * 1 * 9],
      ['4', 'Flatten', [2, 512], 0, 0],
      ['5', 'Linear', [2, 5], 512 * 5 + 5, 512 * 5],
    ],
  );
  assert.equal(s.totalParams, net.numParameters());
  assert.equal(s.usedParams, s.totalParams, 'every layer ran');
  assert.equal(s.totalMultAdds, 8 * 8 * 8 * 27 + 8 * 8 * 8 * 9 + 512 * 5);
});

test('usedParams leaves out a head that only training runs (PSPNet\'s auxiliary one), counted by hand', () => {
  // The auxiliary head of a width-8 ResNet-18 PSPNet reads layer3's 32 channels: a 3×3 conv to 16 filters,
  // BN, and a 1×1 conv with bias to 3 classes.
  const aux = 32 * 16 * 9 + 2 * 16 + 16 * 3 + 3;
  const withAux = summary(createSegmentationModel('pspnet', { backbone: 'resnet18', width: 8, headChannels: 16, auxChannels: 16, numClasses: 3 }), [1, 3, 32, 32]);
  assert.equal(withAux.totalParams - withAux.usedParams, aux);
  const without = summary(createSegmentationModel('pspnet', { backbone: 'resnet18', width: 8, headChannels: 16, auxChannels: 16, numClasses: 3, auxWeight: 0 }), [1, 3, 32, 32]);
  assert.deepEqual([without.totalParams, without.usedParams], [withAux.usedParams, withAux.usedParams]);
  // The printed summary says so, and only where the two differ.
  assert.ok(formatSummary(withAux).includes(`Params used at inference: ${withAux.usedParams.toLocaleString('en-US')} (${aux.toLocaleString('en-US')} only in training)`));
  assert.ok(!formatSummary(without).includes('Params used at inference'));
});

test('the model is left untouched: forward methods, training flags, BN statistics', () => {
  const m = createModel('resnet_small', { numClasses: 10, inChannels: 1 });
  m.train();
  m.layer1.at(0).training = false; // a mixed state must come back as it was
  const before = m.stateDict()['bn1.running_mean'].clone();
  const s = summary(m, [1, 1, 28, 28]);
  for (const mod of m.modules()) assert.equal(Object.prototype.hasOwnProperty.call(mod, 'forward'), false);
  assert.equal(m.training, true);
  assert.equal(m.layer1.at(0).training, false);
  assert.equal(m.layer1.at(1).training, true);
  assert.deepEqual(m.stateDict()['bn1.running_mean'].toNumbers(), before.toNumbers());
  // Every parameter sits in a leaf that ran, so the rows add up to the total.
  assert.equal(s.rows.reduce((a, r) => a + r.params, 0), s.totalParams);
  assert.equal(s.trainableParams, s.totalParams);
  m.freeze();
  assert.equal(summary(m, [1, 1, 28, 28]).trainableParams, 0);
});

test('forward methods are restored when the forward pass throws', () => {
  class Broken extends Module {
    a = new ReLU();
    forward(x: Tensor): Tensor {
      this.a.forward(x);
      throw new Error('boom');
    }
  }
  const b = new Broken();
  assert.throws(() => summary(b, [1, 2]), /boom/);
  assert.equal(Object.prototype.hasOwnProperty.call(b.a, 'forward'), false);
});

test('formatSummary: one line per row and the totals', () => {
  const s = summary(createModel('cnn', { inChannels: 1, numClasses: 10 }), [1, 1, 28, 28]);
  const text = formatSummary(s, { title: 'cnn' });
  const lines = text.split('\n');
  assert.equal(lines[0], 'cnn');
  assert.ok(lines.some((l) => /^features\.0\.0 \(Conv2d\)\s+\[1, 32, 28, 28\]\s+288\s+225,792$/.test(l)), text);
  assert.ok(text.includes(`Total params: ${s.totalParams.toLocaleString('en-US')}`));
  assert.ok(text.includes(`Mult-adds per sample: ${s.totalMultAdds.toLocaleString('en-US')}`));
  assert.equal(lines.filter((l) => l.includes('(')).length, s.rows.length + 3); // rows + the three totals with "(...)"
});

test('a transposed convolution counts each input pixel scattered through its kernel: inH·inW·inC·outC/groups·kH·kW', () => {
  const m = new Sequential(new ConvTranspose2d(4, 6, 3, { stride: 2, padding: 1, outputPadding: 1 }));
  const r = summary(m, [1, 4, 5, 7]);
  assert.deepEqual(r.rows[0].outputShape, [1, 6, 10, 14]);
  assert.equal(r.rows[0].multAdds, 5 * 7 * 4 * 6 * 3 * 3);
  assert.equal(r.totalParams, 4 * 6 * 9 + 6);
});
