// Filter pruning of a trained network, as ICNet compresses its own: keep each layer's filters of largest L1
// norm, then fine-tune the narrower network. Classifiers (from `tsvision train`) and segmentation networks
// (from `tsvision segment`) alike. Reports what a user ships on: parameters, mult-adds, CPU latency
// (measured side by side in one run) and test accuracy or mIoU before pruning, right after it, and after
// fine-tuning.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor, randn, saveSafetensors } from '../torch';
import { TrainConfig, Logger, evaluate } from '../train/trainer';
import { imageSize, makeLoaders, withoutTransferSet } from '../train/datasets';
import { CheckpointContents, fitWeights, loadWeights, readCheckpoint } from '../train/checkpoint';
import { DEFAULT_SEGMENT_CONFIG, SegmentConfig, evaluateSegmentation, segmentationData } from '../train/segment';
import { summary } from '../metrics/summary';
import { measureLatency } from '../metrics/speed';
import { SegmentationModelName, SegmentationModelOptions, createClassifier, createSegmentationModel } from '../models/registry';
import { Classifier } from '../models/common';
import { SegmentationNet } from '../models/segmentation';
import { FilterPrunable, FilterPruneLayer, isFilterPrunable, pruneFilters } from './prune';
import { isLead, leadLog, leadWrites, meanAcrossRanks, meet, pct, plotPhases, runPhase, runSegmentPhase, writeJsonAtomic } from './phases';
import { writeFileAtomic } from '../util/fs';
import * as dist from '../distributed';

/** ICNet keeps half of each layer's kernels; fine-tuning recovers the accuracy. */
export const FILTER_PRUNE_DEFAULTS = { keepRate: 0.5, finetuneEpochs: 2, lrScale: 0.1, latencyBatch: 1 } as const;

export interface FilterPruneConfig {
  /** A checkpoint from `tsvision train` or `tsvision segment` (it names its model, options and data). */
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
  /**
   * Fine-tune on the original network's logits (mimic learning; at every pixel for segmentation networks)
   * instead of the labels: the unpruned network teaches its pruned copy what it answered.
   */
  distil?: boolean;
}

export interface Measured {
  parameters: number;
  multAdds: number;
  ms: number;
  imagesPerSecond: number;
  /** Test top-1 (classifiers) or test mIoU (segmentation networks), as `metric` says. */
  score: number;
}

export interface FilterPruneResult {
  metric: 'test top-1' | 'test mIoU';
  original: Measured;
  pruned: Measured;
  finetuned: Measured;
  layers: FilterPruneLayer[];
  finetune: { dir: string; epochs: number; lr: number; weights: string; curves: string; distil: boolean };
  summary: string;
  report: string;
}

const unsupported = (model: string): Error => new Error(`filter pruning knows the layer structure of cnn, mobilenet_v1, enet, icnet, pspnet and deeplabv3; ${model} is not supported yet`);

type Net = FilterPrunable & { forward(x: Tensor): Tensor };

/** What differs between pruning a classifier and a segmentation network. */
interface PruneTask {
  model: string;
  metric: FilterPruneResult['metric'];
  modelOptions: Record<string, unknown>;
  lr: number;
  /** Latency input [N, C, H, W] at batch 1. */
  input: number[];
  build(extra?: Record<string, unknown>): Net;
  score(m: Net): Promise<number>;
  /** An ordinary training run of the pruned network (built with `options`, initialized from `init`). */
  finetune(options: Record<string, unknown>, init: string, epochs: number, lr: number, dir: string): Promise<{ model: Net; score: number; weights: string; curves: string }>;
}

