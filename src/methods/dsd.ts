// DSD: Dense-Sparse-Dense training (Han et al., ICLR 2017). Train dense (D); prune each layer's smallest
// weights and retrain with the masks held (S); then restore the pruned connections at zero and retrain the
// whole network at a tenth of the learning rate (re-D). The sparse step regularizes — it pushes the network
// out of its saddle point with fewer degrees of freedom — and re-D gives the capacity back.
//
// The paper's control is the same extra epochs spent on the dense network at the lower learning rate
// ("LLR"): DSD's gain counts only if it beats that. `runDsd` trains both and writes the comparison.
import * as path from 'node:path';
import { TrainConfig, Logger } from '../train/trainer';
import { SegmentConfig, isSegmentConfig, resolveSegmentConfig } from '../train/segment';
import { readRunRecord } from '../train/checkpoint';
import { PhaseResult, leadLog, leadWrites, pct, plotPhases, runPhase, runSegmentPhase, writeJsonAtomic } from './phases';
import { overallSparsity } from './prune';
import { writeFileAtomic } from '../util/fs';

/** The paper's hyperparameters: 30% sparsity for its CNNs (GoogLeNet, VGG-16, ResNet), re-D at lr/10. */
export const DSD_DEFAULTS = { sparsity: 0.3, skipFirst: true, denseEpochs: 4, sparseEpochs: 2, redenseEpochs: 2, redenseLrScale: 0.1, control: true } as const;

export interface DsdConfig {
  /** The training settings every phase shares (model, data, optimizer, lr, batch size, seed, ...). */
  base: Partial<TrainConfig>;
  /** Where the phases' folders and the comparison go. */
  outDir: string;
  sparsity?: number;
  skipFirst?: boolean;
  denseEpochs?: number;
  sparseEpochs?: number;
  redenseEpochs?: number;
  /** re-D's learning rate as a fraction of the base learning rate. */
  redenseLrScale?: number;
  /** A trained dense model (checkpoint or weights) to start from instead of running D. */
  dense?: string;
  /** Also train the paper's control: the dense model for S + re-D more epochs at the re-D learning rate. */
  control?: boolean;
}

export interface DsdResult {
  dense: PhaseResult | null;
  sparse: PhaseResult;
  redense: PhaseResult;
  control: PhaseResult | null;
  report: string;
  summary: string;
  curves: string;
}

export async function runDsd(c: DsdConfig, log: Logger = (l) => console.log(l)): Promise<DsdResult> {
  log = leadLog(log);
  const o = { ...DSD_DEFAULTS, ...stripUndefined(c), outDir: c.outDir, base: c.base };
  const lr = c.base.lr ?? 0.05;
  // Rounded so that 0.05 × 0.1 reads 0.005 in logs and reports, not 0.005000000000000001.
  const lowLr = Number((lr * o.redenseLrScale).toPrecision(12));
  const base: Partial<TrainConfig> = { ...c.base, lr, init: '', method: null };
  const dense = o.dense ? null : await runPhase(o.outDir, 'dense', { ...base, epochs: o.denseEpochs }, log);
  const denseWeights = o.dense ?? dense!.weights;
  const sparse = await runPhase(o.outDir, 'sparse', { ...base, epochs: o.sparseEpochs, init: denseWeights, method: { kind: 'sparse', sparsity: o.sparsity, skipFirst: o.skipFirst } }, log);
  const redense = await runPhase(o.outDir, 'redense', { ...base, epochs: o.redenseEpochs, lr: lowLr, init: sparse.weights }, log);
  const control = o.control ? await runPhase(o.outDir, 'control', { ...base, epochs: o.sparseEpochs + o.redenseEpochs, lr: lowLr, init: denseWeights }, log) : null;

  const d0 = dense ? dense.epochs : 0;
  const [curves, report, summary] = ['curves.png', 'report.json', 'SUMMARY.md'].map((f) => path.join(o.outDir, f));
  await leadWrites(async () => {
    await plotPhases(curves, 'DSD: test top-1 through the phases', [
      ...(dense ? [{ name: 'D (dense)', start: 0, phase: dense }] : []),
      { name: `S (${pct(o.sparsity)} sparse)`, start: d0, phase: sparse },
      { name: 're-D (lr/10)', start: d0 + sparse.epochs, phase: redense },
      ...(control ? [{ name: 'control: dense, lr/10', start: d0, phase: control }] : []),
    ]);
    writeJsonAtomic(report, { method: 'DSD (Han et al. 2017)', settings: { ...o, base: c.base }, phases: { dense, sparse, redense, control } });
    writeFileAtomic(summary, summarize(o, dense, sparse, redense, control));
  });
  const line = (p: PhaseResult | null, label: string): string => (p ? `${label} ${pct(p.testTop1)}` : '');
  log(['DSD test top-1:', line(dense, 'D'), line(sparse, '· S'), line(redense, '· re-D'), line(control, '· control (dense, lr/10)')].filter(Boolean).join(' '));
  return { dense, sparse, redense, control, report, summary, curves };
}

