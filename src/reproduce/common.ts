// Shared plumbing of the small-scale reproductions: a Fashion-MNIST subset, a fixed short training recipe,
// mean ± std, and REPORT.md writing.
import * as path from 'node:path';
import { Tensor, crossEntropy, manualSeed, tidy } from '../torch';
import { Module } from '../nn';
import { DataLoader, FASHION_MNIST_MEAN, FASHION_MNIST_STD, TensorDataset, compose, disposeBatch, loadFashionMNIST, normalize, resize, toFloat } from '../data';
import { BatchTransform } from '../data/transforms';
import { summary } from '../metrics/summary';
import { evaluate } from '../train/trainer';
import { makeOptimizer } from '../train/optimizers';
import { writeFileAtomic } from '../util/fs';

export type Net = Module & { forward(x: Tensor): Tensor };

export interface Budget {
  /** Training images (the first n of a fixed shuffle of the 60k). */
  trainSamples: number;
  /** Test images (the first n of the 10k test set). */
  testSamples: number;
  epochs: number;
  batchSize: number;
  lr: number;
}

export interface Fitted {
  top1: number;
  seconds: number;
  params: number;
  multAdds: number;
}

let cache: { train: TensorDataset; test: TensorDataset } | null = null;

function fashion(): { train: TensorDataset; test: TensorDataset } {
  if (!cache) cache = { train: loadFashionMNIST({ split: 'train' }), test: loadFashionMNIST({ split: 'test' }) };
  return cache;
}

/** The first n samples of a dataset (Fashion-MNIST's files are already in random class order). */
function head(d: TensorDataset, n: number): TensorDataset {
  const k = Math.min(n, d.length);
  return new TensorDataset(d.images.narrow(0, 0, k), d.labels.narrow(0, 0, k), d.classes);
}

/** Trains `make()` with SGD + Nesterov + cosine on a Fashion-MNIST subset at `size` px; returns test top-1. */
export async function fit(make: () => Net, b: Budget, seed: number, size = 28, log: (l: string) => void = () => {}): Promise<Fitted> {
  manualSeed(seed);
  const model = make();
  const { train, test } = fashion();
  const norm = normalize([FASHION_MNIST_MEAN], [FASHION_MNIST_STD]);
  const tf: BatchTransform = size === 28 ? compose(toFloat(), norm) : compose(toFloat(), resize(size), norm);
  const trainLoader = new DataLoader(head(train, b.trainSamples), { batchSize: b.batchSize, shuffle: true, seed, transform: tf, dropLast: true });
  const testLoader = new DataLoader(head(test, b.testSamples), { batchSize: 250, transform: tf });
  const opt = makeOptimizer(model.parameters(), { optimizer: 'sgd', lr: b.lr, momentum: 0.9, weightDecay: 5e-4, schedule: 'cosine', warmupEpochs: 0 }, trainLoader.length * b.epochs, trainLoader.length);
  const t0 = Date.now();
  for (let e = 0; e < b.epochs; e++) {
    model.train();
    for await (const batch of trainLoader.epoch(e)) {
      tidy(() => {
        const loss = crossEntropy(model.forward(batch.x), batch.y);
        opt.zeroGrad();
        loss.backward();
        opt.clipAndStep(0);
      });
      disposeBatch(batch);
    }
  }
  const seconds = (Date.now() - t0) / 1000;
  const ev = await evaluate(model, testLoader);
  const s = summary(model, [1, 1, size, size]);
  log(`  seed ${seed}, ${size}px: top-1 ${(100 * ev.top1).toFixed(2)}% (${seconds.toFixed(0)} s, ${(s.totalMultAdds / 1e6).toFixed(2)}M mult-adds, ${s.totalParams} params)`);
  return { top1: ev.top1, seconds, params: s.totalParams, multAdds: s.totalMultAdds };
}

export function meanStd(xs: number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, std };
}

export const pct = (x: number): string => (100 * x).toFixed(2);

export function budgetLine(b: Budget): string {
  return `${b.trainSamples.toLocaleString('en-US')} training images (the first of the 60,000), ${b.epochs} epochs, batch ${b.batchSize}, SGD + Nesterov momentum 0.9, weight decay 5e-4, learning rate ${b.lr} with cosine decay; test top-1 on ${b.testSamples.toLocaleString('en-US')} test images`;
}

export function writeReport(dir: string, name: string, body: string): string {
  const file = path.join(dir, 'REPORT.md');
  const command = `node dist/src/cli/main.js reproduce ${name}`;
  writeFileAtomic(file, `${body.trim()}\n\nProduced by \`${command}\` (${new Date().toISOString().slice(0, 10)}, ${require('node:os').cpus().length} CPU cores).\n`);
  return file;
}
