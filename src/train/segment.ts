// Training a segmentation network on Fashion-MNIST scenes or the user's image/mask folders: ENet by
// default, with the paper's recipe — Adam with L2 weight decay 2e-4 (at 10× its 5e-4 learning rate, see the
// recipe), and ENet's class weighting
// w_class = 1 / ln(c + p_class), c = 1.02, which keeps the rare classes from being drowned by the background
// (§5.1) —, or DeepLab-V3, PSPNet and ICNet with theirs (SGD, momentum 0.9, poly schedule) and their own
// training losses (PSPNet's auxiliary loss, ICNet's cascade label guidance). Each epoch reports the test
// mIoU, pixel accuracy and per-class IoU, saves a checkpoint atomically, and redraws the curves and a PNG
// of overlays (image · ground truth · prediction) for the first test scenes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor, arange, autocast, cat, full, crossEntropy, forkRng, fromArray, getNumThreads, interpolate, keep, manualSeed, nllLoss, noGrad, setNumThreads, softmax, stack, tensor, tidy, where, zeros } from '../torch';
import { MultiScaleOptions, SegmentationForward, SegmentationNet, forwardAnySize, predictMultiScale } from '../models/segmentation';
import { InferencePrecision, optimizeForInference } from '../infer/optimize';
import type { Module } from '../nn';
import { SegmentationModelName, SegmentationModelOptions, createSegmentationModel, isSegmentationModelName, listSegmentationModels } from '../models/registry';
import { BatchData, BatchSubset, ConcatDataset, BatchTransform, ColorJitterOptions, DataLoader, DataLoaderOptions, FASHION_MNIST_MEAN, FASHION_MNIST_STD, IMAGENET, IMAGENET_GREY, PixelSample, Rng, SampleSubset, TEST_SPLIT_SEED, allOf, colorJitter, compose, describeColorJitter, disposeBatch, labelCounts, normalize, ownStream, segmentationAugment, splitOff, toFloat } from '../data';
import { FASHION_SCENES_DEFAULTS, FashionScenes } from '../data/fashion-scenes';
import { PixelLabelledImages } from '../data/pixel-labels';
import { pixelSampleAt, sampleFile } from '../data/inspect';
import type { BatchSource, Dataset } from '../data/loader';
import { IGNORE_LABEL, SegmentationFiles, SegmentationFolderOptions, UnlabelledImages } from '../data/segmentation-folder';
import { SegmentationMeter, labelledPixels, perImageScores } from '../metrics/segmentation';
import { Calibration, CalibrationMeter } from '../metrics/calibration';
import { savePlotsPng } from '../report/plot';
import { saveSegmentationOverlays } from '../report/overlay';
import { writeFileAtomic } from '../util/fs';
import { OptimizerName, makeOptimizer } from './optimizers';
import { CheckpointContents, applyCheckpoint, fitWeights, loadWeights, readCheckpoint, readWeights, saveCheckpoint, saveWeights } from './checkpoint';
import { ResNet } from '../models/resnet';
import { Logger, Progress, fmtTime, watchInterrupt } from './progress';
import { StepProfiler, stepProfileReport } from './step-profile';
import { NonFiniteLossError, describePrecision } from './trainer';
import * as dist from '../distributed';
import { firstBest, patienceSpent } from './selection';
import { ExponentialMovingAverage } from '../optim/ema';
import { PartLoss, backwardInParts, checkAccumulate, describeAccumulate } from './accumulate';
import { evalPass } from './eval-pass';
import { CachedLogits, SegmentTeacherSpec, SegmentationTeacher, cacheTeacherLogits, loadSegmentationTeacher } from '../methods/mimic';
import { MagnitudeMasks, overallSparsity } from '../methods/prune';

export interface SegmentConfig {
  model: SegmentationModelName;
  /** Options of the network (numClasses and inChannels come from the data). */
  modelOptions: Record<string, unknown>;
  /**
   * Fashion-MNIST scenes: canvas size, scene counts, garments per scene. `unlabelled`: that many more training
   * scenes (other layouts) with every pixel ignored by the labels, a transfer set only a teacher teaches from.
   */
  scenes: { size: number; trainCount: number; testCount: number; maxItems: number; unlabelled?: number };
  epochs: number;
  batchSize: number;
  optimizer: OptimizerName;
  lr: number;
  momentum: number;
  weightDecay: number;
  /** 'enet': w = 1 / ln(1.02 + p) from the training labels; 'none': plain cross-entropy. */
  classWeights: 'enet' | 'none';
  seed: number;
  outDir: string;
  threads: number;
  /** Use only this many batches per epoch (train and test); 0: all. */
  limitBatches: number;
  /** Weights to start from (a checkpoint or plain weights), e.g. a pruned network to fine-tune. */
  init?: string;
  /**
   * ImageNet-trained ResNet weights for the backbone of DeepLab-V3, PSPNet or ICNet, as all three papers
   * start: torchvision's state dict converted by scripts/pth2safetensors.py, or a tsvision `train` checkpoint.
   */
  backboneInit?: string;
  /**
   * The user's data instead of the scenes: folders of images/ and masks/ (see SegmentationFolder). The test
   * images are `test`'s, or with `testSplit` that share of `train`'s, the same ones every run (a fixed seed).
   */
  folders?: {
    train: string;
    test?: string;
    testSplit?: number;
    size?: [number, number];
    channels: 1 | 3;
    numClasses?: number;
    /**
     * A folder of images without masks added to the training images, every pixel ignored by the labels: a
     * transfer set that only a teacher (SegmentConfig.teacher) can teach from (Ba & Caruana's unlabelled data).
     */
    unlabelled?: string;
  } & Pick<SegmentationFolderOptions, 'maskName' | 'labelMap'>;
  /**
   * The papers' augmentation of training images (random scale, rotation, crop, mirror; segmentation-augment.ts)
   * or null. Default: on for the user's folders, off for the scenes (their layouts are random already).
   */
  augment: SegmentAugment | null;
  /**
   * torchvision's ColorJitter on training images only (masks untouched), before normalization and the
   * geometric augmentation; independent of `augment`. null: none; absent in older checkpoints: none.
   */
  colorJitter: ColorJitterOptions | null;
  /** 'bfloat16': the training loss under torch.autocast (mixed precision). Absent in older configs: float32. */
  precision?: 'float32' | 'bfloat16';
  /**
   * Gradient accumulation: each batch backpropagated in this many micro-batches, one at a time, then one
   * optimizer step (accumulate.ts) — the papers' batch of large crops at a micro-batch's activation memory.
   * BatchNorm and the ignored pixels' normalization see micro-batches. Absent or 1: the whole batch at once.
   */
  accumulate?: number;
  /** Under `tsvision launch`: BatchNorm over the global batch (SyncBatchNorm, PSPNet §5.1). Default true. */
  syncBatchNorm: boolean;
  /**
   * This share of the training images (scenes or files, drawn by `seed`) held out as a validation set: never
   * trained on, scored after every epoch; the best epoch by validation mIoU goes to best.safetensors. Absent: 0.
   */
  valSplit?: number;
  /** The seed that draws the validation split (default: `seed`): fixed, every seed's run holds out the same images. */
  valSeed?: number;
  /** Early stopping: end once this many epochs have passed without a better validation mIoU (needs valSplit). */
  patience?: number;
  /**
   * Also keep an exponential moving average of the weights with this decay (e.g. 0.999; train's --ema):
   * scored every epoch, a candidate for best.safetensors, written to ema.safetensors. Absent: none.
   */
  ema?: number;
  /**
   * Learn from a trained segmentation network's logits at every pixel (mimic learning, or distillation at a
   * temperature) instead of the labels, or beside them (labelWeight). The test loss stays the labels'.
   */
  teacher?: SegmentTeacherSpec;
  /**
   * DSD's sparse step (methods/dsd.ts): at the start, each conv layer but the first (unless skipFirst is false)
   * keeps only its top-K |w|, and the masks hold through training (gradients masked, weights re-masked after
   * every step); they travel in the checkpoint, so a resumed run keeps them. Absent: dense training.
   */
  sparse?: { sparsity: number; skipFirst?: boolean };
}

