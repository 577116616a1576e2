// The training loop: small and readable, not a framework. Epochs of the documented tidy() idiom, evaluation
// (loss, top-1, top-5), a progress line (loss, samples/s, ETA), NaN/Inf detection that keeps the last good
// checkpoint, exact resume from any batch, Ctrl-C that saves and exits cleanly, a JSON report and PNG curves.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CrossEntropyOptions, Tensor, arange, autocast, bfloat16Support, crossEntropy, forkRng, getNumThreads, keep, manualSeed, setNumThreads, softmax, tensor, tidy } from '../torch';
import { Module } from '../nn';
import { Classifier, classProbabilities } from '../models/common';
import { ModelName, createClassifier } from '../models/registry';
import { Batch, ColorJitterOptions, DataLoader, Rng, describeColorJitter, disposeBatch } from '../data';
import { applyMix, drawMix, mixedCrossEntropy } from '../data/mix';
import { ClassificationMeter, recallPerClass } from '../metrics/classification';
import { ConfusionMatrix } from '../metrics/confusion';
import { Calibration, CalibrationMeter } from '../metrics/calibration';
import { savePlotsPng } from '../report/plot';
import { writeFileAtomic } from '../util/fs';
import { Logger, Progress, fmtTime, watchInterrupt } from './progress';
import { StepProfiler, stepProfileReport } from './step-profile';
import { OptimizerName, ScheduleName, Trainable, makeOptimizer } from './optimizers';
import { DataSpec, balancedClassWeights, makeLoaders } from './datasets';
import { applyCheckpoint, readCheckpoint, saveCheckpoint, saveWeights } from './checkpoint';
import { backboneLrGroups, frozenTrainableParameters, loadForFineTuning, trainMode } from './finetune';
import { ExponentialMovingAverage } from '../optim/ema';
import { MethodSpec, TrainingMethod, createMethod } from '../methods/method';
import * as dist from '../distributed';
import { firstBest, patienceSpent } from './selection';
import { evalPass } from './eval-pass';
import { PartLoss, backwardInParts, checkAccumulate, describeAccumulate, narrowBatch } from './accumulate';

export interface TrainConfig {
  model: ModelName;
  modelOptions: Record<string, unknown>;
  data: DataSpec;
  epochs: number;
  batchSize: number;
  lr: number;
  optimizer: OptimizerName;
  momentum: number;
  weightDecay: number;
  schedule: ScheduleName;
  warmupEpochs: number;
  /** The `exp` schedule's staircase: the rate times decayRate every decayEpochs epochs (absent: EXP_DECAY, 0.94 every 2). */
  decayRate?: number;
  decayEpochs?: number;
  labelSmoothing: number;
  /**
   * 'balanced': each class's cross-entropy weighted by N / (K · n_c) over the training images (sklearn's
   * "balanced", PyTorch's `weight`), so that rare classes count as much as common ones. Absent or null: none.
   */
  classWeights?: 'balanced' | null;
  /** Clip the gradient norm to this value (0: no clipping). */
  clipGradNorm: number;
  /**
   * Gradient accumulation: each batch of `batchSize` is backpropagated in this many micro-batches, one at a
   * time, then one optimizer step (accumulate.ts): the recipe's batch with a micro-batch's activation memory.
   * BatchNorm normalizes over micro-batches. Absent or 1: the whole batch at once.
   */
  accumulate?: number;
  augment: boolean;
  /** torchvision's ColorJitter on training images (see data/color.ts); null: none. Absent in older checkpoints. */
  colorJitter: ColorJitterOptions | null;
  /** torchvision's TrivialAugmentWide on training images (data/autoaugment.ts). Absent or false: off. */
  trivialAugment?: boolean;
  /** torchvision's RandomErasing with this probability per training image (data/autoaugment.ts). Absent or 0: off. */
  randomErase?: number;
  /**
   * 'bfloat16': mixed precision, forward and loss under torch.autocast (convolutions and linear layers in
   * bfloat16, weights and optimizer in float32). Absent in older configs: float32.
   */
  precision?: 'float32' | 'bfloat16';
  seed: number;
  /** Where the checkpoint, weights, report and curves go. */
  outDir: string;
  threads: number;
  /** Stop after this many optimizer steps as if interrupted (tests of resume). 0: never. */
  stopAfterSteps: number;
  /** Use only this many batches per epoch (quick runs). 0: all. */
  limitBatches: number;
  /**
   * Start from these weights (a checkpoint or a plain state dict) instead of a fresh initialization. A head
   * trained on other classes starts afresh (fine-tuning; see finetune.ts).
   */
  init: string;
  /**
   * Fine-tuning: for this many first epochs only the head and the BatchNorm layers train; the rest of the
   * network (`init`'s) is frozen (finetune.ts). Absent or 0: every layer trains throughout.
   */
  freezeEpochs?: number;
  /**
   * Fine-tuning: every layer but the head learns at this fraction of `lr` (e.g. 0.1; the head at `lr`), a
   * discriminative rate as fastai's. Absent or 1: one rate for all.
   */
  backboneLr?: number;
  /** A training method (DSD's sparse step, mimic learning); null: plain supervised training. */
  method: MethodSpec | null;
  /**
   * Early stopping: end the run once this many epochs have passed without a new best validation top-1
   * (needs data.valSplit). Absent or 0: run every epoch.
   */
  patience?: number;
  /** mixup's and CutMix's α (data/mix.ts): training images mixed in pairs, labels with them. Absent or 0: off. */
  mixup?: number;
  cutmix?: number;
  /**
   * Keep an exponential moving average of the weights with this decay (e.g. 0.999; optim/ema.ts), scored
   * after every epoch beside the weights themselves and written to ema.safetensors. Absent or 0: off.
   */
  ema?: number;
}

