// Han et al., "DSD: Dense-Sparse-Dense Training for Deep Neural Networks" (ICLR 2017): pruning a trained
// network's smallest weights, retraining it sparse, then restoring the pruned connections at zero and
// retraining dense at a tenth of the learning rate ends above the dense network — and above the paper's
// control, the same extra epochs spent on the dense network at that lower learning rate ("LLR"). Every
// seed's run is `runDsd`, exactly as `tsvision dsd --seed n` runs it, so each seed has its own dense start.
import * as path from 'node:path';
import { savePlotsPng } from '../report/plot';
import { DSD_DEFAULTS, runDsd } from '../methods/dsd';
import { PhaseResult } from '../methods/phases';
import { DEFAULT_CONFIG, TrainConfig } from '../train/trainer';
import { Log, inWorkDir, markdownTable, meanStd, pairedDifference, pct, seedsCell, writeReport } from './common';

export const DSD_SEEDS = [0, 1, 2] as const;

export interface DsdBudget {
  /** The paper's phase lengths and sparsity are `tsvision dsd`'s defaults; only the quick check shrinks them. */
  denseEpochs: number;
  sparseEpochs: number;
  redenseEpochs: number;
  sparsity: number;
  /** Caps every phase's batches per epoch (quick mode); 0: none. */
  limitBatches: number;
}

export const DSD_BUDGET: DsdBudget = { denseEpochs: DSD_DEFAULTS.denseEpochs, sparseEpochs: DSD_DEFAULTS.sparseEpochs, redenseEpochs: DSD_DEFAULTS.redenseEpochs, sparsity: DSD_DEFAULTS.sparsity, limitBatches: 0 };
export const DSD_QUICK_BUDGET: DsdBudget = { denseEpochs: 1, sparseEpochs: 1, redenseEpochs: 1, sparsity: DSD_DEFAULTS.sparsity, limitBatches: 2 };

/** The phases in the order they run; `control` starts from D's weights, as S does. */
export const DSD_PHASES = ['dense', 'sparse', 'redense', 'control'] as const;
export type DsdPhase = (typeof DSD_PHASES)[number];

export interface DsdRun {
  seed: number;
  top1: number;
  testLoss: number;
}

export interface DsdStudy {
  reportPath: string;
  results: Record<DsdPhase, DsdRun[]>;
  /** The S phase's measured share of zero conv/linear weights, per seed. */
  sparsity: number[];
  /** Each phase's epochs and learning rate as runDsd ran them (the same for every seed). */
  schedule: Record<DsdPhase, { epochs: number; lr: number }>;
}

export async function reproduceDsd(outDir: string, quick: boolean, log: Log): Promise<DsdStudy> {
  const t0 = Date.now();
  const b = quick ? DSD_QUICK_BUDGET : DSD_BUDGET;
  const seeds: readonly number[] = quick ? [0] : DSD_SEEDS;
  return inWorkDir('tsv-dsd-', async (work) => {
    const results: Record<DsdPhase, DsdRun[]> = { dense: [], sparse: [], redense: [], control: [] };
    const sparsity: number[] = [];
    let schedule = {} as DsdStudy['schedule'];
    for (const seed of seeds) {
      const base: Partial<TrainConfig> = { model: 'cnn', data: { kind: 'fashion-mnist' }, seed, ...(b.limitBatches ? { limitBatches: b.limitBatches } : {}) };
      const r = await runDsd({ base, outDir: path.join(work, `seed-${seed}`), denseEpochs: b.denseEpochs, sparseEpochs: b.sparseEpochs, redenseEpochs: b.redenseEpochs, sparsity: b.sparsity, control: true }, () => {});
      const phases: Record<DsdPhase, PhaseResult> = { dense: r.dense!, sparse: r.sparse, redense: r.redense, control: r.control! };
      for (const p of DSD_PHASES) results[p].push({ seed, top1: phases[p].testTop1, testLoss: phases[p].testLoss });
      schedule = Object.fromEntries(DSD_PHASES.map((p) => [p, { epochs: phases[p].epochs, lr: phases[p].lr }])) as DsdStudy['schedule'];
      sparsity.push((r.sparse.method as { overallSparsity: number }).overallSparsity);
      log(`  seed ${seed}: ${DSD_PHASES.map((p) => `${PHASE_WORDS[p]} ${pct(phases[p].testTop1)}%`).join(', ')}`);
    }
    const reportPath = await writeDsdReport(outDir, quick, b, seeds, { results, sparsity, schedule }, t0);
    return { reportPath, results, sparsity, schedule };
  });
}

