// `tsvision compare`: every number in its tables is the one the run's report.json holds (read here
// independently), the columns are exactly the settings that differ, and bad folders are named.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { train } from '../../src/train/trainer';
import { trainSegmentation } from '../../src/train/segment';
import { parseMarkdownTables } from '../../src/report/markdown';
import { tmpDir } from '../helpers/tmp';

const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
const compare = (...args: string[]) => spawnSync(process.execPath, [CLI, 'compare', ...args], { encoding: 'utf8' });
const quiet = (): void => {};
const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;

test('compare: the runs\' scores as their reports hold them, a column per differing setting, the best in bold, curves in a PNG', async () => {
  const parent = tmpDir('tsv-compare-');
  const base = { model: 'cnn' as const, epochs: 2, limitBatches: 3, batchSize: 32, threads: 1 };
  // Two classifiers that differ in the learning rate and the seed, the second with a moving average too.
  await train({ ...base, lr: 0.05, seed: 0, outDir: path.join(parent, 'a') }, quiet);
  await train({ ...base, lr: 0.01, seed: 1, ema: 0.9, outDir: path.join(parent, 'b') }, quiet);
  const seg = tmpDir('tsv-compare-seg-');
  await trainSegmentation({ epochs: 1, limitBatches: 2, batchSize: 4, threads: 1, scenes: { size: 32, trainCount: 16, testCount: 8, maxItems: 2 }, outDir: seg }, quiet);

  const png = path.join(parent, 'compare.png');
  const r = compare(parent, seg, '--plot', png);
  assert.equal(r.status, 0, r.stderr);
  const tables = parseMarkdownTables(r.stdout);
  assert.equal(tables.length, 2, 'one table per kind');
  assert.match(r.stdout, /^classification:\n/);
  assert.match(r.stdout, /\nsegmentation:\n/);

  const cls = tables[0];
  const col = (name: string): number => {
    const i = cls.header.indexOf(name);
    assert.ok(i >= 0, `column ${name} in ${cls.header.join(' | ')}`);
    return i;
  };
  // The folder given held no report of its own: its two runs, in name order.
  assert.deepEqual(cls.rows.map((row) => row[0]), [path.join(parent, 'a'), path.join(parent, 'b')]);
  // The settings columns: exactly those that differ, after the fixed ones.
  assert.deepEqual(cls.header.slice(col('s / epoch') + 1), ['ema', 'lr', 'seed']);
  const reports = ['a', 'b'].map((d) => JSON.parse(fs.readFileSync(path.join(parent, d, 'report.json'), 'utf8')));
  const best = Math.max(...reports.map((rep) => rep.history[1].testTop1));
  cls.rows.forEach((row, i) => {
    const rep = reports[i];
    const last = rep.history[rep.history.length - 1];
    assert.equal(row[col('model')], 'cnn');
    assert.equal(row[col('params')], rep.parameters.toLocaleString('en-US'));
    assert.equal(row[col('epochs')], '2/2');
    assert.equal(row[col('train loss')], last.trainLoss.toFixed(4));
    const top1 = pct(last.testTop1);
    assert.equal(row[col('test top-1')], last.testTop1 === best ? `**${top1}**` : top1);
    // The median of two epochs' training seconds is their mean.
    assert.equal(row[col('s / epoch')], ((rep.history[0].seconds + rep.history[1].seconds) / 2).toFixed(1));
    assert.equal(row[col('lr')], String(rep.config.lr));
    assert.equal(row[col('EMA test top-1')], i === 0 ? '—' : pct(last.emaTestTop1));
    assert.equal(row[col('ema')], i === 0 ? '—' : '0.9');
    assert.equal(row[col('seed')], String(rep.config.seed));
  });
  assert.ok(!cls.header.some((h) => h.startsWith('best validation')), 'no validation split, no best-epoch column');
  assert.match(r.stdout, /The same in every run: .*batchSize 32/);

  const s = tables[1];
  const segReport = JSON.parse(fs.readFileSync(path.join(seg, 'report.json'), 'utf8'));
  assert.deepEqual(s.header.slice(0, 7), ['run', 'model', 'params', 'epochs', 'train loss', 'test mIoU', 'pixel accuracy']);
  assert.deepEqual(s.rows[0].slice(0, 7), [seg, 'enet', segReport.parameters.toLocaleString('en-US'), '1/1', segReport.history[0].trainLoss.toFixed(4), pct(segReport.history[0].testMIoU), pct(segReport.history[0].testPixelAccuracy)]);

  // Test score and loss per epoch for each kind: four plots side by side.
  const meta = await sharp(png).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 4 * 640, 400]);

  // --sort puts the best test top-1 first; --json gives the same facts as numbers.
  const j = compare(path.join(parent, 'b'), path.join(parent, 'a'), '--sort', '--json');
  assert.equal(j.status, 0, j.stderr);
  const facts = JSON.parse(j.stdout) as { dir: string; test: number; curve: { test: number }[] }[];
  assert.ok(facts[0].test >= facts[1].test);
  for (const f of facts) {
    const rep = reports[f.dir.endsWith('a') ? 0 : 1];
    assert.deepEqual(f.curve.map((c) => c.test), rep.history.map((h: { testTop1: number }) => h.testTop1));
  }
});

test('compare names what is wrong: a missing folder, one without runs, a corrupt report, a report without history', () => {
  const empty = tmpDir('tsv-compare-bad-');
  assert.match(compare('/nonexistent/run').stderr, /\/nonexistent\/run: no such folder/);
  const none = compare(empty);
  assert.equal(none.status, 1);
  assert.match(none.stderr, /: no report\.json, and none of its sub-folders is a run/);
  fs.writeFileSync(path.join(empty, 'report.json'), '{"config": ');
  assert.match(compare(empty).stderr, /report\.json: not readable JSON/);
  // A dsd or prune summary: its own report.json holds no epochs (its phases' folders do).
  fs.writeFileSync(path.join(empty, 'report.json'), JSON.stringify({ method: 'dsd', phases: {} }));
  assert.match(compare(empty).stderr, /its report\.json has no per-epoch history \(not a train or segment run\), and none of its sub-folders is a run/);
  assert.doesNotMatch(compare(empty).stderr, /at .*\.js:\d+/);
});
