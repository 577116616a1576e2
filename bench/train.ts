// bench/train: one Fashion-MNIST training epoch of the default CNN, data loading and batching included,
// tsvision vs PyTorch eager, same threads, interleaved rounds. --bf16 also times it in bfloat16 mixed precision
// (forward and loss under autocast on both sides: tsvision train --bf16).
//   node dist/bench/train.js [--rounds 2] [--batches 0 (= full epoch)] [--bf16]
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
const withBf16 = process.argv.includes('--bf16');

async function ours(bf16: boolean): Promise<{ seconds: number; batches: number }> {
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
      const forward = (): T.Tensor => T.crossEntropy(model.forward(b.x), b.y);
      const loss = bf16 ? T.autocast(forward) : forward();
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
  const precisions = withBf16 ? [false, true] : [false];
  const a: Record<string, number[]> = { false: [], true: [] };
  const p: Record<string, number[]> = { false: [], true: [] };
  let nb = 0;
  for (let r = 0; r < rounds; r++) {
    for (const bf16 of precisions) {
      const o = await ours(bf16);
      a[String(bf16)].push(o.seconds);
      nb = o.batches;
      p[String(bf16)].push(runPeer<{ seconds: number }>('train_torch.py', { threads, batch, batches, widths, bf16 }).seconds);
      console.log(`round ${r + 1}${bf16 ? ', bfloat16 autocast' : ''}: tsvision ${o.seconds.toFixed(1)} s, PyTorch ${p[String(bf16)][r].toFixed(1)} s`);
    }
  }
  const what = `Fashion-MNIST ${batches ? `${nb} batches` : 'epoch (469 batches)'} of 128, default CNN (${widths.join('/')} filters), SGD+Nesterov, data loading included`;
  const row = (bf16: boolean): string => {
    const [t, q] = [median(a[String(bf16)]), median(p[String(bf16)])];
    const vsFloat = bf16 ? ` (${(t / median(a.false)).toFixed(2)}× and ${(q / median(p.false)).toFixed(2)}× of float32)` : '';
    return `| ${what}${bf16 ? `, bfloat16 autocast${vsFloat}` : ''} | ${t.toFixed(1)} s | ${q.toFixed(1)} s | ${(t / q).toFixed(2)} |`;
  };
  const table = ['| what | tsvision | PyTorch eager | ratio |', '|---|---|---|---|', ...precisions.map(row)].join('\n');
  console.log(table);
  const flags = `${batches ? ` --batches ${batches}` : ''}${withBf16 ? ' --bf16' : ''}`;
  writeSection('train-cpu', `## Training (cpu)\n\n\`node dist/bench/train.js${flags}\` — ${machineLine('cpu')}; ${rounds} interleaved rounds, medians; measured ${new Date().toISOString().slice(0, 10)}.\n\n${table}`);
})();
