// `tsvision sweep --grid lr=0.01,0.05 --grid batch-size=64,128 -- train …`: one `train` or `segment` run per
// combination of the grid's values, one after another, each in its own folder under --out, then the runs side
// by side (compare's table, in SWEEP.md with their curves) and the winner, chosen on validation scores where
// the runs hold out a validation split. A sweep stopped (Ctrl-C, SIGTERM, a crash) continues where it was when
// the same command runs again: finished runs are kept, an interrupted one resumes from its checkpoint.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { RunFacts, bestFirst, comparisonTable, plotComparison, readRun } from '../report/compare';
import { markdownTable } from '../report/markdown';
import type { PlotOptions } from '../report/plot';
import { meanStd, seedsCell } from '../reproduce/common';
import { writeFileAtomic } from '../util/fs';
import { StopSignal, onStopSignal } from '../util/signals';

/** The commands a sweep runs: those whose output folder holds a report.json with per-epoch scores. */
export const SWEEPABLE = ['train', 'segment'] as const;
export type SweepCommand = (typeof SWEEPABLE)[number];

/** One flag of the grid and the values it takes. */
export interface SweepAxis {
  flag: string;
  values: string[];
}

/**
 * `flag=v1,v2,…` (or `flag=v1|v2|…` for values with commas in them, such as `color-jitter`), the flag with or
 * without its dashes; an axis given twice is an error, as is one without values.
 */
export function parseGrid(specs: readonly string[]): SweepAxis[] {
  const axes: SweepAxis[] = [];
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const flag = spec.slice(0, Math.max(eq, 0)).replace(/^-+/, '');
    if (eq < 0 || !/^[a-z][a-z0-9-]*$/.test(flag)) throw new Error(`--grid '${spec}': expected flag=value1,value2,… (e.g. lr=0.01,0.05)`);
    const body = spec.slice(eq + 1);
    const values = body.split(body.includes('|') ? '|' : ',').map((v) => v.trim());
    if (values.some((v) => v === '')) throw new Error(`--grid '${spec}': an empty value`);
    if (axes.some((a) => a.flag === flag)) throw new Error(`--grid: ${flag} is given twice; list its values in one --grid`);
    if (new Set(values).size !== values.length) throw new Error(`--grid '${spec}': a value is listed twice`);
    axes.push({ flag, values });
  }
  if (!axes.length) throw new Error('sweep: give at least one --grid flag=value1,value2,…');
  return axes;
}

/**
 * Every combination of the axes' values, the first axis slowest: its values (one per axis), flags and a
 * folder name (`lr-0.01_batch-size-64`).
 */
export function combinations(axes: readonly SweepAxis[]): { name: string; flags: string[]; values: string[] }[] {
  let out: { name: string[]; flags: string[]; values: string[] }[] = [{ name: [], flags: [], values: [] }];
  for (const a of axes) out = out.flatMap((c) => a.values.map((v) => ({ name: [...c.name, `${a.flag}-${v.replace(/[^A-Za-z0-9.+-]+/g, '_')}`], flags: [...c.flags, `--${a.flag}`, v], values: [...c.values, v] })));
  return out.map((c) => ({ name: c.name.join('_'), flags: c.flags, values: c.values }));
}

export interface SweepOptions {
  command: SweepCommand;
  /** The command's own flags, the same for every run (no -o: the sweep gives each run its folder). */
  args: readonly string[];
  axes: readonly SweepAxis[];
  out: string;
  /** The tsvision CLI script the runs are started with. */
  cli: string;
  log?: (line: string) => void;
}

export interface SweepResult {
  runs: RunFacts[];
  /** The run chosen: by best validation score when every run has one, else by last test score. */
  winner: RunFacts | null;
  byValidation: boolean;
  /** Runs that failed (their folders), and whether a signal stopped the sweep. */
  failed: string[];
  stopped: StopSignal | null;
  /** The table and the choice, as SWEEP.md holds them (null: no run has reported yet). */
  report: string | null;
  summary: string;
  plot: string;
}

/** The record of the flags a run folder was made with, so that a rerun with other flags cannot reuse it. */
const ARGS_FILE = 'sweep-args.json';

/** One run of a sweep: its folder, the command's flags, and what the sweep will do with it. */
export interface PlannedRun {
  name: string;
  dir: string;
  args: string[];
  /** The grid's value per axis. */
  values: string[];
  /** 'new': not started; 'resume': stopped, its checkpoint continues; 'finished': kept as it is. */
  state: 'new' | 'resume' | 'finished';
}

/**
 * What the sweep would run, without running anything (`--dry-run`): every combination's folder, flags and
 * state. A folder made by another command or with other flags is an error naming both.
 */