export const DEFAULT_CONFIG: TrainConfig = {
  model: 'cnn',
  modelOptions: {},
  data: { kind: 'fashion-mnist' },
  epochs: 4,
  batchSize: 128,
  lr: 0.05,
  optimizer: 'sgd',
  momentum: 0.9,
  weightDecay: 5e-4,
  schedule: 'cosine',
  warmupEpochs: 0,
  labelSmoothing: 0,
  clipGradNorm: 0,
  augment: false,
  colorJitter: null,
  seed: 0,
  outDir: 'runs/fashion-mnist-cnn',
  threads: 0,
  stopAfterSteps: 0,
  limitBatches: 0,
  init: '',
  method: null,
};

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  trainTop1: number;
  testLoss: number;
  testTop1: number;
  testTop5: number;
  /** Each class's share of its test images classified right (null: none in the test set), and their mean. */
  testRecall: (number | null)[];
  testBalancedTop1: number;
  seconds: number;
  samplesPerSecond: number;
  /** On the held-out validation images (data.valSplit); absent without them. */
  valLoss?: number;
  valTop1?: number;
  valTop5?: number;
  valBalancedTop1?: number;
  /** The moving average of the weights (`ema`) on the test images, and on the validation images; absent without. */
  emaTestLoss?: number;
  emaTestTop1?: number;
  emaTestTop5?: number;
  emaValTop1?: number;
}

/**
 * The epoch of the best validation top-1 so far (the first of equals), and where its weights went. With a
 * moving average (`ema`) its weights compete too, after the trained ones of the same epoch.
 */
export interface BestEpoch {
  epoch: number;
  valTop1: number;
  testTop1: number;
  weights: string;
  /** Whether the best were the moving average's weights (best.safetensors then holds those). */
  ema: boolean;
}

export interface TrainResult {
  status: 'finished' | 'interrupted';
  history: EpochRecord[];
  final: EpochRecord | null;
  /** With a validation split: the best epoch, whose weights are in `best.safetensors`; else null. */
  best: BestEpoch | null;
  /** The epoch after which early stopping (`patience`) ended the run; null if it did not. */
  stoppedEarly: number | null;
  /** With `ema`: the averaged weights' file (written when the run finishes); else null. */
  ema: string | null;
  checkpoint: string;
  weights: string;
  report: string;
  curves: string;
  model: Classifier;
}

export class NonFiniteLossError extends Error {}

/**
 * The training line's words for the precision. Without AVX-512 libtorch has no fast bfloat16 kernels, and
 * tsvision computes autocast's convolutions and linear layers in float32 on bfloat16-rounded operands
 * (src/torch/functional.ts): bfloat16's answers at float32's speed, no faster. Say so.
 */
export function describePrecision(precision: TrainConfig['precision']): string {
  if (precision !== 'bfloat16') return '';
  return bfloat16Support() === 'slow' ? ', bfloat16 mixed precision (this CPU has no AVX-512: convolutions and linear layers sum in float32 here, no faster than float32; see tsvision info)' : ', bfloat16 mixed precision';
}

export type { Logger };

/** A test image the network got wrong: its place in the test set, its class, the answer and its probability. */
export interface Mistake {
  index: number;
  label: number;
  predicted: number;
  confidence: number;
}

/** What `evaluate` measures on a set of images. */
export interface Evaluation {
  loss: number;
  top1: number;
  top5: number;
  count: number;
  /** Counts: [true class][predicted class]. */
  confusion: number[][];
  /** Each class's recall (null: no images of it) and their mean, the balanced accuracy. */
  recall: (number | null)[];
  balancedTop1: number;
  /** With `calibration`: top-1 confidence against accuracy in 15 bins, ECE and MCE (Guo et al. 2017). */
  calibration?: Calibration;
  /** With `mistakes`: every wrongly classified image, the most confident first. */
  mistakes?: Mistake[];
}

