// The learning-rate range test (Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017,
// §3.3): train a fresh network for a few hundred steps while the learning rate grows exponentially from tiny
// to huge, and watch the loss. Where it falls fastest is a good learning rate; where it blows up is too far.
// The loss is smoothed with a bias-corrected moving average, and the test stops once the smoothed loss passes
// `divergence` times its lowest value.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor, crossEntropy, manualSeed, setNumThreads, tidy } from '../torch';
import { Batch, DataLoader, disposeBatch } from '../data';
import { savePlotsPng } from '../report/plot';
import { writeFileAtomic } from '../util/fs';
import { SegmentConfig, buildSegmentationModel, resolveSegmentConfig, runClassWeights, runTeacher, segmentationData, segmentationObjective } from './segment';
import { createClassifier } from '../models/registry';
import { DEFAULT_CONFIG, TrainConfig } from './trainer';
import { makeLoaders } from './datasets';
import { loadForFineTuning } from './finetune';
import { makeOptimizer } from './optimizers';
import type { OptimizerLike } from '../optim';
import { Logger } from './progress';
import { backwardInParts, narrowBatch } from './accumulate';

export interface LrFindOptions {
  /** First and last learning rate of the sweep. */
  start: number;
  end: number;
  /** Optimizer steps from start to end (one batch each). */
  steps: number;
  /** β of the loss's moving average. */
  smoothing: number;
  /** Stop once the smoothed loss exceeds this many times its lowest value. */
  divergence: number;
}

export const LR_FIND_DEFAULTS: LrFindOptions = { start: 1e-6, end: 10, steps: 100, smoothing: 0.98, divergence: 4 };

export interface LrFindResult {
  /** The learning rate of each step taken, and its batch's loss, raw and smoothed. */
  lrs: number[];
  losses: number[];
  smoothed: number[];
  /** Where the smoothed loss fell fastest per decade of learning rate (before its lowest point): the suggestion. */
  steepest: number;
  /** Where the smoothed loss was lowest; a tenth of it is the other usual rule. */
  minimum: number;
  /** The step at which the loss diverged and the sweep stopped; null if it ran to `end`. */
  divergedAt: number | null;
}

/** The sweep's learning rate at step i of n: start · (end / start)^(i / (n − 1)). */
export function lrAt(i: number, steps: number, start: number, end: number): number {
  return steps === 1 ? start : start * (end / start) ** (i / (steps - 1));
}

/** A moving average with bias correction: a_i = β·a_{i−1} + (1 − β)·l_i, reported as a_i / (1 − β^{i+1}). */
export function smoothLosses(losses: readonly number[], beta: number): number[] {
  let avg = 0;
  return losses.map((l, i) => {
    avg = beta * avg + (1 - beta) * l;
    return avg / (1 - beta ** (i + 1));
  });
}

/**
 * The steepest descent of the smoothed loss against log10 of the learning rate (central differences; one-sided
 * at the ends), among the points up to the lowest loss, and the lowest loss's learning rate.
 */
export function suggestLr(lrs: readonly number[], smoothed: readonly number[]): { steepest: number; minimum: number } {
  if (lrs.length === 0) throw new Error('suggestLr: no points');
  const low = smoothed.reduce((b, s, i) => (s < smoothed[b] ? i : b), 0);
  const x = lrs.map(Math.log10);
  let [best, slope] = [0, Infinity];
  for (let i = 0; i <= low; i++) {
    const [a, b] = [Math.max(0, i - 1), Math.min(lrs.length - 1, i + 1)];
    if (a === b) continue;
    const g = (smoothed[b] - smoothed[a]) / (x[b] - x[a]);
    if (g < slope) [best, slope] = [i, g];
  }
  return { steepest: lrs[best], minimum: lrs[low] };
}

/**
 * Runs the range test with a training run's model, data and optimizer (its lr and schedule are replaced by
 * the sweep; momentum and weight decay stay). The network is a fresh one (or `init`), discarded afterwards.
 */
export async function findLearningRate(cfgIn: Partial<TrainConfig>, o: Partial<LrFindOptions> = {}, log: Logger = () => {}): Promise<LrFindResult> {
  const cfg: TrainConfig = { ...DEFAULT_CONFIG, ...cfgIn };
  const f = sweepOptions(o);
  if (cfg.threads > 0) setNumThreads(cfg.threads);
  manualSeed(cfg.seed);
  const loaders = makeLoaders(cfg.data, cfg);
  const model = createClassifier(cfg.model, cfg.modelOptions, loaders);
  if (cfg.init) loadForFineTuning(cfg.init, model, loaders.classes);
  const { optimizer } = makeOptimizer(model.parameters(), { ...cfg, lr: f.start, schedule: 'none', warmupEpochs: 0 }, f.steps, f.steps);
  model.train();
  return sweep(loaders.train, optimizer, (b) => crossEntropy(model.forward(b.x), b.y), f, log, cfg.accumulate);
}

/**
 * The range test for a `segment` run: its network (with its backbone or init weights), its data and
 * augmentation, its optimizer and its loss — the paper's, auxiliary losses and class weights included.
 */
