// A segmentation paper's ablation at small scale: variants of one network that differ only in model options
// (what `tsvision segment --opt key=value` sets), each trained by `trainSegmentation` with that network's own
// `segment` recipe on Fashion-MNIST scenes, over seeds. A seed fixes the scenes, the initialization and the
// batch order for every variant, so the differences are paired.
import * as path from 'node:path';
import { SegmentationModelName, SegmentationModelOptions, createSegmentationModel } from '../models';
import { summary } from '../metrics/summary';
import { savePlotsPng } from '../report/plot';
import { SEGMENT_RECIPES, trainSegmentation } from '../train/segment';
import { FASHION_SCENES_DEFAULTS, SCENE_CLASSES } from '../data/fashion-scenes';
import { Log, inWorkDir, int, mAdds, markdownTable, pairedDifference, pct, seedsCell } from './common';

export interface AblationBudget {
  trainScenes: number;
  testScenes: number;
  epochs: number;
  /** Caps every run's batches per epoch (quick mode); 0: none. */
  limitBatches: number;
}

/** One budget and one set of seeds for every ablation, so that their tables read alike. */
export const ABLATION_SEEDS = [0, 1, 2] as const;
export const ABLATION_BUDGET: AblationBudget = { trainScenes: 4000, testScenes: 2000, epochs: 4, limitBatches: 0 };
export const ABLATION_QUICK_BUDGET: AblationBudget = { trainScenes: 64, testScenes: 32, epochs: 1, limitBatches: 2 };

export interface Ablation<V extends string> {
  model: SegmentationModelName;
  /** In the order the table and plot show them; each usually adds to the one before. */
  variants: readonly V[];
  /** Each variant's model options over the recipe's. */
  options: Record<V, Record<string, unknown>>;
  /** Each variant's name in the table and the log. */
  words: Record<V, string>;
  /**
   * More scores of a variant's trained network, taken from its checkpoint before the work folder goes (on
   * the same test scenes, `limitBatches` as the run's own evaluation).
   */
  evaluate?: Partial<Record<V, (checkpoint: string, limitBatches: number) => Promise<Record<string, Scores>>>>;
}

export interface Scores {
  mIoU: number;
  pixelAccuracy: number;
}

export interface AblationRun extends Scores {
  seed: number;
  /** What the ablation's `evaluate` measured of this run's network, by name. */
  extra?: Record<string, Scores>;
}

export interface AblationCost {
  /** What the deployed network holds: parameters of the layers its eval-mode forward pass runs. */
  parameters: number;
  /** Parameters only training uses (an auxiliary head). */
  trainingParameters: number;
  /** Per 64×64 scene. */
  multAdds: number;
}

export interface AblationResults<V extends string> {
  results: Record<V, AblationRun[]>;
  cost: Record<V, AblationCost>;
  budget: AblationBudget;
  seeds: readonly number[];
}

/**
 * Trains every variant for every seed (a seed's variants one after another; quick: one seed on a tiny
 * budget) in a work folder it then removes.
 */
export async function runAblation<V extends string>(a: Ablation<V>, quick: boolean, log: Log): Promise<AblationResults<V>> {
  const b = quick ? ABLATION_QUICK_BUDGET : ABLATION_BUDGET;
  const seeds: readonly number[] = quick ? [0] : ABLATION_SEEDS;
  return inWorkDir(`tsv-${a.model}-`, async (work) => {
    const results = Object.fromEntries(a.variants.map((v) => [v, [] as AblationRun[]])) as Record<V, AblationRun[]>;
    let classes = 0;
    for (const seed of seeds) {
      for (const v of a.variants) {
        const r = await trainSegmentation(
          {
            model: a.model,
            modelOptions: a.options[v],
            scenes: { size: FASHION_SCENES_DEFAULTS.size, trainCount: b.trainScenes, testCount: b.testScenes, maxItems: FASHION_SCENES_DEFAULTS.maxItems },
            epochs: b.epochs,
            seed,
            limitBatches: b.limitBatches,
            outDir: path.join(work, `seed-${seed}`, v),
          },
          () => {},
        );
        const final = r.final!;
        classes = r.classes.length;
        const extra = await a.evaluate?.[v]?.(path.join(work, `seed-${seed}`, v, 'checkpoint.safetensors'), b.limitBatches);
        results[v].push({ seed, mIoU: final.testMIoU, pixelAccuracy: final.testPixelAccuracy, ...(extra ? { extra } : {}) });
        log(`  seed ${seed}, ${a.words[v]}: test mIoU ${pct(final.testMIoU)}%, pixel accuracy ${pct(final.testPixelAccuracy)}%`);
      }
    }
    const cost = Object.fromEntries(a.variants.map((v) => [v, costOf(a, v, classes)])) as Record<V, AblationCost>;
    return { results, cost, budget: b, seeds };
  });
}