/**
 * Test loss, top-1 and top-5 accuracy, the confusion matrix, each class's recall and their mean (balanced
 * accuracy), and with `calibration` how well its confidence matches its accuracy.
 * `flip`: test-time augmentation, the class probabilities averaged over each image and its mirror image
 * (the loss is then the negative log of the averaged probability of the true class).
 * `mistakes`: also list the images classified wrongly (their index in the loader's order: an unshuffled
 * loader's is the dataset's). `progress`: called after each batch with the images done and the set's size.
 */
export async function evaluate(model: Module & { forward(x: Tensor): Tensor }, loader: DataLoader, limitBatches = 0, o: { flip?: boolean; mistakes?: boolean; calibration?: boolean; progress?: (done: number, total: number) => void } = {}): Promise<Evaluation> {
  const meter = new ClassificationMeter([1, 5]);
  // Asked for by eval and calibrate; a training run's epochs do without the extra work.
  const calibration = o.calibration ? new CalibrationMeter() : null;
  const mistakes: Mistake[] = [];
  // Built at the first batch, which shows the number of classes.
  const held: { confusion: ConfusionMatrix | null } = { confusion: null };
  let seen = 0;
  try {
    await evalPass([model], loader, { limitBatches, progress: o.progress }, (b) => {
      // Mirrored: log of the mean probability, which log_softmax inside crossEntropy leaves as it is.
      const logits = o.flip ? classProbabilities((x) => model.forward(x), b.x, true).log() : model.forward(b.x);
      meter.update(crossEntropy(logits, b.y).item(), logits, b.y);
      (held.confusion ??= new ConfusionMatrix(logits.size(1))).update(logits, b.y);
      const probs = calibration || o.mistakes ? softmax(logits, 1) : null;
      if (calibration) calibration.update(probs!, b.y);
      if (o.mistakes) mistakes.push(...wrongOnes(probs!, b.y, seen));
      seen += b.y.size(0);
    });
    const confusion = held.confusion?.confusion() ?? [];
    const { recall, balanced } = recallPerClass(confusion);
    return { loss: meter.loss, top1: meter.accuracy(0), top5: meter.accuracy(1), count: meter.count, confusion, recall, balancedTop1: balanced, ...(calibration ? { calibration: calibration.result() } : {}), ...(o.mistakes ? { mistakes: mistakes.sort((a, b) => b.confidence - a.confidence || a.index - b.index) } : {}) };
  } finally {
    held.confusion?.dispose();
  }
}

/** The batch's wrongly classified images (`offset`: the batch's first index), found in libtorch. */
function wrongOnes(probs: Tensor, labels: Tensor, offset: number): Mistake[] {
  const { values, indices } = probs.maxDim(1);
  const mask = indices.ne(labels);
  const wrong = arange(0, labels.size(0), 1, { dtype: 'int64' }).maskedSelect(mask);
  if (wrong.numel() === 0) return [];
  const [at, conf, pred, truth] = [wrong, values.maskedSelect(mask), indices.maskedSelect(mask), labels.maskedSelect(mask)].map((t) => Array.from(t.to('float64').toArray() as Float64Array));
  return at.map((i, j) => ({ index: offset + i, label: truth[j], predicted: pred[j], confidence: conf[j] }));
}

/**
 * Trains a registered model. With `resume`, continues from a checkpoint (model, optimizer, schedule, RNG,
 * position within the epoch) so that the run ends as if it had never stopped.
 */
