// `tsvision check-data`: on folders made here with known flaws, every count is the one made by hand, and
// every flaw — a truncated file, one image under two classes, a test image from the training folder, a mask
// label outside the classes — is found and named; a clean folder passes with exit code 0.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { checkData } from '../../src/data/check';
import { tmpDir } from '../helpers/tmp';

const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

/** An RGB PNG of h×w whose pixels depend on `seed`, so that different seeds give different files. */
async function png(file: string, h: number, w: number, seed: number, channels: 1 | 3 = 3, value?: (i: number) => number): Promise<Buffer> {
  const px = Buffer.alloc(h * w * channels);
  for (let i = 0; i < px.length; i++) px[i] = value ? value(Math.floor(i / channels)) : (i * 7 + seed * 31) % 256;
  const buf = await sharp(px, { raw: { width: w, height: h, channels } }).png().toBuffer();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, buf);
  return buf;
}

test('classification folders: counts, sizes, an unreadable file, a label conflict, a same-class copy and a leaked test image', async () => {
  const root = tmpDir('tsv-check-');
  const train = path.join(root, 'train');
  const testDir = path.join(root, 'test');
  for (let i = 0; i < 4; i++) await png(path.join(train, 'cat', `c${i}.png`), 10 + i, 12, i);
  for (let i = 0; i < 3; i++) await png(path.join(train, 'dog', `d${i}.png`), 20, 20, 10 + i);
  const c0 = fs.readFileSync(path.join(train, 'cat', 'c0.png'));
  fs.writeFileSync(path.join(train, 'dog', 'also-c0.png'), c0); // one image, two classes
  fs.writeFileSync(path.join(train, 'dog', 'd0-again.png'), fs.readFileSync(path.join(train, 'dog', 'd0.png'))); // a copy in its class
  fs.writeFileSync(path.join(train, 'cat', 'cut.png'), c0.subarray(0, 60)); // truncated
  await png(path.join(testDir, 'cat', 't0.png'), 16, 16, 99);
  fs.mkdirSync(path.join(testDir, 'dog'));
  fs.writeFileSync(path.join(testDir, 'dog', 't1.png'), fs.readFileSync(path.join(train, 'dog', 'd2.png'))); // leaked

  const c = await checkData(train, testDir);
  assert.equal(c.train.kind, 'classification');
  assert.deepEqual(c.train.classes, ['cat', 'dog']);
  assert.equal(c.train.images, 10);
  // Counted over the images that decode: cat 4 (cut.png fails), dog 5.
  assert.deepEqual(c.train.counts, [4, 5]);
  assert.deepEqual(c.train.unreadable.map((u) => u.file), [path.join('cat', 'cut.png')]);
  // The cats 10, 11, 12, 13 high and 12 wide, the dogs four of 20×20 and c0's copy (10×12): heights sorted
  // 10 10 11 12 13 20 20 20 20 (median 13), widths five of 12 and four of 20 (median 12); five sizes.
  assert.deepEqual(c.train.sizes, { height: [10, 13, 20], width: [12, 12, 20], distinct: 5 });
  const groups = c.train.duplicates.map((d) => [...d.files].sort()).sort();
  assert.deepEqual(groups, [[path.join('cat', 'c0.png'), path.join('dog', 'also-c0.png')], [path.join('dog', 'd0-again.png'), path.join('dog', 'd0.png')]].sort());
  assert.deepEqual(c.leaked, [{ test: path.join('dog', 't1.png'), train: path.join('dog', 'd2.png') }]);
  // Errors: the unreadable file, the conflict, the leak; the copy within dog is a warning.
  assert.deepEqual([c.errors, c.warnings], [3, 1]);

  const r = spawnSync(process.execPath, [CLI, 'check-data', train, '--test-dir', testDir], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stdout, /images per class: cat 4 \(44\.4%\), dog 5 \(55\.6%\)/);
  assert.match(r.stdout, /ERROR .*cat\/cut\.png: /);
  assert.match(r.stdout, /ERROR identical files under different classes \(cat, dog\)/);
  assert.match(r.stdout, /warning identical files: /);
  assert.match(r.stdout, /ERROR .*test\/dog\/t1\.png is identical to the training image .*train\/dog\/d2\.png/);
  assert.match(r.stdout, /3 errors, 1 warning$/m);

  // Without its flaws the folder passes.
  for (const f of ['cat/cut.png', 'dog/also-c0.png', 'dog/d0-again.png']) fs.rmSync(path.join(train, f));
  const clean = spawnSync(process.execPath, [CLI, 'check-data', train, '--json'], { encoding: 'utf8' });
  assert.equal(clean.status, 0, clean.stdout);
  assert.deepEqual((JSON.parse(clean.stdout) as { errors: number; warnings: number }).errors, 0);
  assert.match(spawnSync(process.execPath, [CLI, 'check-data', path.join(root, 'nope')], { encoding: 'utf8' }).stderr, /nope: no such folder/);
});

test('segmentation folders: labelled pixels per class by hand, a mask label outside the classes named, an absent class noted', async () => {
  const root = tmpDir('tsv-check-seg-');
  // 8×8 masks: class 1 on the left half (32 pixels), class 0 on the right top (16), ignored (255) below it.
  const mask = (i: number): number => (i % 8 < 4 ? 1 : Math.floor(i / 8) < 4 ? 0 : 255);
  for (let k = 0; k < 3; k++) {
    await png(path.join(root, 'images', `a${k}.png`), 8, 8, k);
    await png(path.join(root, 'masks', `a${k}.png`), 8, 8, 0, 1, mask);
  }
  await png(path.join(root, 'images', 'bad.png'), 8, 8, 5);
  await png(path.join(root, 'masks', 'bad.png'), 8, 8, 0, 1, () => 7);
  const c = await checkData(root, null, { segmentation: { numClasses: 3 } });
  assert.equal(c.train.kind, 'segmentation');
  assert.deepEqual(c.train.counts, [3 * 16, 3 * 32, 0]);
  assert.deepEqual(c.train.unreadable.map((u) => u.file), [path.join('images', 'bad.png')]);
  assert.match(c.train.unreadable[0].problem, /mask of bad\.png has label 7, but there are 3 classes/);
  const r = spawnSync(process.execPath, [CLI, 'check-data', root, '--num-classes', '3'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stdout, /labelled pixels per class: class 0 48 \(33\.3%\), class 1 96 \(66\.7%\), class 2 0 \(0\.0%\)/);
  assert.match(r.stdout, /no labelled pixels of: class 2/);
});

test('images listed in a CSV of labels (--labels): counted by their listed classes, a missing file named by the CSV', async () => {
  const root = tmpDir('tsv-check-csv-');
  for (let i = 0; i < 5; i++) await png(path.join(root, `${i}.png`), 8, 8, i);
  fs.writeFileSync(path.join(root, 'labels.csv'), 'file,label\n0.png,b\n1.png,a\n2.png,b\n3,b\n4.png,a\n');
  const c = await checkData(root, null, { labels: path.join(root, 'labels.csv') });
  assert.deepEqual([c.train.classes, c.train.counts, c.errors], [['a', 'b'], [2, 3], 0]);
  fs.appendFileSync(path.join(root, 'labels.csv'), 'gone.png,a\n');
  const r = spawnSync(process.execPath, [CLI, 'check-data', root, '--labels', path.join(root, 'labels.csv')], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /labels\.csv.*line 7.*gone\.png/);
});
