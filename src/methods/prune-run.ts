// Filter pruning of a trained classifier, as ICNet compresses its network: keep each layer's filters of
// largest L1 norm, then fine-tune the narrower network. Reports what a user ships on: parameters,
// mult-adds, CPU latency (measured side by side in one run) and test accuracy before pruning, right after
// it, and after fine-tuning.
import * as path from 'node:path';
import { randn, saveSafetensors } from '../torch';
import { TrainConfig, Logger, evaluate } from '../train/trainer';
import { imageSize, makeLoaders } from '../train/datasets';
import { fitWeights, loadWeights, readCheckpoint } from '../train/checkpoint';
import { summary } from '../metrics/summary';
import { measureLatency } from '../metrics/speed';
import { ModelName, createModel } from '../models/registry';
import { Classifier } from '../models/common';
import { FilterPruneLayer, isFilterPrunable, pruneFilters } from './prune';
import { PhaseResult, pct, plotPhases, runPhase, writeJsonAtomic } from './phases';
import { writeFileAtomic } from '../util/fs';

/** ICNet keeps half of each layer's kernels; fine-tuning recovers the accuracy. */
export const FILTER_PRUNE_DEFAULTS = { keepRate: 0.5, finetuneEpochs: 2, lrScale: 0.1, latencyBatch: 1 } as const;

export interface FilterPruneConfig {
  /** A checkpoint from `tsvision train` (it names its model, options and data). */
  checkpoint: string;
  outDir: string;
  keepRate?: number;
  finetuneEpochs?: number;
  /** Fine-tuning learning rate as a fraction of the original run's. */
  lrScale?: number;
  /** Recipe overrides for fine-tuning (batch size, threads, limitBatches, ...). */
  recipe?: Partial<TrainConfig>;
  /** Batch size of the latency measurement. */
  latencyBatch?: number;
}

export interface Measured {
  parameters: number;
  multAdds: number;
  ms: number;
  imagesPerSecond: number;
  testTop1: number;
}

export interface FilterPruneResult {
  original: Measured;
  pruned: Measured;
  finetuned: Measured;
  layers: FilterPruneLayer[];
  finetune: PhaseResult;
  summary: string;
  report: string;
}