export async function findSegmentationLearningRate(cfgIn: Partial<SegmentConfig>, o: Partial<LrFindOptions> = {}, log: Logger = () => {}): Promise<LrFindResult> {
  const cfg = resolveSegmentConfig(cfgIn);
  const f = sweepOptions(o);
  if (cfg.threads > 0) setNumThreads(cfg.threads);
  manualSeed(cfg.seed);
  const data = await segmentationData(cfg, { train: true });
  let weight: Tensor | null = null;
  try {
    const model = buildSegmentationModel(cfg, data, log);
    weight = await runClassWeights(cfg, data);
    const { optimizer } = makeOptimizer(model.parameters(), { optimizer: cfg.optimizer, lr: f.start, momentum: cfg.momentum, weightDecay: cfg.weightDecay, schedule: 'none', warmupEpochs: 0 }, f.steps, f.steps);
    model.train();
    const objective = segmentationObjective(model, cfg, weight, runTeacher(cfg, data, log));
    return await sweep(data.train!, optimizer, (b) => objective(b.x, b.y), f, log, cfg.accumulate);
  } finally {
    weight?.dispose();
    data.dispose();
  }
}

function sweepOptions(o: Partial<LrFindOptions>): LrFindOptions {
  const f: LrFindOptions = { ...LR_FIND_DEFAULTS, ...o };
  if (!(f.start > 0 && f.end > f.start)) throw new RangeError(`lr-find: the sweep needs 0 < start < end, got ${f.start} and ${f.end}`);
  if (!Number.isInteger(f.steps) || f.steps < 2) throw new RangeError(`lr-find: steps must be an integer >= 2, got ${f.steps}`);
  return f;
}

/**
 * One optimizer step per batch (epochs repeat as needed) at the sweep's growing rate, until its end or
 * divergence; each batch backpropagated in `accumulate` micro-batches as the run would.
 */
async function sweep(loader: DataLoader, optimizer: OptimizerLike, batchLoss: (b: Batch) => Tensor, f: LrFindOptions, log: Logger, accumulate = 1): Promise<LrFindResult> {
  const [lrs, losses, smoothed] = [[] as number[], [] as number[], [] as number[]];
  let divergedAt: number | null = null;
  let lowest = Infinity;
  for (let epoch = 0; lrs.length < f.steps && divergedAt === null; epoch++) {
    for await (const batch of loader.epoch(epoch)) {
      const i = lrs.length;
      const lr = lrAt(i, f.steps, f.start, f.end);
      for (const g of optimizer.paramGroups) g.lr = lr;
      optimizer.zeroGrad();
      const { loss } = backwardInParts(batch.x.size(0), accumulate, (start, length) => ({ loss: batchLoss(narrowBatch(batch, start, length)) }));
      tidy(() => optimizer.step());
      disposeBatch(batch);
      lrs.push(lr);
      losses.push(loss);
      const s = smoothLosses(losses, f.smoothing)[i];
      smoothed.push(s);
      log(`lr-find: step ${i + 1}/${f.steps}, lr ${lr.toExponential(2)}, loss ${loss.toFixed(4)} (smoothed ${s.toFixed(4)})`, true);
      lowest = Math.min(lowest, s);
      if (!Number.isFinite(s) || s > f.divergence * lowest) divergedAt = i;
      if (divergedAt !== null || lrs.length >= f.steps) break;
    }
  }
  // The point that diverged says where the sweep ended, not where a learning rate is good.
  const usable = divergedAt === null ? lrs.length : Math.max(1, divergedAt);
  const { steepest, minimum } = suggestLr(lrs.slice(0, usable), smoothed.slice(0, usable));
  return { lrs, losses, smoothed, steepest, minimum, divergedAt };
}

/**
 * Writes a range test's lr-find.json (with `config` and the sweep) and lr-find.png — the batch losses and the
 * smoothed curve up to the divergence, capped a little above the smoothed curve so that the blow-up does not
 * flatten everything else, and the suggestion — into `dir`; returns the files and a one-line summary.
 */
export async function saveLrFind(dir: string, title: string, config: unknown, sweepOpts: Pick<LrFindOptions, 'start' | 'end' | 'steps'>, r: LrFindResult): Promise<{ plot: string; json: string; summary: string }> {
  fs.mkdirSync(dir, { recursive: true });
  const files = { plot: path.join(dir, 'lr-find.png'), json: path.join(dir, 'lr-find.json') };
  writeFileAtomic(files.json, JSON.stringify({ config, sweep: { start: sweepOpts.start, end: sweepOpts.end, steps: sweepOpts.steps }, ...r }, null, 2) + '\n');
  const n = Math.max(1, r.divergedAt ?? r.lrs.length); // a loss that is not finite at once still plots its first point
  const [lo, hi] = [Math.min(...r.smoothed.slice(0, n)), Math.max(...r.smoothed.slice(0, n))];
  const pts = (ys: number[]) => r.lrs.slice(0, n).map((lr, i): [number, number] => [lr, Math.min(ys[i], hi + 0.25 * (hi - lo))]);
  await savePlotsPng(files.plot, [{ title, xLabel: 'learning rate', yLabel: 'training loss', logX: true, width: 720,
    series: [{ name: 'loss per batch', points: pts(r.losses), color: '#aec7e8' }, { name: 'smoothed', points: pts(r.smoothed) }, { name: `suggested ${r.steepest.toPrecision(2)}`, points: [[r.steepest, lo], [r.steepest, hi]], color: '#2ca02c' }] }]);
  const stop = r.divergedAt === null ? `ran to ${sweepOpts.end}` : `the loss diverged at ${r.lrs[r.divergedAt].toPrecision(2)}${r.divergedAt < 3 ? ' (at once: start the sweep lower with --start)' : ''}`;
  return { ...files, summary: `suggested: --lr ${r.steepest.toPrecision(2)} (where the loss fell fastest); lowest loss at ${r.minimum.toPrecision(2)} (a tenth of it: ${(r.minimum / 10).toPrecision(2)}); ${stop}` };
}
