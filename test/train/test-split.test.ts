// One folder of labelled images, no test folder: a test share held out of it, the same images whatever the
// run's seed, disjoint from the validation and training parts; the CLI trains and evaluates on it.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { SampleSubset } from '../../src/data';
import { makeLoaders } from '../../src/train/datasets';
import { segmentationData } from '../../src/train/segment';
import { tmpDir } from '../helpers/tmp';

const tmp = (): string => tmpDir('tsv-testsplit-');
const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
const indicesOf = (d: unknown): number[] => {
  assert.ok(d instanceof SampleSubset, 'a subset of the folder');
  return Array.from(d.indices);
};

/** root/<class>/<i>.png: class a ×10, b ×5, c ×2; a grey level per image. */
async function classFolder(root: string): Promise<void> {
  for (const [cls, n] of [['a', 10], ['b', 5], ['c', 2]] as const) {
    fs.mkdirSync(path.join(root, cls), { recursive: true });
    for (let i = 0; i < n; i++) await sharp(Buffer.alloc(8 * 8, 10 * i), { raw: { width: 8, height: 8, channels: 1 } }).png().toFile(path.join(root, cls, `${i}.png`));
  }
}

test('a test split of one image folder, by hand: round(share · count) of each class, the same for every seed, apart from validation and training', async () => {
  const root = tmp();
  await classFolder(root);
  // Samples are class by class in name order: a → 0…9, b → 10…14, c → 15, 16.
  const classOf = (i: number): number => (i < 10 ? 0 : i < 15 ? 1 : 2);
  const parts = (seed: number) => {
    const l = makeLoaders({ kind: 'image-folder', train: root, testSplit: 0.2, valSplit: 0.25, size: 8, channels: 1 }, { batchSize: 4, seed, augment: false });
    return { test: indicesOf(l.test.dataset), val: indicesOf(l.val!.dataset), train: indicesOf(l.train.dataset), classes: l.classes };
  };
  const a = parts(3);
  assert.deepEqual(a.classes, ['a', 'b', 'c']);
  const perClass = (idx: number[]) => [0, 1, 2].map((c) => idx.filter((i) => classOf(i) === c).length);
  // Test: 0.2·10 = 2, 0.2·5 = 1, a class of two gives one. Validation from the rest (8, 4, 1): 2, 1, 0.
  assert.deepEqual(perClass(a.test), [2, 1, 1]);
  assert.deepEqual(perClass(a.val), [2, 1, 0]);
  assert.deepEqual([...a.test, ...a.val, ...a.train].sort((x, y) => x - y), Array.from({ length: 17 }, (_, i) => i));
  // Another seed: the same test images; its validation images differ for some seed.
  const others = [4, 5, 6, 7].map(parts);
  for (const o of others) assert.deepEqual(o.test, a.test);
  assert.ok(others.some((o) => o.val.join() !== a.val.join()), 'the run\'s seed draws the validation images');
  assert.throws(() => makeLoaders({ kind: 'image-folder', train: root, size: 8 }, { batchSize: 4, seed: 0, augment: false }), /takes a test folder or a test split of .*, one of the two/);
});

test('tsvision train with --train-dir alone holds out a fifth as the test set, and eval of its weights scores the same images', async () => {
  const root = tmp();
  // Two classes of ten 8×8 grey images: a fifth of each is 2, so 4 test images.
  for (const cls of ['a', 'b']) {
    fs.mkdirSync(path.join(root, 'data', cls), { recursive: true });
    for (let i = 0; i < 10; i++) await sharp(Buffer.alloc(8 * 8, cls === 'a' ? 10 * i : 255 - 10 * i), { raw: { width: 8, height: 8, channels: 1 } }).png().toFile(path.join(root, 'data', cls, `${i}.png`));
  }
  const out = path.join(root, 'run');
  const t = spawnSync(process.execPath, [CLI, 'train', '--train-dir', path.join(root, 'data'), '--channels', '1', '--image-size', '8', '--epochs', '1', '-b', '4', '--opt', 'widths=4,8', '--opt', 'hidden=8', '--threads', '1', '-o', out], { encoding: 'utf8' });
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stderr, /on image folder .* \(20% of each class held out as the test set\)/);
  const top1 = /test accuracy: top-1 ([\d.]+)%/.exec(t.stdout)?.[1];
  assert.ok(top1, t.stdout);
  const e = spawnSync(process.execPath, [CLI, 'eval', '-c', path.join(out, 'model.safetensors')], { encoding: 'utf8' });
  assert.equal(e.status, 0, e.stderr);
  assert.match(e.stdout, new RegExp(`on 4 test images.*top-1 ${top1.replace('.', '\\.')}%`));
  for (const [args, message] of [
    [['--train-dir', root, '--test-dir', root, '--test-split', '0.1'], /give --test-dir or --test-split, not both/],
    [['--test-split', '0.1'], /--test-split holds out part of --train-dir: give --train-dir/],
    [['--test-dir', root], /--test-dir needs --train-dir/],
  ] as const) {
    const bad = spawnSync(process.execPath, [CLI, 'train', ...args, '--epochs', '1'], { encoding: 'utf8' });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, message);
  }
});

test('segment on one folder: a test share of its images, the same with or without training data, apart from validation; class weights count only the training masks', async () => {
  // Ten 16×16 image/mask pairs; mask k is all class k % 3.
  const root = tmp();
  for (const sub of ['images', 'masks']) fs.mkdirSync(path.join(root, sub), { recursive: true });
  for (let k = 0; k < 10; k++) {
    await sharp(Buffer.alloc(16 * 16 * 3, 20 * k), { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(path.join(root, 'images', `${k}.png`));
    await sharp(Buffer.alloc(16 * 16, k % 3), { raw: { width: 16, height: 16, channels: 1 } }).png().toFile(path.join(root, 'masks', `${k}.png`));
  }
  const folders = { train: root, testSplit: 0.2, channels: 3 as const, numClasses: 3 };
  const scenes = { size: 16, trainCount: 0, testCount: 0, maxItems: 1 };
  const data = await segmentationData({ valSplit: 0.25, folders, scenes, seed: 4, batchSize: 2 }, { train: true });
  const [testIdx, valIdx, trainIdx] = [data.test, data.val!, data.train!].map((l) => indicesOf(l.dataset));
  assert.deepEqual([testIdx.length, valIdx.length, trainIdx.length], [2, 2, 6]);
  assert.deepEqual([...testIdx, ...valIdx, ...trainIdx].sort((x, y) => x - y), Array.from({ length: 10 }, (_, i) => i));
  for (const seed of [5, 6]) {
    const evalOnly = await segmentationData({ folders, scenes, seed }, { train: false });
    assert.equal(evalOnly.train, null);
    assert.deepEqual(indicesOf(evalOnly.test.dataset), testIdx, 'the test images do not depend on the seed or on training');
    assert.deepEqual(evalOnly.classes, data.classes);
  }
  const counts = await data.trainLabelCounts();
  const want = [0, 1, 2].map((c) => trainIdx.filter((k) => k % 3 === c).length * 256);
  assert.deepEqual(Array.from(counts.slice(0, 3)), want);
});