export interface SegmentAugment {
  /** Training crop (H, W); default the folder's --image-size, or the size of its first image. */
  crop?: [number, number];
  scale: [number, number];
  rotate: number;
  flip: boolean;
  /** Probability of PSPNet's Gaussian blur (its VOC recipe: 0.5); absent in older checkpoints: 0. */
  blur?: number;
}

/** DeepLab-V3 §4 and PSPNet §5.1: scale 0.5–2 and mirror (PSPNet adds ±10° rotation and Gaussian blur for VOC: --rotate 10 --blur 0.5). */
export const PAPER_AUGMENT: SegmentAugment = { scale: [0.5, 2], rotate: 0, flip: true };

/** What a run trains and tests on, as `trainSegmentation` builds it. */
export interface SegmentationData {
  /** Training batches (augmented if asked), or null when only testing. */
  train: DataLoader | null;
  /** The held-out part of the training images (valSplit), as the test images are fed; null without. */
  val: DataLoader | null;
  test: DataLoader;
  classes: readonly string[];
  inChannels: number;
  /** (H, W) of the training input: the scenes', the folder's size, the crop, or the first test image's. */
  inputSize: [number, number];
  /** uint8 images to the network's normalized float input (deterministic: no augmentation). */
  transform: BatchTransform;
  /** Pixels per label value over the training labels (256 bins), for ENet's class weights; a shard: its share. */
  trainLabelCounts(shard?: { rank: number; worldSize: number }): Promise<Float64Array>;
  /** Up to k test images (uint8) and labels of one size, for the overlays. */
  overlaySamples(k: number): Promise<BatchData>;
  describe: string;
  dispose(): void;
}

// Scenes are normalized as Fashion-MNIST is; the user's photos with ImageNet's statistics (grey: their mean),
// the convention of the papers' pretrained backbones.
export const segmentationNormalization = (cfg: Pick<SegmentConfig, 'folders'>): { mean: number[]; std: number[] } =>
  !cfg.folders ? { mean: [FASHION_MNIST_MEAN], std: [FASHION_MNIST_STD] } : statsOf(cfg.folders.channels === 3 ? IMAGENET : IMAGENET_GREY);
const statsOf = (s: { mean: readonly number[]; std: readonly number[] }): { mean: number[]; std: number[] } => ({ mean: [...s.mean], std: [...s.std] });

type DataConfig = Pick<SegmentConfig, 'scenes' | 'seed' | 'folders'> & Partial<Pick<SegmentConfig, 'batchSize' | 'augment' | 'colorJitter' | 'valSplit' | 'valSeed'>>;

/** A share of `indices` (of n images) held out, drawn by seed. Images have no class: one label for all. */
const splitImages = (n: number, indices: Int32Array, fraction: number, seed: number): { keep: Int32Array; out: Int32Array } => splitOff(new Array<number>(n).fill(0), indices, fraction, seed);

// The colour jitter's own random stream (Rng.fork): turning it on leaves the geometric draws where they were.
const JITTER_STREAM = 0x4a495454;

/** The deterministic transform (uint8 to normalized float) and the training one, which adds the colour jitter. */
export function segmentationTransforms(cfg: Pick<DataConfig, 'folders' | 'colorJitter'>): { transform: BatchTransform; trainTransform: BatchTransform } {
  const norm = segmentationNormalization(cfg);
  const n = normalize(norm.mean, norm.std);
  const transform = compose(toFloat(), n);
  // Jitter needs pixels in [0, 1]: after toFloat, before normalize (and so before the geometry, which pads with 0, the mean).
  const trainTransform = cfg.colorJitter ? compose(toFloat(), ownStream(colorJitter(cfg.colorJitter), JITTER_STREAM), n) : transform;
  return { transform, trainTransform };
}

/** A run's data (the training loader only if asked) and its test loader. */
export async function segmentationData(cfg: DataConfig, o: { train: boolean }): Promise<SegmentationData> {
  const t = segmentationTransforms(cfg);
  return cfg.folders ? folderData(cfg, cfg.folders, t, o.train) : sceneData(cfg, t, o.train);
}

const describeJitter = (cfg: DataConfig): string => (cfg.colorJitter ? `, colour jitter (${describeColorJitter(cfg.colorJitter)})` : '');

/** The last training batch of one image cannot be batch-normalized: drop only that one. */
const trainLoaderOptions = (cfg: DataConfig, n: number): DataLoaderOptions => {
  const batchSize = cfg.batchSize ?? DEFAULT_SEGMENT_CONFIG.batchSize;
  return { batchSize, shuffle: true, seed: cfg.seed, dropLast: n % batchSize === 1 };
};

function sceneData(cfg: DataConfig, { transform, trainTransform }: { transform: BatchTransform; trainTransform: BatchTransform }, train: boolean): SegmentationData {
  const { size, trainCount, testCount, maxItems } = cfg.scenes;
  const opts = { size, maxItems, seed: cfg.seed };
  const trainSet = train ? new FashionScenes({ split: 'train', count: trainCount, ...opts }) : null;
  const testSet = new FashionScenes({ split: 'test', count: testCount, ...opts });
  const aug = cfg.augment ? compose(trainTransform, augmentation(cfg.augment, [size, size])) : trainTransform;
  const split = trainSet && cfg.valSplit ? splitImages(trainSet.length, allOf(trainSet.length), cfg.valSplit, cfg.valSeed ?? cfg.seed) : null;
  const labelled = trainSet && split ? new BatchSubset(trainSet, split.keep) : trainSet;
  // The transfer set: scenes of their own layouts (another seed's stream), their labels all "ignore".
  const unlabelled = labelled && cfg.scenes.unlabelled ? new FashionScenes({ split: 'train', count: cfg.scenes.unlabelled, ...opts, seed: cfg.seed + UNLABELLED_SCENES_SEED }) : null;
  const trainPart: BatchSource | null = labelled && unlabelled ? withUnlabelled(labelled, unlabelled) : labelled;
  unlabelled?.dispose();
  return {
    train: trainPart && new DataLoader(trainPart, { ...trainLoaderOptions(cfg, trainPart.length), transform: aug }),
    val: trainSet && split && new DataLoader(new BatchSubset(trainSet, split.out), { batchSize: 100, transform }),
    test: new DataLoader(testSet, { batchSize: 100, transform }),
    classes: testSet.classes,
    inChannels: testSet.images.size(1),
    inputSize: cfg.augment?.crop ?? [size, size],
    transform,
    trainLabelCounts: async () => (split ? tidy(() => labelCounts(trainSet!.labels.indexSelect(0, tensor(Array.from(split.keep), { dtype: 'int64' })))) : labelCounts(trainSet!.labels)),
    // Up to k: a run with fewer test scenes draws them all.
    overlaySamples: async (k) => tidy(() => {
      const n = Math.min(k, testSet.images.size(0));
      return keep({ x: testSet.images.narrow(0, 0, n).clone(), y: testSet.labels.narrow(0, 0, n).long() });
    }),
    describe: `Fashion-MNIST scenes: ${trainCount} train${split ? ` (${split.out.length} of them held out for validation)` : ''}${cfg.scenes.unlabelled && train ? ` + ${cfg.scenes.unlabelled} unlabelled` : ''} and ${testCount} test, ${size}×${size}, up to ${maxItems} garments each${train ? describeJitter(cfg) : ''}`,
    dispose: () => {
      trainSet?.dispose();
      testSet.dispose();
      if (trainPart instanceof PixelLabelledImages && trainPart !== trainSet) trainPart.dispose();
    },
  };
}

