// Training any registered model on a folder of images (class per sub-folder), end to end.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { train } from '../../src/train/trainer';
import { writeLeftRightFolder } from '../helpers/folders';
import { tmpDir } from '../helpers/tmp';

test('a model trains on image folders and learns an easy two-class task', async () => {
  const dir = tmpDir('tsv-folder-');
  await writeLeftRightFolder(path.join(dir, 'train'), 24);
  await writeLeftRightFolder(path.join(dir, 'test'), 8);
  const r = await train(
    { model: 'cnn', modelOptions: { widths: [8, 16], hidden: 16 }, data: { kind: 'image-folder', train: path.join(dir, 'train'), test: path.join(dir, 'test'), size: 16, channels: 3 }, epochs: 3, batchSize: 8, lr: 0.01, optimizer: 'adam', weightDecay: 0, outDir: path.join(dir, 'run'), threads: 1 },
    () => {},
  );
  assert.equal(r.status, 'finished');
  assert.equal(r.history.length, 3);
  assert.ok(r.final!.testTop1 >= 0.9, `test accuracy ${r.final!.testTop1}`);
  assert.ok(fs.existsSync(r.weights) && fs.existsSync(r.curves));
});
