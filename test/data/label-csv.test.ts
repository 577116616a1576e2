// Labels in a CSV file: the parser on quoting and line endings, the listing against the rows by hand (file
// order, classes sorted, bare ids found with their extension), the errors naming file and line, and a run
// trained and evaluated from CSV labels through the CLI.
import { test, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { parseCsv, readLabelCsv } from '../../src/data/label-csv';
import { makeLoaders } from '../../src/train/datasets';
import { SampleSubset } from '../../src/data';
import { tmpDir } from '../helpers/tmp';

const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
const dir = tmpDir('tsv-labelcsv-');
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const grey = (file: string, v: number): Promise<unknown> => sharp(Buffer.alloc(8 * 8, v), { raw: { width: 8, height: 8, channels: 1 } }).png().toFile(file);

test('parseCsv: quoted commas and quotes, CRLF and LF, blank lines, a last line without a newline', () => {
  assert.deepEqual(parseCsv('a,b\r\n"x, y","say ""hi"""\n\nz,w'), [['a', 'b'], ['x, y', 'say "hi"'], ['z', 'w']]);
  assert.deepEqual(parseCsv('id,label\n1,cat\n'), [['id', 'label'], ['1', 'cat']]);
});

test('readLabelCsv: rows in file order, classes sorted by name, bare ids with their extension; errors name file and line', async () => {
  const root = path.join(dir, 'imgs');
  fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
  await grey(path.join(root, '7.png'), 10);
  await grey(path.join(root, 'sub', 'b.jpg'), 20);
  await grey(path.join(root, 'c.png'), 30);
  const csv = path.join(dir, 'train.csv');
  fs.writeFileSync(csv, '\uFEFFfile,species,notes\n7,dog,\nsub/b.jpg,cat,"brown, small"\nc.png,dog,\n');
  const l = readLabelCsv(csv, root);
  assert.deepEqual(l.classes, ['cat', 'dog']);
  assert.deepEqual(l.samples, [{ path: path.join(root, '7.png'), label: 1 }, { path: path.join(root, 'sub', 'b.jpg'), label: 0 }, { path: path.join(root, 'c.png'), label: 1 }]);
  // Columns by name, and a test CSV numbered by the training classes.
  fs.writeFileSync(path.join(dir, 'named.csv'), 'notes,species,file\n,cat,c.png\n');
  assert.deepEqual(readLabelCsv(path.join(dir, 'named.csv'), root, { columns: ['file', 'species'], classes: ['cat', 'dog'] }).samples, [{ path: path.join(root, 'c.png'), label: 0 }]);
  const bad = (body: string): string => {
    fs.writeFileSync(path.join(dir, 'bad.csv'), body);
    return path.join(dir, 'bad.csv');
  };
  assert.throws(() => readLabelCsv(bad('file,label\n7,dog\nmissing,cat\n'), root), /bad\.csv, line 3: no image .*missing \(nor with \.png, \.jpg, \.jpeg\)/);
  assert.throws(() => readLabelCsv(bad('file,label\n7,\n'), root), /line 2: no label for 7/);
  assert.throws(() => readLabelCsv(bad('file,label\n'), root), /lists no images/);
  assert.throws(() => readLabelCsv(bad('file,label\n7,bird\n'), root, { classes: ['cat', 'dog'] }), /line 2: label 'bird' is not one of the training classes \(cat, dog\)/);
  assert.throws(() => readLabelCsv(bad('file,label\n7,dog\n'), root, { columns: ['image', 'label'] }), /no column 'image' in its header \(file, label\)/);
  assert.throws(() => readLabelCsv(path.join(dir, 'nowhere.csv'), root), /nowhere\.csv: cannot read it/);
});

test('train --labels: a folder of images with a CSV of classes; eval re-scores the held-out images, --test-labels reads a test folder', async () => {
  const root = path.join(dir, 'flat');
  fs.mkdirSync(root, { recursive: true });
  const rows = ['image,label'];
  for (let i = 0; i < 12; i++) {
    await grey(path.join(root, `${i}.png`), i % 2 ? 230 - i : 20 + i);
    rows.push(`${i},${i % 2 ? 'light' : 'dark'}`);
  }
  fs.writeFileSync(path.join(dir, 'labels.csv'), rows.join('\n'));
  const l = makeLoaders({ kind: 'image-folder', train: root, labels: path.join(dir, 'labels.csv'), testSplit: 0.25, size: 8, channels: 1 }, { batchSize: 4, seed: 0, augment: false });
  assert.deepEqual(l.classes, ['dark', 'light']);
  // A quarter of each class's six held out: round(1.5) = 2 each.
  assert.deepEqual(l.trainCounts, [4, 4]);
  assert.equal((l.test.dataset as SampleSubset).indices.length, 4);
  const out = path.join(dir, 'run');
  const t = spawnSync(process.execPath, [CLI, 'train', '--train-dir', root, '--labels', path.join(dir, 'labels.csv'), '--channels', '1', '--image-size', '8', '--epochs', '1', '-b', '4', '--opt', 'widths=4,8', '--opt', 'hidden=8', '--threads', '1', '-o', out], { encoding: 'utf8' });
  assert.equal(t.status, 0, t.stderr);
  const top1 = /test accuracy: top-1 ([\d.]+)%/.exec(t.stdout)![1];
  const e = spawnSync(process.execPath, [CLI, 'eval', '-c', path.join(out, 'model.safetensors')], { encoding: 'utf8' });
  assert.equal(e.status, 0, e.stderr);
  // The CLI's default test share, a fifth: round(1.2) = 1 of each class.
  assert.match(e.stdout, new RegExp(`on 2 test images.*top-1 ${top1.replace('.', '\\.')}%`));
  // A test folder listed by its own CSV: its labels numbered as training's.
  fs.writeFileSync(path.join(dir, 'test.csv'), 'image,label\n3,light\n');
  const withTest = makeLoaders({ kind: 'image-folder', train: root, labels: path.join(dir, 'labels.csv'), test: root, testLabels: path.join(dir, 'test.csv'), size: 8, channels: 1 }, { batchSize: 4, seed: 0, augment: false });
  const b = (await withTest.test.epoch(0).next()).value!;
  assert.deepEqual(b.y.toNumbers(), [1]);
  const noDir = spawnSync(process.execPath, [CLI, 'train', '--labels', path.join(dir, 'labels.csv')], { encoding: 'utf8' });
  assert.match(noDir.stderr, /--labels lists the images of --train-dir: give --train-dir too/);
});
