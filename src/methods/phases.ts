// Multi-phase runs (DSD's dense → sparse → re-dense, mimic's student and its control): each phase is one
// ordinary training run in its own folder, so each has its checkpoint, report and curves, and a stopped run
// picks up where it stopped: a finished phase is reused, an interrupted one resumed from its checkpoint.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TrainConfig, TrainResult, Logger, train } from '../train/trainer';
import { readCheckpoint, readRunRecord } from '../train/checkpoint';
import { SegmentConfig, SegmentEpoch, SegmentResult, trainSegmentation } from '../train/segment';
import { savePlotsPng, Series } from '../report/plot';
import { writeFileAtomic } from '../util/fs';
import * as dist from '../distributed';

export interface PhaseResult {
  name: string;
  dir: string;
  epochs: number;
  lr: number;
  testTop1: number;
  testTop5: number;
  testLoss: number;
  /** Test top-1 after each epoch. */
  curve: number[];
  /** The phase's own report.json `method` entry (e.g. per-layer sparsity). */
  method: unknown;
  weights: string;
  reused: boolean;
}

/**
 * Whether this process writes a multi-phase run's own files. Under \`tsvision launch\` every rank runs the
 * method and each phase trains data-parallel; rank 0 alone logs and writes, as \`train\` does for a run.
 */
export const isLead = (): boolean => !dist.isInitialized() || dist.getRank() === 0;

/**
 * Every rank waits here for the others (no-op in one process): after a phase, so that the files rank 0 wrote
 * are there when the others read them, and at a method's end, so that all ranks finish together.
 */
export function meet(): void {
  if (dist.isInitialized() && dist.getWorldSize() > 1) dist.barrier();
}

/** A score over every rank's share (dist.evalShare): the mean `value` weighted by each rank's `count`. */
export function meanAcrossRanks(value: number, count: number): number {
  const [sum, n] = dist.sumAcrossRanks([value * count, count]);
  return sum / Math.max(1, n);
}

/** A method's logger on the lead process, and silence on the others (they train alike; one voice is enough). */
export const leadLog = (log: Logger): Logger => (isLead() ? log : () => {});

/**
 * Writes a method's files on the lead process alone, then every rank meets, so that no rank goes on (or reads
 * them) before they are there.
 */
export async function leadWrites(write: () => void | Promise<void>): Promise<void> {
  if (isLead()) await write();
  meet();
}

// What must agree for a folder's earlier run to count as this phase (not the output place or stop point).
const identity = (c: Partial<TrainConfig>): string => JSON.stringify({ ...c, outDir: undefined, stopAfterSteps: undefined, threads: undefined });

/** Runs (or reuses, or resumes) one phase in root/name. */
export async function runPhase(root: string, name: string, cfg: Partial<TrainConfig>, log: Logger): Promise<PhaseResult> {
  const dir = path.join(root, name);
  const report = path.join(dir, 'report.json');
  const ckpt = path.join(dir, 'checkpoint.safetensors');
  const weights = path.join(dir, 'model.safetensors');
  const want = { ...cfg, outDir: dir };
  const result = (r: { history: TrainResult['history']; method?: unknown }, reused: boolean): PhaseResult => {
    const last = r.history[r.history.length - 1];
    return { name, dir, epochs: r.history.length, lr: cfg.lr ?? NaN, testTop1: last.testTop1, testTop5: last.testTop5, testLoss: last.testLoss, curve: r.history.map((h) => h.testTop1), method: r.method ?? null, weights, reused };
  };
  if (fs.existsSync(ckpt)) {
    const { state } = readCheckpoint(ckpt);
    const before = state.config as TrainConfig;
    if (identity(pick(before, want)) !== identity(want)) {
      throw new Error(`${dir} holds a different run (${name} phase with other settings); choose another output folder or delete it`);
    }
    if (state.epoch >= (cfg.epochs ?? 0) && fs.existsSync(weights) && fs.existsSync(report)) {
      log(`${name}: finished earlier in ${dir}, reusing it`);
      return result(JSON.parse(fs.readFileSync(report, 'utf8')) as { history: TrainResult['history']; method?: unknown }, true);
    }
    log(`${name}: resuming ${ckpt}`);
    return finished(await train({ resume: ckpt, outDir: dir }, log));
  }
  return finished(await train(want, log));

  function finished(r: TrainResult): PhaseResult {
    meet();
    if (r.status !== 'finished') throw new PhaseInterrupted(name, ckpt);
    const rep = JSON.parse(fs.readFileSync(report, 'utf8')) as { history: TrainResult['history']; method?: unknown };
    return result(rep, false);
  }
}

/** The keys of `like` from `c`, so that settings added to TrainConfig later do not spoil old folders. */
function pick(c: TrainConfig, like: Partial<TrainConfig>): Partial<TrainConfig> {
  return Object.fromEntries(Object.keys(like).map((k) => [k, c[k as keyof TrainConfig]])) as Partial<TrainConfig>;
}

export class PhaseInterrupted extends Error {
  constructor(readonly phase: string, readonly checkpoint: string) {
    super(`${phase} phase interrupted; its checkpoint is ${checkpoint}: run the same command again to continue`);
  }
}

/** Test top-1 of several phases on one epoch axis: phases that follow one another are drawn end to end. */
/**
 * Test top-1 per epoch of phases, each from its `start` epoch; with `stepsPerEpoch` against optimizer steps
 * instead, for phases whose epochs differ in length (a student with a transfer set beside its control).
 */
export async function plotPhases(file: string, title: string, lines: { name: string; start: number; phase: { curve: number[] }; stepsPerEpoch?: number }[], yLabel = 'test top-1 (%)'): Promise<void> {
  const steps = lines.some((l) => l.stepsPerEpoch !== undefined);
  const series: Series[] = lines.map(({ name, start, phase, stepsPerEpoch = 1 }) => ({ name, points: phase.curve.map((a, i): [number, number] => [(start + i + 1) * stepsPerEpoch, 100 * a]) }));
  await savePlotsPng(file, [{ title, xLabel: steps ? 'optimizer steps' : 'epoch', yLabel, series }]);
}

export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

export const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;

/**
 * A `segment` run in `want.outDir` that a rerun continues (interrupted) or takes as it is (finished): the
 * folder's earlier run must have had the same settings, or it is an error naming the ones that differ.
 */
export async function runSegmentPhase(want: SegmentConfig, log: Logger, what = 'run'): Promise<SegmentResult & { final: SegmentEpoch }> {
  const ckpt = path.join(want.outDir, 'checkpoint.safetensors');
  let resume: string | undefined;
  if (fs.existsSync(ckpt)) {
    const state = readRunRecord(ckpt).state!;
    const before = state.config as SegmentConfig;
    const same = (k: keyof SegmentConfig): boolean => JSON.stringify(before[k]) === JSON.stringify(want[k]);
    const differ = (['model', 'modelOptions', 'init', 'epochs', 'lr', 'scenes', 'folders', 'seed', 'teacher', 'sparse', 'limitBatches'] as const).filter((k) => !same(k));
    if (differ.length) throw new Error(`${want.outDir} holds a ${what} with other settings (${differ.join(', ')}); remove it or choose another output folder`);
    log(state.epoch >= want.epochs ? `${what}: finished earlier in ${want.outDir}, reusing it` : `continuing the ${what} in ${want.outDir}`);
    resume = ckpt;
  }
  const r = await trainSegmentation(resume ? { resume, outDir: want.outDir, threads: want.threads } : want, log);
  meet();
  if (r.status !== 'finished' || !r.final) throw new PhaseInterrupted(what, ckpt);
  return { ...r, final: r.final };
}
