// The teacher's logits computed once per training image (CachedLogits) instead of on every batch: batches
// name their samples' dataset indices (checked against labels equal to the indices), the cache answers a
// shuffled batch as the teacher itself does, a run with it trains as a run with the teacher on every batch,
// and images fed differently from when they were cached (random crops) are caught on the first batch.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as T from '../../src/torch';
import { DataLoader, TensorDataset } from '../../src/data';
import type { Batch, Dataset, Sample } from '../../src/data';
import { narrowBatch } from '../../src/train/accumulate';
import { makeLoaders } from '../../src/train/datasets';
import { train } from '../../src/train/trainer';
import { CachedLogits, loadTeacher, mimicLoss } from '../../src/methods/mimic';
import { createMethod } from '../../src/methods/method';
import { ShallowNet } from '../../src/models/shallow';
import { trainSegmentation } from '../../src/train/segment';
import { tmpDir } from '../helpers/tmp';

const quiet = (): void => {};
const tmp = (): string => tmpDir('tsv-cache-');

/** Every batch of an epoch as (dataset indices, labels). */
async function epochOf(loader: DataLoader, e: number): Promise<{ samples: number[]; labels: number[] }[]> {
  const out: { samples: number[]; labels: number[] }[] = [];
  for await (const b of loader.epoch(e)) {
    out.push({ samples: Array.from(b.samples), labels: Array.from(b.y.toArray(), Number) });
    b.x.dispose();
    b.y.dispose();
  }
  return out;
}

test('batches name their samples: each label (here equal to its index) is the one at that index, in both loader paths; inOrder gives every sample once, in order', async () => {
  const n = 23;
  const whole = new TensorDataset(T.zeros([n, 1, 2, 2], { dtype: 'uint8' }), T.arange(0, n, 1, { dtype: 'int64' }));
  const perSample: Dataset<Sample> = { length: n, get: async (i) => ({ x: T.zeros([1, 2, 2], { dtype: 'uint8' }).keep(), y: i }) };
  for (const d of [whole, perSample]) {
    const loader = new DataLoader(d, { batchSize: 5, shuffle: true, seed: 3, dropLast: true });
    const batches = await epochOf(loader, 1);
    assert.equal(batches.length, 4);
    for (const b of batches) assert.deepEqual(b.samples, b.labels);
    const seen = batches.flatMap((b) => b.samples);
    assert.deepEqual(seen, Array.from(loader.order(1).subarray(0, 20)));
    assert.notDeepEqual(seen, [...Array(20).keys()], 'shuffled');
    const inOrder = await epochOf(loader.inOrder(10), 0);
    assert.deepEqual(inOrder.map((b) => b.samples.length), [10, 10, 3], 'no batch dropped');
    assert.deepEqual(inOrder.flatMap((b) => b.samples), [...Array(n).keys()]);
    assert.deepEqual(inOrder.flatMap((b) => b.labels), [...Array(n).keys()]);
  }
  const b = { x: T.zeros([4, 1]), y: T.arange(0, 4, 1, { dtype: 'int64' }), samples: Int32Array.from([9, 7, 5, 3]) };
  assert.deepEqual(Array.from(narrowBatch(b, 1, 2).samples), [7, 5]);
  whole.dispose();
});

