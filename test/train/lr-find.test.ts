// The learning-rate range test: its schedule, smoothing and suggestion by hand, a sweep that diverges, and the
// command's files.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { findLearningRate, findSegmentationLearningRate, lrAt, smoothLosses, suggestLr } from '../../src/train/lr-find';
import { trainSegmentation } from '../../src/train/segment';
import { tmpDir } from '../helpers/tmp';

test('the sweep, the smoothing and the suggestion, by hand', () => {
  // 1e-4 to 1 in 5 steps: one decade a step.
  const lrs = [0, 1, 2, 3, 4].map((i) => lrAt(i, 5, 1e-4, 1));
  lrs.forEach((lr, i) => assert.ok(Math.abs(lr / 10 ** (i - 4) - 1) < 1e-12, `${lr}`));
  // β 0.5: a = 0.5 → 0.5 / 0.5 = 1; a = 0.25 + 1 = 1.25 → 1.25 / 0.75.
  const s = smoothLosses([1, 2], 0.5);
  assert.equal(s[0], 1);
  assert.ok(Math.abs(s[1] - 1.25 / 0.75) < 1e-15);
  // A loss that falls by 1, 3, then 1 per decade, then rises: the steepest fall is around the third point
  // (central differences there: (5 − 9) / 2 = −2, at the fourth (4 − 8) / 2 = −2 too: the first wins).
  const loss = [10, 9, 8, 5, 4, 6];
  const grid = loss.map((_, i) => 10 ** (i - 6));
  assert.deepEqual(suggestLr(grid, loss), { steepest: grid[2], minimum: grid[4] });
  // Only up to the lowest point: a later, steeper fall does not count.
  assert.deepEqual(suggestLr(grid.slice(0, 4), [3, 1, 2, 0]).minimum, grid[3]);
  assert.deepEqual(suggestLr([1e-3], [2]), { steepest: 1e-3, minimum: 1e-3 });
});

test('a sweep on Fashion-MNIST: rates grow as asked, the loss falls, then diverges and the sweep stops', async () => {
  const r = await findLearningRate({ modelOptions: { widths: [8, 16], hidden: 32 }, batchSize: 64, seed: 1 }, { start: 1e-4, end: 100, steps: 60 });
  assert.ok(r.divergedAt !== null && r.divergedAt < 59, `diverged at ${r.divergedAt}`);
  assert.equal(r.lrs.length, r.divergedAt! + 1);
  r.lrs.forEach((lr, i) => assert.ok(Math.abs(lr / lrAt(i, 60, 1e-4, 100) - 1) < 1e-12));
  assert.deepEqual(r.smoothed, smoothLosses(r.losses, 0.98));
  // The diverging point stopped it: its smoothed loss is past 4× the lowest before it.
  const before = Math.min(...r.smoothed.slice(0, r.divergedAt!));
  assert.ok(r.smoothed[r.divergedAt!] > 4 * before || !Number.isFinite(r.smoothed[r.divergedAt!]));
  // The suggestion lies before the divergence, where the loss had come down.
  assert.ok(r.steepest >= 1e-4 && r.steepest <= r.minimum && r.minimum < r.lrs[r.divergedAt!]);
  const at = r.lrs.indexOf(r.minimum);
  assert.ok(r.smoothed[at] < r.smoothed[0], JSON.stringify({ first: r.smoothed[0], lowest: r.smoothed[at] }));
});

test('tsvision lr-find: a suggestion, lr-find.png and lr-find.json; bad sweeps are refused', async () => {
  const dir = tmpDir('tsv-lrf-');
  const cli = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'lr-find', ...args], { encoding: 'utf8' });
  const r = run('--steps', '20', '--start', '1e-3', '--end', '1', '-b', '32', '-o', dir);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^suggested: --lr [\d.e+-]+ \(where the loss fell fastest\); lowest loss at [\d.e+-]+/);
  const report = JSON.parse(fs.readFileSync(path.join(dir, 'lr-find.json'), 'utf8')) as { lrs: number[]; steepest: number };
  assert.equal(report.lrs.length <= 20, true);
  assert.match(r.stdout, new RegExp(`--lr ${report.steepest.toPrecision(2).replace(/[.+]/g, '\\$&')} `));
  const png = await sharp(path.join(dir, 'lr-find.png')).metadata();
  assert.equal(png.format, 'png');
  assert.match(run('--start', '1', '--end', '0.1').stderr, /--start must be above 0 and below --end, got 1 and 0\.1/);
  assert.match(run('--steps', '1').stderr, /--steps must be an integer >= 2/);
});

test('segment --lr-find: the sweep trains with the run\'s own network, data and loss (its first loss is the run\'s first batch\'s), and writes the files', async () => {
  const scenes = { size: 32, trainCount: 24, testCount: 4, maxItems: 2 };
  const dir = tmpDir('tsv-lrf-seg-');
  const r = await findSegmentationLearningRate({ model: 'enet', batchSize: 8, seed: 3, threads: 1, scenes }, { start: 1e-5, end: 10, steps: 12 });
  r.lrs.forEach((lr, i) => assert.ok(Math.abs(lr / lrAt(i, 12, 1e-5, 10) - 1) < 1e-12));
  // One batch of an ordinary run with the same settings: its training loss is the loss before the first
  // step — ENet's class-weighted cross-entropy of the same fresh network on the same scenes.
  const run = await trainSegmentation({ model: 'enet', batchSize: 8, seed: 3, threads: 1, scenes, epochs: 1, limitBatches: 1, outDir: path.join(dir, 'run') }, () => {});
  assert.ok(Math.abs(r.losses[0] - run.history[0].trainLoss) <= 1e-6 * run.history[0].trainLoss, `sweep ${r.losses[0]}, run ${run.history[0].trainLoss}`);
  assert.ok(r.losses.slice(1).some((l) => l !== r.losses[0]), 'the steps change the network');

  const cli = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
  const out = path.join(dir, 'cli');
  const c = spawnSync(process.execPath, [cli, 'segment', '--lr-find', '--size', '32', '--train-scenes', '24', '--test-scenes', '4', '--max-items', '2', '-b', '8', '--threads', '1', '-o', out], { encoding: 'utf8' });
  assert.equal(c.status, 0, c.stderr);
  assert.match(c.stdout, /^suggested: --lr [\d.e+-]+ \(where the loss fell fastest\)/);
  assert.ok(fs.existsSync(path.join(out, 'lr-find.png')) && !fs.existsSync(path.join(out, 'checkpoint.safetensors')), 'a sweep, not a run');
  const bad = spawnSync(process.execPath, [cli, 'segment', '--lr-find', '--resume', path.join(dir, 'run', 'checkpoint.safetensors')], { encoding: 'utf8' });
  assert.match(bad.stderr, /--lr-find starts a fresh network/);
});