/** Offset of the unlabelled scenes' layout seed from the run's: a stream no labelled scene set draws from. */
const UNLABELLED_SCENES_SEED = 7919;

/** In-memory labelled images followed by unlabelled ones, whose every pixel is IGNORE_LABEL. */
function withUnlabelled(labelled: BatchSource, unlabelled: PixelLabelledImages): PixelLabelledImages {
  return tidy(() => {
    const all = labelled.getBatch(arange(0, labelled.length, 1, { dtype: 'int64' }));
    const ignored = full(unlabelled.labels.shape, IGNORE_LABEL, { dtype: 'uint8' });
    return new PixelLabelledImages(cat([all.x, unlabelled.images], 0).keep(), cat([all.y.to('uint8'), ignored], 0).keep(), unlabelled.classes);
  });
}

/**
 * The user's folders, decoded batch by batch (SegmentationFiles): training images are augmented one by one
 * to the crop size; test images are evaluated at their own size (one at a time when sizes vary) —
 * forwardAnySize pads them to the network's size multiple and cuts the logits back, so padding counts in no
 * metric.
 */
async function folderData(cfg: DataConfig, f: NonNullable<SegmentConfig['folders']>, { transform, trainTransform }: { transform: BatchTransform; trainTransform: BatchTransform }, train: boolean): Promise<SegmentationData> {
  const opts = { size: f.size, channels: f.channels, numClasses: f.numClasses, maskName: f.maskName, labelMap: f.labelMap };
  if (Boolean(f.test) === Boolean(f.testSplit)) throw new Error(`segment: the test images come from a test folder or a test split of ${f.train}, one of the two`);
  const trainSet = train || f.testSplit ? SegmentationFiles.open(f.train, opts) : null;
  const n = trainSet?.length ?? 0;
  const held = f.testSplit ? splitImages(n, allOf(n), f.testSplit, TEST_SPLIT_SEED) : null;
  const testFiles = held ? trainSet! : SegmentationFiles.open(f.test!, opts);
  const testSet = held ? new SampleSubset(testFiles, held.out) : testFiles;
  if (trainSet && !held && trainSet.classes.join('\n') !== testFiles.classes.join('\n')) throw new Error(`segment: ${f.train} and ${f.test} name different classes`);
  const first = await testSet.get(0);
  const firstSize: [number, number] = [first.y.size(0), first.y.size(1)];
  disposeBatch(first);
  const crop = cfg.augment ? cfg.augment.crop ?? f.size ?? firstSize : null;
  const trainTf = cfg.augment ? { sampleTransform: compose(trainTransform, augmentation(cfg.augment, crop!)), transform: (b: BatchData) => b } : { transform: trainTransform };
  const rest = held ? held.keep : allOf(n);
  const val = train && cfg.valSplit ? splitImages(n, rest, cfg.valSplit, cfg.valSeed ?? cfg.seed) : null;
  const trainIndices = val ? val.keep : rest;
  const labelled = train && trainSet ? (trainIndices.length === trainSet.length ? trainSet : new SampleSubset(trainSet, trainIndices)) : null;
  const transfer = labelled && f.unlabelled ? UnlabelledImages.open(f.unlabelled, { size: f.size, channels: f.channels }) : null;
  const trainPart = labelled && transfer ? new ConcatDataset<PixelSample>(labelled, transfer) : labelled;
  // One image a batch unless all share a size; padding happens per image, so that sizes may differ.
  const evalBatch = f.size ? cfg.batchSize ?? DEFAULT_SEGMENT_CONFIG.batchSize : 1;
  return {
    train: trainPart && new DataLoader(trainPart, { ...trainLoaderOptions(cfg, trainPart.length), ...trainTf }),
    val: val && new DataLoader(new SampleSubset(trainSet!, val.out), { batchSize: evalBatch, transform }),
    test: new DataLoader(testSet, { batchSize: evalBatch, transform }),
    classes: testFiles.classes,
    inChannels: f.channels,
    inputSize: crop ?? f.size ?? firstSize,
    transform,
    trainLabelCounts: (shard) => trainSet!.labelCounts(undefined, shard, trainIndices.length === trainSet!.length ? undefined : trainIndices),
    async overlaySamples(k) {
      const samples: PixelSample[] = [];
      // Among the first k test images only: scanning further would decode the whole test set every epoch.
      for (let i = 0; i < Math.min(testSet.length, k); i++) {
        const s = await testSet.get(i);
        if (s.y.shape.join() === firstSize.join()) samples.push(s);
        else disposeBatch(s);
      }
      return tidy(() => {
        const b = keep({ x: stack(samples.map((s) => s.x)), y: stack(samples.map((s) => s.y)).long() });
        samples.forEach(disposeBatch);
        return b;
      });
    },
    describe: `${labelled ? `${labelled.length} training images from ${f.train}${val ? ` (${val.out.length} more held out for validation)` : ''}${transfer ? ` and ${transfer.length} unlabelled ones from ${f.unlabelled}` : ''}, ` : ''}${testSet.length} test images ${held ? `held out of ${f.train} (${Math.round(100 * f.testSplit!)}%)` : `from ${f.test}`}, ${f.size ? `resized to ${f.size.join('×')}` : `first ${firstSize.join('×')}`}${crop ? `, training crops ${crop.join('×')} (scale ${cfg.augment!.scale.join('–')}${cfg.augment!.rotate ? `, ±${cfg.augment!.rotate}°` : ''}${cfg.augment!.blur ? `, blur p ${cfg.augment!.blur}` : ''}${cfg.augment!.flip ? ', mirrored' : ''})` : ''}${trainSet ? describeJitter(cfg) : ''}, ${testFiles.classes.length} classes`,
    dispose: () => {},
  };
}

const augmentation = (a: SegmentAugment, crop: readonly [number, number]): BatchTransform => segmentationAugment({ crop, scale: a.scale, rotate: a.rotate, flip: a.flip, blur: a.blur });

export const ENET_RECIPE = { lr: 5e-4, weightDecay: 2e-4, c: 1.02 } as const;

type Recipe = Pick<SegmentConfig, 'optimizer' | 'lr' | 'momentum' | 'weightDecay' | 'modelOptions'>;
/**
 * Each paper's optimizer (all with the poly schedule, power 0.9), and network options that fit 64×64 scenes
 * on a CPU: a ResNet-18 backbone at half width; ASPP rates and pyramid bins scaled to 8×8 and 2×2 feature
 * maps (a 3×3 filter at rate 12 on an 8×8 map sees only its centre tap, §3.3 of DeepLab-V3).
 */
export const SEGMENT_RECIPES: Record<SegmentationModelName, Recipe> = {
  // 10× the paper's rate: the paper trains for hundreds of epochs; in this 6-epoch CPU budget 5e-4 learned
  // only foreground vs background (test mIoU 9.7% after 2 epochs), 5e-3 the garment classes too (34.2%).
  enet: { optimizer: 'adam', lr: 10 * ENET_RECIPE.lr, momentum: 0, weightDecay: ENET_RECIPE.weightDecay, modelOptions: {} },
  // DeepLab-V3 §4: lr 0.007, poly 0.9, momentum 0.9, weight decay 1e-4 (the PSPNet/ICNet recipe below is the same but lr 0.01).
  deeplabv3: { optimizer: 'sgd', lr: 0.007, momentum: 0.9, weightDecay: 1e-4, modelOptions: { backbone: 'resnet18', width: 32, outputStride: 8, atrousRates: [1, 2, 3], channels: 128 } },
  pspnet: { optimizer: 'sgd', lr: 0.01, momentum: 0.9, weightDecay: 1e-4, modelOptions: { backbone: 'resnet18', width: 32, headChannels: 128, auxChannels: 64 } },
  icnet: { optimizer: 'sgd', lr: 0.01, momentum: 0.9, weightDecay: 1e-4, modelOptions: { backbone: 'resnet18', width: 32, bins: [1, 2] } },
};

