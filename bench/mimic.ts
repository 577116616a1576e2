// bench/mimic: mimic learning's training epochs (Ba & Caruana 2014: the shallow student regresses the CNN
// teacher's logits by L2) on Fashion-MNIST, data loading included. tsvision as `tsvision mimic` runs it —
// the teacher's logits computed once over the training set and looked up per batch (CachedLogits), the
// one pass timed with the epochs — and with the cache off (the teacher on every batch), against PyTorch
// eager's usual loop, which runs the teacher on every batch. Same threads, interleaved rounds, medians.
//   node dist/bench/mimic.js [--rounds 2] [--epochs 2] [--batches 0 (= full epochs)]
import * as T from '../src/torch';
import { createModel } from '../src/models/registry';
import { DataLoader, FASHION_MNIST_MEAN, FASHION_MNIST_STD, compose, disposeBatch, loadFashionMNIST, normalize, toFloat } from '../src/data';
import { makeOptimizer } from '../src/train/optimizers';
import { CachedLogits, mimicLoss } from '../src/methods/mimic';
import { arg, machineLine, median, nowMs, runPeer, writeSection } from './common';

const rounds = Number(arg('rounds', '2'));
const epochs = Number(arg('epochs', '2'));
const batches = Number(arg('batches', '0'));
const batch = 128;
const threads = T.getNumThreads();

async function ours(cache: boolean): Promise<number> {
  T.manualSeed(0);
  const data = loadFashionMNIST({ split: 'train' });
  const loader = new DataLoader(data, { batchSize: batch, shuffle: true, seed: 0, transform: compose(toFloat(), normalize([FASHION_MNIST_MEAN], [FASHION_MNIST_STD])) });
  // The teacher's weights do not change its time: a fresh CNN stands in for a trained one.
  const teacher = createModel('cnn', { numClasses: 10, inChannels: 1, smallInput: true });
  teacher.eval();
  const student = createModel('shallow', { numClasses: 10, inChannels: 1 });
  const opt = makeOptimizer(student.parameters(), { optimizer: 'adam', lr: 1e-3, momentum: 0, weightDecay: 0, schedule: 'none', warmupEpochs: 0 }, 1, 1);
  const logitsOf = (x: T.Tensor): T.Tensor => T.noGrad(() => teacher.forward(x));
  const t0 = nowMs();
  const cached = cache ? await CachedLogits.compute(teacher, logitsOf, loader) : null;
  for (let e = 0; e < epochs; e++) {
    let n = 0;
    for await (const b of loader.epoch(e)) {
      T.tidy(() => {
        const z = cached?.rows(b.x, b.samples, () => {}) ?? logitsOf(b.x);
        const loss = mimicLoss(student.forward(b.x), z);
        opt.zeroGrad();
        loss.backward();
        opt.clipAndStep(0);
      });
      disposeBatch(b);
      if (batches && ++n >= batches) break;
    }
  }
  const seconds = (nowMs() - t0) / 1000;
  cached?.dispose();
  data.dispose();
  return seconds;
}

(async () => {
  const cached: number[] = [];
  const uncached: number[] = [];
  const peer: number[] = [];
  for (let r = 0; r < rounds; r++) {
    cached.push(await ours(true));
    peer.push(runPeer<{ seconds: number }>('mimic_torch.py', { threads, batch, batches, epochs }).seconds);
    uncached.push(await ours(false));
    console.log(`round ${r + 1}: tsvision ${cached[r].toFixed(1)} s (cached teacher), ${uncached[r].toFixed(1)} s (teacher every batch); PyTorch ${peer[r].toFixed(1)} s`);
  }
  const [c, u, p] = [median(cached), median(uncached), median(peer)];
  const what = `Fashion-MNIST mimic learning, ${epochs} epoch${epochs === 1 ? '' : 's'}${batches ? ` of ${batches} batches` : ' (469 batches each)'} of 128: shallow student (conv 32, hidden 1024) on the default CNN's logits, L2, Adam, data loading included`;
  const table = [
    '| what | tsvision | PyTorch eager (teacher every batch) | ratio |',
    '|---|---|---|---|',
    `| ${what}; tsvision's teacher logits computed once and looked up (\`tsvision mimic\`) | ${c.toFixed(1)} s | ${p.toFixed(1)} s | ${(c / p).toFixed(2)} |`,
    `| the same, tsvision's teacher on every batch too (\`cacheTeacher: false\`) | ${u.toFixed(1)} s | ${p.toFixed(1)} s | ${(u / p).toFixed(2)} |`,
  ].join('\n');
  console.log(table);
  const flags = `${rounds !== 2 ? ` --rounds ${rounds}` : ''}${epochs !== 2 ? ` --epochs ${epochs}` : ''}${batches ? ` --batches ${batches}` : ''}`;
  writeSection('mimic-cpu', `## Mimic learning (cpu): the teacher's logits cached\n\n\`node dist/bench/mimic.js${flags}\` — ${machineLine('cpu')}; ${rounds} rounds (tsvision cached, PyTorch, tsvision uncached), medians; measured ${new Date().toISOString().slice(0, 10)}. The cache's pass over the 60,000 images is inside tsvision's time.\n\n${table}`);
})();
