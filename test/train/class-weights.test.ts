// Imbalanced data: balanced class weights by hand, the weighted training loss against PyTorch's on the
// same network and batch, and eval's per-class recall and balanced accuracy against the predictions.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as T from '../../src/torch';
import { createModel } from '../../src/models/registry';
import { train } from '../../src/train/trainer';
import { balancedClassWeights, makeLoaders } from '../../src/train/datasets';
import { restoreNetwork } from '../../src/infer/restore';
import { runTorch } from '../helpers/pytorch';
import { writeLeftRightFolder } from '../helpers/folders';
import { tmpDir } from '../helpers/tmp';

const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
const tmp = (): string => tmpDir('tsv-weights-');

test('balanced class weights by hand: N / (K · n_c) over the classes present, 0 for an absent one; counted after the held-out shares', async () => {
  assert.deepEqual(balancedClassWeights([12, 4, 0]), [16 / 24, 2, 0]);
  assert.deepEqual(balancedClassWeights([5, 5]), [1, 1]);
  const root = tmp();
  await writeLeftRightFolder(root, 15, 5);
  // Test: round(0.2·15) = 3 and 1; validation from the rest: round(0.25·12) = 3 and round(0.25·4) = 1.
  const l = makeLoaders({ kind: 'image-folder', train: root, testSplit: 0.2, valSplit: 0.25, size: 16 }, { batchSize: 4, seed: 1, augment: false });
  assert.deepEqual(l.trainCounts, [9, 3]);
});

test('train --class-weights balanced: the first step\'s loss is PyTorch\'s weighted cross-entropy of the same network on the same batch', async () => {
  const dir = tmp();
  await writeLeftRightFolder(path.join(dir, 'train'), 12, 4);
  await writeLeftRightFolder(path.join(dir, 'test'), 6, 2);
  const opts = { widths: [4, 8] as [number, number], hidden: 8, dropout: 0 };
  T.manualSeed(3);
  const init = path.join(dir, 'init.safetensors');
  T.saveSafetensors(init, createModel('cnn', { ...opts, numClasses: 2, inChannels: 3 }).stateDict());
  const data = { kind: 'image-folder' as const, train: path.join(dir, 'train'), test: path.join(dir, 'test'), size: 16, channels: 3 as const };
  const lines: string[] = [];
  // One step over all 16 images at learning rate 0: the recorded training loss is the loss of the initial network.
  const r = await train({ model: 'cnn', modelOptions: opts, data, init, classWeights: 'balanced', epochs: 1, batchSize: 16, lr: 0, outDir: path.join(dir, 'run'), threads: 1 }, (l) => lines.push(l));
  assert.ok(lines.some((l) => l.includes('class weights (balanced, from 12/4 training images): left 0.667, right 2.000')), lines.join('\n'));
  const batch = (await makeLoaders(data, { batchSize: 16, seed: 0, augment: false }).train.epoch(0).next()).value!;
  const ref = runTorch(`
from reference_models import SimpleCNN
m = SimpleCNN(in_channels=3, widths=(4, 8), hidden=8, num_classes=2, dropout=0.0)
m.load_state_dict(st.load(${JSON.stringify(init)})[0])
m.train()
logits = m(I['x'])
O['weighted'] = F.cross_entropy(logits, I['y'], weight=torch.tensor([16 / 24, 2.0])).reshape(1).double()
O['plain'] = F.cross_entropy(logits, I['y']).reshape(1).double()
`, { x: batch.x, y: batch.y });
  const [weighted, plain] = [ref.weighted.item(), ref.plain.item()];
  assert.ok(Math.abs(r.history[0].trainLoss - weighted) <= 1e-5 * Math.abs(weighted), `tsvision ${r.history[0].trainLoss}, PyTorch ${weighted}`);
  assert.ok(Math.abs(weighted - plain) > 1e-3, 'the weights change the loss, so the comparison tells them apart');

  // eval: per-class recall and balanced accuracy, against the predictions counted here.
  const net = restoreNetwork(r.weights);
  const test = (await makeLoaders(data, { batchSize: 8, seed: 0, augment: false }).test.epoch(0).next()).value!;
  const predicted = Array.from(T.noGrad(() => net.model.forward(test.x).argmax(1)).toArray() as BigInt64Array, Number);
  const truth = Array.from(test.y.toArray() as BigInt64Array, Number);
  const recall = [0, 1].map((c) => truth.filter((y, i) => y === c && predicted[i] === c).length / truth.filter((y) => y === c).length);
  // The run's own epoch record and progress line carry the same (the final weights are the last epoch's).
  const last = r.history[r.history.length - 1];
  assert.deepEqual(last.testRecall, recall);
  assert.equal(last.testBalancedTop1, (recall[0] + recall[1]) / 2);
  assert.ok(lines.some((l) => l.includes(`balanced ${(50 * (recall[0] + recall[1])).toFixed(2)}%`)), lines.join('\n'));
  const e = spawnSync(process.execPath, [CLI, 'eval', '-c', r.weights], { encoding: 'utf8' });
  assert.equal(e.status, 0, e.stderr);
  assert.match(e.stdout, new RegExp(`balanced accuracy ${(50 * (recall[0] + recall[1])).toFixed(2)}%`));
  // The table's columns: precision, recall, F1, images.
  const [nLeft, nRight] = [0, 1].map((c) => truth.filter((y) => y === c).length);
  assert.match(e.stdout, new RegExp(`left +\\S+ +${(100 * recall[0]).toFixed(2)}% +\\S+ +${nLeft}\\n +right +\\S+ +${(100 * recall[1]).toFixed(2)}% +\\S+ +${nRight}\\n`));
});