export function planSweep(o: Pick<SweepOptions, 'command' | 'args' | 'axes' | 'out'>): PlannedRun[] {
  if (o.args.some((a) => a === '-o' || a === '--out' || a.startsWith('--out=') || a === '--resume')) throw new Error('sweep: the sweep gives each run its output folder and resumes them itself; leave -o/--out and --resume out of the command');
  for (const a of o.axes) if (['o', 'out', 'resume'].includes(a.flag)) throw new Error(`sweep: --${a.flag} cannot be on the grid; the sweep gives each run its folder and resumes it`);
  // (--opt is repeatable: `--grid opt=alpha=0.5,alpha=1` adds one more model option beside the command's own.)
  for (const a of o.axes) if (a.flag !== 'opt' && o.args.includes(`--${a.flag}`)) throw new Error(`sweep: --${a.flag} is on the grid; leave it out of the command`);
  return combinations(o.axes).map((c) => {
    const dir = path.join(o.out, c.name);
    const args = [...o.args, ...c.flags];
    const record = path.join(dir, ARGS_FILE);
    if (fs.existsSync(record)) {
      const before = JSON.parse(fs.readFileSync(record, 'utf8')) as { command: string; args: string[] };
      if (before.command !== o.command || JSON.stringify(before.args) !== JSON.stringify(args)) {
        throw new Error(`${dir} holds a run of \`${before.command} ${before.args.join(' ')}\`, not of this sweep's \`${o.command} ${args.join(' ')}\`: remove it or choose another --out`);
      }
    }
    const state = finished(dir) ? 'finished' : fs.existsSync(path.join(dir, 'checkpoint.safetensors')) ? 'resume' : 'new';
    return { name: c.name, dir, args, values: c.values, state };
  });
}

