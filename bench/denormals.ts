// bench/denormals: what denormal floats cost a training step, and what flushing them (tsvision's default,
// FTZ/DAZ on every thread) saves. ENet at the scenes' size, from its weights as initialized and from a trained
// ENet's (bench/fixtures/enet-scenes-trained.safetensors: 4 epochs on the scenes with denormals kept, whose
// step had slowed 3×). Forward and backward of a training step, no update (so the weights stay as they are);
// tsvision, tsvision with TSVISION_DENORMALS=keep and PyTorch eager, each measurement a fresh process, rounds
// interleaved, medians.
//   node dist/bench/denormals.js [--batch 16] [--size 64] [--steps 8] [--rounds 3]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as T from '../src/torch';
import { createSegmentationModel } from '../src/models/registry';
import { arg, machineLine, median, nowMs, runPeer, writeSection } from './common';

const batch = Number(arg('batch', '16'));
const size = Number(arg('size', '64'));
const steps = Number(arg('steps', '8'));
const rounds = Number(arg('rounds', '3'));
const classes = 11;
const TRAINED = path.resolve(__dirname, '..', '..', 'bench', 'fixtures', 'enet-scenes-trained.safetensors');

/** One measurement in this process: a warm-up, then the median of `steps` forward + backward passes. */
function worker(weights: string): number {
  T.manualSeed(0);
  const net = createSegmentationModel('enet', { numClasses: classes, inChannels: 1 });
  const { missing, unexpected } = net.loadStateDict(T.loadSafetensors(weights).tensors);
  if (missing.length || unexpected.length) throw new Error(`weights do not fit: missing ${missing}, unexpected ${unexpected}`);
  net.train();
  const x = T.randn([batch, 1, size, size]).keep();
  const y = T.randint(0, classes, [batch, size, size]).keep();
  const times: number[] = [];
  for (let s = 0; s <= steps; s++) {
    const t0 = nowMs();
    T.tidy(() => {
      for (const p of net.parameters()) p.grad = null;
      net.trainingLoss(x, y, {}).backward();
    });
    if (s > 0) times.push((nowMs() - t0) / 1000);
  }
  return median(times);
}

function ours(weights: string, keep: boolean): number {
  const env = { ...process.env, TSVISION_DENORMALS: keep ? 'keep' : '' };
  const r = spawnSync(process.execPath, ['--expose-gc', __filename, '--worker', weights, ...process.argv.slice(2)], { encoding: 'utf8', env, maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`worker failed:\n${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  return Number(lines[lines.length - 1]);
}

const workerAt = process.argv.indexOf('--worker');
if (workerAt >= 0) {
  console.log(worker(process.argv[workerAt + 1]));
} else {
  const threads = T.getNumThreads();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsv-denormals-'));
  try {
    const files = { fresh: path.join(dir, 'fresh.safetensors'), trained: TRAINED };
    runPeer('denormals_torch.py', { task: 'prepare', threads, classes, fresh: files.fresh });
    const sides = ['tsvision', 'tsvision, TSVISION_DENORMALS=keep', 'PyTorch eager'] as const;
    const t: Record<string, number[]> = {};
    for (let r = 0; r < rounds; r++) {
      for (const w of ['fresh', 'trained'] as const) {
        const got = [ours(files[w], false), ours(files[w], true), runPeer<{ seconds: number }>('denormals_torch.py', { task: 'time', threads, classes, batch, size, steps, weights: files[w] }).seconds];
        sides.forEach((s, i) => (t[`${w}/${s}`] ??= []).push(got[i]));
        console.log(`round ${r + 1}, ${w} weights: ${sides.map((s, i) => `${s} ${(1000 * got[i]).toFixed(0)} ms`).join(', ')}`);
      }
    }
    const ms = (k: string): number => 1000 * median(t[k]);
    const rows = (['fresh', 'trained'] as const).map((w) => {
      const [a, b, c] = sides.map((s) => ms(`${w}/${s}`));
      return `| ${w === 'fresh' ? 'as initialized' : 'trained 4 epochs on the scenes (bench/fixtures)'} | ${a.toFixed(0)} ms | ${b.toFixed(0)} ms | ${c.toFixed(0)} ms | **${(a / c).toFixed(2)}** | ${(b / c).toFixed(2)} |`;
    });
    const table = ['| ENet weights | tsvision (denormals flushed) | tsvision, TSVISION_DENORMALS=keep | PyTorch eager | ratio tsvision/PyTorch | ratio keep/PyTorch |', '|---|---|---|---|---|---|', ...rows].join('\n');
    console.log(table);
    writeSection('denormals-cpu', `## Denormals (cpu): ENet from trained weights\n\n\`node dist/bench/denormals.js --batch ${batch} --size ${size} --steps ${steps} --rounds ${rounds}\` — ${machineLine('cpu')}; measured ${new Date().toISOString().slice(0, 10)}. The forward and backward of a training step (no update, so the weights stay as they are) of ENet (${classes} classes, grey ${size}×${size}, batch ${batch}, random images and labels), from its weights as initialized by the PyTorch peer and from a trained ENet's, bench/fixtures/enet-scenes-trained.safetensors (the dense phase of \`tsvision dsd -m enet\`, 4 epochs of \`segment -m enet\` on the scenes, run on 2026-11-30 before tsvision flushed denormals, as \`TSVISION_DENORMALS=keep\` runs it now): 8.1% of its weights are denormal, most of them the off-centre taps of its rate-8 and rate-16 convolutions, which on 8×8 maps read only padding and get no gradient but weight decay, and many more are tiny, so that their products with the activations are denormal too. A warm-up, then the median of ${steps}; each measurement a fresh process, ${rounds} interleaved rounds, medians. tsvision flushes denormals to zero on every thread by default (FTZ/DAZ); TSVISION_DENORMALS=keep keeps them, as PyTorch (bench/denormals_torch.py, scripts/reference_models.py's ENet) does by default.\n\n${table}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