test('mimic with the teacher logits cached: a shuffled batch gets the teacher\'s own logits, and a run trains as one with the teacher on every batch', async () => {
  const dir = tmp();
  try {
    const data = { kind: 'fashion-mnist' as const, labelled: 200 };
    const t = await train({ model: 'cnn', modelOptions: { widths: [4, 8], hidden: 16 }, data, epochs: 1, batchSize: 50, threads: 1, outDir: path.join(dir, 'teacher') }, quiet);
    const teacher = loadTeacher({ file: t.checkpoint }, { numClasses: 10, inChannels: 1, data });
    const loaders = makeLoaders(data, { batchSize: 64, seed: 4, augment: false });
    const cache = await CachedLogits.compute(teacher.model, teacher.logits, loaders.train);
    assert.deepEqual(cache.logits.shape, [200, 10]);
    const batches = loaders.train.epoch(2);
    const first = (await batches.next()).value as Batch;
    await batches.return(undefined);
    const direct = T.noGrad(() => teacher.model.forward(first.x));
    const logs: string[] = [];
    const rows = cache.rows(first.x, first.samples, (l) => logs.push(l))!;
    assert.ok(rows.sub(direct).abs().max().item() <= 1e-5 * direct.abs().max().item());
    assert.deepEqual(logs, [], 'the check against the teacher passed');
    cache.dispose();

    // The same student, seed and batches: with the logits cached and with the teacher run on every batch.
    const student = { model: 'shallow' as const, modelOptions: { conv: 4, hidden: 16 }, data, epochs: 3, batchSize: 64, optimizer: 'adam' as const, lr: 1e-3, threads: 1, seed: 1 };
    const runs = [];
    for (const cacheTeacher of [true, false]) {
      const lines: string[] = [];
      const r = await train({ ...student, method: { kind: 'mimic', teacher: t.checkpoint, cacheTeacher }, outDir: path.join(dir, String(cacheTeacher)) }, (l) => lines.push(l));
      runs.push({ r, lines });
    }
    assert.ok(runs[0].lines.some((l) => /^teacher logits: computed once for the 200 training images in [\d.]+ s, looked up on every batch$/.test(l)), runs[0].lines.join('\n'));
    assert.ok(runs[1].lines.includes('teacher logits: computed on every batch (as asked (cacheTeacher: false))'), runs[1].lines.join('\n'));
    assert.ok(!runs[0].lines.some((l) => /differ/.test(l)), 'the cache passed its check, so the cached logits trained it');
    const [cached, live] = runs.map(({ r }) => r.history);
    assert.equal(cached.length, 3);
    cached.forEach((h, e) => assert.ok(Math.abs(h.trainLoss - live[e].trainLoss) <= 1e-4 * live[e].trainLoss, `epoch ${e + 1}: ${h.trainLoss} vs ${live[e].trainLoss}`));
    const [a, b] = runs.map(({ r }) => T.loadSafetensors(r.weights).tensors);
    for (const k of Object.keys(a)) assert.ok(a[k].sub(b[k]).abs().max().item() <= 1e-4, k);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the cache is skipped where it would not pay or could be wrong, and images fed differently from when cached are caught on the first batch', async () => {
  const dir = tmp();
  try {
    const data = { kind: 'fashion-mnist' as const, labelled: 100 };
    const t = await train({ model: 'cnn', modelOptions: { widths: [4, 8], hidden: 16 }, data, epochs: 1, batchSize: 50, limitBatches: 1, threads: 1, outDir: path.join(dir, 'teacher') }, quiet);
    const ctx = { numClasses: 10, inChannels: 1, data };
    const make = () => createMethod({ kind: 'mimic', teacher: t.checkpoint }, new ShallowNet({ conv: 4, hidden: 16, numClasses: 10, inChannels: 1 }), null, ctx);
    // Random crops: a new picture of each image every epoch.
    const augmented = makeLoaders(data, { batchSize: 32, seed: 0, augment: true }).train;
    const said = async (fixedInputs: boolean, imagesSeen: number): Promise<string[]> => {
      const lines: string[] = [];
      await make().prepare!({ train: augmented, fixedInputs, imagesSeen, log: (l) => lines.push(l) });
      return lines;
    };
    assert.deepEqual(await said(false, 1000), ['teacher logits: computed on every batch (the training images are augmented at random or fed in bfloat16)']);
    assert.deepEqual(await said(true, 100), ['teacher logits: computed on every batch (the run sees fewer images than the training set holds)']);

    // Told wrongly that the images are fed alike: the first batch's crops are not the cached ones.
    const method = make();
    const lines: string[] = [];
    await method.prepare!({ train: augmented, fixedInputs: true, imagesSeen: 1000, log: (l) => lines.push(l) });
    const batches = augmented.epoch(0);
    const first = (await batches.next()).value as Batch;
    await batches.return(undefined);
    const s = T.randn([first.x.size(0), 10]);
    const loss = method.loss!(s, first).item();
    assert.match(lines.at(-1)!, /^teacher logits: the cached ones differ from the teacher's answer on the first batch by .*: the teacher runs on every batch instead$/);
    assert.equal(loss, mimicLoss(s, loadTeacher({ file: t.checkpoint }, ctx).logits(first.x)).item(), 'the live teacher answers instead');
    method.dispose!();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a segmentation student: the teacher\'s logits at every pixel computed once train it as the teacher on every batch does', async () => {
  const dir = tmp();
  try {
    const scenes = { size: 32, trainCount: 24, testCount: 8, maxItems: 2 };
    const teacher = await trainSegmentation({ model: 'deeplabv3', modelOptions: { width: 8, channels: 16 }, scenes, epochs: 1, batchSize: 8, limitBatches: 1, threads: 1, seed: 3, outDir: path.join(dir, 'teacher') }, quiet);
    // ENet without dropout: the two runs then differ only by where the teacher's logits come from.
    const student = { model: 'enet' as const, modelOptions: { dropout: 0, dropoutStage1: 0 }, scenes, epochs: 2, batchSize: 8, threads: 1, seed: 4 };
    const runs = [];
    for (const cacheTeacher of [true, false]) {
      const lines: string[] = [];
      runs.push({ r: await trainSegmentation({ ...student, teacher: { file: teacher.weights, cacheTeacher }, outDir: path.join(dir, String(cacheTeacher)) }, (l) => lines.push(l)), lines });
    }
    assert.ok(runs[0].lines.some((l) => /^teacher logits: computed once for the 24 training images in [\d.]+ s, looked up on every batch$/.test(l)), runs[0].lines.join('\n'));
    assert.ok(runs[1].lines.includes('teacher logits: computed on every batch (as asked (cacheTeacher: false))'));
    assert.ok(!runs[0].lines.some((l) => /differ/.test(l)), 'the cache passed its check, so the cached logits trained it');
    const [cached, live] = runs.map(({ r }) => r.history);
    cached.forEach((h, e) => assert.ok(Math.abs(h.trainLoss - live[e].trainLoss) <= 1e-4 * live[e].trainLoss, `epoch ${e + 1}: ${h.trainLoss} vs ${live[e].trainLoss}`));
    const [a, b] = runs.map(({ r }) => T.loadSafetensors(r.weights).tensors);
    for (const k of Object.keys(a)) assert.ok(a[k].sub(b[k]).abs().max().item() <= 1e-3 * Math.max(1, b[k].abs().max().item()), k);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
