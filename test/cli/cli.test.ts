// The command line as a user meets it: help, bad flags, info and summary.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { confusionLayout } from '../../src/report/confusion';
import { tmpDir } from '../helpers/tmp';

const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

test('an unknown flag is a one-line error with a non-zero exit, no stack trace', () => {
  const r = run('train', '--epochz', '3');
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /unknown option '--epochz'/);
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/);
});

test('a bad flag value names the flag', () => {
  const r = run('train', '--epochs', 'three');
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--epochs must be an integer/);
  const m = run('train', '--model', 'alexnet');
  assert.match(m.stderr, /unknown model 'alexnet'/);
});

test('a missing checkpoint is a clear error', () => {
  const r = run('eval', '--checkpoint', '/nonexistent/c.safetensors');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /no such file/);
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/);
});

test('--help explains every train flag', () => {
  const r = run('train', '--help');
  assert.equal(r.status, 0);
  for (const flag of ['--model', '--epochs', '--batch-size', '--lr', '--resume', '--train-dir', '--augment', '--threads']) assert.ok(r.stdout.includes(flag), flag);
});

test('--color-jitter is in train\'s and segment\'s help; bad values are refused naming the flag', () => {
  for (const cmd of ['train', 'segment']) {
    const r = run(cmd, '--help');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /--color-jitter <b,c,s,h>/, cmd);
  }
  const bad: [string, string[], RegExp][] = [
    ['train', ['--color-jitter', '0.4,-1'], /--color-jitter: contrast must be a finite number ≥ 0, got -1/],
    ['segment', ['--color-jitter', '0.4,0.4,0.4,0.7'], /--color-jitter: hue must be at most 0.5.*got 0.7/],
    ['train', ['--color-jitter', 'strong'], /--color-jitter takes 1 to 4 numbers/],
    ['segment', ['--color-jitter', '0.1,0.1,0.1,0.1,0.1'], /--color-jitter takes 1 to 4 numbers/],
    ['train', ['--color-jitter', '0.4,,0.4'], /--color-jitter takes 1 to 4 numbers/],
    ['train', ['--color-jitter', '0.4,1.2:0.8'], /--color-jitter: contrast as a range must be \[lo, hi\] with 0 ≤ lo ≤ hi ≤ Infinity, got \[1.2, 0.8\]/],
    ['segment', ['--color-jitter', '0,0,0,-0.6:0.1'], /--color-jitter: hue as a range must be .*-0.5 ≤ lo ≤ hi ≤ 0.5, got \[-0.6, 0.1\]/],
    ['train', ['--color-jitter', '0.5:1:2'], /--color-jitter takes 1 to 4 numbers or ranges lo:hi/],
    ['train', ['--color-jitter', '0.5:'], /--color-jitter takes 1 to 4 numbers or ranges lo:hi/],
  ];
  for (const [cmd, args, msg] of bad) {
    const r = run(cmd, ...args);
    assert.notEqual(r.status, 0, `${cmd} ${args.join(' ')}`);
    assert.match(r.stderr, msg);
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/);
  }
});

test('--optimizer rmsprop and rmsprop-tf and --schedule exp are in train\'s help; the staircase flags need --schedule exp', () => {
  const help = run('train', '--help').stdout;
  for (const s of ['rmsprop', 'rmsprop-tf', 'exp', '--decay-rate <r>', '--decay-epochs <n>']) assert.ok(help.includes(s), s);
  assert.ok(run('segment', '--help').stdout.includes('rmsprop-tf'));
  const bad: [string[], RegExp][] = [
    [['train', '--decay-rate', '0.9'], /--decay-rate and --decay-epochs shape the exp schedule: give --schedule exp too/],
    [['train', '--schedule', 'exp', '--decay-epochs', '0'], /--decay-epochs must be a number of epochs > 0, got '0'/],
    [['train', '--optimizer', 'rmsprop-x'], /argument 'rmsprop-x' is invalid. Allowed choices are sgd, adam, adamw, rmsprop, rmsprop-tf/],
  ];
  for (const [args, msg] of bad) {
    const r = run(...args);
    assert.notEqual(r.status, 0, args.join(' '));
    assert.match(r.stderr, msg);
  }
});

