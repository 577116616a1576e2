// mIoU and pixel accuracy: hand-computed on a tiny map, and against numpy's bincount on random logits with
// ignored pixels, accumulated over two batches.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { SegmentationMeter, perImageScores } from '../../src/metrics/segmentation';
import { runTorch } from '../helpers/pytorch';

test('by hand: 3 classes, one ignored pixel', () => {
  const m = new SegmentationMeter(3);
  // target 0 0 1 / 1 2 255, prediction 0 1 1 / 1 1 2 → TP: c0 1, c1 2, c2 0; c0: FN 1; c1: FP 2; c2: FN 1.
  m.update(T.tensor([[[0, 1, 1], [1, 1, 2]]], { dtype: 'int64' }), T.tensor([[[0, 0, 1], [1, 2, 255]]], { dtype: 'int64' }));
  assert.deepEqual(m.confusion(), [[1, 1, 0], [0, 2, 0], [0, 1, 0]]);
  assert.deepEqual(m.iou(), [1 / 2, 2 / 4, 0]);
  assert.equal(m.meanIoU(), (0.5 + 0.5 + 0) / 3);
  assert.equal(m.pixelAccuracy(), 3 / 5);
  assert.throws(() => m.update(T.zeros([1, 2, 2], { dtype: 'int64' }), T.full([1, 2, 2], 3, { dtype: 'int64' })), /target labels must be in \[0, 3\) or 255, got 3\.\.3/);
  assert.throws(() => m.update(T.zeros([1, 2, 2], { dtype: 'int64' }), T.zeros([1, 2, 3], { dtype: 'int64' })), /prediction \[1,2,2\] and target \[1,2,3\] differ/);
  // A class absent from both targets and predictions does not count in the mean.
  const n = new SegmentationMeter(4);
  n.update(T.tensor([[[0, 1]]], { dtype: 'int64' }), T.tensor([[[0, 1]]], { dtype: 'int64' }));
  assert.ok(Number.isNaN(n.iou()[3]));
  assert.equal(n.meanIoU(), 1);
});

test('against numpy: random logits, ignored pixels, two batches', () => {
  T.manualSeed(7);
  const inputs: Record<string, T.Tensor> = {};
  const m = new SegmentationMeter(5);
  for (const b of [0, 1]) {
    const logits = T.randn([2, 5, 9, 11]);
    const target = T.randint(0, 5, [2, 9, 11]).maskedFill(T.rand([2, 9, 11]).lt(0.2), 255);
    m.update(logits, target);
    inputs[`l${b}`] = logits;
    inputs[`t${b}`] = target;
  }
  const r = runTorch(`
import numpy as np
cm = np.zeros((5, 5), dtype=np.int64)
for b in range(2):
    p = I['l%d' % b].argmax(1).flatten().numpy(); t = I['t%d' % b].flatten().numpy()
    keep = t != 255
    cm += np.bincount(t[keep] * 5 + p[keep], minlength=25).reshape(5, 5)
tp = np.diag(cm); iou = tp / (cm.sum(0) + cm.sum(1) - tp)
O['cm'] = torch.from_numpy(cm); O['iou'] = torch.from_numpy(iou); O['acc'] = torch.tensor(tp.sum() / cm.sum())
`, inputs);
  assert.deepEqual(m.confusion().flat(), r.cm.toNumbers());
  m.iou().forEach((v, i) => assert.ok(Math.abs(v - r.iou.toNumbers()[i]) < 1e-12));
  assert.ok(Math.abs(m.pixelAccuracy() - r.acc.item()) < 1e-12);
});

test('perImageScores by hand: each image its own mIoU (classes in its truth or prediction) and pixel accuracy', () => {
  // Image 0 is the map above: mIoU (1/2 + 2/4 + 0) / 3, accuracy 3/5. Image 1: all class 2, predicted 2 2 2 / 0 2 2
  // → class 2 IoU 5/6, class 0 IoU 0 (predicted only): mIoU 5/12, accuracy 5/6. Image 2: every pixel ignored.
  const pred = T.tensor([[[0, 1, 1], [1, 1, 2]], [[2, 2, 2], [0, 2, 2]], [[1, 1, 1], [1, 1, 1]]], { dtype: 'int64' });
  const truth = T.tensor([[[0, 0, 1], [1, 2, 255]], [[2, 2, 2], [2, 2, 2]], [[255, 255, 255], [255, 255, 255]]], { dtype: 'int64' });
  const s = perImageScores(pred, truth, 3);
  assert.ok(Math.abs(s.mIoU[0] - 1 / 3) < 1e-12 && Math.abs(s.mIoU[1] - 5 / 12) < 1e-12, `${s.mIoU}`);
  assert.deepEqual(s.pixelAccuracy.slice(0, 2), [3 / 5, 5 / 6]);
  assert.ok(Number.isNaN(s.mIoU[2]) && Number.isNaN(s.pixelAccuracy[2]));
  assert.throws(() => perImageScores(pred, truth.narrow(0, 0, 2), 3), /one shape/);
});
