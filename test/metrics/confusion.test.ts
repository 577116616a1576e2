// The confusion matrix of classifiers (logits [N, C]) counted by hand, and its heat map (eval --out's
// confusion.png): every cell has the colour of its row fraction, rows being true classes.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import sharp from 'sharp';
import * as T from '../../src/torch';
import { ConfusionMatrix } from '../../src/metrics/confusion';
import { cellColor, confusionLayout, saveConfusionPng } from '../../src/report/confusion';
import { tmpDir } from '../helpers/tmp';

test('ConfusionMatrix: classifier logits [N, C] against labels [N], by hand; 255 ignored', () => {
  const m = new ConfusionMatrix(3);
  // argmax per row: 0, 2, 2, 1, 0 against labels 0, 2, 1, 1, 255.
  const logits = T.tensor([[3, 1, 0], [0, 1, 5], [1, 0, 2], [0, 4, 1], [9, 0, 0]]);
  m.update(logits, T.tensor([0, 2, 1, 1, 255], { dtype: 'int64' }));
  assert.deepEqual(m.confusion(), [[1, 0, 0], [0, 1, 1], [0, 0, 1]]);
  // Labels already predicted, shaped as the targets, add up.
  m.update(T.tensor([2, 0], { dtype: 'int64' }), T.tensor([0, 0], { dtype: 'int64' }));
  assert.deepEqual(m.confusion(), [[2, 0, 1], [0, 1, 1], [0, 0, 1]]);
  assert.throws(() => m.update(T.zeros([2, 3]), T.tensor([0, 3], { dtype: 'int64' })), /ConfusionMatrix: target labels must be in \[0, 3\) or 255, got 0\.\.3/);
  m.dispose();
});

test('confusion.png: each cell coloured by its row fraction (rows: true classes), not transposed', async () => {
  // Rows with different sums and an off-diagonal mass, so that a transposed or column-normalized map differs.
  const counts = [
    [8, 2, 0],
    [1, 1, 8],
    [0, 0, 0],
  ];
  const classes = ['cat', 'dog', 'a long class name'];
  const file = path.join(tmpDir('tsv-confusion-'), 'confusion.png');
  await saveConfusionPng(file, counts, classes, 'test');
  const L = confusionLayout(3, 'a long class name'.length);
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height], [L.width, L.height]);
  const want = [
    [0.8, 0.2, 0],
    [0.1, 0.1, 0.8],
    [0, 0, 0],
  ];
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      // A corner of the cell, clear of its percentage and of the grid's border.
      const x = L.left + j * L.cell + 3;
      const y = L.top + i * L.cell + 3;
      const px = Array.from(data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3));
      assert.deepEqual(px, cellColor(want[i][j]), `cell (${i}, ${j})`);
    }
  }
  await assert.rejects(saveConfusionPng(file, [[1, 2]], ['a'], 't'), /confusion matrix: need 1 × 1 counts, got 1 × 2/);
});