export async function sweep(o: SweepOptions): Promise<SweepResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const runs = planSweep(o);
  fs.mkdirSync(o.out, { recursive: true });
  let stopped: SweepResult['stopped'] = null;
  let child: ReturnType<typeof spawn> | null = null;
  // Ctrl-C reaches the running child directly (one process group): it saves and exits; the sweep then stops.
  // SIGTERM (a job system) is passed on to it.
  const stopWatching = onStopSignal((signal) => {
    stopped = signal;
    if (signal === 'SIGTERM') child?.kill('SIGTERM');
  });
  const failed: string[] = [];
  try {
    for (const [k, { name, dir, args, state }] of runs.entries()) {
      if (stopped) break;
      const tag = `[${k + 1}/${runs.length} ${name}]`;
      if (state === 'finished') {
        log(`${tag} finished earlier, reusing ${dir}`);
        continue;
      }
      const record = path.join(dir, ARGS_FILE);
      if (!fs.existsSync(record)) {
        fs.mkdirSync(dir, { recursive: true });
        writeFileAtomic(record, JSON.stringify({ command: o.command, args }, null, 2) + '\n');
      }
      const ckpt = path.join(dir, 'checkpoint.safetensors');
      const resume = state === 'resume' ? ['--resume', ckpt] : [];
      log(`${tag} tsvision ${o.command} ${[...args, ...resume, '-o', dir].join(' ')}`);
      const code = await new Promise<number | null>((resolve) => {
        child = spawn(process.execPath, [o.cli, o.command, ...(resume.length ? resume : args), '-o', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
        for (const s of [child.stdout!, child.stderr!]) readline.createInterface({ input: s }).on('line', (l) => log(`${tag} ${l}`));
        child.on('error', (e) => {
          log(`${tag} could not start: ${e.message}`);
          resolve(1);
        });
        child.on('close', (c) => resolve(c));
      });
      child = null;
      if (stopped) break;
      if (code !== 0) {
        failed.push(dir);
        log(`${tag} failed (exit code ${code}); going on with the others`);
      }
    }
  } finally {
    stopWatching();
  }
  return summarize(o, runs, failed, stopped);
}

/** The runs that reported so far, ranked, the choice, SWEEP.md and sweep.png. */
async function summarize(o: SweepOptions, runs: readonly PlannedRun[], failed: string[], stopped: SweepResult['stopped']): Promise<SweepResult> {
  const done = runs.map((r) => r.dir).filter((d) => fs.existsSync(path.join(d, 'report.json'))).map(readRun);
  const byValidation = done.length > 0 && done.every((r) => r.best);
  const ranked = bestFirst(done);
  const complete = new Set(done.filter(isFinished));
  const winner = ranked.find((r) => complete.has(r)) ?? null;
  const summary = path.join(o.out, 'SWEEP.md');
  const plot = path.join(o.out, 'sweep.png');
  const metric = done[0]?.kind === 'segmentation' ? 'mIoU' : 'top-1';
  const seeds = o.axes.find((a) => a.flag === 'seed');
  const noValidation = 'No validation split (--val-split): the test set chose, so this score flatters the winner; hold out a validation split to choose without it.';
  const over = seeds && seeds.values.length > 1 ? overSeeds(o.axes, runs.map((r) => ({ ...r, run: [...complete].find((d) => d.dir === r.dir) })), byValidation, metric) : null;
  const choice = over
    ? `${over.table}\n\n${over.choice}${byValidation ? '' : ` ${noValidation}`}`
    : !winner
      ? 'No run has finished yet.'
      : byValidation
        ? `Chosen by best validation ${metric}: **${winner.dir}**, ${pct(winner.best!.val)} at epoch ${winner.best!.epoch} (test ${pct(winner.best!.test)}; its weights are ${path.join(winner.dir, 'best.safetensors')}).`
        : `Chosen by last-epoch test ${metric}: **${winner.dir}**, ${pct(winner.test)}. ${noValidation}`;
  // What SWEEP.md says between its title and the plot, and the command prints.
  const grid = o.axes.map((a) => `\`--${a.flag}\` ${a.values.join(', ')}`).join('; ');
  const report = [
    `Grid: ${grid} — ${runs.length} runs, ${complete.size} finished${failed.length ? `, ${failed.length} failed` : ''}${stopped ? `; stopped by ${stopped} (run the same command again to continue)` : ''}. Best first:`,
    '',
    comparisonTable(ranked),
    '',
    choice,
  ].join('\n');
  if (done.length) {
    await plotComparison(plot, ranked, over ? [over.plot] : []);
    writeFileAtomic(summary, `# Sweep: tsvision ${o.command} ${o.args.join(' ')}\n\n${report}\n\n![test score and training loss per epoch](${path.basename(plot)})\n`);
  }
  return { runs: ranked, winner, byValidation, failed, stopped, report: done.length ? report : null, summary, plot };
}

/**
 * With seed on the grid: every setting of the other flags over its finished seeds, mean ± sample std (and
 * the values), best mean first, and the setting chosen by that mean — a single seed's luck no longer picks.
 */
function overSeeds(axes: readonly SweepAxis[], runs: readonly { values: string[]; run?: RunFacts }[], byValidation: boolean, metric: string): { table: string; choice: string; plot: PlotOptions } {
  const s = axes.findIndex((a) => a.flag === 'seed');
  const others = axes.filter((_, i) => i !== s);
  const groups = new Map<string, { values: string[]; runs: RunFacts[] }>();
  for (const r of runs) {
    const values = r.values.filter((_, i) => i !== s);
    const g = groups.get(values.join('\0')) ?? groups.set(values.join('\0'), { values, runs: [] }).get(values.join('\0'))!;
    if (r.run) g.runs.push(r.run);
  }
  const score = (r: RunFacts): number => (byValidation ? r.best!.val : r.test);
  const mean = (xs: number[]): number => (xs.length ? meanStd(xs).mean : -Infinity);
  const ranked = [...groups.values()].sort((a, b) => mean(b.runs.map(score)) - mean(a.runs.map(score)));
  const cell = (xs: number[]): string => (xs.length ? seedsCell(xs) : '—');
  const header = [...others.map((a) => a.flag), 'seeds finished', `test ${metric} (%)`, ...(byValidation ? [`best validation ${metric} (%)`] : [])];
  const rows = ranked.map((g) => [...g.values, String(g.runs.length), cell(g.runs.map((r) => r.test)), ...(byValidation ? [cell(g.runs.map((r) => r.best!.val))] : [])]);
  const best = ranked[0];
  const what = others.length ? others.map((a, i) => `--${a.flag} ${best.values[i]}`).join(' ') : 'the one setting';
  const choice = best?.runs.length
    ? `Chosen by mean ${byValidation ? 'best validation' : 'last-epoch test'} ${metric} over ${best.runs.length} seed${best.runs.length === 1 ? '' : 's'}: **${what}**, ${seedsCell(best.runs.map(score))} (%).`
    : 'No run has finished yet.';
  // Each setting's seeds as points in a column: the spread that the means and deviations summarize.
  const seedRuns = (g: (typeof ranked)[number]) => g.runs.map((r, i) => ({ seed: runs.find((x) => x.run === r)?.values[s] ?? String(i), score: score(r) }));
  const seedValues = axes[s].values;
  const plot: PlotOptions = {
    title: `${byValidation ? 'best validation' : 'test'} ${metric} per setting, one point per seed`,
    xLabel: others.map((a) => a.flag).join(', ') || 'setting',
    yLabel: `${byValidation ? 'best validation' : 'test'} ${metric} (%)`,
    categories: ranked.map((g) => g.values.join(', ') || 'all'),
    scatter: true,
    series: seedValues.map((seed) => ({ name: `seed ${seed}`, points: ranked.flatMap((g, k) => seedRuns(g).filter((x) => x.seed === seed).map((x): [number, number] => [k + 1, 100 * x.score])) })),
  };
  return { table: `Over the seeds (mean ± sample standard deviation, then each seed's value):\n\n${markdownTable(header, rows)}`, choice, plot };
}

/** A run that trained all its epochs (or stopped early by --patience) and wrote its weights. */
function finished(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'report.json')) && isFinished(readRun(dir));
}

const isFinished = (r: RunFacts): boolean => fs.existsSync(path.join(r.dir, 'model.safetensors')) && (r.epochs >= r.plannedEpochs || r.stoppedEarly !== null);

const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
