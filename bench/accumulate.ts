// bench/accumulate: what gradient accumulation (`--accumulate n`) costs and saves — a segmentation network's
// training step on one batch, whole and in micro-batches, tsvision vs PyTorch eager doing the same (each
// micro-batch's loss weighed by its share, backward, one SGD step). Every measurement runs in a fresh
// process, so that its peak resident memory (maxRSS) is that configuration's alone; rounds interleave the
// two sides and the micro-batch counts.
//   node dist/bench/accumulate.js [--model enet] [--size 256] [--batch 8] [--parts 1,4] [--steps 3] [--rounds 3]
import { spawnSync } from 'node:child_process';
import * as T from '../src/torch';
import { createSegmentationModel } from '../src/models/registry';
import type { SegmentationModelName } from '../src/models/registry';
import { makeOptimizer } from '../src/train/optimizers';
import { backwardInParts } from '../src/train/accumulate';
import { arg, machineLine, median, nowMs, runPeer, writeSection } from './common';

const model = arg('model', 'enet') as SegmentationModelName;
const size = Number(arg('size', '256'));
const batch = Number(arg('batch', '8'));
const partsList = arg('parts', '1,4').split(',').map(Number);
const steps = Number(arg('steps', '3'));
const rounds = Number(arg('rounds', '3'));
const classes = 19;

interface Measured {
  seconds: number;
  maxRssMb: number;
}

/** One configuration in this process: a warm-up step, then `steps` timed ones; the median and the peak RSS. */
function worker(parts: number): Measured {
  T.manualSeed(0);
  const net = createSegmentationModel(model, { numClasses: classes, inChannels: 3 });
  net.train();
  const opt = makeOptimizer(net.parameters(), { optimizer: 'sgd', lr: 0.01, momentum: 0.9, weightDecay: 0, schedule: 'none', warmupEpochs: 0 }, 1, 1);
  const x = T.randn([batch, 3, size, size]).keep();
  const y = T.randint(0, classes, [batch, size, size]).keep();
  const times: number[] = [];
  for (let s = 0; s <= steps; s++) {
    const t0 = nowMs();
    opt.zeroGrad();
    backwardInParts(batch, parts, (start, length) => ({ loss: net.trainingLoss(x.narrow(0, start, length), y.narrow(0, start, length), {}) }));
    T.tidy(() => opt.clipAndStep(0));
    if (s > 0) times.push((nowMs() - t0) / 1000);
  }
  return { seconds: median(times), maxRssMb: process.resourceUsage().maxRSS / 1024 };
}

function ours(parts: number): Measured {
  const r = spawnSync(process.execPath, ['--expose-gc', __filename, '--worker', String(parts), ...process.argv.slice(2)], { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`worker failed:\n${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as Measured;
}

const workerAt = process.argv.indexOf('--worker');
if (workerAt >= 0) {
  console.log(JSON.stringify(worker(Number(process.argv[workerAt + 1]))));
} else {
  const threads = T.getNumThreads();
  const params = createSegmentationModel(model, { numClasses: classes, inChannels: 3 }).numParameters();
  const a: Record<number, Measured[]> = {};
  const p: Record<number, Measured[]> = {};
  for (let r = 0; r < rounds; r++) {
    for (const parts of partsList) {
      (a[parts] ??= []).push(ours(parts));
      (p[parts] ??= []).push(runPeer<Measured>('accumulate_torch.py', { model, size, batch, parts, steps, threads, classes, params }));
      const [o, q] = [a[parts][r], p[parts][r]];
      console.log(`round ${r + 1}, ${parts} micro-batch${parts > 1 ? 'es' : ''}: tsvision ${o.seconds.toFixed(2)} s ${o.maxRssMb.toFixed(0)} MB, PyTorch ${q.seconds.toFixed(2)} s ${q.maxRssMb.toFixed(0)} MB`);
    }
  }
  const med = (xs: Measured[], k: keyof Measured): number => median(xs.map((m) => m[k]));
  const rows = partsList.map((parts) => {
    const [t, q, mt, mq] = [med(a[parts], 'seconds'), med(p[parts], 'seconds'), med(a[parts], 'maxRssMb'), med(p[parts], 'maxRssMb')];
    return `| ${parts} × ${batch / parts} | ${t.toFixed(2)} s | ${q.toFixed(2)} s | **${(t / q).toFixed(2)}** | ${mt.toFixed(0)} MB | ${mq.toFixed(0)} MB | **${(mt / mq).toFixed(2)}** |`;
  });
  const table = ['| micro-batches | tsvision step | PyTorch step | ratio | tsvision peak RSS | PyTorch peak RSS | ratio |', '|---|---|---|---|---|---|---|', ...rows].join('\n');
  console.log(table);
  writeSection(`accumulate-${model}`, `## Gradient accumulation (cpu): ${model}\n\n\`node dist/bench/accumulate.js --model ${model} --size ${size} --batch ${batch} --parts ${partsList.join(',')} --steps ${steps} --rounds ${rounds}\` — ${machineLine('cpu')}; measured ${new Date().toISOString().slice(0, 10)}. One training step of ${model} (${classes} classes, its training loss) on a batch of ${batch} random ${size}×${size} images, whole or in micro-batches (each one's loss weighed by its share, backward, then one SGD step); a warm-up step, then the median of ${steps}. Each measurement is a fresh process (peak resident memory, maxRSS, of that configuration alone: the process, the network, its activations); ${rounds} interleaved rounds, medians. The peer (bench/accumulate_torch.py) is PyTorch eager on scripts/reference_models.py's ${model} with the same state-dict shapes.\n\n${table}`);
}