test('--slide and --stride (sliding-window segmentation) are in eval\'s and predict\'s help, --bf16 in predict\'s; bad uses are refused naming the flag', () => {
  for (const cmd of ['eval', 'predict']) {
    const r = run(cmd, '--help');
    assert.equal(r.status, 0);
    for (const flag of ['--slide <HxW>', '--stride <HxW>', '--windows-per-call <n>', '--scales', '--flip']) assert.ok(r.stdout.includes(flag), `${cmd} ${flag}`);
  }
  assert.ok(run('predict', '--help').stdout.includes('--bf16'));
  const evalHelp = run('eval', '--help').stdout;
  for (const flag of ['--optimize', '--bf16']) assert.ok(evalHelp.includes(flag), `eval ${flag}`);
  const bf16 = run('predict', 'w.safetensors', 'a.png', '--bf16', '--no-optimize');
  assert.notEqual(bf16.status, 0);
  assert.match(bf16.stderr, /--bf16 is part of the optimization for inference: it cannot go with --no-optimize/);
  assert.match(run('summary', 'cnn', '--bf16').stderr, /--bf16 adds a timing: give --time too/);
  const bad: [string[], RegExp][] = [
    [['eval', '-c', 'c.safetensors', '--stride', '8x8'], /--stride sets the step between --slide windows: give --slide too/],
    [['eval', '-c', 'c.safetensors', '--windows-per-call', '2'], /--windows-per-call batches --slide windows: give --slide too/],
    [['predict', 'w.safetensors', 'a.png', '--slide', '16x16', '--windows-per-call', '0'], /--windows-per-call must be an integer >= 1, got '0'/],
    [['predict', 'w.safetensors', 'a.png', '--slide', '16x16', '--stride', '20x8'], /--stride 20x8 would skip pixels between --slide 16x16 windows/],
    [['eval', '-c', 'c.safetensors', '--slide', '0x3'], /--slide takes HxW or N, got '0x3'/],
  ];
  for (const [args, msg] of bad) {
    const r = run(...args);
    assert.notEqual(r.status, 0, args.join(' '));
    assert.match(r.stderr, msg);
  }
});

test('train --bf16, then eval --out: report.json and confusion.png; the matrix holds every test image and agrees with the top-1 printed', () => {
  const dir = tmpDir('tsv-eval-out-');
  // Trained in bfloat16 mixed precision (train --bf16): logged, recorded in the run's config.
  const t = run('train', '--epochs', '1', '--limit-batches', '3', '--batch-size', '64', '--threads', '1', '--bf16', '-o', path.join(dir, 'run'));
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stderr + t.stdout, /bfloat16 mixed precision/);
  const trained = JSON.parse(fs.readFileSync(path.join(dir, 'run', 'report.json'), 'utf8')) as { config: { precision?: string } };
  assert.equal(trained.config.precision, 'bfloat16');
  const e = run('eval', '-c', path.join(dir, 'run', 'checkpoint.safetensors'), '--threads', '1', '-o', path.join(dir, 'eval'));
  assert.equal(e.status, 0, e.stderr);
  const top1 = Number(/top-1 ([\d.]+)%/.exec(e.stdout)![1]);
  const r = JSON.parse(fs.readFileSync(path.join(dir, 'eval', 'report.json'), 'utf8')) as { classes: string[]; confusion: number[][]; count: number };
  assert.equal(r.classes.length, 10);
  assert.deepEqual(r.confusion.map((row) => row.length), Array(10).fill(10));
  const total = r.confusion.flat().reduce((a, b) => a + b, 0);
  const diagonal = r.confusion.reduce((a, row, i) => a + row[i], 0);
  assert.equal(total, 10000);
  // top-1 comes from topkHits, the diagonal from the bincount: two computations of one number.
  assert.equal((100 * diagonal / total).toFixed(2), top1.toFixed(2));
  const png = fs.readFileSync(path.join(dir, 'eval', 'confusion.png'));
  const L = confusionLayout(10, Math.max(...r.classes.map((c) => c.length)));
  assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [L.width, L.height], 'PNG header: width and height');
});

test('--help explains every predict flag', () => {
  const r = run('predict', '--help');
  assert.equal(r.status, 0);
  for (const flag of ['<weights>', '<images...>', '--model', '--opt', '--top', '--json', '--out', '--legend', '--size', '--native', '--mean', '--std']) assert.ok(r.stdout.includes(flag), flag);
});

test('info reports the engine', () => {
  const r = run('info');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /libtorch \d+\.\d+/);
  assert.match(r.stdout, /threads\s+\d+/);
  // bfloat16 support as the kernel reports the CPU's instruction sets.
  const flags = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)![1].split(/\s+/);
  const native = flags.includes('avx512_bf16') || flags.includes('amx_bf16');
  const avx512 = ['avx512bw', 'avx512vl', 'avx512dq'].every((f) => flags.includes(f));
  assert.match(r.stdout, native ? /bfloat16 native/ : avx512 ? /bfloat16 emulated/ : /bfloat16 no AVX-512: .* sum in float32/);
  // int8: VNNI (exact 32-bit sums in onnxruntime) or not.
  const vnni = ['avx512_vnni', 'avx_vnni', 'amx_int8'].some((f) => flags.includes(f));
  assert.match(r.stdout, vnni ? /int8\s+VNNI/ : /int8\s+no VNNI: .*--reduce-range/);
});

