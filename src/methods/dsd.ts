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

/** DSD's phases (D null when a dense model was given; the control null without it) and the files written. */
export interface DsdOutcome<P> {
  dense: P | null;
  sparse: P;
  redense: P;
  control: P | null;
  report: string;
  summary: string;
  curves: string;
}
export type DsdResult = DsdOutcome<PhaseResult>;

export async function runDsd(c: DsdConfig, log: Logger = (l) => console.log(l)): Promise<DsdResult> {
  log = leadLog(log);
  const o = { ...DSD_DEFAULTS, ...stripUndefined(c), outDir: c.outDir, base: c.base };
  const lr = c.base.lr ?? 0.05;
  // Rounded so that 0.05 × 0.1 reads 0.005 in logs and reports, not 0.005000000000000001.
  const base: Partial<TrainConfig> = { ...c.base, lr, init: '', method: null };
  const { dense, sparse, redense, control } = await dsdPhases(o, lr, (name, p) =>
    runPhase(o.outDir, name, { ...base, epochs: p.epochs, lr: p.lr, ...(p.init ? { init: p.init } : {}), ...(p.sparse ? { method: { kind: 'sparse', ...p.sparse } } : {}) }, log),
  );

  const [curves, report, summary] = ['curves.png', 'report.json', 'SUMMARY.md'].map((f) => path.join(o.outDir, f));
  await leadWrites(async () => {
    await plotPhases(curves, 'DSD: test top-1 through the phases', phaseLines(o.sparsity, { dense, sparse, redense, control }));
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

export type SegmentDsdResult = DsdOutcome<SegmentPhaseResult>;

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
  const { model, lr } = resolveSegmentConfig(base);
  const { dense, sparse, redense, control } = await dsdPhases(o, lr, async (name, p): Promise<SegmentPhaseResult> => {
    const cfg = resolveSegmentConfig({ ...base, ...p, outDir: path.join(o.outDir, name) });
    const r = await runSegmentPhase(cfg, log, `${name} phase`);
    return { name, dir: cfg.outDir, epochs: r.history.length, lr: cfg.lr, testMIoU: r.final.testMIoU, testPixelAccuracy: r.final.testPixelAccuracy, curve: r.history.map((h) => h.testMIoU), sparsity: overallSparsity(r.model), weights: r.weights };
  });
  const [curves, report, summary] = ['curves.png', 'report.json', 'SUMMARY.md'].map((f) => path.join(o.outDir, f));
  await leadWrites(async () => {
    await plotPhases(curves, `DSD on ${model}: test mIoU through the phases`, phaseLines(o.sparsity, { dense, sparse, redense, control }), 'test mIoU (%)');
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

/** What a phase is asked to do: its epochs and rate, the weights it starts from (none: fresh), S's masks. */
interface PhaseSpec {
  epochs: number;
  lr: number;
  init?: string;
  sparse?: { sparsity: number; skipFirst: boolean };
}

/**
 * DSD's phases in order, each run by `run`: D (unless a dense model is given), S from D's weights with the
 * masks, re-D from S's at the lower rate, and the control from D's at that rate for S + re-D's epochs.
 */
async function dsdPhases<P extends { weights: string }>(
  o: { sparsity: number; skipFirst: boolean; denseEpochs: number; sparseEpochs: number; redenseEpochs: number; redenseLrScale: number; dense?: string; control: boolean },
  lr: number,
  run: (name: string, p: PhaseSpec) => Promise<P>,
): Promise<Omit<DsdOutcome<P>, 'report' | 'summary' | 'curves'>> {
  // Rounded so that 0.05 × 0.1 reads 0.005 in logs and reports, not 0.005000000000000001.
  const lowLr = Number((lr * o.redenseLrScale).toPrecision(12));
  const dense = o.dense ? null : await run('dense', { epochs: o.denseEpochs, lr });
  const denseWeights = o.dense ?? dense!.weights;
  const sparse = await run('sparse', { epochs: o.sparseEpochs, lr, init: denseWeights, sparse: { sparsity: o.sparsity, skipFirst: o.skipFirst } });
  const redense = await run('redense', { epochs: o.redenseEpochs, lr: lowLr, init: sparse.weights });
  const control = o.control ? await run('control', { epochs: o.sparseEpochs + o.redenseEpochs, lr: lowLr, init: denseWeights }) : null;
  return { dense, sparse, redense, control };
}

/** The phases' test curves on one epoch axis: S and the control from D's end, re-D from S's. */
function phaseLines<P extends { epochs: number; curve: number[] }>(sparsity: number, p: Omit<DsdOutcome<P>, 'report' | 'summary' | 'curves'>): { name: string; start: number; phase: P }[] {
  const d0 = p.dense ? p.dense.epochs : 0;
  return [
    ...(p.dense ? [{ name: 'D (dense)', start: 0, phase: p.dense }] : []),
    { name: `S (${pct(sparsity)} sparse)`, start: d0, phase: p.sparse },
    { name: 're-D (lr/10)', start: d0 + p.sparse.epochs, phase: p.redense },
    ...(p.control ? [{ name: 'control: dense, lr/10', start: d0, phase: p.control }] : []),
  ];
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