export async function runFilterPrune(c: FilterPruneConfig, log: Logger = (l) => console.log(l)): Promise<FilterPruneResult> {
  const keepRate = c.keepRate ?? FILTER_PRUNE_DEFAULTS.keepRate;
  const checkpoint = readCheckpoint(c.checkpoint);
  const { state } = checkpoint;
  const cfg = state.config as TrainConfig;
  const loaders = makeLoaders(cfg.data, { batchSize: 500, seed: 0, augment: false });
  const build = (extra: Record<string, unknown> = {}): Classifier =>
    createModel(cfg.model as ModelName, { ...cfg.modelOptions, ...extra, numClasses: loaders.numClasses, inChannels: loaders.inChannels, smallInput: true });
  // The file is read once; the original and the copy to prune both load its weights.
  const trained = (): Classifier => {
    const m = build();
    fitWeights(m, checkpoint.model, `checkpoint ${c.checkpoint} does not fit the model`);
    return m;
  };
  const original = trained();
  if (!isFilterPrunable(original)) throw new Error(`filter pruning knows the layer structure of cnn and mobilenet_v1; ${cfg.model} is not supported yet`);
  const limit = c.recipe?.limitBatches ?? 0;
  const top1 = async (m: Classifier): Promise<number> => (await evaluate(m, loaders.test, limit)).top1;

  log(`${cfg.model} from ${c.checkpoint}: evaluating`);
  const originalTop1 = await top1(original);
  const pruned = trained();
  if (!isFilterPrunable(pruned)) throw new Error('unreachable');
  const layers = pruneFilters(pruned, keepRate);
  const options = pruned.channelOptions();
  log(`kept ${pct(keepRate)} of each layer's filters by L1 norm: ${layers.map((l) => `${l.before}→${l.after}`).join(', ')}`);
  const prunedTop1 = await top1(pruned);

  // The pruned weights load into a model built from the narrower options: fine-tuning is an ordinary run.
  const prunedFile = path.join(c.outDir, 'pruned.safetensors');
  saveSafetensors(prunedFile, pruned.stateDict(), { format: 'pt' });
  const lr = Number((cfg.lr * (c.lrScale ?? FILTER_PRUNE_DEFAULTS.lrScale)).toPrecision(12));
  const finetune = await runPhase(
    c.outDir,
    'finetune',
    { ...cfg, ...c.recipe, modelOptions: { ...cfg.modelOptions, ...options }, epochs: c.finetuneEpochs ?? FILTER_PRUNE_DEFAULTS.finetuneEpochs, lr, warmupEpochs: 0, init: prunedFile, method: null },
    log,
  );
  const finetuned = build(options);
  loadWeights(finetune.weights, finetuned);

  const size = imageSize(cfg.data);
  const input = [c.latencyBatch ?? FILTER_PRUNE_DEFAULTS.latencyBatch, loaders.inChannels, size, size];
  log(`measuring CPU latency at batch ${input[0]} (original and pruned in turns)`);
  const [tOrig, tPruned] = measureLatency([original, finetuned], randn(input).keep());
  const facts = (m: Classifier, t: { ms: number; imagesPerSecond: number }, acc: number): Measured => {
    const s = summary(m, [1, ...input.slice(1)]);
    return { parameters: s.totalParams, multAdds: s.totalMultAdds, ms: t.ms, imagesPerSecond: t.imagesPerSecond, testTop1: acc };
  };
  const result = {
    original: facts(original, tOrig, originalTop1),
    pruned: facts(pruned, tPruned, prunedTop1),
    finetuned: facts(finetuned, tPruned, finetune.testTop1),
  };

  const curves = path.join(c.outDir, 'curves.png');
  await plotPhases(curves, `${cfg.model}: fine-tuning after keeping ${pct(keepRate)} of the filters`, [{ name: 'pruned, fine-tuning', start: 0, phase: finetune }]);
  const report = path.join(c.outDir, 'report.json');
  writeJsonAtomic(report, { method: 'filter pruning by L1 norm (ICNet §5; Li et al. 2017)', checkpoint: c.checkpoint, keepRate, latencyInput: input, layers, modelOptions: { ...cfg.modelOptions, ...options }, ...result, finetune });
  const md = path.join(c.outDir, 'SUMMARY.md');
  const row = (label: string, m: Measured): string =>
    `| ${label} | ${m.parameters.toLocaleString('en-US')} | ${(m.multAdds / 1e6).toFixed(2)}M | ${m.ms.toFixed(2)} | ${m.imagesPerSecond.toFixed(0)} | ${pct(m.testTop1)} |`;
  writeFileAtomic(
    md,
    [
      `# Filter pruning: ${cfg.model}, ${pct(keepRate)} of each layer's filters kept`,
      '',
      `From ${c.checkpoint}; fine-tuned ${finetune.epochs} epochs at lr ${lr} (${finetune.dir}). Latency: CPU, batch ${input[0]}, ${input.slice(1).join('×')}, median of interleaved runs.`,
      '',
      '| model | parameters | mult-adds | ms / batch | images/s | test top-1 |',
      '|---|---:|---:|---:|---:|---:|',
      row('original', result.original),
      row('pruned', result.pruned),
      row('pruned + fine-tuned', result.finetuned),
      '',
      `Filters per layer: ${layers.map((l) => `${l.name} ${l.before}→${l.after}`).join(', ')}.`,
      '',
    ].join('\n'),
  );
  log(`test top-1: original ${pct(originalTop1)} · pruned ${pct(prunedTop1)} · fine-tuned ${pct(finetune.testTop1)}; ${(result.original.multAdds / result.finetuned.multAdds).toFixed(2)}× fewer mult-adds, ${(tOrig.ms / tPruned.ms).toFixed(2)}× faster here`);
  return { ...result, layers, finetune, summary: md, report };
}