export async function train(cfgIn: Partial<TrainConfig> & { resume?: string; profileSteps?: number }, log: Logger = (l) => console.log(l)): Promise<TrainResult> {
  // profileSteps watches the run (step-profile.ts); it is no part of the recipe the checkpoint records.
  const { profileSteps = 0, ...recipe } = cfgIn;
  let cfg: TrainConfig = { ...DEFAULT_CONFIG, ...recipe };
  const ckptFile = path.join(cfg.outDir, 'checkpoint.safetensors');
  let resumed: ReturnType<typeof readCheckpoint> | null = null;
  if (cfgIn.resume) {
    resumed = readCheckpoint(cfgIn.resume);
    // (The test of segment.ts's isSegmentConfig, which this file cannot import: segment.ts imports it.)
    const kind = resumed.state.config as Record<string, unknown> | undefined;
    if (kind && 'scenes' in kind) throw new Error(`${cfgIn.resume} is a checkpoint of \`tsvision segment\`: continue it with tsvision segment --resume ${cfgIn.resume}`);
    // The run continues with the configuration it started with; only the output place may change.
    cfg = { ...DEFAULT_CONFIG, ...(resumed.state.config as TrainConfig), outDir: cfg.outDir, stopAfterSteps: cfgIn.stopAfterSteps ?? 0 };
  }
  if (cfg.threads > 0) setNumThreads(cfg.threads);
  manualSeed(cfg.seed);
  // Data parallel when a process group is up (e.g. under `tsvision launch`): --batch-size stays the global
  // batch, split evenly over the ranks; each rank trains on its shard of the same permutation and only
  // rank 0 logs and writes files.
  const world = dist.isInitialized() ? dist.getWorldSize() : 1;
  const rank = world > 1 ? dist.getRank() : 0;
  if (cfg.batchSize % world) throw new Error(`batch size ${cfg.batchSize} is not divisible by the ${world} processes; each takes an equal share`);
  checkAccumulate(cfg.accumulate, cfg.batchSize / world);
  if (rank > 0) log = () => {};
  if (cfg.data.unlabelled && cfg.method?.kind !== 'mimic') throw new Error("images without labels (data.unlabelled) teach only through a teacher's logits: train them by mimic learning (method mimic, `tsvision mimic`)");
  const loaders = makeLoaders(cfg.data, { ...cfg, batchSize: cfg.batchSize / world });
  if (cfg.data.labelled || cfg.data.unlabelled) {
    const labelled = loaders.trainCounts.reduce((a, c) => a + c, 0);
    const without = loaders.train.dataset.length - labelled;
    log(`training images: ${labelled.toLocaleString('en-US')} labelled${without ? `, ${without.toLocaleString('en-US')} without labels (taught by the teacher alone)` : ''}`);
  }
  const { numClasses, inChannels } = loaders;
  const trainLoader = world > 1 ? dist.shardLoader(loaders.train, { rank, worldSize: world }) : loaders.train;
  const testLoader = dist.evalShare(loaders.test);
  const valLoader = loaders.val && dist.evalShare(loaders.val);
  if (cfg.patience && !valLoader) throw new Error('early stopping (patience) watches the validation accuracy: give a validation split (--val-split)');
  const freezeEpochs = cfg.freezeEpochs ?? 0;
  if (freezeEpochs && !cfg.init) throw new Error('freezing the backbone keeps the weights training starts from: give them (--init)');
  const bestFile = path.join(cfg.outDir, 'best.safetensors');
  let stoppedEarly: number | null = null;
  const model = createClassifier(cfg.model, cfg.modelOptions, loaders);
  const stepsPerEpoch = cfg.limitBatches ? Math.min(cfg.limitBatches, trainLoader.length) : trainLoader.length;
  const backboneLr = cfg.backboneLr ?? 1;
  const opt: Trainable = makeOptimizer(backboneLr === 1 ? model.parameters() : backboneLrGroups(model, cfg.lr, backboneLr), cfg, stepsPerEpoch * cfg.epochs, stepsPerEpoch);

  let epoch = 0;
  let startBatch = 0;
  let step = 0;
  let history: EpochRecord[] = [];
  if (cfgIn.resume && resumed) {
    applyCheckpoint(cfgIn.resume, resumed, model);
    if (resumed.optimizer) opt.loadStateDict(resumed.optimizer);
    ({ epoch, batch: startBatch, step } = resumed.state);
    history = (resumed.state.history as EpochRecord[]) ?? [];
    log(`resumed from ${cfgIn.resume}: epoch ${epoch + 1}, batch ${startBatch}, step ${step}`);
  } else if (cfg.init) {
    const replaced = loadForFineTuning(cfg.init, model, loaders.classes);
    const theirs = replaced && `${replaced.fileClasses} classes${replaced.names ? `: ${replaced.names.join(', ')}` : ''}`;
    log(`initialized from ${cfg.init}${replaced ? `; its head \`${model.head}\` (${theirs}) starts afresh for these ${numClasses} classes` : ''}`);
  }
  if (backboneLr !== 1) log(`learning rates: ${cfg.lr * backboneLr} for the backbone (${backboneLr} × --lr), ${cfg.lr} for the head \`${model.head}\``);
  if (freezeEpochs) log(`backbone frozen for ${Math.min(freezeEpochs, cfg.epochs)} of ${cfg.epochs} epochs: only the head \`${model.head}\` and the BatchNorm layers train (${frozenTrainableParameters(model).toLocaleString('en-US')} parameters)`);
  // Rank 0's weights on every rank (they agree already unless initialized differently), gradients averaged.
  const ddp = world > 1 ? new dist.DistributedDataParallel(model) : null;
  // After the weights are in place: DSD's masks are the top-K of the weights training starts from.
  const method: TrainingMethod | null = cfg.method ? createMethod(cfg.method, model, resumed?.method ?? null, { numClasses, inChannels, data: cfg.data }) : null;
  if (method) log(method.description);
  // Each image fed alike every epoch: no random augmentation (mixup and CutMix are refused below for a
  // method's own loss), and float32, since autocast would change what the method computes per batch.
  const fixedInputs = !cfg.augment && !cfg.colorJitter && !cfg.trivialAugment && !cfg.randomErase && cfg.precision !== 'bfloat16';
  if ((cfg.mixup || cfg.cutmix) && method?.loss) throw new Error('mixup and CutMix mix the labels of a cross-entropy loss; this method trains with its own loss');
  if (cfg.classWeights && method?.loss) throw new Error('class weights weigh a cross-entropy loss; this method trains with its own loss');
  const balanced = cfg.classWeights === 'balanced' ? balancedClassWeights(loaders.trainCounts) : null;
  if (balanced) log(`class weights (balanced, from ${loaders.trainCounts.join('/')} training images): ${balanced.map((w, i) => `${loaders.classes[i] ?? i} ${w.toFixed(3)}`).join(', ')}`);
  const ce = { labelSmoothing: cfg.labelSmoothing, weight: balanced ? keep(tensor(balanced, { dtype: 'float32' })) : undefined };
  // The average lives in a second network built as the first, scored and saved as it is; its initialization
  // draws from a forked generator, so that the run's random stream (dropout, resumed from checkpoints) is not
  // moved. It starts from the weights training starts from; a resumed run takes up its saved average.
  const emaModel = cfg.ema ? forkRng(cfg.seed, () => createClassifier(cfg.model, cfg.modelOptions, loaders)) : null;
  const ema = cfg.ema && emaModel ? new ExponentialMovingAverage(model, cfg.ema, emaModel) : null;
  if (ema && resumed) {
    if (!Object.keys(resumed.ema).length) throw new Error(`${cfgIn.resume} holds no moving average of the weights, though its run kept one`);
    ema.load(resumed.ema);
  }
  const emaFile = path.join(cfg.outDir, 'ema.safetensors');
  if (rank === 0) fs.mkdirSync(cfg.outDir, { recursive: true });
  // `epochSums`: mid-epoch, the training meter's sums over every rank so far, taken up again on resume.
  const save = (ep: number, batch: number, epochSums?: number[]): void => {
    if (rank > 0) return;
    const os = opt.stateDict();
    // The class names travel with the weights, so that `predict` can name its answers.
    saveCheckpoint(ckptFile, model, os, { epoch: ep, batch, step, config: cfg, history, classes: loaders.classes, ...(epochSums ? { epochSums } : {}) }, method?.stateDict?.() ?? {}, ema?.shadow ?? {});
  };

  const interrupt = watchInterrupt(log, 'finishing this step, then saving a checkpoint');
  log(`training ${cfg.model} (${model.numParameters().toLocaleString('en-US')} parameters) on ${describeData(cfg.data)}${describeAugment(cfg)}: ${cfg.epochs} epochs × ${stepsPerEpoch} batches of ${cfg.batchSize}${describeAccumulate(cfg.accumulate, cfg.batchSize / world)}, ${cfg.optimizer} lr ${cfg.lr}, ${getNumThreads()} threads${world > 1 ? ` × ${world} processes (${cfg.batchSize / world} samples each)` : ''}${describePrecision(cfg.precision)}`);
  const progress = new Progress(log, stepsPerEpoch, cfg.epochs, cfg.batchSize);
  const stepProfile = new StepProfiler(profileSteps, rank === 0 ? stepProfileReport(cfg.outDir, log) : () => {});
  try {
    // Over the whole training set on every rank: a rank's shard holds any of its images in some epoch.
    await method?.prepare?.({ train: loaders.train, fixedInputs, imagesSeen: stepsPerEpoch * (cfg.epochs - epoch) * (cfg.batchSize / world), log });
    for (; epoch < cfg.epochs; epoch++, startBatch = 0) {
      // Only a fine-tuning run touches requiresGrad: a method may hold parameters of its own still.
      if (freezeEpochs) trainMode(model, epoch < freezeEpochs);
      else model.train();
      if (freezeEpochs && epoch === freezeEpochs && epoch < cfg.epochs) log(`epoch ${epoch + 1}: backbone unfrozen, every layer trains`);
      const meter = new ClassificationMeter([1]);
      // Resumed mid-epoch: the epoch's training loss and top-1 go on from the batches before the stop (rank 0
      // holds the sums of every rank, so the cross-rank sum at the epoch's end counts them once).
      const carried = resumed?.state.epochSums as number[] | undefined;
      if (carried && startBatch > 0 && epoch === resumed!.state.epoch && rank === 0) meter.restore(carried);
      // Samples/s counts only what this process trained.
      const carriedCount = meter.count;
      progress.startEpoch();
      let lastYield = Date.now();
      let b = startBatch;
      const batches = trainLoader.epoch(epoch, { startBatch });
      for await (const batch of batches) {
        if (cfg.limitBatches && b >= cfg.limitBatches) {
          disposeBatch(batch);
          break;
        }
        // Training is synchronous libtorch work: let the event loop run now and then, or Ctrl-C (a libuv
        // signal) would never be delivered.
        if (Date.now() - lastYield > 200) {
          await new Promise((r) => setImmediate(r));
          lastYield = Date.now();
        }
        stepProfile.beforeStep();
        let loss = trainStep(model, opt, batch, cfg, ce, meter, method, ddp, step);
        ema?.update(step);
        disposeBatch(batch);
        stepProfile.afterStep();
        b++;
        step++;
        // Every rank must stop at the same step (Ctrl-C reaches them at different moments; a NaN may appear
        // on one): agree on both with one tiny all-reduce.
        let stop = interrupt.requested || (cfg.stopAfterSteps > 0 && step >= cfg.stopAfterSteps);
        if (world > 1) {
          const [lossSum, stops] = dist.sumAcrossRanks([loss, stop ? 1 : 0]);
          [loss, stop] = [lossSum / world, stops > 0];
        }
        if (!Number.isFinite(loss)) {
          const where = fs.existsSync(ckptFile) ? `the last good checkpoint is ${ckptFile} (resume with --resume ${ckptFile})` : 'no checkpoint was written yet';
          throw new NonFiniteLossError(`loss became ${loss} at epoch ${epoch + 1}, batch ${b} (step ${step}); stopped without saving: ${where}. Try a lower --lr or --clip-grad-norm.`);
        }
        progress.update(epoch, b, (meter.count - carriedCount) * world, `loss ${meter.loss.toFixed(4)} top-1 ${(100 * meter.accuracy()).toFixed(2)}%`);
        if (stop) {
          await batches.return(undefined);
          stepProfile.finish();
          save(epoch, b, world > 1 ? dist.sumAcrossRanks(meter.sums()) : meter.sums());
          log(`saved ${ckptFile} at epoch ${epoch + 1}, batch ${b}; continue with: tsvision train --resume ${ckptFile}`);
          return finish('interrupted');
        }
      }
      stepProfile.finish(); // before the evaluation
      const trainSeconds = progress.seconds;
      // Each rank's BatchNorm statistics moved with its own last batch: evaluate rank 0's model everywhere.
      ddp?.syncBuffers();
      const none: Scores = { loss: 0, top1: 0, top5: 0, count: 0 };
      const train: Scores = { loss: meter.loss, top1: meter.accuracy(), top5: 0, count: meter.count, labelled: meter.labelled };
      const test = await evaluate(model, testLoader, cfg.limitBatches);
      const valScores = valLoader ? await evaluate(model, valLoader, cfg.limitBatches) : null;
      const val = valScores ?? none;
      // The average scored on the same images (every rank holds the same average: the same steps).
      const emaTest = emaModel ? await evaluate(emaModel, testLoader, cfg.limitBatches) : none;
      const emaVal = emaModel && valLoader ? await evaluate(emaModel, valLoader, cfg.limitBatches) : none;
      // Over the ranks: the accuracy printed is the one over the whole test set.
      const all = world > 1 ? scoresAcrossRanks({ train, test, val, emaTest, emaVal }) : { train, test, val, emaTest, emaVal };
      // Per-class recall from the confusion over every rank's images.
      const recalls = (c: number[][]) => recallPerClass(world > 1 ? confusionAcrossRanks(c, loaders.numClasses) : c);
      const testRecall = recalls(test.confusion);
      const valRecall = valScores && recalls(valScores.confusion);
      const rec: EpochRecord = {
        epoch: epoch + 1,
        trainLoss: all.train.loss,
        trainTop1: all.train.top1,
        testLoss: all.test.loss,
        testTop1: all.test.top1,
        testTop5: all.test.top5,
        testRecall: testRecall.recall,
        testBalancedTop1: testRecall.balanced,
        seconds: trainSeconds,
        samplesPerSecond: (all.train.count - carriedCount) / Math.max(trainSeconds, 1e-3),
        ...(valLoader ? { valLoss: all.val.loss, valTop1: all.val.top1, valTop5: all.val.top5, valBalancedTop1: valRecall!.balanced } : {}),
        ...(emaModel ? { emaTestLoss: all.emaTest.loss, emaTestTop1: all.emaTest.top1, emaTestTop5: all.emaTest.top5 } : {}),
        ...(emaModel && valLoader ? { emaValTop1: all.emaVal.top1 } : {}),
      };
      history.push(rec);
      const valWords = rec.valTop1 === undefined ? '' : `val top-1 ${(100 * rec.valTop1).toFixed(2)}%, `;
      const avg = rec.emaTestTop1 === undefined ? '' : `, EMA test top-1 ${(100 * rec.emaTestTop1).toFixed(2)}%`;
      // Imbalanced classes (weighted for): the mean of the classes' recalls says more than top-1.
      const balanced = cfg.classWeights ? `, balanced ${(100 * rec.testBalancedTop1).toFixed(2)}%` : '';
      log(`epoch ${epoch + 1}/${cfg.epochs}: train loss ${rec.trainLoss.toFixed(4)}, test loss ${rec.testLoss.toFixed(4)}, ${valWords}test top-1 ${(100 * rec.testTop1).toFixed(2)}%${balanced}, top-5 ${(100 * rec.testTop5).toFixed(2)}%${avg} (${fmtTime(trainSeconds)}, ${rec.samplesPerSecond.toFixed(0)} samples/s)`);
      const best = bestEpoch(history, bestFile);
      // The best epoch's weights first, then the checkpoint that records it: a run stopped in between
      // still has a best.safetensors that matches its history's best.
      if (best?.epoch === rec.epoch && rank === 0) {
        saveWeights(bestFile, best.ema && emaModel ? emaModel : model, { config: cfg, classes: loaders.classes, epoch: rec.epoch, ...(best.ema ? { ema: true } : {}) });
        log(`new best validation top-1${best.ema ? ' (the moving average)' : ''}: ${bestFile}`);
      }
      if (patienceSpent(best, rec.epoch, cfg.patience, cfg.epochs)) stoppedEarly = rec.epoch;
      save(epoch + 1, 0);
      if (rank === 0) await writeReport();
      if (stoppedEarly && best) {
        log(`no better validation top-1 for ${cfg.patience} epoch${cfg.patience === 1 ? '' : 's'} (best: epoch ${best.epoch}, ${(100 * best.valTop1).toFixed(2)}%): stopping early`);
        return finish('finished');
      }
    }
    return finish('finished');
  } finally {
    stepProfile.close();
    interrupt.dispose();
    ce.weight?.dispose();
    method?.dispose?.();
  }

  async function writeReport(): Promise<void> {
    const report = path.join(cfg.outDir, 'report.json');
    const best = bestEpoch(history, bestFile);
    writeFileAtomic(report, JSON.stringify({ config: cfg, parameters: model.numParameters(), method: method?.summary?.() ?? null, history, ...(best ? { best } : {}), ...(stoppedEarly ? { stoppedEarly } : {}) }, null, 2) + '\n');
    if (history.length) {
      const ep = history.map((h) => h.epoch);
      const series = (name: string, v: (h: EpochRecord) => number | undefined) =>
        history[0] && v(history[0]) !== undefined ? [{ name, points: history.map((h, i): [number, number] => [ep[i], v(h) ?? NaN]) }] : [];
      await savePlotsPng(path.join(cfg.outDir, 'curves.png'), [
        { title: 'Loss', xLabel: 'epoch', yLabel: 'loss', series: [...series(method?.loss ? 'train (mimic L2)' : 'train', (h) => h.trainLoss), ...series('validation', (h) => h.valLoss), ...series('test', (h) => h.testLoss)] },
        { title: 'Accuracy', xLabel: 'epoch', yLabel: 'accuracy (%)', series: [...series('train top-1', (h) => 100 * h.trainTop1), ...series('validation top-1', (h) => (h.valTop1 === undefined ? undefined : 100 * h.valTop1)), ...series('test top-1', (h) => 100 * h.testTop1), ...(cfg.classWeights ? series('test balanced top-1', (h) => (h.testBalancedTop1 === undefined ? undefined : 100 * h.testBalancedTop1)) : []), ...series('EMA test top-1', (h) => (h.emaTestTop1 === undefined ? undefined : 100 * h.emaTestTop1))] },
      ]);
    }
  }

  function finish(status: TrainResult['status']): TrainResult {
    const weights = path.join(cfg.outDir, 'model.safetensors');
    if (status === 'finished' && rank === 0) {
      // Plain state dict, keys as PyTorch's: loads with torch's load_state_dict after a safetensors read.
      saveWeights(weights, model, { config: cfg, classes: loaders.classes });
      if (emaModel) saveWeights(emaFile, emaModel, { config: cfg, classes: loaders.classes });
    }
    return {
      status,
      history,
      final: history[history.length - 1] ?? null,
      best: bestEpoch(history, bestFile),
      stoppedEarly,
      ema: ema ? emaFile : null,
      checkpoint: ckptFile,
      weights,
      report: path.join(cfg.outDir, 'report.json'),
      curves: path.join(cfg.outDir, 'curves.png'),
      model,
    };
  }
}

