// Runs side by side: what `train` and `segment` recorded in their report.json (every epoch's scores and the
// whole configuration), the settings in which the runs differ, and their curves in one PNG — what one wants
// after a handful of experiments, without a notebook. A run still training is read as far as it got.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { markdownTable } from './markdown';
import { PlotOptions, Series, savePlotsPng } from './plot';
import { median } from '../util/stats';

export type RunKind = 'classification' | 'segmentation';

/** One run as its report.json records it. */
export interface RunFacts {
  /** The run's folder, as given (or found under a folder given). */
  dir: string;
  kind: RunKind;
  model: string;
  parameters: number;
  /** Epochs recorded so far, and the epochs the run was set to train. */
  epochs: number;
  plannedEpochs: number;
  /** The epoch after which early stopping (`--patience`) ended the run, or null. */
  stoppedEarly: number | null;
  /** The last epoch's training loss and test score: top-1 (classification) or mIoU (segmentation), in [0, 1]. */
  trainLoss: number;
  test: number;
  /** Segmentation: the last epoch's pixel accuracy. */
  pixelAccuracy?: number;
  /** Runs with `--ema`: the moving average's last test score. */
  emaTest?: number;
  /**
   * The epoch whose weights went to best.safetensors (runs with a validation split): its validation and test
   * scores (for `train --ema`, those of the moving average when it won).
   */
  best: { epoch: number; val: number; test: number; ema?: boolean } | null;
  /** The median seconds an epoch trained (evaluation not counted). */
  secondsPerEpoch: number;
  /** Test score and training loss after each epoch. */
  curve: { epoch: number; test: number; trainLoss: number }[];
  /** The configuration the run recorded, flattened to dotted keys (`data.kind`, `modelOptions.alpha`). */
  settings: Record<string, string>;
}

/**
 * Settings never listed as a difference: where or how fast a run went, not what it trained, and the model
 * and epochs, which have their own columns.
 */
const NOT_SETTINGS = new Set(['outDir', 'threads', 'resume', 'stopAfterSteps', 'model', 'epochs']);
/**
 * Kept whole, as `key=value` pairs: different networks have different options, and different training
 * methods (dsd's phases, mimic) other settings; one column says it all.
 */
const WHOLE = new Set(['modelOptions', 'method']);

interface Report {
  model?: string;
  config?: Record<string, unknown>;
  parameters?: number;
  history?: Record<string, unknown>[];
  best?: Record<string, unknown>;
  stoppedEarly?: number;
}

const REPORT = 'report.json';

function readReport(file: string): Report {
  let r: unknown;
  try {
    r = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not readable JSON (${(e as Error).message})`}`);
  }
  if (typeof r !== 'object' || r === null) throw new Error(`${file}: not a report (a JSON object was expected)`);
  return r as Report;
}

const isRunReport = (r: Report): boolean => Array.isArray(r.history) && typeof r.config === 'object' && r.config !== null;

/**
 * The run folders under each path: the path itself when it holds the report.json of a `train` or `segment`
 * run, else its sub-folders that do (the phases of `dsd`, `mimic` and `prune`, or a `runs/` folder), in name
 * order. A path with neither is an error naming it.
 */
export function findRuns(paths: readonly string[]): string[] {
  if (!paths.length) throw new Error('compare: give at least one run folder');
  return paths.flatMap((p) => {
    if (!fs.existsSync(p)) throw new Error(`${p}: no such folder`);
    const own = path.join(p, REPORT);
    if (fs.existsSync(own) && isRunReport(readReport(own))) return [p];
    if (!fs.statSync(p).isDirectory()) throw new Error(`${p}: not a run folder (give the folder that holds its ${REPORT})`);
    const subs = fs
      .readdirSync(p, { withFileTypes: true })
      .filter((d) => d.isDirectory() && fs.existsSync(path.join(p, d.name, REPORT)) && isRunReport(readReport(path.join(p, d.name, REPORT))))
      .map((d) => path.join(p, d.name))
      .sort();
    if (!subs.length) {
      const why = fs.existsSync(own) ? `its ${REPORT} has no per-epoch history (not a train or segment run)` : `no ${REPORT}`;
      throw new Error(`${p}: ${why}, and none of its sub-folders is a run`);
    }
    return subs;
  });
}

/** Nested settings as dotted keys; lists and scalars as compact JSON-like text. */
function flatten(o: Record<string, unknown>, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  for (const [k, v] of Object.entries(o)) {
    const key = prefix + k;
    if (v === undefined || NOT_SETTINGS.has(key) || (v === null && WHOLE.has(key))) continue;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      if (!WHOLE.has(key)) flatten(v as Record<string, unknown>, `${key}.`, out);
      else if (Object.keys(v).length) out[key] = Object.entries(flatten(v as Record<string, unknown>)).map(([k, x]) => `${k}=${x}`).join(' ');
    }
    else out[key] = Array.isArray(v) ? v.join(',') : v === '' ? "''" : String(v);
  }
  return out;
}