function summarize(o: { sparsity: number; skipFirst: boolean; redenseLrScale: number; base: Partial<TrainConfig>; dense?: string }, dense: PhaseResult | null, sparse: PhaseResult, redense: PhaseResult, control: PhaseResult | null): string {
  const row = (label: string, p: PhaseResult | null, note: string): string =>
    p ? `| ${label} | ${p.epochs} | ${p.lr} | ${pct(p.testTop1)} | ${pct(p.testTop5)} | ${p.testLoss.toFixed(4)} | ${note} |` : '';
  const sp = (sparse.method as { overallSparsity?: number } | null)?.overallSparsity;
  const gain = control ? redense.testTop1 - control.testTop1 : null;
  return [
    `# DSD on ${o.base.model ?? 'cnn'}`,
    '',
    `Sparsity ${pct(o.sparsity)} per layer${o.skipFirst ? ' (first layer dense)' : ''}; re-D at ${o.redenseLrScale} × the learning rate.`,
    `Dense start: ${dense ? `trained here (${dense.dir})` : o.dense}.`,
    '',
    '| phase | epochs | lr | test top-1 | test top-5 | test loss | note |',
    '|---|---:|---:|---:|---:|---:|---|',
    row('D', dense, 'dense baseline'),
    row('S', sparse, sp === undefined ? 'masks held' : `${pct(sp)} of conv/linear weights are zero`),
    row('re-D', redense, 'pruned weights restored at zero'),
    row('control', control, 'dense, same extra epochs at the re-D lr'),
    '',
    gain === null ? '' : `re-D − control: ${(100 * gain).toFixed(2)} points of top-1 (${gain > 0 ? 'DSD ahead' : 'DSD not ahead'} in this run; one seed).`,
    '',
    '![test top-1 through the phases](curves.png)',
    '',
  ].filter((l, i, a) => l !== '' || a[i - 1] !== '').join('\n');
}

export interface SegmentDsdConfig extends Omit<DsdConfig, 'base'> {
  /**
   * The \`segment\` settings every phase shares (model, data, recipe). With \`dense\`, that run's recorded
   * ones: its data and recipe, with what is given here over them.
   */
  base: Partial<SegmentConfig>;
}

/** One phase of segmentation DSD, scored by mIoU. */
export interface SegmentPhaseResult {
  name: string;
  dir: string;
  epochs: number;
  lr: number;
  testMIoU: number;
  testPixelAccuracy: number;
  /** Test mIoU after each epoch. */
  curve: number[];
  /** The share of conv weights that are zero at the end. */
  sparsity: number;
  weights: string;
}

export interface SegmentDsdResult {
  dense: SegmentPhaseResult | null;
  sparse: SegmentPhaseResult;
  redense: SegmentPhaseResult;
  control: SegmentPhaseResult | null;
  report: string;
  summary: string;
  curves: string;
}

/**
 * DSD for segmentation networks: the same phases as runDsd, each a \`segment\` run (its paper's loss and poly
 * schedule, restarted from each phase's learning rate), scored by test mIoU. From a trained \`segment\` run
 * (\`dense\`) the phases read its data and follow its recipe.
 */