test('summary prints per-layer rows and the totals the model really has', () => {
  const r = run('summary', 'mobilenet_v1', '--opt', 'alpha=0.25', '--input', '1,3,128,128');
  assert.equal(r.status, 0, r.stderr);
  // The total parameter count printed must be the model's own; recompute it independently in-process.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { createModel } = require('../../src/models/registry') as typeof import('../../src/models/registry');
  const n = createModel('mobilenet_v1', { alpha: 0.25 }).numParameters();
  assert.ok(r.stdout.replace(/,/g, '').includes(String(n)), `summary does not show ${n} parameters:\n${r.stdout.slice(-600)}`);
});

// Ctrl-C on `train`; SIGTERM (what docker stop, Kubernetes, SLURM and timeout send) on `segment`: both finish
// the step, save where they stopped and exit with 128 + the signal's number.
for (const [command, signal, exitCode, flags] of [
  ['train', 'SIGINT', 130, ['--epochs', '1', '--batch-size', '16']],
  ['segment', 'SIGTERM', 143, ['--epochs', '1', '--batch-size', '8', '--size', '32', '--train-scenes', '400', '--test-scenes', '16']],
] as const) {
  test(`${signal} during \`${command}\` saves a checkpoint of the step it stopped after and exits with code ${exitCode}`, async () => {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { spawn } = require('node:child_process') as typeof import('node:child_process');
    const out = tmpDir(`tsv-${signal}-`);
    const child = spawn(process.execPath, [CLI, command, ...flags, '--threads', '1', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    const code = await new Promise<number | null>((resolve) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        // Signal once training is under way.
        if (/\[\s*\d+\/\d+\]/.test(err) && !child.killed) child.kill(signal);
      });
      child.on('exit', (c) => resolve(c));
    });
    assert.equal(code, exitCode, err.slice(-500));
    assert.match(err, /saved .*checkpoint\.safetensors at epoch 1, batch \d+/);
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { readCheckpoint } = require('../../src/train/checkpoint') as typeof import('../../src/train/checkpoint');
    const state = readCheckpoint(path.join(out, 'checkpoint.safetensors')).state;
    assert.equal(state.epoch, 0);
    assert.ok(state.batch > 0);
  });
}

test('dsd and mimic: bad values name the flag; a missing teacher says how to make one', () => {
  const s = run('dsd', '--sparsity', '1.5');
  assert.notEqual(s.status, 0);
  assert.match(s.stderr, /--sparsity must be a fraction in \[0, 1\), got '1.5'/);
  const m = run('mimic', '--teacher', '/nonexistent/teacher.safetensors');
  assert.equal(m.status, 1);
  assert.match(m.stderr, /teacher.safetensors: no such file/);
  assert.doesNotMatch(m.stderr, /at .*\.js:\d+/);
  const h = run('dsd', '--help');
  for (const flag of ['--sparsity', '--dense-epochs', '--sparse-epochs', '--redense-epochs', '--dense', '--no-control', '--lr']) assert.ok(h.stdout.includes(flag), flag);
});

test('--opt takes comma-separated lists: a pruned cnn summarized from its channels', () => {
  const r = run('summary', 'cnn', '--opt', 'channels=16,16,32,32', '--opt', 'numClasses=10', '--input', '1,1,28,28');
  assert.equal(r.status, 0, r.stderr);
  // 1→16→16 and 16→32→32 3×3 convs without bias, BN (2 per channel), FC 32·49→128→10.
  const params = 9 * (16 + 16 * 16 + 16 * 32 + 32 * 32) + 2 * 96 + 32 * 49 * 128 + 128 + 1290;
  assert.match(r.stdout, new RegExp(`Total params: ${params.toLocaleString('en-US')}`));
});

test('summary of a segmentation network, timed: its parameters, and a latency line whose rate is batch / time', () => {
  const r = run('summary', 'enet', '--opt', 'numClasses=19', '--input', '2,3,64,128', '--time', '--bf16', '--rounds', '1', '--threads', '1');
  assert.equal(r.status, 0, r.stderr);
  // The paper's 0.37M parameters with 19 classes (test/models/enet.test.ts counts them against PyTorch).
  assert.match(r.stdout.replace(/,/g, ''), /\b37\d{4}\b/);
  assert.match(r.stdout, /inference at 2×3×64×128 on 1 CPU threads, the three taking turns/);
  for (const which of ['as built', 'optimized for inference', 'optimized, bfloat16']) {
    const m = new RegExp(`${which}: +([\\d.]+) ms median \\(5 passes\\), ([\\d.]+) images/s`).exec(r.stdout);
    assert.ok(m, `${which}: ${r.stdout.slice(-400)}`);
    assert.ok(Math.abs(Number(m[2]) - 2000 / Number(m[1])) / Number(m[2]) < 0.02, `${which}: images/s = batch / median time`);
  }
  assert.match(run('summary', 'segnet').stderr, /unknown model 'segnet'; known: .*enet, deeplabv3, pspnet, icnet/);
});