export async function runFilterPrune(c: FilterPruneConfig, log: Logger = (l) => console.log(l)): Promise<FilterPruneResult> {
  // Under \`launch\` every rank prunes alike and fine-tunes its share of each batch; rank 0 alone logs, writes
  // and times (the ranks meet before it reads what rank 0 wrote, and while it times).
  log = leadLog(log);
  const keepRate = c.keepRate ?? FILTER_PRUNE_DEFAULTS.keepRate;
  // A folder holding another pruning is left as it is (its pruned weights and fine-tuning are its record).
  const reportFile = path.join(c.outDir, 'report.json');
  if (fs.existsSync(reportFile)) {
    const prev = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as { checkpoint?: string; keepRate?: number };
    if (prev.checkpoint !== c.checkpoint || prev.keepRate !== keepRate) throw new Error(`${c.outDir} holds the pruning of ${prev.checkpoint} at keep rate ${prev.keepRate}; choose another --out`);
  }
  const checkpoint = readCheckpoint(c.checkpoint);
  const task = (checkpoint.state.config as Partial<SegmentConfig>)?.scenes ? await segmentationTask(c, checkpoint, log) : classificationTask(c, checkpoint, log);
  // The file is read once; the original and the copy to prune both load its weights.
  const trained = (): Net => {
    const m = task.build();
    fitWeights(m, checkpoint.model, `checkpoint ${c.checkpoint} does not fit the model`);
    return m;
  };
  const original = trained();
  if (original.filterChains().length === 0) throw unsupported(task.model);

  log(`${task.model} from ${c.checkpoint}: evaluating`);
  const originalScore = await task.score(original);
  const pruned = trained();
  const layers = pruneFilters(pruned, keepRate);
  const options = pruned.channelOptions();
  log(`kept ${pct(keepRate)} of each layer's filters by L1 norm: ${layers.map((l) => `${l.before}→${l.after}`).join(', ')}`);
  const prunedScore = await task.score(pruned);

  // The pruned weights load into a model built from the narrower options: fine-tuning is an ordinary run.
  const prunedFile = path.join(c.outDir, 'pruned.safetensors');
  await leadWrites(() => {
    fs.mkdirSync(c.outDir, { recursive: true });
    saveSafetensors(prunedFile, pruned.stateDict(), { format: 'pt' });
  });
  const lr = Number((task.lr * (c.lrScale ?? FILTER_PRUNE_DEFAULTS.lrScale)).toPrecision(12));
  const epochs = c.finetuneEpochs ?? FILTER_PRUNE_DEFAULTS.finetuneEpochs;
  const dir = path.join(c.outDir, 'finetune');
  const ft = await task.finetune(options, prunedFile, epochs, lr, dir);

  const input = [c.latencyBatch ?? FILTER_PRUNE_DEFAULTS.latencyBatch, ...task.input.slice(1)];
  log(`measuring CPU latency at batch ${input[0]} (original and pruned in turns)`);
  meet();
  const [tOrig, tPruned] = isLead() ? measureLatency([original, ft.model], randn(input).keep()) : [0, 1].map(() => ({ ms: NaN, imagesPerSecond: NaN }));
  const facts = (m: Net, t: { ms: number; imagesPerSecond: number }, score: number): Measured => {
    const s = summary(m, task.input);
    return { parameters: s.totalParams, multAdds: s.totalMultAdds, ms: t.ms, imagesPerSecond: t.imagesPerSecond, score };
  };
  const result = {
    original: facts(original, tOrig, originalScore),
    pruned: facts(pruned, tPruned, prunedScore),
    finetuned: facts(ft.model, tPruned, ft.score),
  };
  const finetune = { dir, epochs, lr, weights: ft.weights, curves: ft.curves, distil: Boolean(c.distil) };

  const [report, md] = [reportFile, path.join(c.outDir, 'SUMMARY.md')];
  await leadWrites(() => {
    writeJsonAtomic(report, { method: 'filter pruning by L1 norm (ICNet §5; Li et al. 2017)', model: task.model, metric: task.metric, checkpoint: c.checkpoint, keepRate, latencyInput: input, layers, modelOptions: { ...task.modelOptions, ...options }, ...result, finetune });
    const row = (label: string, m: Measured): string =>
      `| ${label} | ${m.parameters.toLocaleString('en-US')} | ${(m.multAdds / 1e6).toFixed(2)}M | ${m.ms.toFixed(2)} | ${m.imagesPerSecond.toFixed(0)} | ${pct(m.score)} |`;
    writeFileAtomic(
      md,
      [
        `# Filter pruning: ${task.model}, ${pct(keepRate)} of each layer's filters kept`,
        '',
        `From ${c.checkpoint}; fine-tuned ${epochs} epochs at lr ${lr}${c.distil ? " on the original network's logits (mimic learning, L2)" : ''} (${dir}). Latency: CPU, batch ${input[0]}, ${input.slice(1).join('×')}, median of interleaved runs.`,
        '',
        `| model | parameters | mult-adds | ms / batch | images/s | ${task.metric} |`,
        '|---|---:|---:|---:|---:|---:|',
        row('original', result.original),
        row('pruned', result.pruned),
        row('pruned + fine-tuned', result.finetuned),
        '',
        `Filters per layer: ${layers.map((l) => `${l.name} ${l.before}→${l.after}`).join(', ')}.`,
        '',
      ].join('\n'),
    );
  });
  log(`${task.metric}: original ${pct(originalScore)} · pruned ${pct(prunedScore)} · fine-tuned ${pct(ft.score)}; ${(result.original.multAdds / result.finetuned.multAdds).toFixed(2)}× fewer mult-adds, ${(tOrig.ms / tPruned.ms).toFixed(2)}× faster here`);
  return { metric: task.metric, ...result, layers, finetune, summary: md, report };
}

