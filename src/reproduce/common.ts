// Shared plumbing of the small-scale reproductions: a Fashion-MNIST subset, one fixed short training
// recipe for every network (so that differences come from the architectures, not from tuning), mean ± std,
// markdown tables, and REPORT.md writing.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tensor, crossEntropy, getNumThreads, manualSeed, setNumThreads, tidy } from '../torch';
import { Module } from '../nn';
import { DataLoader, FASHION_MNIST_MEAN, FASHION_MNIST_STD, TensorDataset, compose, disposeBatch, loadFashionMNIST, normalize, resize, toFloat } from '../data';
import { BatchTransform } from '../data/transforms';
import { summary } from '../metrics/summary';
import { evaluate } from '../train/trainer';
import { makeOptimizer } from '../train/optimizers';
import { writeFileAtomic } from '../util/fs';
import { STOP_SIGNALS, onStopSignal } from '../util/signals';
export { markdownTable, parseMarkdownTables } from '../report/markdown';

export type Net = Module & { forward(x: Tensor): Tensor };
export type Log = (line: string) => void;

/** Fashion-MNIST's native resolution. */
export const NATIVE_SIZE = 28;

/**
 * libtorch threads during a reproduction. One, because (a) a parallel reduction's float sums depend on the
 * thread count, so pinning it is part of being deterministic, and (b) on a 2-core machine shared with other
 * jobs, two spinning OpenMP threads slowed training by up to 10× whenever one core was busy elsewhere,
 * while one thread ran at a steady ~60% of the two-thread speed.
 */
export const REPRODUCTION_THREADS = 1;

/** The shared recipe: SGD with Nesterov momentum, a short linear warm-up, cosine decay to zero. */
export const RECIPE = { optimizer: 'sgd', momentum: 0.9, weightDecay: 5e-4, schedule: 'cosine', warmupEpochs: 0.25, evalBatchSize: 500 } as const;

export interface Budget {
  /** Training images: the first n of the 60k (the file is already in shuffled class order). */
  trainSamples: number;
  /** Test images: the first n of the 10k test set. */
  testSamples: number;
  epochs: number;
  batchSize: number;
  /** Peak learning rate. */
  lr: number;
}

export interface Fitted {
  seed: number;
  /** Input resolution (px). */
  size: number;
  /** Test top-1 accuracy in [0, 1]. */
  top1: number;
  /** Training wall time. */
  seconds: number;
  params: number;
  /** Mult-adds per image at `size` px (metrics/summary's convention). */
  multAdds: number;
}

/**
 * Runs `fn` in a fresh folder under the system's temporary directory (its name starts with `prefix`) and
 * removes the folder afterwards, also when Ctrl-C or SIGTERM stops the process meanwhile. A reproduction
 * cannot be resumed, so its half-trained runs (checkpoints, hundreds of MB over a study) are only litter:
 * on a signal the folder goes at once and the process exits with 128 + the signal's number, before the
 * training loop inside would spend a step saving a checkpoint nobody will use.
 */
export async function inWorkDir<T>(prefix: string, fn: (work: string) => Promise<T>): Promise<T> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const remove = (): void => fs.rmSync(work, { recursive: true, force: true });
  // Ahead of the listeners the training loop adds, so that this one runs first.
  const stopWatching = onStopSignal((signal) => {
    remove();
    process.stderr.write(`\n${signal}: stopped; removed the work folder ${work} (a reproduction starts over when run again)\n`);
    process.exit(128 + STOP_SIGNALS[signal]);
  }, { first: true });
  try {
    return await fn(work);
  } finally {
    stopWatching();
    remove();
  }
}

let cache: { train: TensorDataset; test: TensorDataset } | null = null;

/** Fashion-MNIST's training and test sets, read once per reproduction (releaseData frees them). */
export function fashion(): { train: TensorDataset; test: TensorDataset } {
  if (!cache) cache = { train: loadFashionMNIST({ split: 'train' }), test: loadFashionMNIST({ split: 'test' }) };
  return cache;
}

/**
 * Disposes the cached Fashion-MNIST tensors. runReproduction calls it when done: besides returning ~50 MB,
 * it matters because the native engine crashed (SIGSEGV) at process exit whenever a tensor was still alive.
 */
export function releaseData(): void {
  if (!cache) return;
  for (const d of [cache.train, cache.test]) {
    d.images.dispose();
    d.labels.dispose();
  }
  cache = null;
}

function head(d: TensorDataset, n: number): TensorDataset {
  const k = Math.min(n, d.length);
  return new TensorDataset(d.images.narrow(0, 0, k), d.labels.narrow(0, 0, k), d.classes);
}

/**
 * Seeds everything from `seed`, builds `make()`, trains it with the shared recipe on the budget's subset
 * at `size` px (bilinear resize when not 28) and returns its test top-1, size and cost.
 */
