// Scarce labels and transfer sets for classifier mimicry: the labelled draw (stratifiedSample) against
// quotas computed by hand, the loaders' labelled and unlabelled images against the dataset and the files
// themselves, accuracy that leaves unlabelled images out, the refusals, and a mimic run whose first loss
// over a batch with unlabelled images is the student's logits against the teacher's, computed directly.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import * as T from '../../src/torch';
import { ClassificationMeter } from '../../src/metrics/classification';
import { NO_LABEL, loadFashionMNIST, stratifiedSample } from '../../src/data';
import type { Batch, BatchSource, Dataset, Sample } from '../../src/data';
import { DataSpec, makeLoaders } from '../../src/train/datasets';
import { train } from '../../src/train/trainer';
import { distillationLoss, loadTeacher, mimicLoss } from '../../src/methods/mimic';
import { runMimic } from '../../src/methods/mimic-run';
import { createMethod } from '../../src/methods/method';
import { ShallowNet } from '../../src/models/shallow';
import { createClassifier } from '../../src/models/registry';
import { writeLeftRightFolder } from '../helpers/folders';
import { assertRefused, cli } from '../helpers/cli';
import { tmpDir } from '../helpers/tmp';

const quiet = (): void => {};
const tmp = (): string => tmpDir('tsv-transfer-');
const options = { batchSize: 64, seed: 0, augment: false };

/** Every label of a training set, in its order (a batch source in one batch; a per-sample one image by image). */
async function labelsOf(d: BatchSource | Dataset<Sample>): Promise<number[]> {
  if ('getBatch' in d) return T.tidy(() => Array.from(d.getBatch(T.arange(0, d.length, 1, { dtype: 'int64' })).y.toArray(), Number));
  const out: number[] = [];
  for (let i = 0; i < d.length; i++) {
    const s = await d.get(i);
    s.x.dispose();
    out.push(s.y);
  }
  return out;
}