function classificationTask(c: FilterPruneConfig, checkpoint: CheckpointContents, log: Logger): PruneTask {
  const cfg = checkpoint.state.config as TrainConfig;
  const loaders = makeLoaders(withoutTransferSet(cfg.data), { batchSize: 500, seed: 0, augment: false });
  const build = (extra: Record<string, unknown> = {}): Net => {
    const m = createClassifier(cfg.model, { ...cfg.modelOptions, ...extra }, loaders);
    if (!isFilterPrunable(m)) throw unsupported(cfg.model);
    return m as Net;
  };
  const size = imageSize(cfg.data);
  return {
    model: cfg.model,
    metric: 'test top-1',
    modelOptions: cfg.modelOptions,
    lr: cfg.lr,
    input: [1, loaders.inChannels, size, size],
    build,
    // Under launch each rank scores its share of the test set.
    score: async (m) => {
      const e = await evaluate(m as unknown as Classifier, dist.evalShare(loaders.test), c.recipe?.limitBatches ?? 0);
      return meanAcrossRanks(e.top1, e.count);
    },
    async finetune(options, init, epochs, lr) {
      // Distilled: the original's logits are the targets, so the labels' mixing and weighting have no place,
      // and a transfer set the original learned from (a student by mimicry's) serves again. On labels: the
      // labelled images alone.
      const targets: Partial<TrainConfig> = c.distil ? { method: { kind: 'mimic', teacher: c.checkpoint }, mixup: 0, cutmix: 0, classWeights: undefined } : { method: null, data: withoutTransferSet(cfg.data) };
      const phase = await runPhase(c.outDir, 'finetune', { ...cfg, ...c.recipe, modelOptions: { ...cfg.modelOptions, ...options }, epochs, lr, warmupEpochs: 0, init, ...targets }, log);
      const model = build(options);
      loadWeights(phase.weights, model);
      const curves = path.join(c.outDir, 'curves.png');
      if (isLead()) await plotPhases(curves, `${cfg.model}: fine-tuning after pruning filters`, [{ name: 'pruned, fine-tuning', start: 0, phase }]);
      return { model, score: phase.testTop1, weights: phase.weights, curves };
    },
  };
}

async function segmentationTask(c: FilterPruneConfig, checkpoint: CheckpointContents, log: Logger): Promise<PruneTask> {
  const cfg = { ...DEFAULT_SEGMENT_CONFIG, ...(checkpoint.state.config as SegmentConfig) };
  const { test, classes, inChannels, inputSize } = await segmentationData(cfg, { train: false });
  const build = (extra: Record<string, unknown> = {}): Net =>
    createSegmentationModel(cfg.model, { ...cfg.modelOptions, ...extra, numClasses: classes.length, inChannels } as SegmentationModelOptions[SegmentationModelName]);
  const limit = c.recipe?.limitBatches ?? 0;
  return {
    model: cfg.model,
    metric: 'test mIoU',
    modelOptions: cfg.modelOptions,
    lr: cfg.lr,
    input: [1, inChannels, ...inputSize],
    build,
    score: async (m) => (await evaluateSegmentation(m as unknown as SegmentationNet, dist.evalShare(test), classes.length, null, limit, { crossReplicaSum: dist.rankSum() })).mIoU,
    async finetune(options, init, epochs, lr, dir) {
      const want: SegmentConfig = { ...cfg, modelOptions: { ...cfg.modelOptions, ...options }, init, epochs, lr, outDir: dir, teacher: c.distil ? { file: c.checkpoint } : undefined, threads: c.recipe?.threads ?? cfg.threads, limitBatches: limit, ...(c.recipe?.accumulate ? { accumulate: c.recipe.accumulate } : {}) };
      // A rerun (say, to measure latency on a quiet machine) continues or reuses the same fine-tuning.
      const r = await runSegmentPhase(want, log, 'fine-tuning');
      return { model: r.model, score: r.final.testMIoU, weights: r.weights, curves: r.curves };
    },
  };
}