/** Reads one run folder's report.json. */
export function readRun(dir: string): RunFacts {
  const file = path.join(dir, REPORT);
  const r = readReport(file);
  if (!isRunReport(r)) throw new Error(`${file}: not the report of a train or segment run (no per-epoch history)`);
  const h = r.history!;
  const config = r.config!;
  const segmentation = h.length ? typeof h[0].testMIoU === 'number' : 'scenes' in config || 'folders' in config;
  const score = segmentation ? 'MIoU' : 'Top1';
  const num = (v: unknown): number => (typeof v === 'number' ? v : NaN);
  const last = h[h.length - 1] ?? {};
  // Runs with a validation split record the epoch whose weights went to best.safetensors.
  const best = r.best ?? null;
  return {
    dir,
    kind: segmentation ? 'segmentation' : 'classification',
    // Segmentation reports from before the model choice trained ENet.
    model: String(r.model ?? config.model ?? (segmentation ? 'enet' : '?')),
    parameters: num(r.parameters),
    epochs: h.length,
    plannedEpochs: num(config.epochs),
    stoppedEarly: typeof r.stoppedEarly === 'number' ? r.stoppedEarly : null,
    trainLoss: num(last.trainLoss),
    test: num(last[`test${score}`]),
    ...(segmentation ? { pixelAccuracy: num(last.testPixelAccuracy) } : {}),
    ...(typeof last[`emaTest${score}`] === 'number' ? { emaTest: num(last[`emaTest${score}`]) } : {}),
    best: best && { epoch: num(best.epoch), val: num(best[`val${score}`]), test: num(best[`test${score}`]), ...(best.ema ? { ema: true } : {}) },
    secondsPerEpoch: median(h.map((e) => num(e.seconds))),
    curve: h.map((e) => ({ epoch: num(e.epoch), test: num(e[`test${score}`]), trainLoss: num(e.trainLoss) })),
    settings: flatten(config),
  };
}

/**
 * The runs best first: by best validation score when every run holds one (choosing on the test set would
 * flatter the winner), else by last test score; runs without a score last.
 */
export function bestFirst(runs: readonly RunFacts[]): RunFacts[] {
  const byValidation = runs.length > 0 && runs.every((r) => r.best);
  const score = (r: RunFacts): number => {
    const s = byValidation ? r.best!.val : r.test;
    return Number.isFinite(s) ? s : -Infinity;
  };
  return [...runs].sort((a, b) => score(b) - score(a));
}

/** The settings whose values are not the same in every run (absent in some counts as different), sorted. */
export function differingSettings(runs: readonly RunFacts[]): string[] {
  const keys = new Set(runs.flatMap((r) => Object.keys(r.settings)));
  return [...keys].filter((k) => new Set(runs.map((r) => r.settings[k] ?? '—')).size > 1).sort();
}

const pct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(2)}%` : '—');

/** A markdown table of runs of one kind: scores, size, time, and a column per differing setting. */
export function comparisonTable(runs: readonly RunFacts[]): string {
  const seg = runs[0]?.kind === 'segmentation';
  const metric = seg ? 'mIoU' : 'top-1';
  const diffs = differingSettings(runs);
  const top = Math.max(...runs.map((r) => (Number.isFinite(r.test) ? r.test : -Infinity)));
  // Only runs with a validation split record a best epoch.
  const val = runs.some((r) => r.best);
  const ema = runs.some((r) => r.emaTest !== undefined);
  const header = ['run', 'model', 'params', 'epochs', 'train loss', `test ${metric}`, ...(seg ? ['pixel accuracy'] : []), ...(ema ? [`EMA test ${metric}`] : []), ...(val ? [`best validation ${metric} (epoch: test)`] : []), 's / epoch', ...diffs];
  const rows = runs.map((r) => [
    r.dir,
    r.model,
    Number.isFinite(r.parameters) ? r.parameters.toLocaleString('en-US') : '—',
    `${r.epochs}/${r.plannedEpochs}${r.stoppedEarly ? ' (stopped early)' : ''}`,
    Number.isFinite(r.trainLoss) ? r.trainLoss.toFixed(4) : '—',
    // The best test score in bold, when several runs compete.
    runs.length > 1 && r.test === top ? `**${pct(r.test)}**` : pct(r.test),
    ...(seg ? [pct(r.pixelAccuracy ?? NaN)] : []),
    ...(ema ? [pct(r.emaTest ?? NaN)] : []),
    ...(val ? [r.best ? `${pct(r.best.val)} (${r.best.epoch}${r.best.ema ? ', EMA' : ''}: ${pct(r.best.test)})` : '—'] : []),
    Number.isFinite(r.secondsPerEpoch) ? r.secondsPerEpoch.toFixed(1) : '—',
    ...diffs.map((k) => r.settings[k] ?? '—'),
  ]);
  const same = Object.entries(runs[0]?.settings ?? {}).filter(([k]) => !diffs.includes(k));
  const shown = same.slice(0, 16).map(([k, v]) => `${k} ${v}`).join(', ');
  const rest = same.length > 16 ? `, and ${same.length - 16} more` : '';
  return `${markdownTable(header, rows)}${runs.length > 1 && same.length ? `\n\nThe same in every run: ${shown}${rest}.` : ''}`;
}

/**
 * Every run's test score and training loss per epoch, one colour per run (a pair of plots per kind), and
 * any `extra` plots after them.
 */
export async function plotComparison(file: string, runs: readonly RunFacts[], extra: readonly PlotOptions[] = []): Promise<void> {
  const plots: PlotOptions[] = (['classification', 'segmentation'] as const).flatMap((kind) => {
    const of = runs.filter((r) => r.kind === kind);
    if (!of.length) return [];
    const metric = kind === 'segmentation' ? 'test mIoU (%)' : 'test top-1 (%)';
    const series = (y: (p: RunFacts['curve'][number]) => number): Series[] => of.map((r) => ({ name: r.dir, points: r.curve.map((p): [number, number] => [p.epoch, y(p)]) }));
    return [
      { title: `${metric.replace(' (%)', '')} per epoch`, xLabel: 'epoch', yLabel: metric, series: series((p) => 100 * p.test) },
      { title: 'training loss per epoch', xLabel: 'epoch', yLabel: 'loss', series: series((p) => p.trainLoss) },
    ];
  });
  await savePlotsPng(file, [...plots, ...extra]);
}