export const DEFAULT_SEGMENT_CONFIG: SegmentConfig = {
  model: 'enet',
  ...SEGMENT_RECIPES.enet,
  scenes: { size: FASHION_SCENES_DEFAULTS.size, trainCount: FASHION_SCENES_DEFAULTS.trainCount, testCount: FASHION_SCENES_DEFAULTS.testCount, maxItems: FASHION_SCENES_DEFAULTS.maxItems },
  epochs: 6,
  batchSize: 16,
  classWeights: 'enet',
  seed: 0,
  outDir: 'runs/segment-enet',
  threads: 0,
  limitBatches: 0,
  augment: null,
  colorJitter: null,
  syncBatchNorm: true,
};

export interface SegmentEpoch {
  epoch: number;
  trainLoss: number;
  testLoss: number;
  testMIoU: number;
  testPixelAccuracy: number;
  testIoU: number[];
  seconds: number;
  samplesPerSecond: number;
  /** On the held-out validation images (valSplit); absent without them. */
  valLoss?: number;
  valMIoU?: number;
  valPixelAccuracy?: number;
  /** The moving average of the weights (`ema`) on the test and validation images; absent without one. */
  emaTestMIoU?: number;
  emaTestPixelAccuracy?: number;
  emaValMIoU?: number;
}

/**
 * The epoch of the best validation mIoU so far (the first of equals), and where its weights went; with a
 * moving average its weights compete too, after the trained ones of the same epoch (`ema`: the average won).
 */
export interface BestSegmentEpoch {
  epoch: number;
  valMIoU: number;
  testMIoU: number;
  weights: string;
  ema?: boolean;
}

export interface SegmentResult {
  /** 'interrupted': Ctrl-C, SIGTERM or `stopAfterSteps`; the checkpoint then holds the step it stopped after. */
  status: 'finished' | 'interrupted';
  history: SegmentEpoch[];
  final: SegmentEpoch | null;
  classes: readonly string[];
  classWeights: number[] | null;
  checkpoint: string;
  weights: string;
  report: string;
  curves: string;
  overlays: string;
  /** With valSplit: the best epoch, whose weights are in best.safetensors; else null. */
  best: BestSegmentEpoch | null;
  /** The epoch after which early stopping (patience) ended the run; null if it did not. */
  stoppedEarly: number | null;
  /** ema.safetensors, the moving average's weights (`ema`), or null. */
  ema: string | null;
  model: SegmentationNet;
}

/** ENet's class weights (§5.1): 1 / ln(c + p_class), p from pixel counts per label value (ignore's left out). */
export function enetClassWeights(counts: ArrayLike<number>, numClasses: number, c: number = ENET_RECIPE.c): Tensor {
  if (counts.length < numClasses) throw new Error(`enetClassWeights: ${counts.length} counts for ${numClasses} classes`);
  return tidy(() => {
    const n = fromArray(Float64Array.from({ length: numClasses }, (_, i) => counts[i]));
    return n.div(n.sum()).add(c).log().reciprocal().float();
  });
}


/**
 * Trains a segmentation network (ENet unless `model` says otherwise) on Fashion-MNIST scenes. With `resume`, continues from a checkpoint this function wrote (it is
 * written at every epoch's end) with that run's settings, ending exactly as an uninterrupted run would.
 */
/**
 * A run's settings: the model's paper recipe, then what the caller set (undefined: not set, as a CLI flag
 * not given); model options merge key by key, and the user's photos are augmented as the papers' were
 * unless the caller says otherwise (augment: null).
 */
export function resolveSegmentConfig(cfgIn: Partial<SegmentConfig>): SegmentConfig {
  cfgIn = Object.fromEntries(Object.entries(cfgIn).filter(([, v]) => v !== undefined)) as typeof cfgIn;
  const name = cfgIn.model ?? DEFAULT_SEGMENT_CONFIG.model;
  if (!isSegmentationModelName(name)) throw new Error(`segment: unknown model '${name}'; known: ${listSegmentationModels().join(', ')}`);
  const recipe = SEGMENT_RECIPES[name];
  const cfg: SegmentConfig = {
    ...DEFAULT_SEGMENT_CONFIG,
    ...recipe,
    outDir: `runs/segment-${name}`,
    ...cfgIn,
    modelOptions: { ...recipe.modelOptions, ...cfgIn.modelOptions },
    scenes: { ...DEFAULT_SEGMENT_CONFIG.scenes, ...cfgIn.scenes },
  };
  if (cfgIn.augment === undefined && cfg.folders) cfg.augment = PAPER_AUGMENT;
  return cfg;
}

/**
 * A run's network for `data`: built for its classes and channels, its backbone (ImageNet) or all of its
 * weights loaded where the config says, and the training size checked against the network's strides.
 */
/** The run's network, freshly initialized, for its data's classes and channels. */
const newNetwork = (cfg: SegmentConfig, data: Pick<SegmentationData, 'classes' | 'inChannels'>): SegmentationNet =>
  createSegmentationModel(cfg.model, { ...cfg.modelOptions, numClasses: data.classes.length, inChannels: data.inChannels } as SegmentationModelOptions[SegmentationModelName]);

export function buildSegmentationModel(cfg: SegmentConfig, data: Pick<SegmentationData, 'classes' | 'inChannels' | 'inputSize'>, log: Logger): SegmentationNet {
  const model = newNetwork(cfg, data);
  if (cfg.backboneInit) {
    const n = loadBackbone(model, cfg.backboneInit);
    log(`backbone initialized from ${cfg.backboneInit} (${n} tensors)`);
  }
  if (cfg.init) {
    loadWeights(cfg.init, model);
    log(`initialized from ${cfg.init}`);
  }
  // Training batches must fit the network's strides; test images are padded to them (forwardAnySize).
  const [h, w] = data.inputSize;
  if (h % model.sizeMultiple || w % model.sizeMultiple) throw new Error(`segment: image size must be a multiple of ${model.sizeMultiple} for ${cfg.model}, got ${h}×${w}${cfg.folders ? ' (set --image-size or --crop)' : ''}`);
  return model;
}

/**
 * The run's class weights (kept), ENet's from the training labels, or null. With `shard`, this rank counts
 * its share of the files and the counts are summed over the ranks.
 */
export async function runClassWeights(cfg: Pick<SegmentConfig, 'classWeights'>, data: Pick<SegmentationData, 'classes' | 'trainLabelCounts'>, shard?: { rank: number; worldSize: number }): Promise<Tensor | null> {
  if (cfg.classWeights !== 'enet') return null;
  const counts = await data.trainLabelCounts(shard);
  return enetClassWeights(shard ? Float64Array.from(dist.sumAcrossRanks(Array.from(counts))) : counts, data.classes.length).keep();
}

/**
 * What a run trains on, as a function of a batch's images and labels: the network's paper loss (auxiliary and
 * guidance terms, class weights, ignored pixels) or, with a teacher, the student's final logits against the
 * teacher's (whose logits come in float32 outside autocast: the targets are not rounded). Under 'bfloat16'
 * the student's part runs in autocast.
 */
export function segmentationObjective(
  model: SegmentationNet,
  cfg: Pick<SegmentConfig, 'precision'>,
  weight: Tensor | null,
  teacher: SegmentationTeacher | null,
  /** The teacher's logits computed once (cacheTeacherLogits), looked up by the batch's sample indices. */
  cached: CachedLogits | null = null,
  log: Logger = () => {},
): (x: Tensor, y: Tensor, samples?: Int32Array) => Tensor {
  const inPrecision = (f: () => Tensor): Tensor => (cfg.precision === 'bfloat16' ? autocast(f) : f());
  if (!teacher) return (x, y) => inPrecision(() => model.trainingLoss(x, y, { weight }));
  return (x, y, samples) => {
    const z = (samples && cached?.rows(x, samples, log)) || teacher.logits(x);
    return inPrecision(() => teacher.loss(model.forward(x), z, y, weight));
  };
}