test('stratifiedSample: n images, each class its share by largest remainder, drawn from the given indices, the same for the same seed', () => {
  // Classes 0, 1, 2 with 5, 3 and 2 members among indices 0–9, plus index 10 (class 0) left out of the pool.
  const labels = [0, 1, 0, 2, 0, 1, 0, 2, 1, 0, 0];
  const pool = Int32Array.from([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
  // n = 4 of 10: exact shares 2, 1.2, 0.8 → floors 2, 1, 0 and one left over, to class 2 (remainder 0.8).
  const { keep, rest } = stratifiedSample(labels, pool, 4, 7);
  const perClass = [0, 1, 2].map((c) => Array.from(keep).filter((i) => labels[i] === c).length);
  assert.deepEqual(perClass, [2, 1, 1]);
  assert.equal(keep.length + rest.length, 10);
  assert.ok(![...keep, ...rest].includes(10), 'only the pool is drawn from');
  assert.deepEqual([...keep, ...rest].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(Array.from(keep), Array.from(keep).sort((a, b) => a - b), 'ascending');
  assert.deepEqual(Array.from(stratifiedSample(labels, pool, 4, 7).keep), Array.from(keep));
  // n = 7: exact 3.5, 2.1, 1.4 → 3, 2, 1 and one to class 0 (remainder 0.5).
  assert.deepEqual([0, 1, 2].map((c) => Array.from(stratifiedSample(labels, pool, 7, 1).keep).filter((i) => labels[i] === c).length), [4, 2, 1]);
  assert.throws(() => stratifiedSample(labels, pool, 11, 0), /n must be an integer in \[1, 10\]/);
});

test('Fashion-MNIST with 1,000 labels: 100 per class, the same images whatever the seed; with the rest, 59,000 more without labels', async () => {
  const full = loadFashionMNIST({ split: 'train' });
  const truth = Array.from(full.labels.toArray(), Number);
  const scarce = makeLoaders({ kind: 'fashion-mnist', labelled: 1000 }, options);
  assert.deepEqual(scarce.trainCounts, new Array(10).fill(100), 'Fashion-MNIST has 6,000 per class: 100 each');
  assert.equal(scarce.train.dataset.length, 1000);
  const ys = await labelsOf(scarce.train.dataset as BatchSource);
  assert.ok(ys.every((y) => y >= 0));
  const withRest = makeLoaders({ kind: 'fashion-mnist', labelled: 1000, unlabelled: { rest: true } }, { ...options, seed: 3 });
  assert.equal(withRest.train.dataset.length, 60000);
  const all = await labelsOf(withRest.train.dataset as BatchSource);
  assert.equal(all.filter((y) => y === NO_LABEL).length, 59000);
  // The labelled ones (another seed) keep their true labels, and are the scarce run's images, in order.
  const kept = all.flatMap((y, i) => (y === NO_LABEL ? [] : [i]));
  assert.ok(kept.every((i) => all[i] === truth[i]));
  assert.deepEqual(kept.map((i) => truth[i]), ys);
  const images = T.tidy(() => (scarce.train.dataset as BatchSource).getBatch(T.arange(0, 1000, 1, { dtype: 'int64' })).x.keep());
  const same = T.tidy(() => full.images.indexSelect(0, T.tensor(kept, { dtype: 'int64' })).ne(images).any().item() === 0);
  assert.ok(same, 'the labelled images are the dataset\'s at those indices');
  assert.deepEqual(withRest.trainCounts, scarce.trainCounts, 'class counts are of the labelled images');
  full.dispose();
});

test('Fashion-MNIST with a folder of more images: decoded to 28×28 grey after the labelled ones', async () => {
  const dir = tmp();
  try {
    const px = Buffer.from(Array.from({ length: 28 * 28 }, (_, i) => (i * 7) % 256));
    await sharp(px, { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(path.join(dir, 'shirt.png'));
    const l = makeLoaders({ kind: 'fashion-mnist', labelled: 100, unlabelled: { dir } }, options);
    const d = l.train.dataset as Dataset<Sample>;
    assert.equal(d.length, 101);
    const s = await d.get(100);
    assert.equal(s.y, NO_LABEL);
    assert.ok(T.tidy(() => s.x.ne(T.fromArray(px, [1, 28, 28])).any().item() === 0), 'the file\'s pixels');
    s.x.dispose();
    assert.ok((await labelsOf(d)).slice(0, 100).every((y) => y >= 0));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('image folders: labelled images, the rest without labels, and a folder of more images decoded as the training ones', async () => {
  const dir = tmp();
  try {
    await writeLeftRightFolder(path.join(dir, 'train'), 10);
    const extra = path.join(dir, 'extra');
    fs.mkdirSync(path.join(extra, 'nested'), { recursive: true });
    const pixels: Buffer[] = [];
    for (const [i, file] of ['a.png', 'nested/b.png', 'c.jpg.txt', 'd.png'].entries()) {
      const px = Buffer.alloc(16 * 16 * 3, 40 * i + 10);
      if (file.endsWith('.txt')) fs.writeFileSync(path.join(extra, file), 'not an image');
      else {
        await sharp(px, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(path.join(extra, file));
        pixels.push(px);
      }
    }
    const spec: DataSpec = { kind: 'image-folder', train: path.join(dir, 'train'), test: path.join(dir, 'train'), size: 16, channels: 3, labelled: 4, unlabelled: { rest: true, dir: extra } };
    const l = makeLoaders(spec, { ...options, batchSize: 4 });
    const d = l.train.dataset as Dataset<Sample>;
    assert.equal(d.length, 20 + 3);
    const ys = await labelsOf(d);
    assert.deepEqual(l.trainCounts, [2, 2]);
    assert.equal(ys.filter((y) => y === NO_LABEL).length, 16 + 3);
    // The folder's images come last, sorted (a.png, d.png, nested/b.png), their pixels as written.
    for (const [k, px] of [pixels[0], pixels[2], pixels[1]].entries()) {
      const s = await d.get(20 + k);
      assert.equal(s.y, NO_LABEL);
      assert.deepEqual(s.x.shape, [3, 16, 16]);
      assert.ok(T.tidy(() => s.x.ne(T.fromArray(px, [16, 16, 3]).permute(2, 0, 1)).any().item() === 0), `unlabelled image ${k}`);
      s.x.dispose();
    }
    const none = makeLoaders({ ...spec, unlabelled: { dir: extra } }, { ...options, batchSize: 4 });
    assert.equal(none.train.dataset.length, 4 + 3, 'without the rest: the labelled images and the folder');
    assert.throws(() => makeLoaders({ ...spec, unlabelled: { dir: path.join(dir, 'nowhere') } }, options), /unlabelled images: .*nowhere is not a folder/);
    assert.throws(() => makeLoaders({ ...spec, labelled: undefined, unlabelled: { rest: true } }, options), /unlabelled\.rest is the training images without labels: set labelled/);
    assert.throws(() => makeLoaders({ ...spec, labelled: 21 }, options), /labelled: 21 labelled images asked for, but the training part has 20/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('accuracy counts labelled images only; the loss counts all; sums from before the labelled count still restore', () => {
  const meter = new ClassificationMeter([1, 2]);
  const logits = T.tensor([[3, 1, 0], [0, 5, 1], [0, 1, 2], [9, 0, 0]]);
  // Top-1: 0, 1, 2, 0. Labels 0 (hit), none, 1 (miss; in the top 2), none.
  meter.update(2, logits, T.tensor([0, NO_LABEL, 1, NO_LABEL], { dtype: 'int64' }));
  meter.update(1, logits.narrow(0, 1, 1), T.tensor([NO_LABEL], { dtype: 'int64' }));
  assert.equal(meter.count, 5);
  assert.equal(meter.labelled, 2);
  assert.equal(meter.accuracy(0), 1 / 2);
  assert.equal(meter.accuracy(1), 2 / 2);
  assert.equal(meter.loss, (2 * 4 + 1) / 5);
  const old = new ClassificationMeter([1]);
  old.restore([6, 2, 4]);
  assert.equal(old.accuracy(), 0.5);
  assert.throws(() => old.restore([1, 2]), /expected 4 sums, got 2/);
});

test('unlabelled images need a teacher: plain training refuses them', async () => {
  await assert.rejects(
    train({ model: 'cnn', modelOptions: { widths: [4, 8], hidden: 16 }, data: { kind: 'fashion-mnist', labelled: 100, unlabelled: { rest: true } }, epochs: 1, limitBatches: 1, threads: 1, outDir: path.join(tmp(), 'x') }, quiet),
    /images without labels \(data\.unlabelled\) teach only through a teacher's logits/,
  );
});

test('mimic with scarce labels: the student by mimicry learns from the rest through the teacher, its first loss as computed directly; the control from the labels', async () => {
  const dir = tmp();
  try {
    const data = { kind: 'fashion-mnist' as const, labelled: 100 };
    const t = await train({ model: 'cnn', modelOptions: { widths: [4, 8], hidden: 16 }, data, epochs: 1, batchSize: 50, limitBatches: 4, threads: 1, outDir: path.join(dir, 'teacher') }, quiet);
    const student = { conv: 4, hidden: 16 };
    const base = { modelOptions: student, data, epochs: 1, batchSize: 64, limitBatches: 1, threads: 1, seed: 5 };
    const logs: string[] = [];
    const r = await runMimic({ base, teacher: t.checkpoint, outDir: path.join(dir, 'mimic'), unlabelled: { rest: true } }, (l) => logs.push(l));
    assert.ok(r.mimic.dir.endsWith('mimic-transfer'), r.mimic.dir);
    assert.ok(logs.includes('training images: 100 labelled, 59,900 without labels (taught by the teacher alone)'), logs.join('\n'));
    assert.ok(logs.includes('training images: 100 labelled'), 'the control: the labelled images alone');
    const summary = fs.readFileSync(r.summary, 'utf8');
    // Fidelity on the test images (the first batch of 500, as limitBatches 1 reads them), computed directly.
    const tests = makeLoaders(data, { batchSize: 500, seed: 0, augment: false }).test.epoch(0);
    const images = ((await tests.next()).value as Batch).x;
    await tests.return(undefined);
    for (const [phase, fid] of [[r.mimic, r.fidelity.mimic], [r.labels!, r.fidelity.labels!]] as const) {
      const m = new ShallowNet({ ...student, numClasses: 10, inChannels: 1 });
      m.loadStateDict(T.loadSafetensors(phase.weights).tensors);
      m.eval();
      const g = T.noGrad(() => m.forward(images));
      const z = loadTeacher({ file: t.checkpoint }, { numClasses: 10, inChannels: 1, data }).logits(images);
      assert.equal(fid.images, 500);
      assert.equal(fid.agreement, g.argmax(1).eq(z.argmax(1)).sum().item() / 500);
      const l2 = g.sub(z).square().sum(1).mean().item() / 2;
      assert.ok(Math.abs(fid.l2 - l2) <= 1e-5 * l2, `${phase.name}: ${fid.l2} vs ${l2}`);
      assert.match(summary, new RegExp(`\\| ${(100 * fid.agreement).toFixed(2)}% \\| ${fid.l2.toFixed(3)} \\|`));
    }
    assert.match(summary, /the training images without labels \(transfer set\)/);
    assert.match(summary, /labels, cross-entropy \(100 labelled training images\)/);
    assert.match(summary, /\| teacher \(cnn\) \|.*\| labels \(100 labelled training images\) \|/);


    // The run's first batch and fresh student, built as the run builds them; the teacher in eval mode.
    const firstStep = async (spec: DataSpec): Promise<{ s: T.Tensor; z: T.Tensor; y: T.Tensor; unlabelled: number }> => {
      T.manualSeed(base.seed);
      const loaders = makeLoaders(spec, { batchSize: 64, seed: base.seed, augment: false });
      const model = createClassifier('shallow', student, loaders);
      const teacher = loadTeacher({ file: t.checkpoint }, { numClasses: 10, inChannels: 1, data: spec });
      const batches = loaders.train.epoch(0);
      const first = (await batches.next()).value as Batch;
      await batches.return(undefined);
      return { s: model.forward(first.x).keep(), z: T.noGrad(() => teacher.model.forward(first.x)).keep(), y: first.y, unlabelled: T.tidy(() => first.y.eq(NO_LABEL).sum().item()) };
    };
    const firstLoss = (dir: string): number => (JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')).history as { trainLoss: number }[])[0].trainLoss;
    const one = await firstStep({ ...data, unlabelled: { rest: true } });
    assert.ok(one.unlabelled > 50, `the first batch is mostly unlabelled images: ${one.unlabelled} of 64`);
    const expected = mimicLoss(one.s, one.z).item();
    assert.ok(Math.abs(firstLoss(r.mimic.dir) - expected) <= 1e-5 * expected, `run ${firstLoss(r.mimic.dir)} vs direct ${expected}`);

    // Soft targets at T = 2 + 0.5 × the labels' cross-entropy, over a batch half labelled: the labels' term
    // is the cross-entropy of the labelled rows alone.
    const half = { kind: 'fashion-mnist' as const, labelled: 30000 };
    const kd = await runMimic({ base: { ...base, data: half }, teacher: t.checkpoint, outDir: path.join(dir, 'kd'), unlabelled: { rest: true }, temperature: 2, labelWeight: 0.5, control: false }, quiet);
    assert.ok(kd.mimic.dir.endsWith('distil-T2+labels0.5-transfer'), kd.mimic.dir);
    const two = await firstStep({ ...half, unlabelled: { rest: true } });
    assert.ok(two.unlabelled > 10 && two.unlabelled < 54, `${two.unlabelled} of 64 unlabelled`);
    const labelled = two.y.ge(0);
    const m = 64 - two.unlabelled;
    const ce = T.crossEntropy(two.s.maskedSelect(labelled.unsqueeze(1)).reshape(m, 10), two.y.maskedSelect(labelled)).item();
    const expectedKd = distillationLoss(two.s, two.z, 2).item() + 0.5 * ce;
    assert.ok(Math.abs(firstLoss(kd.mimic.dir) - expectedKd) <= 1e-5 * expectedKd, `run ${firstLoss(kd.mimic.dir)} vs direct ${expectedKd}`);
    // A batch without a single label: the teacher's term alone, not a NaN mean over no labels.
    const method = createMethod({ kind: 'mimic', teacher: t.checkpoint, labelWeight: 1 }, new ShallowNet({ ...student, numClasses: 10, inChannels: 1 }), null, { numClasses: 10, inChannels: 1, data });
    const x = T.randn([4, 1, 28, 28]);
    const s = T.randn([4, 10]);
    const alone = method.loss!(s, { x, y: T.full([4], NO_LABEL, { dtype: 'int64' }), index: 0, samples: Int32Array.from([0, 1, 2, 3]) }).item();
    assert.equal(alone, mimicLoss(s, loadTeacher({ file: t.checkpoint }, { numClasses: 10, inChannels: 1, data }).logits(x)).item());
    assert.throws(() => createMethod({ kind: 'mimic', teacher: t.checkpoint, labelWeight: -1 }, new ShallowNet({ ...student, numClasses: 10, inChannels: 1 }), null, { numClasses: 10, inChannels: 1, data }), /label weight must be 0 or more/);

    // As many optimizer steps for the control: 3 (the cap) for the student by mimicry; 2 per epoch over 100
    // labelled images in batches of 64 for the control, so 2 epochs.
    const steps = await runMimic({ base: { ...base, limitBatches: 3 }, teacher: t.checkpoint, outDir: path.join(dir, 'steps'), unlabelled: { rest: true } }, quiet);
    assert.match(fs.readFileSync(steps.summary, 'utf8'), /1 epochs over the student by mimicry's images, 2 over the control's labelled ones/);
    assert.equal(steps.labels!.curve.length, 2);

    await assert.rejects(runMimic({ base: { ...base, data: { kind: 'fashion-mnist' } }, teacher: t.checkpoint, outDir: path.join(dir, 'm2'), unlabelled: { rest: true } }, quiet), /give the number labelled \(--labelled n\) too/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI: mimic --labelled n --unlabelled-rest --unlabelled <dir>, and the refusals', async () => {
  const dir = tmp();
  try {
    const teacher = (await train({ model: 'cnn', modelOptions: { widths: [4, 8], hidden: 16 }, epochs: 1, limitBatches: 1, batchSize: 16, threads: 1, outDir: path.join(dir, 'teacher') }, quiet)).checkpoint;
    const extra = path.join(dir, 'extra');
    fs.mkdirSync(extra);
    await sharp(Buffer.alloc(28 * 28, 90), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(path.join(extra, 'x.png'));
    const run = cli('mimic', '-t', teacher, '--labelled', '300', '--unlabelled-rest', '--unlabelled', extra, '--label-weight', '0.5', '-m', 'cnn', '--opt', 'widths=4,8', '--opt', 'hidden=16', '--epochs', '1', '--limit-batches', '1', '--threads', '1', '--no-control', '-o', path.join(dir, 'm'));
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /training images: 300 labelled, 59,701 without labels/);
    const data = JSON.parse(fs.readFileSync(path.join(dir, 'm', 'mimic+labels0.5-transfer', 'report.json'), 'utf8')).config.data;
    assert.deepEqual(data, { kind: 'fashion-mnist', labelled: 300, unlabelled: { rest: true, dir: extra } });
    // The transfer set's folder gone: the student is still scored, and pruned and fine-tuned on its labels.
    fs.rmSync(extra, { recursive: true });
    const student = path.join(dir, 'm', 'mimic+labels0.5-transfer', 'checkpoint.safetensors');
    const scored = cli('eval', '--checkpoint', student);
    assert.equal(scored.status, 0, scored.stderr);
    const pruned = cli('prune', '-c', student, '--finetune-epochs', '1', '--limit-batches', '1', '--threads', '1', '-o', path.join(dir, 'p'));
    assert.equal(pruned.status, 0, pruned.stderr);
    assert.match(pruned.stderr, /training images: 300 labelled\n/);
    const plain = cli('train', '--labelled', '50', '--epochs', '1', '--threads', '1', '-o', path.join(dir, 't'));
    assert.equal(plain.status, 0, plain.stderr);
    assert.match(plain.stderr, /training images: 50 labelled\n/);
    assertRefused([
      [['mimic', '-t', teacher, '--unlabelled-rest'], /--unlabelled-rest gives the student the training images left without labels: give --labelled n/],
      [['train', '--labelled', '0'], /--labelled/],
      [['train', '--labelled', '60001', '--epochs', '1'], /labelled: 60001 labelled images asked for, but the training part has 60000/],
      [['mimic', '-t', teacher, '--unlabelled', path.join(dir, 'none')], /unlabelled images: .*none is not a folder/],
    ]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