const PHASE_WORDS: Record<DsdPhase, string> = { dense: 'D', sparse: 'S', redense: 're-D', control: 'control' };

/** Every phase's test top-1, a colour per seed (no lines: the control branches off D, it does not follow re-D). */
export async function plotDsd(file: string, results: Record<DsdPhase, DsdRun[]>): Promise<void> {
  const seeds = results.dense.map((r) => r.seed);
  await savePlotsPng(file, [
    {
      title: 'DSD on cnn: test top-1 after each phase, per seed',
      xLabel: 'phase (re-D and the control both start at lr/10: re-D from S, the control from D)',
      yLabel: 'test top-1 (%)',
      categories: ['D (dense)', 'S (sparse)', 're-D', 'control (dense, lr/10)'],
      scatter: true,
      width: 720,
      series: seeds.map((seed, i) => ({ name: `seed ${seed}`, points: DSD_PHASES.map((p, k): [number, number] => [k + 1, 100 * results[p][i].top1]) })),
    },
  ]);
}

async function writeDsdReport(outDir: string, quick: boolean, b: DsdBudget, seeds: readonly number[], s: Omit<DsdStudy, 'reportPath'>, t0: number): Promise<string> {
  const { results, sparsity, schedule } = s;
  const n = seeds.length;
  const loss = (x: number): string => x.toFixed(4);
  const startsFrom: Record<DsdPhase, string> = {
    dense: 'dense, from random weights',
    sparse: `D's weights with the smallest ${pct(b.sparsity)}% of each layer's (but the first's) pruned, masks held`,
    redense: "S's weights, the pruned ones restored at zero",
    control: "D's weights, dense: the same extra epochs at re-D's learning rate",
  };
  const table = markdownTable(
    ['phase', 'epochs', 'lr', 'starts from', 'test top-1 (%), mean ± std (per seed)', 'test loss, mean ± std (per seed)'],
    DSD_PHASES.map((p) => [PHASE_WORDS[p], String(schedule[p].epochs), String(schedule[p].lr), startsFrom[p], seedsCell(results[p].map((r) => r.top1)), seedsCell(results[p].map((r) => r.testLoss), loss)]),
  );
  // Paired by seed: the phases of a seed share its dense start, data order and initialization.
  const versus = (p: DsdPhase, than: DsdPhase): string => pairedDifference(results[p].map((r) => r.top1), results[than].map((r) => r.top1));
  const sp = meanStd(sparsity);

  await plotDsd(path.join(outDir, 'dsd.png'), results);

  const body = `# DSD: does a sparse detour beat more dense training?

**Claim (Han et al., "DSD: Dense-Sparse-Dense Training for Deep Neural Networks", ICLR 2017, §2 and §4):**
training a network dense (D), pruning the smallest-magnitude 25–50% of each layer's weights and retraining it
with the masks held (S), then restoring the pruned connections at zero and retraining dense at a tenth of the
learning rate (re-D) ends above the dense network; and above the control the paper calls LLR, the dense
network trained for the same extra epochs at the same lower learning rate, so the gain is not just more
training.

**Setup:** Fashion-MNIST (60,000 training images, the 10,000 test images), tsvision's \`cnn\` with \`npm start\`'s
recipe (SGD with momentum ${DEFAULT_CONFIG.momentum}, weight decay ${DEFAULT_CONFIG.weightDecay}, batch ${DEFAULT_CONFIG.batchSize}, cosine decay to zero within every phase, no
augmentation), each seed through \`runDsd\` exactly as \`tsvision dsd --seed <n>\` runs it: sparsity ${pct(b.sparsity)}% per layer,
the first layer left dense (the paper's settings for its CNNs); the S phase's masks zeroed
${pct(sp.mean)}% of all conv and linear weights (mean over the seeds). Seed${n > 1 ? 's' : ''} ${seeds.join(', ')} fix${n > 1 ? '' : 'es'} the initialization and data order;
each seed trains its own D, and its S, re-D and control start from that D, so the comparison is paired.

${table}

![test top-1 of every phase and seed](dsd.png)

**Conclusion:** re-D against the control (LLR): ${versus('redense', 'control')}; re-D against D: ${versus('redense', 'dense')};
the control against D: ${versus('control', 'dense')}; S against D: ${versus('sparse', 'dense')}, with ${pct(sp.mean)}% of the weights zero.
Caveats: a 28-pixel dataset, one small network trained for minutes (not a network trained to convergence
over days, as the paper's were), one sparsity, and ${n} seed${n > 1 ? 's' : ''}.
`;
  return writeReport(outDir, 'dsd', quick, body, (Date.now() - t0) / 1000);
}