export async function runSegmentDsd(c: SegmentDsdConfig, log: Logger = (l) => console.log(l)): Promise<SegmentDsdResult> {
  log = leadLog(log);
  const o = { ...DSD_DEFAULTS, ...stripUndefined(c), outDir: c.outDir };
  let base = c.base;
  if (c.dense) {
    const { run } = readRunRecord(c.dense);
    if (!isSegmentConfig(run?.config)) throw new Error(`${c.dense} is not a checkpoint (or weights) of \`tsvision segment\``);
    // Its data and recipe; not where it went, what it started from or was taught by, nor its transfer set.
    const { outDir: _o, init: _i, backboneInit: _b, teacher: _t, sparse: _s, ema: _e, patience: _p, ...recorded } = run.config;
    const folders = recorded.folders && (Object.fromEntries(Object.entries(recorded.folders).filter(([k]) => k !== 'unlabelled')) as SegmentConfig['folders']);
    const { unlabelled: _u, ...scenes } = recorded.scenes;
    if (c.base.model && c.base.model !== recorded.model) throw new Error(`${c.dense} is a ${recorded.model}, not a ${c.base.model}`);
    base = { ...recorded, scenes, folders, ...c.base };
  }
  const lr = resolveSegmentConfig(base).lr;
  const lowLr = Number((lr * o.redenseLrScale).toPrecision(12));
  const phase = async (name: string, extra: Partial<SegmentConfig>): Promise<SegmentPhaseResult> => {
    const cfg = resolveSegmentConfig({ ...base, ...extra, outDir: path.join(o.outDir, name) });
    const r = await runSegmentPhase(cfg, log, `${name} phase`);
    return { name, dir: cfg.outDir, epochs: r.history.length, lr: cfg.lr, testMIoU: r.final.testMIoU, testPixelAccuracy: r.final.testPixelAccuracy, curve: r.history.map((h) => h.testMIoU), sparsity: overallSparsity(r.model), weights: r.weights };
  };
  const dense = o.dense ? null : await phase('dense', { epochs: o.denseEpochs });
  const denseWeights = o.dense ?? dense!.weights;
  const sparse = await phase('sparse', { epochs: o.sparseEpochs, init: denseWeights, sparse: { sparsity: o.sparsity, skipFirst: o.skipFirst } });
  const redense = await phase('redense', { epochs: o.redenseEpochs, lr: lowLr, init: sparse.weights });
  const control = o.control ? await phase('control', { epochs: o.sparseEpochs + o.redenseEpochs, lr: lowLr, init: denseWeights }) : null;

  const model = resolveSegmentConfig(base).model;
  const d0 = dense ? dense.epochs : 0;
  const [curves, report, summary] = ['curves.png', 'report.json', 'SUMMARY.md'].map((f) => path.join(o.outDir, f));
  await leadWrites(async () => {
    await plotPhases(curves, `DSD on ${model}: test mIoU through the phases`, [
      ...(dense ? [{ name: 'D (dense)', start: 0, phase: dense }] : []),
      { name: `S (${pct(o.sparsity)} sparse)`, start: d0, phase: sparse },
      { name: 're-D (lr/10)', start: d0 + sparse.epochs, phase: redense },
      ...(control ? [{ name: 'control: dense, lr/10', start: d0, phase: control }] : []),
    ], 'test mIoU (%)');
    writeJsonAtomic(report, { method: 'DSD (Han et al. 2017) on a segmentation network', settings: { ...o, base }, phases: { dense, sparse, redense, control } });
    const row = (label: string, p: SegmentPhaseResult | null, note: string): string =>
      p ? `| ${label} | ${p.epochs} | ${p.lr} | ${pct(p.testMIoU)} | ${pct(p.testPixelAccuracy)} | ${pct(p.sparsity)} | ${note} |` : '';
    const gain = control ? redense.testMIoU - control.testMIoU : null;
    writeFileAtomic(summary, [
      `# DSD on ${model}`,
      '',
      `Sparsity ${pct(o.sparsity)} per layer${o.skipFirst ? ' (first layer dense)' : ''}; re-D at ${o.redenseLrScale} × the learning rate; every phase \`segment\`'s loss and poly schedule.`,
      `Dense start: ${dense ? `trained here (${dense.dir})` : o.dense}.`,
      '',
      '| phase | epochs | lr | test mIoU | pixel accuracy | conv weights zero | note |',
      '|---|---:|---:|---:|---:|---:|---|',
      row('D', dense, 'dense baseline'),
      row('S', sparse, 'masks held'),
      row('re-D', redense, 'pruned weights restored at zero'),
      row('control', control, 'dense, same extra epochs at the re-D lr'),
      '',
      gain === null ? '' : `re-D − control: ${(100 * gain).toFixed(2)} points of mIoU (${gain > 0 ? 'DSD ahead' : 'DSD not ahead'} in this run; one seed).`,
      '',
      '![test mIoU through the phases](curves.png)',
      '',
    ].filter((l, i, a) => l !== '' || a[i - 1] !== '').join('\n'));
  });
  const line = (p: SegmentPhaseResult | null, label: string): string => (p ? `${label} ${pct(p.testMIoU)}` : '');
  log(['DSD test mIoU:', line(dense, 'D'), line(sparse, '· S'), line(redense, '· re-D'), line(control, '· control (dense, lr/10)')].filter(Boolean).join(' '));
  return { dense, sparse, redense, control, report, summary, curves };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