/** A set's mean loss over `count` images, top-1 and top-5 over the `labelled` ones among them (absent: all). */
interface Scores {
  loss: number;
  top1: number;
  top5: number;
  count: number;
  labelled?: number;
}

/** Each set's scores over the images of every rank: one all-reduce of the count- (labelled-) weighted sums. */
function scoresAcrossRanks<K extends string>(local: Record<K, Scores>): Record<K, Scores> {
  const sets = Object.keys(local) as K[];
  const sums = dist.sumAcrossRanks(sets.flatMap((k) => {
    const { loss, top1, top5, count, labelled = count } = local[k];
    return [loss * count, top1 * labelled, top5 * labelled, count, labelled];
  }));
  return Object.fromEntries(sets.map((k, i) => {
    const [loss, top1, top5, count, labelled] = sums.slice(5 * i, 5 * i + 5);
    const m = Math.max(1, labelled);
    return [k, { loss: loss / Math.max(1, count), top1: top1 / m, top5: top5 / m, count, labelled }];
  })) as Record<K, Scores>;
}

/** A k×k confusion matrix summed over every rank's images (one all-reduce); a rank without images has []. */
function confusionAcrossRanks(c: number[][], k: number): number[][] {
  const sums = dist.sumAcrossRanks(c.length ? c.flat() : new Array<number>(k * k).fill(0));
  return Array.from({ length: k }, (_, i) => sums.slice(i * k, (i + 1) * k));
}

