// `tsvision sweep`: a run per grid combination with exactly its flags, a stop that the next run of the
// command continues, the winner chosen on validation scores read back from the runs' own reports.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { combinations, parseGrid } from '../../src/cli/sweep';
import { parseMarkdownTables } from '../../src/report/markdown';
import { tmpDir } from '../helpers/tmp';

const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

test('the grid: flags with or without dashes, | for values with commas, every combination with the first axis slowest', () => {
  const axes = parseGrid(['lr=0.1,0.02', '--color-jitter=0.4,0.4,0.4,0.1|0.2,0.2,0.2,0']);
  assert.deepEqual(axes, [
    { flag: 'lr', values: ['0.1', '0.02'] },
    { flag: 'color-jitter', values: ['0.4,0.4,0.4,0.1', '0.2,0.2,0.2,0'] },
  ]);
  assert.deepEqual(combinations(axes), [
    { name: 'lr-0.1_color-jitter-0.4_0.4_0.4_0.1', flags: ['--lr', '0.1', '--color-jitter', '0.4,0.4,0.4,0.1'], values: ['0.1', '0.4,0.4,0.4,0.1'] },
    { name: 'lr-0.1_color-jitter-0.2_0.2_0.2_0', flags: ['--lr', '0.1', '--color-jitter', '0.2,0.2,0.2,0'], values: ['0.1', '0.2,0.2,0.2,0'] },
    { name: 'lr-0.02_color-jitter-0.4_0.4_0.4_0.1', flags: ['--lr', '0.02', '--color-jitter', '0.4,0.4,0.4,0.1'], values: ['0.02', '0.4,0.4,0.4,0.1'] },
    { name: 'lr-0.02_color-jitter-0.2_0.2_0.2_0', flags: ['--lr', '0.02', '--color-jitter', '0.2,0.2,0.2,0'], values: ['0.02', '0.2,0.2,0.2,0'] },
  ]);
  assert.throws(() => parseGrid(['lr']), /--grid 'lr': expected flag=value1,value2/);
  assert.throws(() => parseGrid(['lr=0.1,']), /an empty value/);
  assert.throws(() => parseGrid(['lr=0.1', 'lr=0.2']), /lr is given twice/);
  assert.throws(() => parseGrid(['lr=0.1,0.1']), /a value is listed twice/);
  assert.throws(() => parseGrid([]), /at least one --grid/);
});