/** A variant's network as its runs built it. */
function costOf<V extends string>(a: Ablation<V>, v: V, numClasses: number): AblationCost {
  return sceneCost(a.model, a.options[v], numClasses);
}

/** Size and mult-adds of `model` with `options` over its scene recipe's, as a run on the scenes (grey, 64×64) builds it. */
export function sceneCost(model: SegmentationModelName, options: Record<string, unknown>, numClasses: number = SCENE_CLASSES.length): AblationCost {
  const all = { ...SEGMENT_RECIPES[model].modelOptions, ...options, numClasses, inChannels: 1 };
  const s = summary(createSegmentationModel(model, all as SegmentationModelOptions[typeof model]), [1, 1, FASHION_SCENES_DEFAULTS.size, FASHION_SCENES_DEFAULTS.size]);
  return { parameters: s.usedParams, trainingParameters: s.totalParams - s.usedParams, multAdds: s.totalMultAdds };
}

/** The `segment` flags that build a variant: `--opt key=value` per option (lists comma-separated). */
export function optFlags(options: Record<string, unknown>): string {
  return Object.entries(options)
    .map(([k, v]) => `--opt ${k}=${Array.isArray(v) ? v.join(',') : String(v)}`)
    .join(' ');
}

/** One row per variant: its flags, size, and test mIoU and pixel accuracy as mean ± std (per seed). */
export function ablationTable<V extends string>(a: Ablation<V>, r: AblationResults<V>): string {
  return markdownTable(
    ['network', 'flags', 'parameters at test time', 'mult-adds per scene', 'test mIoU (%), mean ± std (per seed)', 'pixel accuracy (%), mean ± std (per seed)'],
    a.variants.map((v) => {
      const flags = optFlags(a.options[v]);
      const c = r.cost[v];
      return [
        a.words[v],
        flags ? `\`${flags}\`` : '(defaults)',
        `${int(c.parameters)}${c.trainingParameters ? ` (+ ${int(c.trainingParameters)} in training)` : ''}`,
        `${mAdds(c.multAdds)}M`,
        seedsCell(r.results[v].map((x) => x.mIoU)),
        seedsCell(r.results[v].map((x) => x.pixelAccuracy)),
      ];
    }),
  );
}

/** Variant `v` against `than`, paired by seed, in points of mIoU. */
export const mIoUDifference = <V extends string>(r: AblationResults<V>, v: V, than: V): string =>
  pairedDifference(r.results[v].map((x) => x.mIoU), r.results[than].map((x) => x.mIoU), { unit: 'of mIoU' });

/** Every run's test mIoU, one line per seed across the variants (named on the x axis). */
export async function plotAblation<V extends string>(file: string, title: string, categories: Record<V, string>, a: Ablation<V>, r: AblationResults<V>): Promise<void> {
  const first = r.results[a.variants[0]];
  await savePlotsPng(file, [
    {
      title,
      xLabel: 'network (each adds to the one on its left)',
      yLabel: 'test mIoU (%)',
      categories: a.variants.map((v) => categories[v]),
      width: 720,
      series: first.map((run, i) => ({ name: `seed ${run.seed}`, points: a.variants.map((v, k): [number, number] => [k + 1, 100 * r.results[v][i].mIoU]) })),
    },
  ]);
}