export async function fit(make: () => Net, b: Budget, seed: number, size: number = NATIVE_SIZE, log: Log = () => {}): Promise<Fitted> {
  manualSeed(seed);
  const model = make();
  const { train, test } = fashion();
  const norm = normalize([FASHION_MNIST_MEAN], [FASHION_MNIST_STD]);
  const tf: BatchTransform = size === NATIVE_SIZE ? compose(toFloat(), norm) : compose(toFloat(), resize(size), norm);
  const [trainSet, testSet] = [head(train, b.trainSamples), head(test, b.testSamples)];
  const trainLoader = new DataLoader(trainSet, { batchSize: b.batchSize, shuffle: true, seed, transform: tf, dropLast: true });
  const testLoader = new DataLoader(testSet, { batchSize: RECIPE.evalBatchSize, transform: tf });
  const opt = makeOptimizer(model.parameters(), { ...RECIPE, lr: b.lr }, trainLoader.length * b.epochs, trainLoader.length);
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
  // Free the run's tensors now rather than leave them to the GC: a reproduction trains dozens of networks,
  // and the engine must not find tensors still alive when the process exits (see releaseData).
  opt.zeroGrad();
  for (const t of Object.values(opt.stateDict().tensors)) t.dispose();
  for (const [, b] of model.namedBuffers()) b.dispose();
  for (const p of model.parameters()) p.dispose();
  for (const d of [trainSet, testSet]) {
    d.images.dispose();
    d.labels.dispose();
  }
  log(`  seed ${seed}, ${size} px: top-1 ${pct(ev.top1)}% (train ${seconds.toFixed(0)} s, ${mAdds(s.totalMultAdds)}M mult-adds, ${s.totalParams} params)`);
  return { seed, size, top1: ev.top1, seconds, params: s.totalParams, multAdds: s.totalMultAdds };
}

/** Runs `fn` with libtorch pinned to `threads` threads, restoring the previous count afterwards. */
export async function withThreads<T>(threads: number, fn: () => Promise<T>): Promise<T> {
  const before = getNumThreads();
  setNumThreads(threads);
  try {
    return await fn();
  } finally {
    setNumThreads(before);
  }
}

/** Mean and sample standard deviation (n − 1); std 0 for a single value. */
export function meanStd(xs: readonly number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, std };
}

/** An accuracy in [0, 1] as a percentage with two decimals. */
export const pct = (x: number): string => (100 * x).toFixed(2);

/** Per-seed values as "mean ± std (v₀, v₁, …)", each formatted by `f` (default: a percentage). */
export function seedsCell(xs: readonly number[], f: (x: number) => string = pct): string {
  const m = meanStd(xs);
  return `${f(m.mean)} ± ${f(m.std)} (${xs.map(f).join(', ')})`;
}

/**
 * The paired difference a − b of two rows' per-seed accuracies (a seed's runs share their data order and
 * initialization), in points: "+m ± s points[ unit] (above[ than] for k of n seeds)".
 */
export function pairedDifference(a: readonly number[], b: readonly number[], o: { unit?: string; than?: string } = {}): string {
  const d = a.map((x, i) => x - b[i]);
  const m = meanStd(d);
  const n = d.length;
  // A mean that rounds to zero reads 0.00, not -0.00 or +0.00.
  const mean = Number(pct(m.mean));
  return `${mean > 0 ? '+' : ''}${mean === 0 ? pct(0) : pct(m.mean)} ± ${pct(m.std)} points${o.unit ? ` ${o.unit}` : ''} (above${o.than ? ` ${o.than}` : ''} for ${d.filter((x) => x > 0).length} of ${n} seed${n > 1 ? 's' : ''})`;
}
/** Mult-adds in millions, two decimals. */
export const mAdds = (x: number): string => (x / 1e6).toFixed(2);
/** An integer with thousands separators. */
export const int = (x: number): string => Math.round(x).toLocaleString('en-US');

export function budgetLine(b: Budget): string {
  return (
    `${int(b.trainSamples)} training images (the first of the 60,000), ${b.epochs} epoch${b.epochs === 1 ? '' : 's'}, batch ${b.batchSize}, ` +
    `SGD with Nesterov momentum ${RECIPE.momentum}, weight decay ${RECIPE.weightDecay}, peak learning rate ${b.lr} ` +
    `(linear warm-up over ${RECIPE.warmupEpochs} epoch, then cosine decay to 0), no augmentation; test top-1 on ` +
    `${b.testSamples >= 10000 ? 'the full 10,000-image test set' : `the first ${int(b.testSamples)} test images`}`
  );
}

/** The command line that regenerates a report. */
export const reproduceCommand = (name: string, quick: boolean): string => `node dist/src/cli/main.js reproduce ${name}${quick ? ' --quick' : ''}`;

/** Writes `body` as <dir>/REPORT.md, followed by the command, date, machine and wall time that produced it. */
export function writeReport(dir: string, name: string, quick: boolean, body: string, wallSeconds: number): string {
  const file = path.join(dir, 'REPORT.md');
  const footer =
    `**Reproduce:** \`${reproduceCommand(name, quick)}\` — run on ${new Date().toISOString().slice(0, 10)}, ` +
    `${os.cpus().length} CPU cores shared with other jobs (libtorch pinned to ${REPRODUCTION_THREADS} thread for determinism), ${(wallSeconds / 60).toFixed(1)} min wall time. ` +
    'Training-set, test-set and epoch budgets were sized so that a reproduction takes minutes, not hours, on such a machine.' +
    (quick ? '\n\n*Quick mode: a pipeline check on a tiny budget; these numbers say nothing about the claim.*' : '');
  writeFileAtomic(file, `${body.trim()}\n\n${footer}\n`);
  return file;
}
