// bench/train: one Fashion-MNIST training epoch of the default CNN, data loading and batching included,
// tsvision vs PyTorch eager, same threads, interleaved rounds.
//   node dist/bench/train.js [--rounds 2] [--batches 0 (= full epoch)]
import * as T from '../src/torch';
import { createModel } from '../src/models/registry';
import { DataLoader, FASHION_MNIST_MEAN, FASHION_MNIST_STD, compose, disposeBatch, loadFashionMNIST, normalize, toFloat } from '../src/data';
import { makeOptimizer } from '../src/train/optimizers';
import { arg, machineLine, median, nowMs, runPeer, writeSection } from './common';

const rounds = Number(arg('rounds', '2'));
const batches = Number(arg('batches', '0'));
const batch = 128;
const widths: [number, number] = [32, 64];
const threads = T.getNumThreads();

async function ours(): Promise<{ seconds: number; batches: number }> {
  T.manualSeed(0);
  const t0 = nowMs();
  const data = loadFashionMNIST({ split: 'train' });
  const loader = new DataLoader(data, { batchSize: batch, shuffle: true, seed: 0, transform: compose(toFloat(), normalize([FASHION_MNIST_MEAN], [FASHION_MNIST_STD])) });
  const loadMs = nowMs() - t0;
  const model = createModel('cnn', { widths, numClasses: 10, inChannels: 1, smallInput: true });
  const opt = makeOptimizer(model.parameters(), { optimizer: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 5e-4, schedule: 'none', warmupEpochs: 0 }, 1, 1);
  const t1 = nowMs();
  let n = 0;
  for await (const b of loader.epoch(0)) {
    T.tidy(() => {
      const loss = T.crossEntropy(model.forward(b.x), b.y);
      opt.zeroGrad();
      loss.backward();
      opt.clipAndStep(0);
    });
    disposeBatch(b);
    if (batches && ++n >= batches) break;
  }
  data.dispose();
  void loadMs;
  return { seconds: (nowMs() - t1) / 1000, batches: n || loader.length };
}

(async () => {
  const a: number[] = [];
  const p: number[] = [];
  let nb = 0;
  for (let r = 0; r < rounds; r++) {
    const o = await ours();
    a.push(o.seconds);
    nb = o.batches;
    p.push(runPeer<{ seconds: number }>('train_torch.py', { threads, batch, batches, widths }).seconds);
    console.log(`round ${r + 1}: tsvision ${o.seconds.toFixed(1)} s, PyTorch ${p[p.length - 1].toFixed(1)} s`);
  }
  const table = [
    '| what | tsvision | PyTorch eager | ratio |',
    '|---|---|---|---|',
    `| Fashion-MNIST ${batches ? `${nb} batches` : 'epoch (469 batches)'} of 128, default CNN (${widths.join('/')} filters), SGD+Nesterov, data loading included | ${median(a).toFixed(1)} s | ${median(p).toFixed(1)} s | ${(median(a) / median(p)).toFixed(2)} |`,
  ].join('\n');
  console.log(table);
  writeSection('train-cpu', `## Training (cpu)\n\n\`node dist/bench/train.js${batches ? ` --batches ${batches}` : ''}\` — ${machineLine('cpu')}; ${rounds} interleaved rounds, medians; measured ${new Date().toISOString().slice(0, 10)}.\n\n${table}`);
})();