test('sweep: SIGTERM stops it inside a run, which the same command then resumes; the table and the winner come from the runs\' reports', async () => {
  const out = tmpDir('tsv-sweep-');
  const args = ['sweep', '--grid', 'lr=0.01,0.1', '-o', out, '--', 'train', '--epochs', '2', '--limit-batches', '4', '--batch-size', '32', '--val-split', '0.1', '--threads', '1'];
  // Stopped as a job system would, once the first run is training.
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  const code = await new Promise<number | null>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (/\[1\/2 lr-0\.01\] epoch 1\/2 \[/.test(err) && !child.killed) child.kill('SIGTERM');
    });
    child.on('close', (c) => resolve(c));
  });
  assert.equal(code, 143, err.slice(-800));
  assert.ok(fs.existsSync(path.join(out, 'lr-0.01', 'checkpoint.safetensors')), 'the run saved where it stopped');
  assert.ok(!fs.existsSync(path.join(out, 'lr-0.1')), 'the sweep went no further');
  // --dry-run says what the next run of the command will do, and does nothing.
  const plan = spawnSync(process.execPath, [CLI, ...args.slice(0, 1), '--dry-run', ...args.slice(1)], { encoding: 'utf8' });
  assert.equal(plan.status, 0, plan.stderr);
  assert.deepEqual(plan.stdout.trim().split('\n').map((l) => l.split(/\s+/)[0]), ['resume', 'new', '2']);
  assert.match(plan.stdout, /resume +tsvision train --resume .*lr-0\.01\/checkpoint\.safetensors -o /);
  assert.match(plan.stdout, /2 runs: 1 new, 1 to resume, 0 finished/);
  assert.ok(!fs.existsSync(path.join(out, 'lr-0.1')));

  const again = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr.slice(-800));
  assert.match(again.stderr, /\[1\/2 lr-0\.01\] tsvision train .*--resume .*lr-0\.01\/checkpoint\.safetensors/);
  const reports = ['lr-0.01', 'lr-0.1'].map((d) => JSON.parse(fs.readFileSync(path.join(out, d, 'report.json'), 'utf8')));
  // Each run trained with its grid value and the sweep's other flags.
  assert.deepEqual(reports.map((r) => [r.config.lr, r.config.epochs, r.history.length, r.config.data.valSplit]), [[0.01, 2, 2, 0.1], [0.1, 2, 2, 0.1]]);

  const md = fs.readFileSync(path.join(out, 'SWEEP.md'), 'utf8');
  const [table] = parseMarkdownTables(md);
  const col = (h: string): number => table.header.indexOf(h);
  // Best validation first; every cell from the run's own report.
  const order = [0, 1].sort((a, b) => reports[b].best.valTop1 - reports[a].best.valTop1);
  assert.deepEqual(table.rows.map((r) => r[0]), order.map((i) => path.join(out, ['lr-0.01', 'lr-0.1'][i])));
  table.rows.forEach((row, k) => {
    const r = reports[order[k]];
    assert.equal(row[col('best validation top-1 (epoch: test)')], `${(100 * r.best.valTop1).toFixed(2)}% (${r.best.epoch}: ${(100 * r.best.testTop1).toFixed(2)}%)`);
    assert.equal(row[col('lr')], String(r.config.lr));
  });
  const w = reports[order[0]];
  assert.match(md, new RegExp(`Chosen by best validation top-1: \\*\\*.*lr-${w.config.lr}\\*\\*, ${(100 * w.best.valTop1).toFixed(2)}% at epoch ${w.best.epoch}`));
  assert.ok(fs.existsSync(path.join(out, 'sweep.png')));

  // Once more: nothing left to train; other flags into the same folder are refused.
  const third = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  assert.equal(third.status, 0);
  assert.equal((third.stderr.match(/finished earlier, reusing/g) ?? []).length, 2);
  const other = spawnSync(process.execPath, [CLI, ...args.slice(0, -2), '--threads', '2'], { encoding: 'utf8' });
  assert.equal(other.status, 1);
  assert.match(other.stderr, /holds a run of `train .*--threads 1 --lr 0\.01`, not of this sweep's `train .*--threads 2 --lr 0\.01`: remove it or choose another --out/);
  for (const [bad, message] of [
    [['sweep', '--grid', 'lr=1', '--', 'dsd'], /sweep runs train or segment, not 'dsd'/],
    [['sweep', '--grid', 'lr=1', '--', 'train', '--lr', '2'], /--lr is on the grid; leave it out of the command/],
    [['sweep', '--grid', 'lr=1', '--', 'train', '-o', out], /leave -o\/--out and --resume out of the command/],
  ] as const) {
    const r = spawnSync(process.execPath, [CLI, ...bad], { encoding: 'utf8' });
    assert.equal(r.status, 1, bad.join(' '));
    assert.match(r.stderr, message);
  }
});

test('sweep with seed on the grid: each setting over its seeds, mean ± sample std from the runs\' reports, chosen by the mean', () => {
  const out = tmpDir('tsv-sweep-seeds-');
  const r = spawnSync(process.execPath, [CLI, 'sweep', '--grid', 'lr=0.01,0.1', '--grid', 'seed=0,1', '-o', out, '--', 'train', '--epochs', '1', '--limit-batches', '2', '--batch-size', '32', '--val-split', '0.1', '--threads', '1'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr.slice(-800));
  const val = (lr: string, seed: number): number => JSON.parse(fs.readFileSync(path.join(out, `lr-${lr}_seed-${seed}`, 'report.json'), 'utf8')).best.valTop1;
  // By hand: mean and sample standard deviation of two values are their average and |a − b| / √2.
  const stats = (lr: string): [number, number, number, number] => {
    const [a, b] = [val(lr, 0), val(lr, 1)];
    return [(a + b) / 2, Math.abs(a - b) / Math.SQRT2, a, b];
  };
  const p2 = (x: number): string => (100 * x).toFixed(2);
  const md = fs.readFileSync(path.join(out, 'SWEEP.md'), 'utf8');
  const seeds = parseMarkdownTables(md).find((t) => t.header[0] === 'lr');
  assert.ok(seeds, md);
  assert.deepEqual(seeds.header, ['lr', 'seeds finished', 'test top-1 (%)', 'best validation top-1 (%)']);
  const order = ['0.01', '0.1'].sort((x, y) => stats(y)[0] - stats(x)[0]);
  assert.deepEqual(seeds.rows.map((row) => [row[0], row[1], row[3]]), order.map((lr) => {
    const [m, s, a, b] = stats(lr);
    return [lr, '2', `${p2(m)} ± ${p2(s)} (${p2(a)}, ${p2(b)})`];
  }));
  assert.match(md, new RegExp(`Chosen by mean best validation top-1 over 2 seeds: \\*\\*--lr ${order[0].replace('.', '\\.')}\\*\\*`));
  // The curves' two plots and a third: each setting's seeds as points.
  assert.equal(pngWidth(fs.readFileSync(path.join(out, 'sweep.png'))), 3 * 640);
});

/** A PNG's width, from its IHDR chunk. */
const pngWidth = (png: Buffer): number => png.readUInt32BE(16);