/** The run's teacher (SegmentConfig.teacher) for its data, logged; null without one. */
export function runTeacher(cfg: Pick<SegmentConfig, 'teacher' | 'folders'>, data: Pick<SegmentationData, 'classes' | 'inChannels'>, log: Logger): SegmentationTeacher | null {
  if (!cfg.teacher) return null;
  const teacher = loadSegmentationTeacher(cfg.teacher, { classes: data.classes, inChannels: data.inChannels, folders: Boolean(cfg.folders) });
  log(teacher.description);
  return teacher;
}

export async function trainSegmentation(cfgIn: Partial<SegmentConfig> & { resume?: string; stopAfterSteps?: number; profileSteps?: number }, log: Logger = (l) => console.log(l)): Promise<SegmentResult> {
  // profileSteps watches the run (step-profile.ts); it is no part of the recipe the checkpoint records.
  const { profileSteps = 0, ...recipe } = cfgIn;
  let cfg = resolveSegmentConfig(recipe);
  const resumed = cfgIn.resume ? readCheckpoint(cfgIn.resume) : null;
  if (resumed) {
    const before = resumed.state.config as SegmentConfig;
    if (!before?.scenes) throw new Error(`${cfgIn.resume} is not a checkpoint of \`tsvision segment\`${before ? `: a classifier's; continue it with tsvision train --resume ${cfgIn.resume}` : ''}`);
    // Checkpoints from before the model choice trained ENet with Adam.
    cfg = { ...DEFAULT_SEGMENT_CONFIG, ...before, outDir: cfgIn.outDir ?? before.outDir, threads: cfgIn.threads ?? before.threads };
  }
  if (cfg.threads > 0) setNumThreads(cfg.threads);
  manualSeed(cfg.seed);
  // Data parallel under `tsvision launch`: --batch-size stays the global batch, split evenly over the ranks,
  // each training on its shard with BatchNorm over the global batch (unless syncBatchNorm is false), so N
  // processes take the steps one would; rank 0 alone logs and writes.
  const world = dist.isInitialized() ? dist.getWorldSize() : 1;
  const rank = world > 1 ? dist.getRank() : 0;
  if (cfg.batchSize % world) throw new Error(`segment: batch size ${cfg.batchSize} is not divisible by the ${world} processes; each takes an equal share`);
  checkAccumulate(cfg.accumulate, cfg.batchSize / world);
  if (rank > 0) log = () => {};
  log(cfg.folders ? 'reading the image and mask folders' : 'building Fashion-MNIST scenes');
  const data = await segmentationData({ ...cfg, batchSize: cfg.batchSize / world }, { train: true });
  if (!data.train) throw new Error('unreachable: no training set');
  const { classes } = data;
  const trainLoader = world > 1 ? dist.shardLoader(data.train, { rank, worldSize: world }) : data.train;
  const testLoader = dist.evalShare(data.test);
  const valLoader = data.val && dist.evalShare(data.val);
  if (cfg.patience && !valLoader) throw new Error('segment: early stopping (patience) watches the validation mIoU: give a validation split (--val-split)');
  if ((cfg.folders?.unlabelled || cfg.scenes.unlabelled) && !cfg.teacher) throw new Error('segment: unlabelled images teach only through a teacher\'s logits: give a teacher (--teacher)');
  log(data.describe);
  const model = buildSegmentationModel(cfg, data, log);
  if (cfg.classWeights === 'enet' && cfg.folders) log('counting the training labels for the class weights');
  // Streamed masks are decoded to be counted: under launch each rank counts its share of the files and the
  // sums are added up, so every rank gets the whole set's weights for a 1/N share of the decoding.
  const countShard = world > 1 && cfg.folders ? { rank, worldSize: world } : undefined;
  const weight = await runClassWeights(cfg, data, countShard);
  const teacher = runTeacher(cfg, data, log);
  const stepsPerEpoch = cfg.limitBatches ? Math.min(cfg.limitBatches, trainLoader.length) : trainLoader.length;
  const opt = makeOptimizer(model.parameters(), { optimizer: cfg.optimizer, lr: cfg.lr, momentum: cfg.momentum, weightDecay: cfg.weightDecay, schedule: 'poly', warmupEpochs: 0 }, stepsPerEpoch * cfg.epochs, stepsPerEpoch);
  if (rank === 0) fs.mkdirSync(cfg.outDir, { recursive: true });
  const files = {
    checkpoint: path.join(cfg.outDir, 'checkpoint.safetensors'),
    weights: path.join(cfg.outDir, 'model.safetensors'),
    report: path.join(cfg.outDir, 'report.json'),
    curves: path.join(cfg.outDir, 'curves.png'),
    overlays: path.join(cfg.outDir, 'overlays.png'),
    best: path.join(cfg.outDir, 'best.safetensors'),
    ema: path.join(cfg.outDir, 'ema.safetensors'),
  };
  // Each epoch's trained weights, then its moving average (a tie goes to the trained weights), as train picks.
  const bestOf = (h: readonly SegmentEpoch[]): BestSegmentEpoch | null => {
    const candidates = h.flatMap((e) => [
      { epoch: e.epoch, valMIoU: e.valMIoU, testMIoU: e.testMIoU, ema: false },
      ...(e.emaValMIoU === undefined ? [] : [{ epoch: e.epoch, valMIoU: e.emaValMIoU, testMIoU: e.emaTestMIoU!, ema: true }]),
    ]);
    const b = firstBest(candidates, (c) => c.valMIoU);
    return b && { epoch: b.epoch, valMIoU: b.valMIoU!, testMIoU: b.testMIoU, weights: files.best, ...(b.ema ? { ema: true } : {}) };
  };
  let stoppedEarly: number | null = null;
  const result = (status: SegmentResult['status']): SegmentResult =>
    ({ status, history, final: history[history.length - 1] ?? null, classes, classWeights: weight?.toNumbers() ?? null, ...files, best: bestOf(history), stoppedEarly, ema: emaModel ? files.ema : null, model });
  log(`training ${cfg.model} (${model.numParameters().toLocaleString('en-US')} parameters) on ${classes.length} classes: ${cfg.epochs} epochs × ${stepsPerEpoch} batches of ${cfg.batchSize}${describeAccumulate(cfg.accumulate, cfg.batchSize / world)}, ${cfg.optimizer} lr ${cfg.lr}, ${getNumThreads()} threads${describePrecision(cfg.precision)}` + (weight ? `; class weights ${weight.toNumbers().map((w) => w.toFixed(2)).join(' ')}` : ''));
  const progress = new Progress(log, stepsPerEpoch, cfg.epochs, cfg.batchSize);
  let history: SegmentEpoch[] = [];
  let first = 0;
  // A checkpoint written mid-epoch (Ctrl-C, SIGTERM) records the batches done and the epoch's loss so far.
  let startBatch = 0;
  let carried = [0, 0];
  if (resumed && cfgIn.resume) {
    // Weights and the RNG as they were when it was saved; the optimizer's moments and the schedule too.
    applyCheckpoint(cfgIn.resume, resumed, model);
    if (resumed.optimizer) opt.loadStateDict(resumed.optimizer);
    history = (resumed.state.history as SegmentEpoch[]) ?? [];
    first = resumed.state.epoch;
    startBatch = resumed.state.batch ?? 0;
    carried = (resumed.state.epochSums as number[] | undefined) ?? carried;
    log(startBatch ? `resumed from ${cfgIn.resume}: epoch ${first + 1}, batch ${startBatch}` : `resumed from ${cfgIn.resume} after epoch ${first}`);
  }
  // From the weights training starts from (init, or the checkpoint's, whose masks a resumed run takes up).
  const masks = cfg.sparse ? (resumed && Object.keys(resumed.method).length ? MagnitudeMasks.fromStateDict(model, resumed.method) : MagnitudeMasks.topK(model, { sparsity: cfg.sparse.sparsity, skipFirst: cfg.sparse.skipFirst ?? true })) : null;
  if (masks && cfg.sparse) {
    masks.apply();
    log(`sparse training (DSD's S step): ${(100 * cfg.sparse.sparsity).toFixed(0)}% of each ${cfg.sparse.skipFirst === false ? '' : 'but the first '}conv layer's weights pruned by magnitude, masks held (${(100 * overallSparsity(model)).toFixed(1)}% of conv weights zero)`);
  }
  const methodState = (): Record<string, Tensor> => masks?.stateDict() ?? {};
  const stopAfterSteps = cfgIn.stopAfterSteps ?? 0;
  // Rank 0's weights everywhere, gradients averaged; statistics global.
  const ddp = world > 1 ? new dist.DistributedDataParallel(model) : null;
  const syncBn = ddp !== null && cfg.syncBatchNorm && dist.convertSyncBatchNorm(model) > 0;
  if (ddp) log(`data parallel: ${world} processes × ${cfg.batchSize / world} images${syncBn ? ', BatchNorm synchronized' : ''}`);
  // The average lives in a second network built as the first (its initialization drawn from a forked
  // generator, so that the run's random stream is not moved) and starts from the weights training starts
  // from; made after DDP and SyncBatchNorm have settled the model's tensors, which it pairs once.
  const emaModel = cfg.ema ? forkRng(cfg.seed, () => newNetwork(cfg, data)) : null;
  const ema = cfg.ema && emaModel ? new ExponentialMovingAverage(model, cfg.ema, emaModel) : null;
  if (ema && resumed) {
    if (!Object.keys(resumed.ema).length) throw new Error(`${cfgIn.resume} holds no moving average of the weights, though its run kept one`);
    ema.load(resumed.ema);
  }
  const crossReplicaSum = dist.rankSum();
  // The teacher's logits once per training image, where every image is fed alike (its logits are float32
  // outside autocast in any case); over the whole set on every rank, whose shard differs each epoch.
  const cached = teacher && (await cacheTeacherLogits({ model: teacher.model, logitsOf: teacher.logits, train: data.train, fixedInputs: !cfg.augment && !cfg.colorJitter, imagesSeen: stepsPerEpoch * (cfg.epochs - first) * (cfg.batchSize / world), perImage: classes.length * data.inputSize[0] * data.inputSize[1], enabled: cfg.teacher?.cacheTeacher !== false, log }));
  const objective = segmentationObjective(model, cfg, weight, teacher, cached, log);
  const interrupt = watchInterrupt(log, 'finishing this step, then saving a checkpoint');
  const stepProfile = new StepProfiler(profileSteps, rank === 0 ? stepProfileReport(cfg.outDir, log) : () => {});
  let interrupted = false;
  try {
    for (let epoch = first; epoch < cfg.epochs; epoch++, startBatch = 0) {
      model.train();
      progress.startEpoch();
      // The loss over every rank's images so far in this epoch (a resumed one goes on from the stop).
      let [lossSum, seen] = startBatch ? carried : [0, 0];
      const seenBefore = seen;
      let b = startBatch;
      let lastYield = Date.now();
      for await (const batch of trainLoader.epoch(epoch, { startBatch })) {
        if (b >= stepsPerEpoch) {
          disposeBatch(batch);
          break;
        }
        // Without synchronized BatchNorm, rank 0's statistics before every step, as PyTorch's DDP does.
        if (ddp && !syncBn) ddp.syncBuffers();
        stepProfile.beforeStep();
        opt.zeroGrad();
        const part = (start: number, length: number): PartLoss => ({ loss: objective(batch.x.narrow(0, start, length), batch.y.narrow(0, start, length), batch.samples.subarray(start, start + length)) });
        let { loss } = backwardInParts(batch.x.size(0), cfg.accumulate ?? 1, part);
        tidy(() => {
          ddp?.syncGradients();
          masks?.maskGradients();
          opt.clipAndStep(0);
          masks?.apply();
        });
        ema?.update(epoch * stepsPerEpoch + b);
        const n = batch.x.size(0) * world;
        disposeBatch(batch);
        stepProfile.afterStep();
        b++;
        // Every rank stops at the same step (Ctrl-C reaches them at different moments): one tiny all-reduce.
        let stop = interrupt.requested || (stopAfterSteps > 0 && epoch * stepsPerEpoch + b >= stopAfterSteps);
        if (ddp) {
          const [sum, stops] = dist.sumAcrossRanks([loss, stop ? 1 : 0]);
          [loss, stop] = [sum / world, stops > 0];
        }
        if (!Number.isFinite(loss)) throw new NonFiniteLossError(`segment: loss became ${loss} at epoch ${epoch + 1}, batch ${b}; try a lower --lr`);
        lossSum += loss * n;
        seen += n;
        progress.update(epoch, b, seen - seenBefore, `loss ${(lossSum / seen).toFixed(4)}`);
        // Let the event loop breathe (Ctrl-C and SIGTERM arrive there, prefetch runs) every 200 ms: a job
        // system's grace period before SIGKILL may be as short as 10 s.
        if (Date.now() - lastYield > 200) {
          await new Promise((r) => setImmediate(r));
          lastYield = Date.now();
        }
        if (stop) {
          interrupted = true;
          // Where the step left everything (weights, optimizer, RNG, the epoch's loss so far): --resume
          // takes up the next batch and ends as the uninterrupted run would.
          if (rank === 0) saveCheckpoint(files.checkpoint, model, opt.stateDict(), { epoch, batch: b, step: epoch * stepsPerEpoch + b, config: cfg, history, classes, epochSums: [lossSum, seen] }, methodState(), ema?.shadow ?? {});
          break;
        }
      }
      stepProfile.finish(); // before the evaluation, or at a stop
      if (interrupted) {
        log(`saved ${files.checkpoint} at epoch ${epoch + 1}, batch ${b}; continue with: tsvision segment --resume ${files.checkpoint}`);
        return result('interrupted');
      }
      const seconds = progress.seconds;
      // Without synchronized BatchNorm each rank's statistics followed its own shard: rank 0's everywhere.
      if (ddp && !syncBn) ddp.syncBuffers();
      const ev = await evaluateSegmentation(model, testLoader, classes.length, weight, cfg.limitBatches, { crossReplicaSum });
      const vev = valLoader && (await evaluateSegmentation(model, valLoader, classes.length, weight, cfg.limitBatches, { crossReplicaSum }));
      // The average scored on the same images (every rank holds the same average: the same steps).
      const eev = emaModel && (await evaluateSegmentation(emaModel, testLoader, classes.length, weight, cfg.limitBatches, { crossReplicaSum }));
      const evev = emaModel && valLoader && (await evaluateSegmentation(emaModel, valLoader, classes.length, weight, cfg.limitBatches, { crossReplicaSum }));
      const rec: SegmentEpoch = {
        epoch: epoch + 1,
        trainLoss: lossSum / seen,
        testLoss: ev.loss,
        testMIoU: ev.mIoU,
        testPixelAccuracy: ev.pixelAccuracy,
        testIoU: ev.iou,
        seconds,
        samplesPerSecond: seen / Math.max(seconds, 1e-3),
        ...(vev ? { valLoss: vev.loss, valMIoU: vev.mIoU, valPixelAccuracy: vev.pixelAccuracy } : {}),
        ...(eev ? { emaTestMIoU: eev.mIoU, emaTestPixelAccuracy: eev.pixelAccuracy } : {}),
        ...(evev ? { emaValMIoU: evev.mIoU } : {}),
      };
      history.push(rec);
      const val = vev ? `val mIoU ${(100 * vev.mIoU).toFixed(2)}%, ` : '';
      const avg = eev ? `, EMA test mIoU ${(100 * eev.mIoU).toFixed(2)}%` : '';
      log(`epoch ${epoch + 1}/${cfg.epochs}: train loss ${rec.trainLoss.toFixed(4)}, test loss ${rec.testLoss.toFixed(4)}, ${val}test mIoU ${(100 * rec.testMIoU).toFixed(2)}%, pixel accuracy ${(100 * rec.testPixelAccuracy).toFixed(2)}%${avg} (${fmtTime(seconds)}, ${rec.samplesPerSecond.toFixed(0)} samples/s)`);
      const best = bestOf(history);
      if (patienceSpent(best, rec.epoch, cfg.patience, cfg.epochs)) stoppedEarly = rec.epoch;
      if (rank === 0) {
        // The best epoch's weights before the checkpoint that records it (as train does).
        if (best?.epoch === rec.epoch) {
          saveWeights(files.best, best.ema && emaModel ? emaModel : model, { config: cfg, classes, epoch: rec.epoch, ...(best.ema ? { ema: true } : {}) });
          log(`new best validation mIoU${best.ema ? ' (the moving average)' : ''}: ${files.best}`);
        }
        saveCheckpoint(files.checkpoint, model, opt.stateDict(), { epoch: epoch + 1, batch: 0, step: (epoch + 1) * stepsPerEpoch, config: cfg, history, classes }, methodState(), ema?.shadow ?? {});
        const method = masks ? { method: { kind: 'sparse', overallSparsity: overallSparsity(model), layers: masks.report() } } : {};
        writeFileAtomic(files.report, JSON.stringify({ model: cfg.model, config: cfg, parameters: model.numParameters(), classes, classWeights: weight?.toNumbers() ?? null, history, ...(best ? { best } : {}), ...(stoppedEarly ? { stoppedEarly } : {}), ...method }, null, 2) + '\n');
        const withVal = history.some((h) => h.valMIoU !== undefined);
        await savePlotsPng(files.curves, [
          { title: teacher ? `Loss (train: ${cfg.teacher?.temperature ? 'distillation' : 'mimic L2'}${cfg.teacher?.labelWeight ? ' + labels' : ''}; test: cross-entropy)` : 'Loss', xLabel: 'epoch', yLabel: teacher ? 'loss' : 'weighted cross-entropy', series: [{ name: 'train', points: history.map((h) => [h.epoch, h.trainLoss]) }, ...(withVal ? [{ name: 'validation', points: history.map((h): [number, number] => [h.epoch, h.valLoss ?? NaN]) }] : []), { name: 'test', points: history.map((h) => [h.epoch, h.testLoss]) }] },
          { title: 'Test mIoU and pixel accuracy', xLabel: 'epoch', yLabel: '%', series: [{ name: 'mIoU', points: history.map((h) => [h.epoch, 100 * h.testMIoU]) }, ...(withVal ? [{ name: 'validation mIoU', points: history.map((h): [number, number] => [h.epoch, 100 * (h.valMIoU ?? NaN)]) }] : []), { name: 'pixel accuracy', points: history.map((h) => [h.epoch, 100 * h.testPixelAccuracy]) }, ...(emaModel ? [{ name: 'EMA mIoU', points: history.map((h): [number, number] => [h.epoch, 100 * (h.emaTestMIoU ?? NaN)]) }] : [])] },
        ]);
        await writeOverlays(model, data, files.overlays, classes);
      }
      if (stoppedEarly && best) {
        log(`no better validation mIoU for ${cfg.patience} epoch${cfg.patience === 1 ? '' : 's'} (best: epoch ${best.epoch}, ${(100 * best.valMIoU).toFixed(2)}%): stopping early`);
        break;
      }
    }
  } finally {
    stepProfile.close();
    interrupt.dispose();
    cached?.dispose();
    masks?.dispose();
  }
  if (rank === 0) {
    saveWeights(files.weights, model, { config: cfg, classes });
    if (emaModel) saveWeights(files.ema, emaModel, { config: cfg, classes });
  }
  return result('finished');
}

/** Test loss (weighted as in training), mIoU, pixel accuracy and per-class IoU; at several scales, mirrored or in sliding windows if asked. */
/** One test image's own scores (evaluateSegmentation's `perImage`): its place in the loader's order, mIoU, pixel accuracy. */
export interface ImageScore {
  index: number;
  mIoU: number;
  pixelAccuracy: number;
}

/** The network's output for a batch as evaluation takes it: logits, or averaged probabilities over scales, mirrors, windows. */
function evaluationOutput(model: SegmentationForward & Module, x: Tensor, inference: MultiScaleOptions): { out: Tensor; probabilities: boolean } {
  const multi = (inference.scales ?? [1]).join() !== '1' || inference.flip === true || inference.crop !== undefined;
  return { out: multi ? predictMultiScale(model, x, inference) : forwardAnySize(model, x), probabilities: multi };
}

export async function evaluateSegmentation(model: SegmentationForward & Module, loader: DataLoader, numClasses: number, weight: Tensor | null, limitBatches = 0, inference: MultiScaleOptions & { crossReplicaSum?: (t: Tensor) => Tensor; perImage?: boolean; calibration?: boolean; progress?: (done: number, total: number) => void } = {}): Promise<{ loss: number; mIoU: number; pixelAccuracy: number; iou: number[]; confusion: number[][]; images?: ImageScore[]; calibration?: Calibration }> {
  const meter = new SegmentationMeter(numClasses);
  // Per pixel (ignored ones left out); one process's pixels only, so not under data parallelism.
  if (inference.calibration && inference.crossReplicaSum) throw new Error('evaluateSegmentation: calibration is counted in one process, not across ranks');
  const calibration = inference.calibration ? new CalibrationMeter() : null;
  const images: ImageScore[] = [];
  let lossSum = 0;
  let n = 0;
  await evalPass([model], loader, { limitBatches, progress: inference.progress }, (b) => {
    const ce = { weight: weight ?? undefined, ignoreIndex: IGNORE_LABEL };
    // Several scales give averaged probabilities; their loss is the NLL of those.
    const { out, probabilities } = evaluationOutput(model, b.x, inference);
    const loss = probabilities ? nllLoss(out.clamp(1e-12, 1).log(), b.y, ce) : crossEntropy(out, b.y, ce);
    if (inference.perImage) {
      const s = perImageScores(out.argmax(1), b.y, numClasses, IGNORE_LABEL);
      s.mIoU.forEach((mIoU, i) => images.push({ index: n + i, mIoU, pixelAccuracy: s.pixelAccuracy[i] }));
    }
    lossSum += loss.item() * b.x.size(0);
    n += b.x.size(0);
    meter.update(out, b.y);
    if (calibration) calibration.update(...labelledPixels(probabilities ? out : softmax(out, 1), b.y, IGNORE_LABEL));
  });
  // Data parallel: each rank scored its shard; the sums make the score of the whole test set.
  if (inference.crossReplicaSum) {
    meter.reduce(inference.crossReplicaSum);
    [lossSum, n] = tidy(() => inference.crossReplicaSum!(fromArray(Float64Array.of(lossSum, n))).toNumbers());
  }
  const r = { loss: lossSum / Math.max(n, 1), mIoU: meter.meanIoU(), pixelAccuracy: meter.pixelAccuracy(), iou: meter.iou(), confusion: meter.confusion(), ...(inference.perImage ? { images } : {}), ...(calibration ? { calibration: calibration.result() } : {}) };
  meter.dispose();
  return r;
}

/**
 * Loads a classification ResNet's weights (the classifier `fc.*` left out) into a segmentation network's
 * backbone; every backbone tensor must be there with its shape. The dilation the papers add changes no
 * weight, so ImageNet weights fit the atrous backbone as they are. Returns how many tensors were loaded.
 */
export function loadBackbone(model: SegmentationNet, file: string): number {
  const backbone = (model as { backbone?: unknown }).backbone;
  if (!(backbone instanceof ResNet)) throw new Error(`${model.constructor.name} has no ResNet backbone to initialize (DeepLab-V3, PSPNet and ICNet have)`);
  const { weights } = readWeights(file);
  const sd = Object.fromEntries(Object.entries(weights).filter(([k]) => !k.startsWith('fc.')));
  fitWeights(backbone, sd, `backbone weights ${file} do not fit the ${model.constructor.name} backbone`);
  return Object.keys(sd).length;
}

/** Whether a checkpoint's config is one `trainSegmentation` wrote (they name their scenes). */
export const isSegmentConfig = (config: unknown): config is SegmentConfig => typeof config === 'object' && config !== null && 'scenes' in config;

/**
 * A `segment` checkpoint (or its model.safetensors beside one) on its run's test data, or on another test
 * folder of a folder-trained run, at the scales and mirroring asked.
 */
export interface SegmentEvalOptions extends MultiScaleOptions {
  /** Model options over the recorded ones, for choices that leave the weights as they are (ICNet's `output`). */
  modelOptions?: Record<string, unknown>;
  /** Another test folder (runs trained on folders). */
  testDir?: string;
  limitBatches?: number;
  /** Evaluate the network optimized for inference, as Predictor runs it (implied by a precision other than float32). */
  optimize?: boolean;
  /** 'bfloat16': the score of the network as `predict --bf16` runs it. */
  precision?: InferencePrecision;
  /** Also score every test image alone and return the `worst` with the lowest mIoU (their files where they have one). */
  worst?: number;
  /** With `worst`: draw them (image · ground truth · prediction, a row each) into this PNG. */
  worstPng?: string;
  /** Called after each batch with the images done and the test set's size. */
  progress?: (done: number, total: number) => void;
  /** Also the calibration of the per-pixel probabilities (ECE, MCE; ignored pixels left out). */
  calibration?: boolean;
}

/** A test image that `evaluateSegmentCheckpoint`'s `worst` found: its scores, and its file for folders. */
export interface WorstImage extends ImageScore {
  file: string | null;
}

export async function evaluateSegmentCheckpoint(file: string, o: SegmentEvalOptions = {}, c: CheckpointContents = readCheckpoint(file)): Promise<{ model: SegmentationModelName; classes: readonly string[]; count: number; loss: number; mIoU: number; pixelAccuracy: number; iou: number[]; confusion: number[][]; worst?: WorstImage[]; calibration?: Calibration }> {
  if (!isSegmentConfig(c.state.config)) throw new Error(`${file} is not a checkpoint of \`tsvision segment\``);
  const cfg: SegmentConfig = { ...DEFAULT_SEGMENT_CONFIG, ...c.state.config };
  if (o.testDir && !cfg.folders) throw new Error(`${file} was trained on the scenes (normalized as Fashion-MNIST); --test-dir needs a run trained on folders`);
  const folders = cfg.folders && o.testDir ? { ...cfg.folders, test: o.testDir, testSplit: undefined } : cfg.folders;
  const data = await segmentationData({ ...cfg, folders }, { train: false });
  try {
    const model = createSegmentationModel(cfg.model, { ...cfg.modelOptions, ...o.modelOptions, numClasses: data.classes.length, inChannels: data.inChannels } as SegmentationModelOptions[SegmentationModelName]);
    fitWeights(model, c.model, `checkpoint ${file} does not fit the model`);
    const precision = o.precision ?? 'float32';
    // Any input the network takes shows which convolution feeds which BatchNorm.
    const side = model.sizeMultiple * Math.ceil(64 / model.sizeMultiple);
    const net = o.optimize || precision !== 'float32' ? Object.assign(tidy(() => optimizeForInference(model, zeros([1, data.inChannels, side, side]), { precision })), { sizeMultiple: model.sizeMultiple }) : model;
    const { images, ...r } = await evaluateSegmentation(net, data.test, data.classes.length, null, o.limitBatches ?? 0, { ...o, perImage: Boolean(o.worst) });
    if (!o.worst || !images) return { model: cfg.model, classes: data.classes, count: data.test.dataset.length, ...r };
    // Lowest mIoU first; an image with every pixel ignored (NaN) has nothing to show.
    const test = data.test.dataset as Dataset<PixelSample> | BatchSource;
    const worst = images.filter((s) => !Number.isNaN(s.mIoU)).sort((a, b) => a.mIoU - b.mIoU || a.index - b.index).slice(0, o.worst).map((s): WorstImage => ({ ...s, file: sampleFile(test, s.index) }));
    if (o.worstPng && worst.length) await drawWorst(net, data, test, worst, o, o.worstPng);
    return { model: cfg.model, classes: data.classes, count: data.test.dataset.length, ...r, worst };
  } finally {
    data.dispose();
  }
}

/**
 * The worst test images, each predicted again alone as evaluation predicted it, as overlay rows. Images of
 * other sizes than the first are shown resized to its size (nearest neighbour; the scores are their own).
 */
async function drawWorst(net: SegmentationForward & Module, data: SegmentationData, test: Dataset<PixelSample> | BatchSource, worst: readonly WorstImage[], inference: MultiScaleOptions, file: string): Promise<void> {
  const samples = await Promise.all(worst.map((w) => pixelSampleAt(test, w.index)));
  const [h, w] = samples[0].y.shape;
  const [images, truth, pred] = tidy(() =>
    noGrad(() => {
      const rows = samples.map((s) => {
        const batch = { x: s.x.unsqueeze(0), y: s.y.unsqueeze(0) };
        const { x } = data.transform(batch, { epoch: 0, index: 0, rng: Rng.from(0) });
        const p = evaluationOutput(net, x, inference).out.argmax(1);
        // [1, C, H, W] at the first image's size; class maps [1, H, W] through a channel of their own.
        const fit = (t: Tensor): Tensor => (t.shape.slice(-2).join() === `${h},${w}` ? t : interpolate(t.float(), { size: [h, w], mode: 'nearest' }).to(t.dtype));
        const fitMap = (t: Tensor): Tensor => fit(t.unsqueeze(1)).squeeze(1);
        return [fit(batch.x), fitMap(where(batch.y.eq(IGNORE_LABEL), 0, batch.y)), fitMap(p)];
      });
      return [0, 1, 2].map((j) => keep(cat(rows.map((r) => r[j]), 0)));
    }),
  );
  try {
    const scale = Math.min(3, Math.max(1, Math.round(192 / h)));
    await saveSegmentationOverlays(file, images, truth, pred, { classes: data.classes, scale });
  } finally {
    for (const t of [images, truth, pred, ...samples.flatMap((s) => [s.x, s.y])]) t.dispose();
  }
}

async function writeOverlays(model: SegmentationNet, data: SegmentationData, file: string, classes: readonly string[]): Promise<void> {
  const samples = await data.overlaySamples(6);
  const [truth, pred] = tidy(() =>
    noGrad(() => {
      const wasTraining = model.training;
      model.eval();
      // The loaders' own transform (it draws no random numbers, so any context serves).
      const { x } = data.transform(samples, { epoch: 0, index: 0, rng: Rng.from(0) });
      const pred = forwardAnySize(model, x).argmax(1);
      model.train(wasTraining);
      // Ignored pixels (255) show as the image, as the background does.
      return [where(samples.y.eq(IGNORE_LABEL), 0, samples.y).keep(), pred.keep()];
    }),
  );
  try {
    // Small scenes enlarged (at most 3×, about 192 px a side); large images as they are.
    const scale = Math.min(3, Math.max(1, Math.round(192 / samples.x.size(2))));
    await saveSegmentationOverlays(file, samples.x, truth, pred, { classes, scale });
  } finally {
    for (const t of [samples.x, samples.y, truth, pred]) t.dispose();
  }
}