/**
 * The first epoch of the highest validation top-1 in a history, the trained weights' or, where the run kept
 * one, the moving average's (on a tie the trained ones); null when it has no validation scores.
 */
export function bestEpoch(history: readonly EpochRecord[], weights: string): BestEpoch | null {
  const candidates = history.flatMap((h) => [
    { epoch: h.epoch, valTop1: h.valTop1, testTop1: h.testTop1, ema: false },
    ...(h.emaValTop1 === undefined ? [] : [{ epoch: h.epoch, valTop1: h.emaValTop1, testTop1: h.emaTestTop1!, ema: true }]),
  ]);
  const best = firstBest(candidates, (c) => c.valTop1);
  return best ? { ...best, valTop1: best.valTop1!, weights } : null;
}

// The mixing's own random stream, drawn per optimizer step: a resumed run mixes as the uninterrupted one.
const MIX_STREAM = 0x4d495853;

function trainStep(model: Classifier, opt: Trainable, batch: Batch, cfg: TrainConfig, ce: CrossEntropyOptions, meter: ClassificationMeter, method: TrainingMethod | null, ddp: dist.DistributedDataParallel<Classifier> | null, step: number): number {
  return tidy(() => {
    const [n, , h, w] = batch.x.shape;
    const mix = cfg.mixup || cfg.cutmix ? drawMix({ mixup: cfg.mixup ?? 0, cutmix: cfg.cutmix ?? 0 }, n, h, w, Rng.from(cfg.seed, MIX_STREAM, step)) : null;
    const mixed = mix && applyMix(batch.x, batch.y, mix);
    // With --accumulate the batch (mixed as a whole: mixup's partners come from all of it) is backpropagated
    // in micro-batches; the optimizer steps once, on the batch's gradient.
    const forward = (start: number, length: number): PartLoss => {
      const part = narrowBatch({ ...batch, x: mixed ? mixed.x : batch.x }, start, length);
      const logits = (ddp ?? model).forward(part.x);
      return { logits, loss: method?.loss ? method.loss(logits, part) : mix ? mixedCrossEntropy(logits, part.y, mixed!.partnerY.narrow(0, start, length), mix.lambda, ce) : crossEntropy(logits, part.y, ce) };
    };
    opt.zeroGrad();
    // The backward pass runs outside autocast, as PyTorch's recipe has it: autograd replays the casts.
    const { logits, loss } = backwardInParts(n, cfg.accumulate ?? 1, (start, length) => (cfg.precision === 'bfloat16' ? autocast(() => forward(start, length)) : forward(start, length)));
    ddp?.syncGradients();
    method?.beforeStep?.();
    opt.clipAndStep(cfg.clipGradNorm);
    method?.afterStep?.();
    if (Number.isFinite(loss)) meter.update(loss, logits!, batch.y);
    return loss;
  });
}

/** The training augmentation for the log line; empty without any. */
function describeAugment(cfg: Pick<TrainConfig, 'augment' | 'colorJitter' | 'mixup' | 'cutmix' | 'trivialAugment' | 'randomErase'>): string {
  const parts = [...(cfg.augment ? ['random crops and flips'] : []), ...(cfg.trivialAugment ? ['TrivialAugment'] : []), ...(cfg.colorJitter ? [`colour jitter (${describeColorJitter(cfg.colorJitter)})`] : []), ...(cfg.randomErase ? [`random erasing (p ${cfg.randomErase})`] : []), ...(cfg.mixup ? [`mixup (α ${cfg.mixup})`] : []), ...(cfg.cutmix ? [`CutMix (α ${cfg.cutmix})`] : [])];
  return parts.length ? ` with ${parts.join(' and ')}` : '';
}

function describeData(d: DataSpec): string {
  if (d.kind === 'fashion-mnist') return 'Fashion-MNIST';
  return d.test ? `image folders ${d.train} / ${d.test}` : `image folder ${d.train} (${Math.round(100 * d.testSplit!)}% of each class held out as the test set)`;
}
