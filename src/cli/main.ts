#!/usr/bin/env node
// The tsvision command line: train, dsd, mimic, prune, segment, eval, export, predict, serve, summary, reproduce, info.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { Tensor, engineInfo, getNumThreads, keep, noGrad, randn, setNumThreads, stack, tensor, tidy } from '../torch';
import { ModelName, createClassifier, createModel, describeModel, isModelName, listModels } from '../models/registry';
import { formatSummary, summary } from '../metrics/summary';
import { formatProfile, profileLayers } from '../metrics/profile';
import { OpProfile, formatOpProfile, profileOps } from '../torch/profiler';
import { PROFILE_AFTER_STEPS } from '../train/step-profile';
import { DEFAULT_CONFIG, NonFiniteLossError, TrainConfig, evaluate, train } from '../train/trainer';
import { LR_FIND_DEFAULTS } from '../train/lr-find';
import { EXP_DECAY, OPTIMIZER_NAMES, SCHEDULE_NAMES } from '../train/optimizers';
import { DataSpec, FolderResize, imageSize, makeLoaders, withoutTransferSet } from '../train/datasets';
import { CheckpointContents, RunRecord, fitWeights, readWeights, saveWeights } from '../train/checkpoint';
import { REPRODUCTIONS, ReproductionName, runReproduction } from '../reproduce';
import { DSD_DEFAULTS, runDsd, runSegmentDsd } from '../methods/dsd';
import { MIMIC_DEFAULTS, SEGMENT_MIMIC_DEFAULTS, isSegmentationRun, runMimic, runSegmentMimic } from '../methods/mimic-run';
import { FILTER_PRUNE_DEFAULTS, runFilterPrune } from '../methods/prune-run';
import { countZeroParameters } from '../methods/prune';
import { destroyProcessGroup, initFromEnvironment, launch } from '../distributed';
import { PhaseInterrupted, isLead } from '../methods/phases';
import { interruptExitCode } from '../train/progress';
import { STOP_SIGNALS } from '../util/signals';
import { DEFAULT_SEGMENT_CONFIG, PAPER_AUGMENT, SEGMENT_RECIPES, SegmentConfig, evaluateSegmentCheckpoint, isSegmentConfig, trainSegmentation } from '../train/segment';
import { SegmentationModelName, SegmentationModelOptions, createSegmentationModel, describeSegmentationModel, isSegmentationModelName, listSegmentationModels } from '../models/registry';
import { measureLatency } from '../metrics/speed';
import { InferencePrecision, optimizeForInference } from '../infer/optimize';
import { ColorJitterOptions, JitterAmount, RANDOM_RESIZED_CROP_SCALE, Rng, checkColorJitter } from '../data';
import { gradCam } from '../infer/gradcam';
import { saveConfusionPng } from '../report/confusion';
import { ReliabilityUnit, saveReliabilityPng } from '../report/calibration';
import { saveMistakesPng } from '../report/mistakes';
import { classificationReport, mostConfused } from '../metrics/classification';
import { sampleFile, sampleImage } from '../data/inspect';
import { writeFileAtomic } from '../util/fs';
import type { OnnxExport, OnnxExportOptions, ValueInfoProto } from '../export';
import type { Int8Export } from './int8';
import type { CalibrationMethod } from '../export/quantize';
import type { TemperatureFit } from '../methods/calibrate';
import type { Calibration } from '../metrics/calibration';
import type { Module } from '../nn';

const num = (name: string, { int = false, min = -Infinity, max = Infinity } = {}) => (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || (int && !Number.isInteger(n)) || n < min || n > max) {
    throw new InvalidArgumentError(`${name} must be ${int ? 'an integer' : 'a number'}${min > -Infinity ? ` >= ${min}` : ''}${max < Infinity ? ` and <= ${max}` : ''}, got '${v}'`);
  }
  return n;
};

/** --patience and --val-seed act on the validation split: without --val-split they would do nothing. */
function needsValSplit(o: { patience?: number; valSeed?: number; valSplit?: number }, score: 'accuracy' | 'mIoU'): void {
  if (o.patience && !o.valSplit) throw new InvalidArgumentError(`--patience watches the validation ${score}: give --val-split too`);
  if (o.valSeed !== undefined && !o.valSplit) throw new InvalidArgumentError('--val-seed draws the validation split: give --val-split too');
}

const VAL_SEED_HELP = 'draw the validation split by this seed instead of --seed: runs of different seeds then hold out the same images (for sweeps over seeds)';
const MASK_NAME_HELP = 'mask file name = image name with from replaced by to, .png (Cityscapes: _leftImg8bit=_gtFine_labelIds)';
const maskNameArg = (v: string): [string, string] => {
  const i = v.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError(`--mask-name takes from=to, got '${v}'`);
  return [v.slice(0, i), v.slice(i + 1)];
};
const LABEL_MAP_HELP = "mask value → class, others ignored: 'cityscapes' (label ids → the 19 train ids) or a JSON file {\"7\": 0, …}";
const labelMapArg = (v: string): 'cityscapes' | Record<number, number> => {
  if (v === 'cityscapes') return v;
  try {
    return JSON.parse(fs.readFileSync(v, 'utf8')) as Record<number, number>;
  } catch (e) {
    throw new InvalidArgumentError(`--label-map takes 'cityscapes' or a JSON file: ${(e as Error).message}`);
  }
};

const fraction = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!(n >= 0 && n < 1)) throw new InvalidArgumentError(`${name} must be a fraction in [0, 1), got '${v}'`);
  return n;
};

/** HxW or N (square) as [H, W]. */
const sizeArg = (name: string) => (v: string): [number, number] => {
  const m = /^(\d+)(?:x(\d+))?$/.exec(v);
  if (!m || Number(m[1]) < 1 || Number(m[2] ?? 1) < 1) throw new InvalidArgumentError(`${name} takes HxW or N, got '${v}'`);
  return [Number(m[1]), Number(m[2] ?? m[1])];
};

/** Comma-separated numbers: 0.485,0.456,0.406. */
const numList = (name: string) => (v: string): number[] => v.split(',').map(num(name));
/** Input scales for multi-scale segmentation (DeepLab-V3 §4.3), e.g. 0.5,0.75,1,1.25,1.5,1.75. */
const scalesOption = '--scales <list>';
const scalesArg = (v: string): number[] => {
  const xs = numList('--scales')(v);
  if (xs.some((x) => !(x > 0))) throw new InvalidArgumentError(`--scales takes positive numbers separated by commas, got '${v}'`);
  return xs;
};

/** Sliding-window segmentation (PSPNet's evaluation): --slide 713x713, optionally --stride 476x476. */
const slideOptions = (cmd: Command): Command =>
  cmd
    .option('--slide <HxW>', 'segmentation: the network sees windows of H×W slid over each image at its own size, probabilities averaged where they overlap (PSPNet\'s evaluation, e.g. 713x713)', sizeArg('--slide'))
    .option('--stride <HxW>', 'segmentation, with --slide: step between windows (default 2/3 of the window)', sizeArg('--stride'))
    .option('--windows-per-call <n>', 'segmentation, with --slide: windows (mirrors included) through the network at once (default 4; lower it if memory is short)', num('--windows-per-call', { int: true, min: 1 }));
/** --slide/--stride as MultiScaleOptions' crop and stride, refusing a stride without windows or one that skips pixels. */
const slideArgs = (o: { slide?: [number, number]; stride?: [number, number]; windowsPerCall?: number }): { crop?: [number, number]; stride?: [number, number]; windowsPerCall?: number } => {
  if (o.stride && !o.slide) throw new InvalidArgumentError('--stride sets the step between --slide windows: give --slide too');
  if (o.windowsPerCall !== undefined && !o.slide) throw new InvalidArgumentError('--windows-per-call batches --slide windows: give --slide too');
  if (o.slide && o.stride && (o.stride[0] > o.slide[0] || o.stride[1] > o.slide[1])) throw new InvalidArgumentError(`--stride ${o.stride.join('x')} would skip pixels between --slide ${o.slide.join('x')} windows`);
  return { crop: o.slide, stride: o.stride, windowsPerCall: o.windowsPerCall };
};

/**
 * --color-jitter b,c,s,h: torchvision's ColorJitter(brightness, contrast, saturation, hue); 1 to 4 values,
 * those left out are 0 (off), so 0.4,0.4,0.4 is the common ColorJitter(0.4, 0.4, 0.4). A value lo:hi is
 * an explicit range, as ColorJitter's (lo, hi) tuples: 0.8:1.5,0,0,-0.05:0.05.
 */
const colorJitterOption = '--color-jitter <b,c,s,h>';
const colorJitterHelp = (when: string): string =>
  `random brightness, contrast, saturation, hue per training image as torchvision's ColorJitter, e.g. 0.4,0.4,0.4,0.1, or ranges lo:hi such as 0.8:1.5 (missing values: 0, off; hue within ±0.5; grey images: brightness and contrast only), ${when}`;
const colorJitterArg = (v: string): ColorJitterOptions => {
  const parts = v.split(',');
  const bad = (): never => {
    throw new InvalidArgumentError(`--color-jitter takes 1 to 4 numbers or ranges lo:hi (b,c,s,h) separated by commas, got '${v}'`);
  };
  if (parts.length > 4) bad();
  const value = (p: string): JitterAmount => {
    const xs = p.split(':').map((q) => (q.trim() === '' ? NaN : Number(q)));
    if (xs.length > 2 || xs.some((x) => !Number.isFinite(x))) bad();
    return xs.length === 2 ? [xs[0], xs[1]] : xs[0];
  };
  const [brightness, contrast = 0, saturation = 0, hue = 0] = parts.map(value);
  const o: ColorJitterOptions = { brightness, contrast, saturation, hue };
  try {
    return checkColorJitter(o);
  } catch (e) {
    throw new InvalidArgumentError(`--color-jitter: ${(e as Error).message.replace(/^colorJitter: /, '')} (in '${v}')`);
  }
};

const modelName = (v: string): ModelName => {
  if (!isModelName(v)) throw new InvalidArgumentError(`unknown model '${v}'; known: ${listModels().join(', ')}`);
  return v;
};

/** --opt key=value (repeatable) → model options; numbers and booleans are parsed. */
const collectOpt = (v: string, acc: Record<string, unknown>): Record<string, unknown> => {
  const i = v.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError(`--opt takes key=value, got '${v}'`);
  const key = v.slice(0, i);
  const raw = v.slice(i + 1);
  // Comma-separated numbers are a list: --opt channels=16,16,32,32 (what filter pruning leaves).
  const list = raw.includes(',') && raw.split(',').every((x) => x.trim() !== '' && Number.isFinite(Number(x))) ? raw.split(',').map(Number) : null;
  acc[key] = list ?? (raw === 'true' ? true : raw === 'false' ? false : Number.isFinite(Number(raw)) ? Number(raw) : raw);
  return acc;
};

/** The test share of a lone --train-dir: a fifth of every class. */
const DEFAULT_TEST_SPLIT = 0.2;

/** Where the test images come from: --test-dir, or --test-split of --train-dir; `layout` names the folders. */
function checkTestSource(o: { trainDir?: string; testDir?: string; testSplit?: number }, layout: string): void {
  if (o.testDir && !o.trainDir) throw new InvalidArgumentError(`--test-dir needs --train-dir (${layout})`);
  if (o.testSplit && !o.trainDir) throw new InvalidArgumentError('--test-split holds out part of --train-dir: give --train-dir');
  if (o.testDir && o.testSplit) throw new InvalidArgumentError('give --test-dir or --test-split, not both: the test images come from one place');
}

function dataSpec(o: { trainDir?: string; testDir?: string; testSplit?: number; imageSize: number; channels: number; normalize?: 'imagenet'; resize?: FolderResize; cropScale?: number; labels?: string; testLabels?: string; labelled?: number }): DataSpec {
  const labelled = o.labelled ? { labelled: o.labelled } : {};
  checkTestSource(o, 'folders of class sub-folders');
  if (o.labels && !o.trainDir) throw new InvalidArgumentError('--labels lists the images of --train-dir: give --train-dir too');
  if (o.testLabels && !o.testDir) throw new InvalidArgumentError('--test-labels lists the images of --test-dir: give --test-dir too');
  if (o.cropScale !== undefined && o.resize !== 'crop') throw new InvalidArgumentError('--crop-scale sizes the random crops of --resize crop: give --resize crop too');
  if (!o.trainDir) {
    if (o.normalize) throw new InvalidArgumentError('--normalize applies to image folders (--train-dir); Fashion-MNIST is normalized with its own statistics');
    if (o.resize) throw new InvalidArgumentError('--resize applies to image folders (--train-dir); Fashion-MNIST images are all 28×28');
    return { kind: 'fashion-mnist', ...labelled };
  }
  if (o.channels !== 1 && o.channels !== 3) throw new InvalidArgumentError(`--channels must be 1 or 3, got ${o.channels}`);
  const test = o.testDir ? { test: o.testDir } : { testSplit: o.testSplit ?? DEFAULT_TEST_SPLIT };
  return {
    kind: 'image-folder',
    train: o.trainDir,
    ...test,
    size: o.imageSize,
    channels: o.channels,
    ...(o.normalize ? { normalize: o.normalize } : {}),
    ...(o.resize === 'crop' ? { resize: o.resize, ...(o.cropScale !== undefined ? { cropScale: o.cropScale } : {}) } : {}),
    ...(o.labels ? { labels: o.labels } : {}),
    ...(o.testLabels ? { testLabels: o.testLabels } : {}),
    ...labelled,
  };
}

/** predict's and explain's --resize: how images reach the network's size, overriding the run's record. */
const resizeOption = (): Option =>
  new Option('--resize <how>', 'classifiers: \'squash\' the whole image to the size, or \'crop\' its centre 87.5% keeping the aspect ratio (torchvision\'s evaluation; default: as the run evaluated, plain weights squash)').choices(['squash', 'crop']);

const program = new Command('tsvision')
  .description('Efficient deep vision networks in TypeScript on libtorch')
  .showHelpAfterError('(run with --help for usage)');

/** The training options `train`, `dsd` and `mimic` share (every phase of dsd and mimic uses them). */
function addRecipeOptions(cmd: Command, d: { lr: number; optimizer: string; weightDecay: number; epochs?: number } = DEFAULT_CONFIG): Command {
  if (d.epochs !== undefined) cmd.option('-e, --epochs <n>', 'passes over the training set', num('--epochs', { int: true, min: 1 }), d.epochs);
  return cmd
    .option('--opt <key=value>', 'model option, repeatable (e.g. --opt alpha=0.5 --opt se=true)', collectOpt, {})
    .option('--train-dir <dir>', 'training images as <dir>/<class>/<image> (PNG/JPEG), instead of Fashion-MNIST')
    .option('--test-dir <dir>', 'test images as <dir>/<class>/<image>; without it, --test-split of --train-dir is the test set')
    .option('--test-split <f>', `without --test-dir: hold out this share of every class of --train-dir as the test set, the same images whatever --seed (default ${DEFAULT_TEST_SPLIT})`, fraction('--test-split'))
    .option('--labels <csv>', 'the classes of --train-dir\'s images in a CSV file (a header row, then image file and label per row; files relative to --train-dir, a bare id may leave out .png/.jpg) instead of class sub-folders')
    .option('--test-labels <csv>', 'the same for --test-dir\'s images (labels among the training ones)')
    .option('--labelled <n>', 'keep the labels of only n training images, the same share of every class and the same images in every run asking n (a scarce-label experiment: `mimic --unlabelled-rest` gives the rest to the student by mimicry through its teacher)', num('--labelled', { int: true, min: 1 }))
    .option('--image-size <px>', 'resize image-folder images to this square size', num('--image-size', { int: true, min: 8 }), 32)
    .addOption(new Option('--resize <how>', 'image folders: \'squash\' any shape to the square (default), or \'crop\' keeping the aspect ratio — evaluated on the centre 87.5%, trained with --augment on random resized crops (torchvision\'s ImageNet recipe)').choices(['squash', 'crop']))
    .option('--crop-scale <min>', `with --resize crop and --augment: the smallest random crop's share of the image's area (default ${RANDOM_RESIZED_CROP_SCALE[0]}; 0.25–0.35 suits small images)`, (v: string): number => {
      const n = Number(v);
      if (!(n > 0 && n <= 1)) throw new InvalidArgumentError(`--crop-scale must be a share of the area in (0, 1], got '${v}'`);
      return n;
    })
    .addOption(new Option('--normalize <stats>', 'image folders: normalize with ImageNet\'s mean and std, as torchvision\'s pretrained weights expect (default: scale to [-1, 1])').choices(['imagenet']))
    .option('--channels <n>', 'image-folder channels: 1 (grey) or 3 (RGB)', num('--channels', { int: true }), 3)
    .option('-b, --batch-size <n>', 'samples per optimizer step', num('--batch-size', { int: true, min: 1 }), DEFAULT_CONFIG.batchSize)
    .option('--lr <rate>', 'peak learning rate', num('--lr', { min: 0 }), d.lr)
    .addOption(new Option('--optimizer <name>', OPTIMIZER_HELP).choices(OPTIMIZER_NAMES).default(d.optimizer))
    .option('--momentum <m>', 'momentum of sgd and rmsprop', num('--momentum', { min: 0 }), DEFAULT_CONFIG.momentum)
    .option('--weight-decay <wd>', 'L2 penalty (decoupled for adamw)', num('--weight-decay', { min: 0 }), d.weightDecay)
    .addOption(new Option('--schedule <name>', `learning-rate schedule over all steps (step: ×0.1 at each third; exp: ×--decay-rate every --decay-epochs epochs)`).choices(SCHEDULE_NAMES).default(DEFAULT_CONFIG.schedule))
    .option('--decay-rate <r>', `with --schedule exp: the factor of each decay (Inception v3's and Xception's ${EXP_DECAY.rate})`, num('--decay-rate', { min: 0 }))
    .option('--decay-epochs <n>', `with --schedule exp: epochs between decays (default ${EXP_DECAY.epochs})`, (v: string): number => {
      const n = Number(v);
      if (!(n > 0 && Number.isFinite(n))) throw new InvalidArgumentError(`--decay-epochs must be a number of epochs > 0, got '${v}'`);
      return n;
    })
    .option('--warmup-epochs <n>', 'linear learning-rate warm-up at the start', num('--warmup-epochs', { min: 0 }), DEFAULT_CONFIG.warmupEpochs)
    .option('--label-smoothing <e>', 'cross-entropy label smoothing', num('--label-smoothing', { min: 0 }), DEFAULT_CONFIG.labelSmoothing)
    .option('--clip-grad-norm <n>', 'clip the global gradient norm (0: off)', num('--clip-grad-norm', { min: 0 }), DEFAULT_CONFIG.clipGradNorm)
    .option('--accumulate <n>', ACCUMULATE_HELP, num('--accumulate', { int: true, min: 1 }))
    .option('--augment', 'random crops (padded by an eighth of the side; with --resize crop, random resized crops) and horizontal flips', false)
    .option(colorJitterOption, colorJitterHelp('with or without --augment (after its crops and flips)'), colorJitterArg)
    .option('--trivial-augment', 'TrivialAugment (Müller & Hutter 2021; torchvision\'s TrivialAugmentWide): one of 14 operations per image — shear, translate, rotate, colour, contrast, sharpness, posterize, solarize, equalize, … — at a random strength', false)
    .option('--random-erase <p>', 'random erasing (Zhong et al. 2020; torchvision\'s RandomErasing): with probability p a box of 2–33% of the image set to its mean colour (torchvision\'s recipe: 0.1–0.25)', (v: string): number => {
      const n = Number(v);
      if (!(n > 0 && n <= 1)) throw new InvalidArgumentError(`--random-erase must be a probability in (0, 1], got '${v}'`);
      return n;
    })
    .option('--seed <n>', 'seed for weights, shuffling and augmentation', num('--seed', { int: true, min: 0 }), DEFAULT_CONFIG.seed)
    .option('--threads <n>', 'libtorch threads (default: all cores)', num('--threads', { int: true, min: 1 }))
    .option('--limit-batches <n>', 'use only this many batches per epoch (quick checks)', num('--limit-batches', { int: true, min: 1 }))
    .option('--bf16', BF16_TRAINING_HELP, false);
}

const OPTIMIZER_HELP =
  "optimizer: sgd (Nesterov when --momentum > 0), adam, adamw, rmsprop (torch.optim.RMSprop: α 0.99, ε 1e-8), rmsprop-tf (TensorFlow's, as Inception v3, MobileNet v1 and Xception's JFT runs: ρ 0.9, ε 1 inside the root, mean square from 1, the rate inside the momentum; with --lr 0.045 --schedule exp, their recipe)";

/** The shared recipe's flags that only classifiers' runs take (segmentation runs follow their paper's data and recipe). */
const CLASSIFIER_ONLY = ['trainDir', 'testDir', 'testSplit', 'labels', 'testLabels', 'imageSize', 'resize', 'cropScale', 'normalize', 'channels', 'schedule', 'warmupEpochs', 'decayRate', 'decayEpochs', 'labelSmoothing', 'clipGradNorm', 'augment', 'colorJitter', 'trivialAugment', 'randomErase'];
/** Option keys as the flags a user typed: trainDir → --train-dir. */
const flagNames = (keys: readonly string[]): string => keys.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ');

const ACCUMULATE_HELP = 'gradient accumulation: backpropagate each batch in n micro-batches, one after the other, then step once — the batch\'s gradient at the memory of a micro-batch\'s activations (BatchNorm normalizes over micro-batches)';

const BF16_TRAINING_HELP = 'mixed precision: forward pass and loss under autocast, convolutions in bfloat16 (faster on CPUs with AVX-512 BF16; weights and optimizer stay float32)';

/** The shared recipe from parsed options (epochs only where the command has --epochs). */
function recipeFrom(o: Record<string, unknown>): Partial<TrainConfig> {
  if ((o.decayRate !== undefined || o.decayEpochs !== undefined) && o.schedule !== 'exp') throw new InvalidArgumentError('--decay-rate and --decay-epochs shape the exp schedule: give --schedule exp too');
  const r: Partial<TrainConfig> = {
    modelOptions: o.opt as Record<string, unknown>,
    data: dataSpec(o as Parameters<typeof dataSpec>[0]),
    batchSize: o.batchSize as number,
    lr: o.lr as number,
    optimizer: o.optimizer as TrainConfig['optimizer'],
    momentum: o.momentum as number,
    weightDecay: o.weightDecay as number,
    schedule: o.schedule as TrainConfig['schedule'],
    warmupEpochs: o.warmupEpochs as number,
    ...(o.decayRate !== undefined ? { decayRate: o.decayRate as number } : {}),
    ...(o.decayEpochs !== undefined ? { decayEpochs: o.decayEpochs as number } : {}),
    labelSmoothing: o.labelSmoothing as number,
    clipGradNorm: o.clipGradNorm as number,
    augment: o.augment as boolean,
    seed: o.seed as number,
    threads: (o.threads as number | undefined) ?? 0,
    limitBatches: (o.limitBatches as number | undefined) ?? 0,
  };
  if (o.epochs !== undefined) r.epochs = o.epochs as number;
  // Only when given: dsd and mimic compare a folder's recorded config key by key with what is asked.
  if (o.colorJitter !== undefined) r.colorJitter = o.colorJitter as ColorJitterOptions;
  if (o.trivialAugment) r.trivialAugment = true;
  if (o.randomErase !== undefined) r.randomErase = o.randomErase as number;
  if (o.bf16) r.precision = 'bfloat16';
  if (((o.accumulate as number | undefined) ?? 1) > 1) r.accumulate = o.accumulate as number;
  return r;
}

/**
 * Options of runs that fit labels by cross-entropy in every phase — `train` and each of DSD's — beyond the
 * shared recipe: a validation split, imbalance weights, and mixed images. (Mimic's student fits a teacher's
 * logits instead, so they are not its options.)
 */
function addLabelOptions(cmd: Command): Command {
  return cmd
    .option('--val-split <f>', 'hold out this share of every class of the training images as a validation set (e.g. 0.1), scored after every epoch; the best epoch\'s weights go to best.safetensors', fraction('--val-split'), 0)
    .option('--val-seed <n>', VAL_SEED_HELP, num('--val-seed', { int: true, min: 0 }))
    .addOption(new Option('--class-weights <mode>', 'weigh each class\'s cross-entropy by N / (K · its count) of the training images, for imbalanced data (sklearn\'s "balanced")').choices(['balanced']))
    .option('--mixup <alpha>', 'mixup (Zhang et al. 2018): each training image blended with another of its batch, λ ~ Beta(α, α), labels weighted alike (e.g. 0.2)', num('--mixup', { min: 0 }))
    .option('--cutmix <alpha>', 'CutMix (Yun et al. 2019): a box of another image of the batch pasted in, its area 1 − λ, λ ~ Beta(α, α) (e.g. 1); with --mixup, one or the other per batch', num('--cutmix', { min: 0 }));
}

/** The shared recipe with addLabelOptions' settings. */
function labelRecipeFrom(o: Record<string, unknown>): Partial<TrainConfig> {
  const recipe = recipeFrom(o);
  return {
    ...recipe,
    ...(o.valSplit ? { data: { ...recipe.data!, valSplit: o.valSplit as number, ...(o.valSeed !== undefined ? { valSeed: o.valSeed as number } : {}) } } : {}),
    ...(o.mixup ? { mixup: o.mixup as number } : {}),
    ...(o.cutmix ? { cutmix: o.cutmix as number } : {}),
    ...(o.classWeights ? { classWeights: o.classWeights as 'balanced' } : {}),
  };
}

const stderrLog = (line: string, transient?: boolean): void => {
  process.stderr.write(transient ? `\r${line}\x1b[K` : `${line}\n`);
};

addLabelOptions(addRecipeOptions(
  program
    .command('train')
    .description('train a registered model on Fashion-MNIST (default) or on image folders; writes a checkpoint, weights, report.json and curves.png')
    .addOption(new Option('-m, --model <name>', `model to train: ${listModels().join(', ')}`).default(DEFAULT_CONFIG.model).argParser(modelName)),
  { ...DEFAULT_CONFIG, epochs: DEFAULT_CONFIG.epochs },
))
  .option('-o, --out <dir>', 'output folder', DEFAULT_CONFIG.outDir)
  .option('--init <weights>', 'start from these weights (checkpoint, model.safetensors, or torchvision\'s converted by scripts/pth2safetensors.py) instead of a fresh initialization; a head trained on other classes starts afresh')
  .option('--backbone-lr <f>', 'with --init: every layer but the head learns at this fraction of --lr (e.g. 0.1), the head at --lr (a discriminative rate, as fastai\'s)', num('--backbone-lr', { min: 0 }))
  .option('--freeze-epochs <n>', 'with --init: for the first n epochs only the head and the BatchNorm layers train, every other layer frozen (fastai\'s freeze; n ≥ --epochs: frozen throughout)', num('--freeze-epochs', { int: true, min: 1 }))
  .option('--resume <checkpoint>', 'continue a run from its checkpoint.safetensors (same config, exact position)')
  .option('--stop-after-steps <n>', 'stop and checkpoint after this many steps, as if interrupted', num('--stop-after-steps', { int: true, min: 1 }))
  .option('--profile-steps <n>', `profile n training steps after the first ${PROFILE_AFTER_STEPS} with libtorch's profiler (their batches' loading included): time per operator, forward and backward, logged and written to <out>/ops.txt`, num('--profile-steps', { int: true, min: 1 }))
  .option('--patience <n>', 'with --val-split: stop once this many epochs have passed without a better validation top-1', num('--patience', { int: true, min: 1 }))
  .option('--ema <decay>', 'also keep an exponential moving average of the weights (e.g. 0.999), scored every epoch and written to ema.safetensors', fraction('--ema'))
  .action(async (o) => {
    needsValSplit(o, 'accuracy');
    if (o.freezeEpochs && !o.init) throw new InvalidArgumentError('--freeze-epochs keeps the weights --init loads frozen: give --init too');
    if (o.backboneLr !== undefined && !o.init) throw new InvalidArgumentError('--backbone-lr sets the rate of the weights --init loads: give --init too');
    const cfg: Partial<TrainConfig> & { resume?: string } = {
      ...labelRecipeFrom(o),
      ...(o.patience ? { patience: o.patience as number } : {}),
      ...(o.ema ? { ema: o.ema as number } : {}),
      ...(o.freezeEpochs ? { freezeEpochs: o.freezeEpochs as number } : {}),
      ...(o.backboneLr !== undefined ? { backboneLr: o.backboneLr as number } : {}),
      model: o.model,
      outDir: o.out,
      init: o.init ?? '',
      resume: o.resume,
      stopAfterSteps: o.stopAfterSteps ?? 0,
    };
    const { result: r, lead } = await asRank(() => train({ ...cfg, profileSteps: o.profileSteps }, stderrLog));
    if (!lead) return;
    if (r.status === 'interrupted') {
      process.exitCode = interruptExitCode();
      return;
    }
    const f = r.final!;
    console.log(`\n${cfg.data?.kind === 'image-folder' ? 'Image folders' : 'Fashion-MNIST'} test accuracy: top-1 ${(100 * f.testTop1).toFixed(2)}%, top-5 ${(100 * f.testTop5).toFixed(2)}%`);
    if (r.stoppedEarly) console.log(`stopped early after epoch ${r.stoppedEarly} (--patience ${cfg.patience})`);
    if (r.best) console.log(`best epoch ${r.best.epoch} of ${r.history.length}${r.best.ema ? ' (its moving average)' : ''} by validation top-1 ${(100 * r.best.valTop1).toFixed(2)}%: test top-1 ${(100 * r.best.testTop1).toFixed(2)}%`);
    if (f.emaTestTop1 !== undefined) console.log(`moving average of the weights (--ema ${cfg.ema}): test top-1 ${(100 * f.emaTestTop1).toFixed(2)}%, top-5 ${(100 * f.emaTestTop5!).toFixed(2)}%`);
    console.log(`checkpoint: ${r.checkpoint}\nweights:    ${r.weights}${r.best ? `\nbest:       ${r.best.weights} (epoch ${r.best.epoch}${r.best.ema ? ', moving average' : ''})` : ''}${r.ema ? `\nema:        ${r.ema}` : ''}\nreport:     ${r.report}\ncurves:     ${r.curves}`);
  });

addRecipeOptions(
  program
    .command('lr-find')
    .description("the learning-rate range test (Smith 2017): a few hundred steps of a fresh network with the rate growing exponentially; suggests --lr for train and writes lr-find.png (loss against rate) and lr-find.json")
    .addOption(new Option('-m, --model <name>', `model: ${listModels().join(', ')}`).default(DEFAULT_CONFIG.model).argParser(modelName)),
)
  .option('--start <lr>', 'first learning rate of the sweep', num('--start', { min: 0 }), LR_FIND_DEFAULTS.start)
  .option('--end <lr>', 'last learning rate of the sweep', num('--end', { min: 0 }), LR_FIND_DEFAULTS.end)
  .option('--steps <n>', 'optimizer steps (one batch each) from --start to --end', num('--steps', { int: true, min: 2 }), LR_FIND_DEFAULTS.steps)
  .option('--init <weights>', 'start from these weights instead of a fresh initialization')
  .option('-o, --out <dir>', 'where lr-find.png and lr-find.json go', 'runs/lr-find')
  .action(async (o) => {
    if (!(o.end > o.start && o.start > 0)) throw new InvalidArgumentError(`--start must be above 0 and below --end, got ${o.start} and ${o.end}`);
    const { findLearningRate, saveLrFind } = await import('../train/lr-find');
    const cfg: Partial<TrainConfig> = { ...recipeFrom(o), model: o.model, init: o.init ?? '' };
    const sweep = { start: o.start, end: o.end, steps: o.steps };
    const r = await findLearningRate(cfg, sweep, stderrLog);
    process.stderr.write('\n');
    const saved = await saveLrFind(o.out, `Learning-rate range test: ${cfg.model}`, cfg, sweep, r);
    console.log(`${saved.summary}\nplot:   ${saved.plot}\nreport: ${saved.json}`);
  });

/** The commands that train data-parallel under \`launch\`: every rank trains, rank 0 alone logs and writes. */
const DATA_PARALLEL = ['train', 'segment', 'dsd', 'mimic', 'prune'] as const;

/**
 * Runs a command's work as one rank of \`tsvision launch --nproc N -- <command>\` (in the process group the
 * launcher's environment describes) or, outside a launch, as the only process; \`lead\`: this process prints
 * the results (rank 0, or no launch).
 */
async function asRank<T>(work: () => Promise<T>): Promise<{ result: T; lead: boolean }> {
  const parallel = await initFromEnvironment();
  try {
    const result = await work();
    return { result, lead: isLead() };
  } finally {
    if (parallel) destroyProcessGroup();
  }
}

program
  .command('launch')
  .description('run train, segment, dsd, mimic or prune as N data-parallel processes on this machine, like torchrun (a gloo process group; RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set), e.g. tsvision launch --nproc 2 -- train --epochs 1')
  .requiredOption('-n, --nproc <n>', 'worker processes on this machine', num('--nproc', { int: true, min: 1 }))
  .option('--nnodes <n>', 'machines taking part, each running this command with its own --node-rank (default 1)', num('--nnodes', { int: true, min: 1 }))
  .option('--node-rank <r>', "this machine's place, 0 … nnodes − 1; node 0 holds rank 0 and the rendezvous store (default 0)", num('--node-rank', { int: true, min: 0 }))
  .option('--master-addr <host>', "node 0's address, the same on every machine (default 127.0.0.1; required with --nnodes)")
  .option('--master-port <port>', 'port of the rendezvous store on node 0 (default: a free one; required with --nnodes)', num('--master-port', { int: true, min: 1 }))
  .option('--script <file>', 'run this Node script in every worker instead of tsvision')
  .argument('<args...>', 'the command and its flags, after --')
  .action(async (args: string[], o) => {
    if (!o.script && !(DATA_PARALLEL as readonly string[]).includes(args[0])) {
      throw new InvalidArgumentError(`${args[0]} does not train data-parallel; launch runs ${DATA_PARALLEL.slice(0, -1).join(', ')} or ${DATA_PARALLEL.at(-1)} (run ${args[0]} on its own)`);
    }
    const r = await launch({ nproc: o.nproc, nnodes: o.nnodes, nodeRank: o.nodeRank, script: o.script ?? __filename, args, masterAddr: o.masterAddr, masterPort: o.masterPort });
    process.exitCode = r.exitCode;
  });

addLabelOptions(addRecipeOptions(
  program
    .command('dsd')
    .description('Dense-Sparse-Dense training (Han et al. 2017): dense, prune by magnitude and retrain with masks held, re-dense at lr/10; with the paper\'s control (dense at lr/10). A segmentation network (-m enet, or --dense from `tsvision segment`) goes through `segment` phases scored by mIoU. Writes SUMMARY.md, report.json, curves.png')
    .addOption(new Option('-m, --model <name>', `model: ${listModels().join(', ')}; or a segmentation network, ${listSegmentationModels().join(', ')}, on the scenes with its paper's recipe`).default(DEFAULT_CONFIG.model).argParser((v: string): string => (isSegmentationModelName(v) ? v : modelName(v)))),
))
  .option('--sparsity <s>', 'fraction of each layer\'s weights pruned in the S phase (paper: 0.25–0.5)', fraction('--sparsity'), DSD_DEFAULTS.sparsity)
  .option('--prune-first', 'prune the first layer too (the paper leaves it dense)', false)
  .option('--dense-epochs <n>', 'epochs of the D phase', num('--dense-epochs', { int: true, min: 1 }), DSD_DEFAULTS.denseEpochs)
  .option('--sparse-epochs <n>', 'epochs of the S phase', num('--sparse-epochs', { int: true, min: 1 }), DSD_DEFAULTS.sparseEpochs)
  .option('--redense-epochs <n>', 'epochs of the re-D phase', num('--redense-epochs', { int: true, min: 1 }), DSD_DEFAULTS.redenseEpochs)
  .option('--redense-lr-scale <f>', 're-D learning rate as a fraction of --lr', num('--redense-lr-scale', { min: 0 }), DSD_DEFAULTS.redenseLrScale)
  .option('--dense <weights>', 'a trained dense model (checkpoint or weights) to start from; skips the D phase')
  .option('--no-control', 'skip the control run (dense, S + re-D more epochs at the re-D learning rate)')
  .option('-o, --out <dir>', 'output folder (one sub-folder per phase; a rerun reuses finished phases; default runs/dsd, runs/dsd-segment for segmentation)')
  .action(async (o, cmd: Command) => {
    const phases = { sparsity: o.sparsity, skipFirst: !o.pruneFirst, denseEpochs: o.denseEpochs, sparseEpochs: o.sparseEpochs, redenseEpochs: o.redenseEpochs, redenseLrScale: o.redenseLrScale, dense: o.dense, control: o.control };
    const given = (key: string): boolean => cmd.getOptionValueSource(key) === 'cli';
    if (isSegmentationModelName(o.model) || (o.dense && isSegmentationRun(o.dense))) {
      // The phases are `segment` runs: the scenes (or the dense run's own data) and the network's paper's recipe.
      const wrong = [...CLASSIFIER_ONLY, 'labelled', 'valSplit', 'valSeed', 'classWeights', 'mixup', 'cutmix'].filter(given);
      if (wrong.length) throw new InvalidArgumentError(`${flagNames(wrong)}: DSD of a segmentation network trains it as \`tsvision segment\` does, on ${o.dense ? 'its dense run\'s data' : 'the scenes'}`);
      const recipe = Object.fromEntries((['lr', 'batchSize', 'optimizer', 'momentum', 'weightDecay', 'seed', 'limitBatches'] as const).filter(given).map((k) => [k, o[k]]));
      const { result: r, lead } = await asRank(() => runSegmentDsd(
        {
          ...phases,
          base: { ...recipe, ...(given('model') ? { model: o.model as SegmentationModelName } : {}), ...(given('opt') ? { modelOptions: o.opt } : {}), threads: o.threads ?? 0, ...(o.accumulate > 1 ? { accumulate: o.accumulate as number } : {}), ...(o.bf16 ? { precision: 'bfloat16' as const } : {}) },
          outDir: o.out ?? 'runs/dsd-segment',
        },
        stderrLog,
      ));
      if (lead) console.log(`summary: ${r.summary}\nreport:  ${r.report}\ncurves:  ${r.curves}\nweights: ${r.redense.weights}`);
      return;
    }
    const { result: r, lead } = await asRank(() => runDsd({ ...phases, base: { ...labelRecipeFrom(o), model: o.model }, outDir: o.out ?? 'runs/dsd' }, stderrLog));
    if (lead) console.log(`summary: ${r.summary}\nreport:  ${r.report}\ncurves:  ${r.curves}\nweights: ${r.redense.weights}`);
  });

addRecipeOptions(
  program
    .command('mimic')
    .description('mimic learning (Ba & Caruana 2014): train a shallow student on a deep teacher\'s logits (L2; or its soft targets with --temperature), and the same student on labels as control. A `segment` teacher teaches a segmentation student (default enet) at every pixel, on its own data. Writes SUMMARY.md, report.json, curves.png')
    .addOption(new Option('-m, --model <name>', `the student (default: ${MIMIC_DEFAULTS.student}; for a segment teacher ${SEGMENT_MIMIC_DEFAULTS.student}, or any of ${listSegmentationModels().join(', ')})`).default(MIMIC_DEFAULTS.student)),
  { lr: MIMIC_DEFAULTS.lr, optimizer: MIMIC_DEFAULTS.optimizer, weightDecay: MIMIC_DEFAULTS.weightDecay, epochs: MIMIC_DEFAULTS.epochs },
)
  .option('-t, --teacher <file>', 'the teacher: a checkpoint from `tsvision train` (npm start writes the default) or `tsvision segment`', MIMIC_DEFAULTS.teacher)
  .option('--teacher-model <name>', 'for a teacher given as plain weights: its model', modelName)
  .option('--teacher-opt <key=value>', 'for a teacher given as plain weights: a model option, repeatable', collectOpt, {})
  .option('--no-control', 'skip training the student on labels')
  .option('--temperature <T>', "distil the teacher's soft targets at temperature T (Hinton et al. 2015: T² · KL of the softened distributions) instead of regressing its logits by L2 (the paper)", num('--temperature', { min: 0 }))
  .option('--label-weight <w>', "add w × the labels' cross-entropy to the student by mimicry's loss (images without labels left out of it)", num('--label-weight', { min: 0 }))
  .option('--unlabelled <dir>', 'a transfer set: images (any sub-folders) without labels or masks, added to the student by mimicry\'s training images (not the control\'s) and taught by the teacher alone; for a segment teacher, one trained on folders')
  .option('--unlabelled-rest', 'classifier teachers, with --labelled n: the training images left without labels join the student by mimicry\'s training images as a transfer set (Ba & Caruana\'s setting: far more images than labels)', false)
  .option('--unlabelled-scenes <n>', 'segment teachers trained on the scenes: this many more scenes without labels, added to the distilled student\'s training scenes (not the control\'s)', num('--unlabelled-scenes', { int: true, min: 1 }))
  .option('-o, --out <dir>', 'output folder (a rerun reuses finished runs; default runs/mimic, runs/mimic-segment for a segment teacher)')
  .action(async (o, cmd: Command) => {
    if (o.temperature === 0) throw new InvalidArgumentError('--temperature must be above 0');
    const given = (key: string): boolean => cmd.getOptionValueSource(key) === 'cli';
    if (isSegmentationRun(o.teacher)) {
      // The students read the teacher's data and follow their own paper's recipe: classifier-data flags have no place.
      const wrong = [...CLASSIFIER_ONLY, 'teacherModel', 'teacherOpt', 'labelled', 'unlabelledRest'].filter(given);
      if (wrong.length) throw new InvalidArgumentError(`${flagNames(wrong)}: ${o.teacher} is a segmentation network, whose students read its own data (scenes or folders) with their paper's recipe`);
      const model = given('model') ? o.model : SEGMENT_MIMIC_DEFAULTS.student;
      if (!isSegmentationModelName(model)) throw new InvalidArgumentError(`a segmentation teacher's student is a segmentation network (${listSegmentationModels().join(', ')}), got '${model}'`);
      const recipe = Object.fromEntries((['epochs', 'lr', 'batchSize', 'optimizer', 'momentum', 'weightDecay', 'seed'] as const).filter(given).map((k) => [k, o[k]]));
      const { result: r, lead } = await asRank(() => runSegmentMimic(
        {
          teacher: o.teacher,
          student: { ...recipe, model, modelOptions: o.opt, threads: o.threads ?? 0, limitBatches: o.limitBatches ?? 0, ...(o.accumulate > 1 ? { accumulate: o.accumulate as number } : {}), ...(o.bf16 ? { precision: 'bfloat16' as const } : {}) },
          outDir: o.out ?? 'runs/mimic-segment',
          control: o.control,
          temperature: o.temperature,
          labelWeight: o.labelWeight || undefined,
          unlabelled: o.unlabelled,
          unlabelledScenes: o.unlabelledScenes,
        },
        stderrLog,
      ));
      if (lead) console.log(`summary: ${r.summary}\nreport:  ${r.report}\ncurves:  ${r.curves}\nweights: ${r.mimic.weights}`);
      return;
    }
    if (o.unlabelledScenes) throw new InvalidArgumentError('--unlabelled-scenes is for segmentation teachers (a checkpoint of `tsvision segment`)');
    if (o.unlabelledRest && !o.labelled) throw new InvalidArgumentError('--unlabelled-rest gives the student the training images left without labels: give --labelled n (how many keep theirs) too');
    const unlabelled = o.unlabelledRest || o.unlabelled ? { ...(o.unlabelledRest ? { rest: true } : {}), ...(o.unlabelled ? { dir: o.unlabelled as string } : {}) } : undefined;
    const { result: r, lead } = await asRank(() => runMimic(
      { base: { ...recipeFrom(o), model: modelName(o.model) }, teacher: o.teacher, teacherModel: o.teacherModel, teacherOptions: o.teacherOpt, outDir: o.out ?? 'runs/mimic', control: o.control, temperature: o.temperature, unlabelled, labelWeight: o.labelWeight || undefined },
      stderrLog,
    ));
    if (lead) console.log(`summary: ${r.summary}\nreport:  ${r.report}\ncurves:  ${r.curves}\nweights: ${r.mimic.weights}`);
  });

program
  .command('prune')
  .description('filter pruning by L1 norm (ICNet §5): keep each layer\'s strongest filters of a trained cnn or mobilenet_v1 (from `train`) or enet, icnet, pspnet or deeplabv3 (from `segment`), fine-tune with the run\'s own recipe, and report parameters, mult-adds, CPU latency and accuracy or mIoU before and after. Writes SUMMARY.md, report.json')
  .option('-c, --checkpoint <file>', 'a checkpoint from `tsvision train` or `tsvision segment`', 'runs/fashion-mnist-cnn/checkpoint.safetensors')
  .option('--keep <rate>', 'fraction of each layer\'s filters kept (ICNet: 0.5)', (v: string): number => {
    const n = Number(v);
    if (!(n > 0 && n <= 1)) throw new InvalidArgumentError(`--keep must be a fraction in (0, 1], got '${v}'`);
    return n;
  }, FILTER_PRUNE_DEFAULTS.keepRate)
  .option('--finetune-epochs <n>', 'epochs of fine-tuning after pruning', num('--finetune-epochs', { int: true, min: 1 }), FILTER_PRUNE_DEFAULTS.finetuneEpochs)
  .option('--lr-scale <f>', 'fine-tuning learning rate as a fraction of the original run\'s', num('--lr-scale', { min: 0 }), FILTER_PRUNE_DEFAULTS.lrScale)
  .option('--latency-batch <n>', 'batch size of the latency measurement', num('--latency-batch', { int: true, min: 1 }), FILTER_PRUNE_DEFAULTS.latencyBatch)
  .option('--threads <n>', 'libtorch threads (default: all cores)', num('--threads', { int: true, min: 1 }))
  .option('--limit-batches <n>', 'use only this many batches per epoch (quick checks)', num('--limit-batches', { int: true, min: 1 }))
  .option('--accumulate <n>', `fine-tuning: ${ACCUMULATE_HELP} (default: as the original run)`, num('--accumulate', { int: true, min: 1 }))
  .option('--distil', "fine-tune on the original network's logits (mimic learning, L2; at every pixel for segmentation networks) instead of the labels")
  .option('-o, --out <dir>', 'output folder (a rerun reuses a finished fine-tuning)', 'runs/prune')
  .action(async (o) => {
    if (o.threads) setNumThreads(o.threads);
    const { result: r, lead } = await asRank(() => runFilterPrune(
      { checkpoint: o.checkpoint, outDir: o.out, keepRate: o.keep, distil: Boolean(o.distil), finetuneEpochs: o.finetuneEpochs, lrScale: o.lrScale, latencyBatch: o.latencyBatch, recipe: { threads: o.threads ?? 0, limitBatches: o.limitBatches ?? 0, ...(o.accumulate > 1 ? { accumulate: o.accumulate as number } : {}) } },
      stderrLog,
    ));
    if (lead) console.log(`summary: ${r.summary}\nreport:  ${r.report}\nweights: ${r.finetune.weights}`);
  });

program
  .command('segment')
  .description('train a segmentation network — ENet (default), DeepLab-V3, PSPNet or ICNet — with its paper\'s recipe and loss on Fashion-MNIST scenes (garments on a canvas, per-pixel labels built offline from Debian\'s Fashion-MNIST) or on your image/mask folders (--train-dir, --test-dir); reports mIoU per epoch, writes a checkpoint, weights, report.json, curves.png and overlays.png; data parallel under `tsvision launch`')
  .addOption(new Option('-m, --model <name>', 'network').choices(listSegmentationModels()).default(DEFAULT_SEGMENT_CONFIG.model))
  .option('--opt <key=value>', 'model option, repeatable (e.g. --opt backbone=resnet50 --opt outputStride=16); merged over the scene defaults', collectOpt, {})
  .option('-e, --epochs <n>', 'passes over the training scenes', num('--epochs', { int: true, min: 1 }), DEFAULT_SEGMENT_CONFIG.epochs)
  .option('-b, --batch-size <n>', 'scenes per optimizer step', num('--batch-size', { int: true, min: 2 }), DEFAULT_SEGMENT_CONFIG.batchSize)
  .addOption(new Option('--optimizer <name>', "optimizer (default: the model's paper: adam for enet, sgd for the others)").choices(OPTIMIZER_NAMES))
  .option('--lr <rate>', `learning rate (default: ${listSegmentationModels().map((m) => `${m} ${SEGMENT_RECIPES[m].lr}`).join(', ')})`, num('--lr', { min: 0 }))
  .option('--momentum <m>', 'SGD momentum (default 0.9 for sgd)', num('--momentum', { min: 0 }))
  .option('--weight-decay <wd>', 'L2 weight decay (default: enet 2e-4, others 1e-4)', num('--weight-decay', { min: 0 }))
  .addOption(new Option('--class-weights <kind>', "'enet': 1/ln(1.02 + p_class) from the training labels; 'none'").choices(['enet', 'none']).default(DEFAULT_SEGMENT_CONFIG.classWeights))
  .option('--size <px>', 'scene side (a multiple of 8 for enet)', num('--size', { int: true, min: 32 }), DEFAULT_SEGMENT_CONFIG.scenes.size)
  .option('--train-scenes <n>', 'training scenes', num('--train-scenes', { int: true, min: 2 }), DEFAULT_SEGMENT_CONFIG.scenes.trainCount)
  .option('--test-scenes <n>', 'test scenes', num('--test-scenes', { int: true, min: 1 }), DEFAULT_SEGMENT_CONFIG.scenes.testCount)
  .option('--max-items <n>', 'garments per scene, at most', num('--max-items', { int: true, min: 1 }), DEFAULT_SEGMENT_CONFIG.scenes.maxItems)
  .option('--seed <n>', 'seed for weights, scene layouts and shuffling', num('--seed', { int: true, min: 0 }), DEFAULT_SEGMENT_CONFIG.seed)
  .option('--threads <n>', 'libtorch threads (default: all cores)', num('--threads', { int: true, min: 1 }))
  .option('--limit-batches <n>', 'use only this many batches per epoch (quick checks)', num('--limit-batches', { int: true, min: 1 }))
  .option('--train-dir <dir>', 'your training data: <dir>/images/*.png|jpg and <dir>/masks/*.png (grey value = class, 255 ignored), optional <dir>/classes.txt; instead of the scenes')
  .option('--test-dir <dir>', 'your test data, laid out as --train-dir; without it, --test-split of --train-dir\'s images are the test set')
  .option('--test-split <f>', `without --test-dir: hold out this share of --train-dir's images as the test set, the same ones whatever --seed (default ${DEFAULT_TEST_SPLIT})`, fraction('--test-split'))
  .option('--image-size <HxW>', 'resize your images (bilinear) and masks (nearest) to H×W, or N×N (default: their own sizes, decoded batch by batch)', sizeArg('--image-size'))
  .option('--augment', "the papers' augmentation of training images: random scale, crop, mirror (default for --train-dir)")
  .option('--no-augment', 'train on the images as they are')
  .option('--crop <HxW>', 'training crop with --augment (default: --image-size, or the first test image\'s size)', sizeArg('--crop'))
  .option('--scale <lo,hi>', `random scale range with --augment (default ${PAPER_AUGMENT.scale.join(',')})`, (v: string): [number, number] => {
    const m = /^([\d.]+),([\d.]+)$/.exec(v);
    if (!m || !(Number(m[1]) > 0 && Number(m[2]) >= Number(m[1]))) throw new InvalidArgumentError(`--scale takes lo,hi with 0 < lo ≤ hi, got '${v}'`);
    return [Number(m[1]), Number(m[2])];
  })
  .option('--rotate <deg>', 'random rotation within ±deg with --augment (PSPNet on VOC: 10; default 0)', num('--rotate', { min: 0 }))
  .option('--no-flip', 'no random mirror with --augment')
  .option('--blur <p>', "PSPNet's random Gaussian blur (5×5, σ 1.1) with probability p, with --augment (its VOC recipe: 0.5; default 0)", num('--blur', { min: 0 }))
  .option(colorJitterOption, colorJitterHelp('on the images only (masks untouched), with or without --augment'), colorJitterArg)
  .option('--bf16', BF16_TRAINING_HELP, false)
  .option('--accumulate <n>', ACCUMULATE_HELP, num('--accumulate', { int: true, min: 1 }))
  .option('--no-sync-bn', 'under `tsvision launch`: BatchNorm over each process\'s share only (default: over the global batch)')
  .option('--channels <n>', 'your images as 1 (grey) or 3 (RGB) channels', num('--channels', { int: true }), 3)
  .option('--num-classes <n>', 'classes of your masks when the folder has no classes.txt', num('--num-classes', { int: true, min: 2 }))
  .option('--mask-name <from=to>', MASK_NAME_HELP, maskNameArg)
  .option('--label-map <map>', LABEL_MAP_HELP, labelMapArg)
  .option('-o, --out <dir>', 'output folder (default: runs/segment-<model>)')
  .option('--backbone-init <file>', 'ImageNet ResNet weights for the backbone (deeplabv3, pspnet, icnet): torchvision\'s converted by scripts/pth2safetensors.py, or a `train` checkpoint')
  .option('--resume <checkpoint>', 'continue a run from its checkpoint.safetensors (its settings; exact position, mid-epoch too)')
  .option('--stop-after-steps <n>', 'stop and checkpoint after this many steps, as if interrupted', num('--stop-after-steps', { int: true, min: 1 }))
  .option('--profile-steps <n>', `profile n training steps after the first ${PROFILE_AFTER_STEPS} with libtorch's profiler (their batches' loading included): time per operator, forward and backward, logged and written to <out>/ops.txt`, num('--profile-steps', { int: true, min: 1 }))
  .option('--val-split <f>', 'hold out this share of the training scenes or images as a validation set (e.g. 0.1), scored after every epoch; the best epoch\'s weights by validation mIoU go to best.safetensors', fraction('--val-split'), 0)
  .option('--val-seed <n>', VAL_SEED_HELP, num('--val-seed', { int: true, min: 0 }))
  .option('--patience <n>', 'with --val-split: stop once this many epochs have passed without a better validation mIoU', num('--patience', { int: true, min: 1 }))
  .option('--ema <decay>', 'also keep an exponential moving average of the weights (e.g. 0.999), scored every epoch and written to ema.safetensors', fraction('--ema'))
  .option('--teacher <file>', "learn from a trained `segment` network's logits at every pixel (mimic learning, Ba & Caruana 2014) instead of the labels: a checkpoint or its weights, trained on data normalized alike with the same classes")
  .option('--temperature <T>', "with --teacher: its soft targets at temperature T at every pixel (Hinton et al. 2015: T² · KL) instead of its logits by L2", num('--temperature', { min: 0 }))
  .option('--label-weight <w>', "with --teacher: add w × the labels' cross-entropy (class weights, ignored pixels) to the student's loss", num('--label-weight', { min: 0 }))
  .option('--unlabelled <dir>', 'with --teacher and --train-dir: a folder of images without masks added to the training images, taught by the teacher alone (a transfer set)')
  .option('--unlabelled-scenes <n>', 'with --teacher on the scenes: this many more training scenes (their own layouts) without labels, taught by the teacher alone', num('--unlabelled-scenes', { int: true, min: 1 }))
  .option('--lr-find', `instead of training: the learning-rate range test (Smith 2017) with this run's network, data, optimizer and loss — ${LR_FIND_DEFAULTS.steps} steps from ${LR_FIND_DEFAULTS.start} to ${LR_FIND_DEFAULTS.end}; suggests --lr and writes <out>/lr-find.png and lr-find.json`)
  .action(async (o) => {
    needsValSplit(o, 'mIoU');
    if ((o.temperature !== undefined || o.labelWeight !== undefined) && !o.teacher) throw new InvalidArgumentError(`${o.temperature !== undefined ? '--temperature' : '--label-weight'} sets how a student learns from --teacher: give --teacher too`);
    if (o.temperature === 0) throw new InvalidArgumentError('--temperature must be above 0');
    if (o.teacher && o.resume) throw new InvalidArgumentError('--resume continues a run with its own settings (its teacher included): leave out --teacher');
    if (o.unlabelledScenes && (!o.teacher || o.trainDir)) throw new InvalidArgumentError('--unlabelled-scenes teach only through a teacher\'s logits, beside the scenes: give --teacher (and no --train-dir; for folders, --unlabelled)');
    if (o.unlabelled && !(o.teacher && o.trainDir)) throw new InvalidArgumentError('--unlabelled images teach only through a teacher\'s logits, beside your --train-dir: give --teacher and --train-dir');
    checkTestSource(o, 'folders of images/ and masks/');
    if (o.channels !== 1 && o.channels !== 3) throw new InvalidArgumentError(`--channels must be 1 or 3, got ${o.channels}`);
    const settings: Partial<SegmentConfig> = {
      syncBatchNorm: o.syncBn,
      backboneInit: o.backboneInit,
      folders: o.trainDir ? { train: o.trainDir, ...(o.testDir ? { test: o.testDir } : { testSplit: o.testSplit ?? DEFAULT_TEST_SPLIT }), size: o.imageSize, channels: o.channels, numClasses: o.numClasses, maskName: o.maskName, labelMap: o.labelMap, ...(o.unlabelled ? { unlabelled: o.unlabelled as string } : {}) } : undefined,
      // Any augmentation flag turns it on; --no-augment off; none: the default for the data.
      augment: o.augment === false ? null
        : o.augment || o.crop || o.scale || o.rotate !== undefined || o.blur !== undefined || o.flip === false ? { crop: o.crop, scale: o.scale ?? PAPER_AUGMENT.scale, rotate: o.rotate ?? PAPER_AUGMENT.rotate, flip: o.flip !== false, blur: o.blur ?? 0 }
        : undefined,
      colorJitter: o.colorJitter,
      precision: o.bf16 ? 'bfloat16' : undefined,
      accumulate: o.accumulate > 1 ? o.accumulate : undefined,
      model: o.model,
      modelOptions: o.opt,
      optimizer: o.optimizer,
      momentum: o.momentum,
      scenes: { size: o.size, trainCount: o.trainScenes, testCount: o.testScenes, maxItems: o.maxItems, ...(o.unlabelledScenes ? { unlabelled: o.unlabelledScenes as number } : {}) },
      epochs: o.epochs,
      batchSize: o.batchSize,
      lr: o.lr,
      weightDecay: o.weightDecay,
      classWeights: o.classWeights,
      seed: o.seed,
      outDir: o.out,
      threads: o.threads ?? 0,
      limitBatches: o.limitBatches ?? 0,
      valSplit: o.valSplit || undefined,
      ...(o.valSplit && o.valSeed !== undefined ? { valSeed: o.valSeed as number } : {}),
      patience: o.patience,
      ...(o.ema ? { ema: o.ema as number } : {}),
      teacher: o.teacher ? { file: o.teacher, ...(o.temperature ? { temperature: o.temperature as number } : {}), ...(o.labelWeight ? { labelWeight: o.labelWeight as number } : {}) } : undefined,
    };
    if (o.lrFind) {
      if (o.resume) throw new InvalidArgumentError('--lr-find starts a fresh network (with --backbone-init\'s weights where given); it does not resume a run');
      const { findSegmentationLearningRate, saveLrFind } = await import('../train/lr-find');
      const sweep = LR_FIND_DEFAULTS;
      const r = await findSegmentationLearningRate(settings, sweep, stderrLog);
      process.stderr.write('\n');
      const saved = await saveLrFind(o.out ?? `runs/segment-${o.model ?? DEFAULT_SEGMENT_CONFIG.model}`, `Learning-rate range test: ${o.model ?? DEFAULT_SEGMENT_CONFIG.model}`, settings, sweep, r);
      console.log(`${saved.summary}\nplot:   ${saved.plot}\nreport: ${saved.json}`);
      return;
    }
    const { result: r, lead } = await asRank(() => trainSegmentation({ ...settings, resume: o.resume, stopAfterSteps: o.stopAfterSteps, profileSteps: o.profileSteps }, stderrLog));
    if (!lead) return;
    const f = r.final;
    if (r.status === 'interrupted' || !f) {
      process.exitCode = interruptExitCode();
      return;
    }
    console.log(`\n${o.trainDir ? (o.testDir ?? `${o.trainDir} (held out)`) : 'Fashion-MNIST scenes'} test: mIoU ${(100 * f.testMIoU).toFixed(2)}%, pixel accuracy ${(100 * f.testPixelAccuracy).toFixed(2)}%`);
    console.log(r.classes.map((c, i) => `  ${c.padEnd(12)} IoU ${(100 * f.testIoU[i]).toFixed(2)}%`).join('\n'));
    if (r.stoppedEarly) console.log(`stopped early after epoch ${r.stoppedEarly} (--patience ${o.patience})`);
    if (r.best) console.log(`best epoch ${r.best.epoch} of ${r.history.length}${r.best.ema ? ' (its moving average)' : ''} by validation mIoU ${(100 * r.best.valMIoU).toFixed(2)}%: test mIoU ${(100 * r.best.testMIoU).toFixed(2)}%`);
    if (f.emaTestMIoU !== undefined) console.log(`moving average of the weights (--ema ${o.ema}): test mIoU ${(100 * f.emaTestMIoU).toFixed(2)}%, pixel accuracy ${(100 * f.emaTestPixelAccuracy!).toFixed(2)}%`);
    console.log(`checkpoint: ${r.checkpoint}\nweights:    ${r.weights}${r.best ? `\nbest:       ${r.best.weights} (epoch ${r.best.epoch}${r.best.ema ? ', moving average' : ''})` : ''}${r.ema ? `\nema:        ${r.ema}` : ''}\nreport:     ${r.report}\ncurves:     ${r.curves}\noverlays:   ${r.overlays}`);
  });

slideOptions(program
  .command('eval')
  .description('evaluate a checkpoint or the weights file of a run (other plain weights with --model) on the test set: loss, top-1, top-5')
  .requiredOption('-c, --checkpoint <file>', 'checkpoint.safetensors from `train`, or model.safetensors weights')
  .option('-m, --model <name>', 'model of plain weights (checkpoints name their own)', modelName)
  .option('--opt <key=value>', "model option, repeatable: plain weights' options, or one over a checkpoint's own that keeps its weights (ICNet's cut cascades: --opt output=sub4 or sub24)", collectOpt, {})
  .option('--train-dir <dir>', 'image-folder training set (for class names; without --test-dir, the test images are held out of it)')
  .option('--test-dir <dir>', 'image-folder test set')
  .option('--test-split <f>', `without --test-dir: the share of --train-dir held out as the test set (default ${DEFAULT_TEST_SPLIT})`, fraction('--test-split'))
  .option('--image-size <px>', 'image-folder resize', num('--image-size', { int: true, min: 8 }), 32)
  .option('--channels <n>', 'image-folder channels', num('--channels', { int: true }), 3)
  .option('--threads <n>', 'libtorch threads', num('--threads', { int: true, min: 1 }))
  .option(scalesOption, 'segmentation: average over input scales, e.g. 0.5,0.75,1,1.25,1.5,1.75 (DeepLab-V3 §4.3)', scalesArg)
  .option('--flip', 'also average the class probabilities over mirrored images (test-time augmentation; classifiers and segmentation)', false))
  .option('--optimize', 'evaluate the network optimized for inference, as `predict` runs it (BatchNorm folded, oneDNN layout where faster)', false)
  .option('--bf16', 'evaluate it optimized and in bfloat16, as `predict --bf16` runs it: the accuracy you ship', false)
  .option('-o, --out <dir>', 'also write report.json (the scores and the confusion matrix), confusion.png (rows: true classes) and calibration.png (the reliability diagram; per pixel for segmentation) here; for classifiers also mistakes.png (the most confident mistakes), for segmentation worst.png (the images segmented worst)')
  .option('--mistakes <n>', 'with --out: how many of the most confident mistakes mistakes.png shows and report.json lists (0: none)', num('--mistakes', { int: true, min: 0 }), 24)
  .option('--gradcam', 'classifiers, with --out: draw each mistake in mistakes.png beside its Grad-CAM for the answer (where the network found it)', false)
  .option('--worst <n>', 'segmentation, with --out: the test images with the lowest mIoU of their own, listed and drawn in worst.png (image · ground truth · prediction) (0: none)', num('--worst', { int: true, min: 0 }), 6)
  .action(async (o) => {
    if (o.threads) setNumThreads(o.threads);
    const slide = slideArgs(o);
    const precision: InferencePrecision = o.bf16 ? 'bfloat16' : 'float32';
    const optimize: boolean = o.optimize || o.bf16;
    const shipped = o.bf16 ? ', optimized, bfloat16' : optimize ? ', optimized' : '';
    const { weights, checkpoint, run } = readWeights(o.checkpoint); // the one read of the file
    // A checkpoint's config, or the run record a weights file carries (model.safetensors, best.safetensors).
    const recorded = checkpoint?.state.config ?? run?.config;
    if (isSegmentConfig(recorded)) {
      const contents: CheckpointContents = checkpoint ?? { model: weights, optimizer: null, method: {}, ema: {}, rng: null, state: { epoch: 0, batch: 0, step: 0, config: recorded } };
      const worstPng = o.out && o.worst ? path.join(o.out, 'worst.png') : undefined;
      if (worstPng) fs.mkdirSync(o.out, { recursive: true });
      const r = await withProgress((progress) => evaluateSegmentCheckpoint(o.checkpoint, { modelOptions: o.opt, scales: o.scales, flip: o.flip, ...slide, testDir: o.testDir, optimize, precision, progress, calibration: true, ...(worstPng ? { worst: o.worst as number, worstPng } : {}) }, contents));
      const windows = slide.crop ? `, ${slide.crop.join('×')} windows${slide.stride ? ` every ${slide.stride.join('×')}` : ''}` : '';
      const opts = Object.entries(o.opt as Record<string, unknown>).map(([k, v]) => `, ${k}=${String(v)}`).join('');
      const how = `${o.scales ? `scales ${o.scales.join(', ')}` : 'single scale'}${o.flip ? ', mirrored' : ''}${windows}${shipped}${opts}`;
      console.log(`${r.model} on ${r.count} test images (${how}): loss (unweighted) ${r.loss.toFixed(4)}, mIoU ${(100 * r.mIoU).toFixed(2)}%, pixel accuracy ${(100 * r.pixelAccuracy).toFixed(2)}%`);
      console.log(r.classes.map((c, i) => `  ${c.padEnd(12)} IoU ${(100 * r.iou[i]).toFixed(2)}%`).join('\n'));
      if (r.calibration) console.log(`calibration (per pixel): ECE ${(100 * r.calibration.ece).toFixed(2)}%, MCE ${(100 * r.calibration.mce).toFixed(2)}% (15 bins of top-1 confidence; Guo et al. 2017)`);
      if (r.worst?.length) console.log(`lowest mIoU:\n${r.worst.map((w) => `  ${(100 * w.mIoU).toFixed(2).padStart(6)}%  pixel accuracy ${(100 * w.pixelAccuracy).toFixed(2)}%  ${w.file ?? `test image ${w.index}`}`).join('\n')}`);
      if (o.out) await writeEvalReport(o.out, { checkpoint: o.checkpoint, how, ...r }, `${r.model} on ${r.count} test images (${how}): pixels`);
      if (o.out && r.calibration) {
        const calibrationPng = path.join(o.out, 'calibration.png');
        await saveReliabilityPng(calibrationPng, [{ calibration: r.calibration, title: `${r.model}: reliability of its pixels on ${r.count} test images`, unit: 'pixels' }]);
        console.log(`calibration: ${calibrationPng}`);
      }
      if (worstPng && r.worst?.length) console.log(`worst:     ${worstPng}`);
      return;
    }
    if (o.scales || o.slide) throw new InvalidArgumentError('--scales and --slide apply to segmentation checkpoints');
    if (!recorded && !o.model) throw new InvalidArgumentError(`${o.checkpoint} holds plain weights: name the model with --model`);
    // A checkpoint names its model; a weights file's record does unless --model says otherwise.
    const cfg: TrainConfig = checkpoint || (recorded && !o.model) ? { ...DEFAULT_CONFIG, ...(recorded as TrainConfig) } : { ...DEFAULT_CONFIG, model: o.model, modelOptions: o.opt, data: dataSpec(o) };
    cfg.modelOptions = { ...cfg.modelOptions, ...o.opt };
    const loaders = makeLoaders(withoutTransferSet(cfg.data), { batchSize: 256, seed: 0, augment: false });
    const model = createClassifier(cfg.model, cfg.modelOptions, loaders);
    fitWeights(model, weights, `weights ${o.checkpoint} do not fit the model`);
    // Pruned weights (DSD's sparse phase) are stored dense with zeros: say how many are really there.
    const [params, zeros] = [model.numParameters(), countZeroParameters(model)];
    const side = imageSize(cfg.data);
    const net = optimize ? optimizeForInference(model, randn([1, loaders.inChannels, side, side]), { precision }) : model;
    const r = await withProgress((progress) => evaluate(net, loaders.test, 0, { flip: o.flip, mistakes: Boolean(o.out), calibration: true, progress }));
    const how = [...(o.flip ? ['mirrored'] : []), ...(shipped ? [shipped.slice(2)] : [])].join(', ');
    const report = classificationReport(r.confusion);
    const pct = (x: number | null): string => (x === null ? '—' : `${(100 * x).toFixed(2)}%`);
    console.log(`${cfg.model} on ${r.count} test images${how ? ` (${how})` : ''}: loss ${r.loss.toFixed(4)}, top-1 ${(100 * r.top1).toFixed(2)}%, top-5 ${(100 * r.top5).toFixed(2)}%, balanced accuracy ${(100 * r.balancedTop1).toFixed(2)}%, macro F1 ${(100 * report.macro.f1).toFixed(2)}%`);
    const names = Array.from({ length: r.confusion.length }, (_, i) => loaders.classes[i] ?? String(i));
    const w = Math.max(12, ...names.map((n) => n.length));
    console.log(`  ${'class'.padEnd(w)} ${'precision'.padStart(9)} ${'recall'.padStart(9)} ${'F1'.padStart(9)} ${'images'.padStart(7)}`);
    console.log(report.perClass.map((c, i) => `  ${names[i].padEnd(w)} ${pct(c.precision).padStart(9)} ${pct(c.recall).padStart(9)} ${pct(c.f1).padStart(9)} ${String(c.support).padStart(7)}`).join('\n'));
    const confused = mostConfused(r.confusion);
    if (confused.length) console.log(`most confused: ${confused.map((c) => `${names[c.label]} as ${names[c.predicted]} ${c.count} (${(100 * c.share).toFixed(1)}%)`).join(', ')}`);
    console.log(`calibration: ECE ${(100 * r.calibration!.ece).toFixed(2)}%, MCE ${(100 * r.calibration!.mce).toFixed(2)}% (15 bins of top-1 confidence; Guo et al. 2017)`);
    console.log(`${params.toLocaleString('en-US')} parameters${zeros ? `, ${zeros.toLocaleString('en-US')} of them exactly zero (${(100 * zeros / params).toFixed(2)}%)` : ''}`);
    if (o.out) {
      const classes = loaders.classes.length === loaders.numClasses ? loaders.classes : Array.from({ length: loaders.numClasses }, (_, i) => String(i));
      const shown = (r.mistakes ?? []).slice(0, o.mistakes as number);
      // The test images as the network got them (before normalization), and their files where they have one.
      const mistakes = shown.map((m) => ({ ...m, file: sampleFile(loaders.test.dataset as Parameters<typeof sampleFile>[0], m.index), labelName: classes[m.label], predictedName: classes[m.predicted] }));
      const { mistakes: _all, ...scores } = r;
      await writeEvalReport(o.out, { checkpoint: o.checkpoint, model: cfg.model, how: how || 'as trained', classes, ...scores, classReport: report, mostConfused: confused, wrong: r.mistakes?.length ?? 0, mistakes }, `${cfg.model} on ${r.count} test images: top-1 ${(100 * r.top1).toFixed(2)}%`);
      const calibrationPng = path.join(o.out, 'calibration.png');
      await saveReliabilityPng(calibrationPng, [{ calibration: r.calibration!, title: `${cfg.model}: reliability on ${r.count} test images` }]);
      console.log(`calibration: ${calibrationPng}`);
      if (mistakes.length) {
        const file = path.join(o.out, 'mistakes.png');
        const tiles = await Promise.all(mistakes.map(async (m) => ({ image: await sampleImage(loaders.test.dataset as Parameters<typeof sampleImage>[0], m.index), label: m.labelName, predicted: m.predictedName, confidence: m.confidence })));
        // --gradcam: where the network found its (wrong) answer, on the images as the test loader feeds them.
        const heat = o.gradcam ? tidy(() => {
          const { x } = loaders.test.transform({ x: stack(tiles.map((t) => t.image)), y: tensor(mistakes.map((m) => m.label), { dtype: 'int64' }) }, { epoch: 0, index: 0, rng: Rng.from(0) });
          return keep(gradCam(model, x, { classIndex: mistakes.map((m) => m.predicted) }).heatmap);
        }) : null;
        await saveMistakesPng(file, tiles.map((t, i) => ({ ...t, ...(heat ? { heatmap: heat.select(0, i) } : {}) })), `${cfg.model}: the ${tiles.length} most confident of ${r.mistakes!.length} mistakes (true class above, answer below${heat ? '; Grad-CAM of the answer beside each' : ''})`);
        for (const t of tiles) t.image.dispose();
        heat?.dispose();
        console.log(`mistakes:  ${file}`);
      }
    }
  });

program
  .command('calibrate')
  .description('temperature scaling (Guo et al. 2017): fit the T that makes a network\'s probabilities match how often it is right on held-out images (a segmentation network\'s: per pixel), and write weights whose last layer divides the logits by T — predict, eval and export then give calibrated probabilities; the answers do not change')
  .argument('<weights>', 'checkpoint.safetensors, model.safetensors or best.safetensors from `train` or `segment`')
  .option('-o, --out <file>', 'the calibrated weights (default: calibrated.safetensors beside the input)')
  .option('--images <dir>', 'held-out labelled images as <dir>/<class>/<image> to fit on, for a folder run trained without --val-split (never images it trained on)')
  .option('--threads <n>', 'libtorch threads', num('--threads', { int: true, min: 1 }))
  .action(async (file: string, o) => {
    if (o.threads) setNumThreads(o.threads);
    const out: string = o.out ?? path.join(path.dirname(file), 'calibrated.safetensors');
    const { weights, checkpoint, run } = readWeights(file);
    const recorded = checkpoint?.state.config ?? run?.config;
    if (!recorded) throw new InvalidArgumentError(`${file} holds plain weights without a run record: calibrate needs the run's data (the weights \`train\` writes)`);
    if (run?.temperature !== undefined) throw new InvalidArgumentError(`${file} is calibrated already (T = ${run.temperature}, fitted on ${run.calibratedOn ?? 'held-out images'}); calibrate the weights it came from`);
    if (path.resolve(out) === path.resolve(file)) throw new InvalidArgumentError(`--out ${out} is the input itself: the calibrated weights go to another file, the trained ones stay`);
    if (isSegmentConfig(recorded)) {
      if (o.images) throw new InvalidArgumentError('--images takes classifier folders; a segment run is calibrated on its validation split (segment --val-split)');
      return calibrateSegmentation(file, out, recorded, weights, run);
    }
    const cfg: TrainConfig = { ...DEFAULT_CONFIG, ...(recorded as TrainConfig) };
    const { fitTemperatureOn, scaledHead } = await import('../methods/calibrate');
    // Held-out images the network never trained on: the run's validation split (the same images, by its seed), or a folder.
    let source: string;
    let loaders: ReturnType<typeof makeLoaders>;
    let held: ReturnType<typeof makeLoaders>['test'];
    if (o.images) {
      if (cfg.data.kind !== 'image-folder') throw new InvalidArgumentError('--images goes with runs trained on image folders (its class sub-folders must be theirs)');
      loaders = makeLoaders(withoutTransferSet({ ...cfg.data, test: o.images, testSplit: undefined, testLabels: undefined, valSplit: undefined }), { batchSize: 256, seed: cfg.seed, augment: false });
      held = loaders.test;
      source = o.images;
    } else {
      if (!cfg.data.valSplit) throw new InvalidArgumentError(`${file}'s run held out no validation images: train with --val-split (e.g. 0.1), or give held-out labelled images with --images (image-folder runs)`);
      loaders = makeLoaders(withoutTransferSet(cfg.data), { batchSize: 256, seed: cfg.seed, augment: false });
      held = loaders.val!;
      source = `the run's validation split (${cfg.data.valSplit} of the training images, seed ${cfg.data.valSeed ?? cfg.seed})`;
    }
    const model = createClassifier(cfg.model, cfg.modelOptions, loaders);
    fitWeights(model, weights, `weights ${file} do not fit the model`);
    const fit = await fitTemperatureOn(model, held);
    const testBefore = await withProgress((progress) => evaluate(model, loaders.test, 0, { calibration: true, progress }));
    fitWeights(model, scaledHead(model.stateDict(), model.head, fit.temperature), 'the calibrated head');
    const testAfter = await evaluate(model, loaders.test, 0, { calibration: true });
    const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
    await finishCalibration({
      fit,
      fittedOn: `${fit.images} images: ${source}`,
      heldOut: 'held-out',
      test: `test (${testAfter.count} images): NLL ${testBefore.loss.toFixed(4)} → ${testAfter.loss.toFixed(4)}, ECE ${pct(testBefore.calibration!.ece)} → ${pct(testAfter.calibration!.ece)}, MCE ${pct(testBefore.calibration!.mce)} → ${pct(testAfter.calibration!.mce)}; top-1 ${pct(testBefore.top1)} → ${pct(testAfter.top1)}`,
      out,
      model,
      record: { ...(run ?? {}), config: cfg, classes: loaders.classes, temperature: fit.temperature, calibratedOn: o.images ?? 'validation split' },
      before: { calibration: testBefore.calibration!, title: `${cfg.model} on the test images, as trained` },
      after: testAfter.calibration!,
    });
  });

/** `tsvision calibrate` for a `segment` run: T fitted on its validation scenes' or files' pixels, folded into the last layer. */
async function calibrateSegmentation(file: string, out: string, recorded: SegmentConfig, weights: Record<string, Tensor>, run: RunRecord | null): Promise<void> {
  const cfg: SegmentConfig = { ...DEFAULT_SEGMENT_CONFIG, ...recorded };
  if (!cfg.valSplit) throw new InvalidArgumentError(`${file}'s run held out no validation images: train with segment --val-split (e.g. 0.1)`);
  const { fitPixelTemperatureOn, scaledHead } = await import('../methods/calibrate');
  const { evaluateSegmentation, segmentationData } = await import('../train/segment');
  const data = await segmentationData(cfg, { train: true });
  try {
    const model = createSegmentationModel(cfg.model, { ...cfg.modelOptions, numClasses: data.classes.length, inChannels: data.inChannels } as SegmentationModelOptions[SegmentationModelName]);
    fitWeights(model, weights, `weights ${file} do not fit the model`);
    const fit = await fitPixelTemperatureOn(model, data.val!);
    const k = data.classes.length;
    const before = await withProgress((progress) => evaluateSegmentation(model, data.test, k, null, 0, { calibration: true, progress }));
    fitWeights(model, scaledHead(model.stateDict(), model.lastLayer, fit.temperature), 'the calibrated last layer');
    const after = await evaluateSegmentation(model, data.test, k, null, 0, { calibration: true });
    const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
    await finishCalibration({
      fit,
      fittedOn: `${fit.samples.toLocaleString('en-US')} pixels of ${fit.images} images: the run's validation split (${cfg.valSplit}, seed ${cfg.valSeed ?? cfg.seed})`,
      heldOut: 'held-out pixels',
      test: `test pixels (${data.test.dataset.length} images): NLL ${before.loss.toFixed(4)} → ${after.loss.toFixed(4)}, ECE ${pct(before.calibration!.ece)} → ${pct(after.calibration!.ece)}; mIoU ${pct(before.mIoU)} → ${pct(after.mIoU)}`,
      out,
      model,
      record: { ...(run ?? {}), config: cfg, classes: data.classes, temperature: fit.temperature, calibratedOn: 'validation split' },
      before: { calibration: before.calibration!, title: `${cfg.model}: test pixels, as trained`, unit: 'pixels' },
      after: after.calibration!,
    });
  } finally {
    data.dispose();
  }
}

/** calibrate's report and files, for classifiers and segmentation networks alike: T, its fit, the weights and the diagrams. */
async function finishCalibration(c: { fit: TemperatureFit; fittedOn: string; heldOut: string; test: string; out: string; model: Module; record: RunRecord; before: { calibration: Calibration; title: string; unit?: ReliabilityUnit }; after: Calibration }): Promise<void> {
  const { temperatureWarning } = await import('../methods/calibrate');
  const t = c.fit.temperature;
  const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
  console.log(`temperature ${t.toFixed(4)} (${t > 1 ? 'the network was overconfident: probabilities softened' : 'the network was underconfident: probabilities sharpened'}), fitted on ${c.fittedOn}`);
  const warning = temperatureWarning(t);
  if (warning) console.error(`warning: ${warning}`);
  console.log(`  ${c.heldOut}: NLL ${c.fit.before.nll.toFixed(4)} → ${c.fit.after.nll.toFixed(4)}, ECE ${pct(c.fit.before.calibration.ece)} → ${pct(c.fit.after.calibration.ece)}`);
  console.log(`  ${c.test}`);
  fs.mkdirSync(path.dirname(path.resolve(c.out)), { recursive: true });
  saveWeights(c.out, c.model, c.record);
  const png = c.out.replace(/\.safetensors$/, '') + '.reliability.png';
  await saveReliabilityPng(png, [c.before, { calibration: c.after, title: `after temperature scaling (T = ${t.toFixed(3)})`, unit: c.before.unit }]);
  console.log(`weights:     ${c.out}\nreliability: ${png}`);
}

/**
 * Runs `work` with a progress callback that shows images done and images/s on stderr, as `predict` does
 * (redrawn on a terminal; a line every 5 s into a pipe or log), once the set is large enough to wait for.
 */
async function withProgress<R>(work: (progress: (done: number, total: number) => void) => Promise<R>): Promise<R> {
  const { progressReporter } = await import('./predict');
  let reporter: ReturnType<typeof progressReporter> | undefined;
  try {
    return await work((done, total) => (reporter === undefined ? (reporter = progressReporter(total)) : reporter)?.update(done));
  } finally {
    reporter?.end();
  }
}

/** eval --out: report.json (atomically) and the confusion matrix as a heat map. */
async function writeEvalReport(dir: string, report: { checkpoint: string; classes: readonly string[]; confusion: number[][] } & Record<string, unknown>, title: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const files = { report: path.join(dir, 'report.json'), confusion: path.join(dir, 'confusion.png') };
  writeFileAtomic(files.report, `${JSON.stringify(report, null, 2)}\n`);
  await saveConfusionPng(files.confusion, report.confusion, report.classes, title);
  console.log(`report:    ${files.report}\nconfusion: ${files.confusion}`);
}

program
  .command('export')
  .description('export a checkpoint (or plain weights with --model) to ONNX (opset 17) for onnxruntime-node and onnxruntime-web; checks the file against tsvision on a seeded random input (two more if it differs)')
  .argument('<weights>', 'checkpoint.safetensors from `train` or `segment`, or model.safetensors weights')
  .requiredOption('-o, --out <file>', 'the .onnx file to write')
  .option('-m, --model <name>', 'model of plain weights (checkpoints name their own): a classifier or a segmentation network')
  .option('--opt <key=value>', 'model option for plain weights, repeatable', collectOpt, {})
  .option('--input <shape>', 'traced input NxCxHxW, e.g. 1x1x28x28 (default: what the checkpoint was trained on)')
  .option('--fixed-batch', 'fix the batch size to N (default: dimension 0 is symbolic, any batch runs)', false)
  .option('--with-preprocessing', "put the pre- and post-processing into the graph: input 'pixels' uint8 NxHxWxC (decoded image bytes, alpha dropped), normalized inside; output 'probabilities' (classifiers) or 'classes', a class id per pixel (segmentation)", false)
  .option('--keep-logits', "with --with-preprocessing: also output the network's 'logits'", false)
  .option('--int8', 'post-training int8 quantization (QDQ: int8 weights per channel, uint8 activations), calibrated on the checkpoint\'s training images; onnxruntime runs it on integer kernels. Scored against the float network on test images', false)
  .option('--weights-only', 'with --int8: int8 weights only, computed in float32 — a 4× smaller file, no calibration (plain weights will do); for networks such as ENet whose float operators between layers make integer kernels slower (others run slower this way: see BENCHMARKS.md)', false)
  .option('--reduce-range', 'with --int8: 7-bit weights (±64) for x86 CPUs without VNNI, where onnxruntime sums uint8 × int8 products in 16 bits that can clip; exact there, at some precision (`tsvision info` says whether this CPU has VNNI)', false)
  .option('--calibration <method>', "with --int8: how calibration sets each activation's range: 'minmax' (all values seen), 'percentile' (without the rarest values at either end: see --percentile) or 'mse' (the range of least squared rounding error, searched as PyTorch's HistogramObserver does)", 'minmax')
  .option('--percentile <p>', "with --calibration percentile: the share of values (in %) the range keeps, (100 − p) / 2 % cut from each end", num('--percentile', { min: 50, max: 100 }), 99.99)
  .option('--calibration-images <n>', 'with --int8: training images to calibrate on', num('--calibration-images', { int: true, min: 1 }), 512)
  .option('--eval-images <n>', 'with --int8: test images to score the int8 file on against the float network (0: skip)', num('--eval-images', { int: true, min: 0 }), 1000)
  .option('--check-seed <n>', 'seed of the check\'s first random input (the others follow it); the same seed gives the same check every run', num('--check-seed', { int: true, min: 0 }), 0)
  .action(async (file: string, o, cmd: Command) => {
    if (o.keepLogits && !o.withPreprocessing) throw new InvalidArgumentError('--keep-logits goes with --with-preprocessing');
    if (o.weightsOnly && !o.int8) throw new InvalidArgumentError('--weights-only goes with --int8');
    if (o.reduceRange && (!o.int8 || o.weightsOnly)) throw new InvalidArgumentError('--reduce-range goes with --int8 (integer kernels); --weights-only computes in float32');
    if (!['minmax', 'percentile', 'mse'].includes(o.calibration)) throw new InvalidArgumentError(`--calibration: 'minmax', 'percentile' or 'mse', got '${o.calibration}'`);
    const percentileGiven = cmd.getOptionValueSource('percentile') === 'cli';
    if ((!o.int8 || o.weightsOnly) && (o.calibration !== 'minmax' || percentileGiven)) throw new InvalidArgumentError('--calibration and --percentile go with --int8 (not --weights-only, which needs no calibration)');
    if (o.calibration !== 'percentile' && percentileGiven) throw new InvalidArgumentError('--percentile goes with --calibration percentile');
    const calibration: CalibrationMethod = o.calibration === 'percentile' ? { method: 'percentile', percentile: o.percentile } : { method: o.calibration === 'mse' ? 'mse' : 'minmax' };
    // Loaded here, not at the top: onnxruntime-node's native library would slow every other command's start.
    const E = await import('../export');
    const ort = await import('onnxruntime-node');
    const T = await import('../torch');
    const { restoreNetwork } = await import('../infer/restore');
    const { checkWritable } = await import('../export/onnx');
    const { concatChunks } = await import('../export/protobuf');
    const { foldBatchNorm } = await import('../nn');
    const { int8Data, scoreInt8, writeInt8 } = await import('./int8');
    // What to build: a checkpoint names its model and trained input; plain weights need --model (and --input).
    const restored = restoreNetwork(file, { model: o.model, opt: o.opt });
    const { model, name, inputShape, checkpoint, config: recorded } = restored;
    const input = o.input ? String(o.input).split(/[x×,]/).map(num('--input', { int: true, min: 1 })) : inputShape;
    if (!input) throw new InvalidArgumentError(`${checkpoint ? 'images of several sizes' : 'plain weights'}: give the input shape with --input NxCxHxW`);
    if (input.length !== 4) throw new InvalidArgumentError(`--input needs NxCxHxW, got '${o.input}'`);
    // With --with-preprocessing the traced module is the network inside a PixelPipeline (src/export/preprocess.ts).
    const task = restored.segmentation ? 'segment' : 'classify';
    const inGraph = o.withPreprocessing ? { logits: o.keepLogits ? E.LOGITS_OUTPUT : undefined } : undefined;
    const pipeline = (keepLogits: boolean) => new E.PixelPipeline(model, { task, normalization: restored.normalization, keepLogits });
    const traced = inGraph ? pipeline(o.keepLogits) : model;
    const io = inGraph
      ? { input: E.PIXELS_INPUT, output: task === 'segment' ? E.CLASSES_OUTPUT : E.PROBABILITIES_OUTPUT, fixedBatch: o.fixedBatch, inGraph }
      : { input: 'input', output: 'output', fixedBatch: o.fixedBatch };
    // The card travels twice: inside the file (metadata) and beside it, where a page or server can fetch it.
    const card = E.modelCard(restored, input, io);
    const outputNames = traced instanceof E.PixelPipeline ? traced.outputNames : [card.output.name];
    const shape = inGraph ? E.pixelShape(input) : input;
    // A file (or graph bytes) against tsvision, at another batch size than traced where the batch is dynamic.
    // True when it agrees; else the error is printed and the exit code set.
    const checkAgainstTsvision = async (source: string | Uint8Array, outputs: readonly ValueInfoProto[], what: string): Promise<boolean> => {
      const check = o.fixedBatch ? shape : [shape[0] === 2 ? 3 : 2, ...shape.slice(1)];
      const lead = typeof source === 'string' ? '' : 'float graph (before int8): ';
      // One call: onnxruntime's overloads take a path or bytes, not their union.
      const session = await ort.InferenceSession.create(source as string);
      // Seeded inputs (src/export/check.ts): the same every run; when the first differs, two more decide.
      const agreed: boolean[] = [];
      for (let k = 0; E.checkNeedsMore(agreed); k++) {
        // tsvision's side keeps the logits: a class map may differ only where they tie.
        const { feed, wants } = T.tidy(() => {
          const x = T.forkRng(o.checkSeed + k, () => (inGraph ? T.randint(0, 256, check, { dtype: 'uint8' }) : T.randn(check)));
          const want = T.noGrad(() => (inGraph ? pipeline(true).eval().forward(x) : { [card.output.name]: model.eval().forward(x) }));
          return {
            feed: inGraph ? new ort.Tensor('uint8', x.toArray() as Uint8Array, check) : new ort.Tensor('float32', x.toArray() as Float32Array, check),
            wants: Object.fromEntries(Object.entries(want).map(([key, t]) => [key, Array.from(t.contiguous().toArray() as ArrayLike<number>)])),
          };
        });
        const got = await session.run({ [card.input.name]: feed });
        const on = `${inGraph ? 'random pixels' : 'a random input'} ${check.join('×')} (seed ${o.checkSeed + k})`;
        let ok = true;
        for (const v of outputs) {
          const g = got[v.name].data as ArrayLike<number | bigint>;
          const w = wants[v.name];
          if (v.name === E.CLASSES_OUTPUT) {
            const logits = wants[E.LOGITS_OUTPUT];
            const tolerance = 1e-4 * logits.reduce((m, l) => Math.max(m, Math.abs(l)), 0);
            const d = E.classMapDifferences(g, w, logits, card.classes.length, check[1] * check[2], tolerance);
            console.log(`${lead}onnxruntime-node vs tsvision on ${on}: ${v.name}: ${d.differ ? `differ on ${d.differ} of ${w.length} pixels, ${d.unexplained} of them not ties (logits within 1e-4 of their scale)` : `equal on all ${w.length} pixels`}`);
            ok &&= d.unexplained === 0;
            continue;
          }
          let [maxDiff, scale] = [0, 0];
          for (let i = 0; i < w.length; i++) [maxDiff, scale] = [Math.max(maxDiff, Math.abs(w[i] - Number(g[i]))), Math.max(scale, Math.abs(w[i]))];
          console.log(`${lead}onnxruntime-node vs tsvision on ${on}: ${inGraph ? `${v.name}: ` : ''}max |difference| ${maxDiff.toExponential(2)} (outputs up to ${scale.toFixed(3)})`);
          ok &&= maxDiff <= 1e-4 * Math.max(scale, 1e-6);
        }
        agreed.push(ok);
      }
      await session.release();
      const verdict = E.checkVerdict(agreed);
      if (verdict === 'near-tie') console.log(`the first input differs beyond 1e-4 of the output scale and the next ${agreed.length - 1} agree: taken as a near-tie of maxima (max pooling picking another winner on float rounding)`);
      if (verdict === 'differ') {
        process.stderr.write(`tsvision: ${what} does not reproduce tsvision within 1e-4 of the output scale on ${agreed.filter((a) => !a).length} of ${agreed.length} inputs\n`);
        process.exitCode = 1;
      }
      return verdict !== 'differ';
    };
    const exportOptions: OnnxExportOptions = { inputShape: shape, inputDtype: inGraph ? 'uint8' : 'float32', fixedBatch: o.fixedBatch, inputName: card.input.name, outputNames, metadata: { [E.CARD_METADATA_KEY]: JSON.stringify(card) } };
    let r: OnnxExport & { file: string };
    let int8: Int8Export | null = null;
    // The run's images (a checkpoint's, or those a weights file's record names), loaded once: training
    // images to calibrate on, test images to score on.
    const scored = o.evalImages > 0 && !!recorded;
    using data = o.int8 && (!o.weightsOnly || scored) ? await int8Data(restored, file) : null;
    if (o.int8) {
      checkWritable(o.out);
      // BatchNorm first folded into the convolutions (as for inference): the int8 kernels then take its place too.
      T.tidy(() => foldBatchNorm(model, T.zeros(input)));
      const float = E.toOnnx(traced, exportOptions);
      // The float graph is checked as a plain export is, before it is quantized.
      if (!(await checkAgainstTsvision(concatChunks(float.chunks), float.outputs, 'the float graph'))) return;
      int8 = await writeInt8(ort, float.model, o.out, data, { images: o.calibrationImages, calibration, weightsOnly: o.weightsOnly, reduceRange: o.reduceRange, inputShape: input, fixedBatch: o.fixedBatch, pixels: inGraph ? restored.normalization : null, inputName: card.input.name, card });
      r = { ...float, ...int8.summary, file: o.out };
    } else r = E.exportOnnx(traced, o.out, exportOptions);
    // The card's output type is decided from its class names, the graph's from the traced logits: they must agree.
    const graphType = r.outputs[0].elemType === 'float' ? 'float32' : r.outputs[0].elemType;
    if (card.output.dtype && card.output.dtype !== graphType) throw new Error(`${card.classes.length} class names but the graph's '${card.output.name}' is ${graphType}: the checkpoint's classes do not match its network`);
    const cardFile = E.writeCard(r.file, card);
    const dims = (s: readonly (number | string)[]): string => `[${s.join(', ')}]`;
    console.log(`${r.file}: ${name}, ${(r.bytes / 1e6).toFixed(2)} MB, ${r.nodes} nodes, ${r.initializers} initializers, ONNX opset 17`);
    for (const v of r.inputs) console.log(`  input  ${v.name} ${v.elemType} ${dims(v.shape)}`);
    for (const v of r.outputs) console.log(`  output ${v.name} ${v.elemType} ${dims(v.shape)}`);
    const processing = inGraph ? `; in the graph: uint8 NHWC pixels in, normalized, ${task === 'segment' ? 'a class per pixel' : 'probabilities'} out` : '';
    console.log(`${cardFile}: model card (${card.task}, ${card.classes.length} classes, input ${card.input.channels}×${card.input.height}×${card.input.width}, normalization mean ${card.normalization.mean.map((v) => +v.toFixed(4)).join('/')} std ${card.normalization.std.map((v) => +v.toFixed(4)).join('/')}${processing})`);
    if (int8) {
      const { report: q, calibrationImages } = int8;
      const how = o.weightsOnly ? 'float32 arithmetic (weights only)' : `${q.activations} activations quantized to uint8, calibrated on ${calibrationImages} training images (${calibration.method === 'percentile' ? `${calibration.percentile} percentile` : calibration.method === 'mse' ? 'least squared error' : 'min/max'})`;
      console.log(`int8: ${q.layers} layers with int8 weights${o.reduceRange ? ' in ±64 (--reduce-range)' : ''} (${(q.weightBytes.before / 1e6).toFixed(2)} MB of float32 → ${(q.weightBytes.after / 1e6).toFixed(2)} MB), ${how}`);
      if (o.evalImages === 0) return;
      if (!recorded || !data) {
        console.log('not scored: plain weights name no test images');
        return;
      }
      const s = await scoreInt8(ort, r.file, restored, data, { images: o.evalImages, inputShape: input, fixedBatch: o.fixedBatch, pixels: inGraph ? restored.normalization : null, inputName: card.input.name, outputName: r.outputs[0].name });
      const pct = (v: number): string => `${(100 * v).toFixed(2)}%`;
      console.log(`int8 (onnxruntime-node) vs float32 (tsvision) on ${s.images} test images: ${s.metric} ${pct(s.int8)} vs ${pct(s.float)}, the same class on ${pct(s.agreement)} of ${restored.segmentation ? 'pixels' : 'images'}`);
      // The score is this CPU's: where onnxruntime's integer sums can clip here (no VNNI), say so and how to avoid it.
      if (!o.weightsOnly && !o.reduceRange && T.engineInfo().int8 === 'saturating') console.log('this CPU has no VNNI: onnxruntime\'s uint8 × int8 sums can clip here (and on servers like it), so the score above may be lower than on a CPU with VNNI; --reduce-range (7-bit weights) avoids the clipping at some precision');
      return;
    }
    await checkAgainstTsvision(r.file, r.outputs, 'the exported model');
  });

slideOptions(program
  .command('predict')
  .description('run a checkpoint (or plain weights with --model) on your images: top-k classes, or for segmentation networks the classes found and, with --out, a mask and an overlay per image')
  .argument('<weights>', 'checkpoint.safetensors from `train` or `segment`, or model.safetensors weights')
  .argument('<images...>', 'image files (.png, .jpg, …) or folders of them')
  .option('-m, --model <name>', 'model of plain weights (checkpoints name their own): a classifier or a segmentation network')
  .option('--opt <key=value>', 'model option for plain weights, repeatable', collectOpt, {})
  .option('--top <k>', 'classes to show per image', num('--top', { int: true, min: 1 }), 5)
  .option('--csv <file>', 'classifiers: also write each image\'s answer to this CSV file (file,class,probability; with --min-confidence also unsure)')
  .option('--min-confidence <p>', 'classifiers: mark an answer whose top probability is below p as unsure (meaningful on weights from `tsvision calibrate`)', fraction('--min-confidence'))
  .option('--json', 'print one JSON document on stdout instead of lines', false)
  .option('-o, --out <dir>', 'segmentation: write <name>.mask.png (grey value = class) and <name>.overlay.png here')
  .option('--legend', 'segmentation: add a legend of the class colours below each overlay', false)
  .option('--size <HxW>', 'resize images to H×W before the network (default: the size it was trained on)', sizeArg('--size'))
  .addOption(resizeOption())
  .option('--native', 'segmentation: run at each image\'s own size (padded to the network\'s size multiple) instead of resizing', false)
  .option(scalesOption, 'segmentation: average class probabilities over these input scales (DeepLab-V3 §4.3)', scalesArg)
  .option('--flip', 'also average the class probabilities over the mirrored image (test-time augmentation; classifiers and segmentation)', false))
  .option('--no-optimize', 'run the network exactly as trained: no BatchNorm folding, no oneDNN layout between layers (the answers agree up to float rounding)')
  .option('--bf16', 'run the optimized network in bfloat16: faster on CPUs with AVX-512 BF16 or AMX (see `tsvision info`), ~1% relative error in the logits', false)
  .option('--mean <list>', 'normalization mean per channel, e.g. 0.5,0.5,0.5 (default: what training used; plain weights: as image folders)', numList('--mean'))
  .option('--std <list>', 'normalization std per channel (with --mean)', numList('--std'))
  .option('--batch-size <n>', 'images decoded and run through the network together', num('--batch-size', { int: true, min: 1 }), 8)
  .option('--threads <n>', 'libtorch threads', num('--threads', { int: true, min: 1 }))
  .action(async (weights: string, images: string[], o) => {
    if (o.threads) setNumThreads(o.threads);
    if (!o.mean !== !o.std) throw new InvalidArgumentError('give --mean and --std together');
    if (o.bf16 && !o.optimize) throw new InvalidArgumentError('--bf16 is part of the optimization for inference: it cannot go with --no-optimize');
    const { predictCommand } = await import('./predict');
    await predictCommand(weights, images, { ...o, ...slideArgs(o), precision: o.bf16 ? 'bfloat16' : 'float32', normalization: o.mean ? { mean: o.mean, std: o.std } : undefined });
  });

program
  .command('explain')
  .description('Grad-CAM heatmaps of a classifier on your images: the class it chose (or --class) and <out>/<name>.gradcam.png, the image with the network\'s evidence for that class laid over it; for a segmentation network, the evidence for the region of a class (Seg-Grad-CAM; by default the largest region other than class 0)')
  .argument('<weights>', 'checkpoint.safetensors from `train`, or model.safetensors / best.safetensors weights')
  .argument('<images...>', 'image files (.png, .jpg, …) or folders of them')
  .option('-o, --out <dir>', 'where the heatmaps go', 'explain')
  .option('--class <name>', 'explain this class (a name, or an index) instead of each image\'s top class')
  .option('--layer <name>', 'the module whose feature maps are weighed, by state-dict name (default: the last feature map before the head\'s pooling)')
  .option('--alpha <a>', 'how strongly the heatmap covers the image where it is hottest', num('--alpha', { min: 0, max: 1 }), 0.5)
  .option('-m, --model <name>', 'model of plain weights (checkpoints name their own)')
  .option('--opt <key=value>', 'model option for plain weights, repeatable', collectOpt, {})
  .option('--size <HxW>', 'resize images to H×W before the network (default: the size it was trained on)', sizeArg('--size'))
  .addOption(resizeOption())
  .option('--mean <list>', 'normalization mean per channel (default: what training used)', numList('--mean'))
  .option('--std <list>', 'normalization std per channel (with --mean)', numList('--std'))
  .option('--json', 'print one JSON document on stdout instead of lines', false)
  .option('--threads <n>', 'libtorch threads', num('--threads', { int: true, min: 1 }))
  .action(async (weights: string, images: string[], o) => {
    if (o.threads) setNumThreads(o.threads);
    if (!o.mean !== !o.std) throw new InvalidArgumentError('give --mean and --std together');
    const { explainCommand } = await import('./explain');
    await explainCommand(weights, images, { ...o, normalization: o.mean ? { mean: o.mean, std: o.std } : undefined });
  });

program
  .command('serve')
  .description('serve the browser example (examples/browser/) with an exported model: the classifier page or the segmentation page, as its model card says, run by onnxruntime-web in your browser')
  .argument('<model.onnx>', 'a file written by `tsvision export` (its model card, model.json beside model.onnx, comes along)')
  .option('--port <n>', 'port to listen on (0: any free port)', num('--port', { int: true, min: 0 }), 8000)
  .option('--host <address>', 'address to listen on (0.0.0.0 for other machines)', '127.0.0.1')
  .action(async (file: string, o: { port: number; host: string }) => {
    if (o.port > 65535) throw new InvalidArgumentError(`--port must be at most 65535, got ${o.port}`);
    const { serveModel } = await import('./serve');
    const served = await serveModel(file, o);
    const { input, classes } = served.card;
    console.log(`serving ${file} (${served.card.model}, ${served.card.task}, ${input.channels === 1 ? 'grey' : 'RGB'} ${input.height}×${input.width}, ${classes.length} classes)`);
    console.log(`open ${served.url}   (Ctrl-C stops)`);
    const stop = (): void => void served.close().then(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

/**
 * libtorch's operator profile of `passes` passes of the network on x, after 2 unprofiled: eval-mode forward
 * passes without autograd, or training steps' forward and backward (train mode; the loss a mean of squares of
 * the output, whose own cost is negligible next to the network's).
 */
function profileNetworkOps(model: Module & { forward(x: Tensor): Tensor }, x: Tensor, train: boolean, passes: number): OpProfile {
  const pass = (): void =>
    tidy(() => {
      if (!train) return void noGrad(() => model.forward(x));
      for (const p of model.parameters()) p.grad = null;
      model.forward(x).float().square().mean().backward();
    });
  model.train(train);
  try {
    for (let i = 0; i < 2; i++) pass();
    return profileOps(() => {
      for (let i = 0; i < passes; i++) pass();
    }).profile;
  } finally {
    model.train(false);
    for (const p of model.parameters()) p.grad = null;
  }
}

program
  .command('summary')
  .description('per-layer output shapes, parameters and mult-adds of a registered model (like torchinfo); with --time, its inference latency and frames per second')
  .argument('<model>', `one of: ${[...listModels(), ...listSegmentationModels()].join(', ')}`)
  .option('--opt <key=value>', 'model option, repeatable (e.g. --opt alpha=0.5)', collectOpt, {})
  .option('--input <shape>', 'input shape N,C,H,W (default 1,3,224,224; segmentation networks 1,3,512,1024)')
  .option('--time', 'also time eval-mode forward passes, as built and optimized for inference: median ms and images per second', false)
  .option('--bf16', 'with --time, also time the optimized network in bfloat16', false)
  .option('--rounds <n>', 'timed rounds with --time (each: 2 warm-up and 5 timed passes)', num('--rounds', { int: true, min: 1 }), 3)
  .option('--profile [what]', "also time every layer (eval mode, medians of --passes passes): the slowest layers, the time per layer type, and multiply-adds per second (compute-bound or memory-bound) — of the network as built (default), 'optimized' as Predictor runs it (BatchNorm folded, the faster layout), or 'bfloat16' (optimized, as predict --bf16); or per libtorch operator (its profiler, as torch.autograd.profiler): 'ops' for an eval pass, 'train' for a training step's forward and backward")
  .option('--passes <n>', 'timed passes with --profile (after 2 untimed)', num('--passes', { int: true, min: 1 }), 10)
  .option('--top <n>', 'with --profile: how many of the slowest layers to list (0: all)', num('--top', { int: true, min: 0 }), 15)
  .option('--threads <n>', 'libtorch threads (default: all cores)', num('--threads', { int: true, min: 1 }))
  .action(async (name: string, o, cmd: Command) => {
    if (o.bf16 && !o.time) throw new InvalidArgumentError('--bf16 adds a timing: give --time too');
    for (const flag of ['passes', 'top'] as const) if (cmd.getOptionValueSource(flag) === 'cli' && !o.profile) throw new InvalidArgumentError(`--${flag} sets the profile: give --profile too`);
    const profiled = o.profile === true ? 'built' : o.profile;
    if (profiled !== undefined && !['built', 'optimized', 'bfloat16', 'ops', 'train'].includes(profiled)) throw new InvalidArgumentError(`--profile takes 'built', 'optimized', 'bfloat16', 'ops' or 'train', got '${profiled}'`);
    const segmentation = isSegmentationModelName(name);
    if (!segmentation && !isModelName(name)) throw new InvalidArgumentError(`unknown model '${name}'; known: ${[...listModels(), ...listSegmentationModels()].join(', ')}`);
    if (o.threads) setNumThreads(o.threads);
    const shape = String(o.input ?? (segmentation ? '1,3,512,1024' : '1,3,224,224')).split(/[,x×]/).map(num('--input', { int: true, min: 1 }));
    if (shape.length !== 4) throw new InvalidArgumentError(`--input needs N,C,H,W, got '${o.input}'`);
    const options = { inChannels: shape[1], ...o.opt };
    const model = segmentation ? createSegmentationModel(name, options) : createModel(name as ModelName, options);
    const describe = segmentation ? describeSegmentationModel(name) : describeModel(name as ModelName);
    console.log(formatSummary(summary(model, shape), { title: `${name}: ${describe}` }));
    // The same weights optimized for inference (BatchNorm folded, oneDNN layout), as Predictor runs them.
    const optimized = (precision: InferencePrecision, x: Tensor) => {
      const twin = segmentation ? createSegmentationModel(name, options) : createModel(name as ModelName, options);
      twin.loadStateDict(model.stateDict());
      const fast = optimizeForInference(twin, x, { precision });
      return { fast, layout: fast.settle(x) }; // 'auto' chooses its layout before the timing
    };
    if (o.time) {
      const x = randn(shape);
      const runs = [optimized('float32', x), ...(o.bf16 ? [optimized('bfloat16', x)] : [])];
      const [t, ...f] = measureLatency([model, ...runs.map((r) => r.fast)], x, { rounds: o.rounds, reps: 5, warmup: 2 });
      const line = (l: { ms: number; imagesPerSecond: number }): string => `${l.ms.toFixed(1)} ms median (${o.rounds * 5} passes), ${l.imagesPerSecond.toFixed(1)} images/s`;
      const how = (layout: string): string => `BatchNorm folded, ${layout === 'onednn' ? "oneDNN's" : 'the ordinary'} layout`;
      const lines = [`  as built:                 ${line(t)}`, `  optimized for inference:  ${line(f[0])} (${how(runs[0].layout)}; as Predictor runs it)`];
      if (o.bf16) lines.push(`  optimized, bfloat16:      ${line(f[1])} (${how(runs[1].layout)}; Predictor's precision 'bfloat16', predict --bf16)`);
      console.log(`\ninference at ${shape.join('×')} on ${getNumThreads()} CPU threads, the ${runs.length === 1 ? 'two' : 'three'} taking turns:\n${lines.join('\n')}`);
      x.dispose();
    }
    if (profiled === 'ops' || profiled === 'train') {
      const x = randn(shape);
      console.log(`\n${formatOpProfile(profileNetworkOps(model, x, profiled === 'train', o.passes), { top: o.top, passes: o.passes, title: profiled === 'train' ? 'time per operator of a training step (train mode, forward and backward)' : 'time per operator of an eval pass' })}`);
      x.dispose();
    } else if (profiled) {
      const x = randn(shape);
      const run = profiled === 'built' ? null : optimized(profiled === 'bfloat16' ? 'bfloat16' : 'float32', x);
      const network = run ? `the network optimized${profiled === 'bfloat16' ? ' in bfloat16' : ''} (${run.layout === 'onednn' ? "oneDNN's" : 'the ordinary'} layout)` : 'the network as built';
      console.log(`\n${formatProfile(profileLayers(run?.fast ?? model, x, { passes: o.passes }), { top: o.top, network })}`);
      x.dispose();
    }
  });

program
  .command('sweep')
  .description('a grid search: one train or segment run per combination of the --grid values, one after another, each in its own folder under --out; then the runs side by side (SWEEP.md, sweep.png) and the one chosen by validation score (--val-split) or else test score. Run the same command again to continue a stopped sweep. E.g. tsvision sweep --grid lr=0.01,0.05 -- train --val-split 0.1')
  .requiredOption('-g, --grid <flag=values>', "a flag of the command and its values, comma-separated (or |-separated when a value has commas), e.g. lr=0.01,0.05; repeatable: every combination runs", (v: string, acc: string[]) => [...acc, v], [] as string[])
  .option('-o, --out <dir>', 'where the runs (one folder each), SWEEP.md and sweep.png go', 'runs/sweep')
  .option('--dry-run', 'list the runs (their commands, and whether each is new, resumed or finished) and run nothing', false)
  .argument('<args...>', 'train or segment and its flags, after --: the same for every run')
  .action(async (args: string[], o: { grid: string[]; out: string; dryRun: boolean }) => {
    const { SWEEPABLE, parseGrid, planSweep, sweep } = await import('./sweep');
    const [command, ...rest] = args;
    if (!(SWEEPABLE as readonly string[]).includes(command)) throw new InvalidArgumentError(`sweep runs ${SWEEPABLE.join(' or ')}, not '${command}'`);
    if (o.dryRun) {
      const plan = planSweep({ command: command as (typeof SWEEPABLE)[number], args: rest, axes: parseGrid(o.grid), out: o.out });
      const word = { new: 'new     ', resume: 'resume  ', finished: 'finished' } as const;
      console.log(plan.map((p) => `${word[p.state]}  tsvision ${command} ${[...(p.state === 'resume' ? ['--resume', `${p.dir}/checkpoint.safetensors`] : p.args), '-o', p.dir].join(' ')}`).join('\n'));
      console.log(`${plan.length} runs: ${plan.filter((p) => p.state === 'new').length} new, ${plan.filter((p) => p.state === 'resume').length} to resume, ${plan.filter((p) => p.state === 'finished').length} finished`);
      return;
    }
    const r = await sweep({ command: command as (typeof SWEEPABLE)[number], args: rest, axes: parseGrid(o.grid), out: o.out, cli: __filename });
    if (r.report) console.log(`\n${r.report}\n\nsummary: ${r.summary}\nplot:    ${r.plot}`);
    if (r.stopped) process.exitCode = 128 + STOP_SIGNALS[r.stopped];
    else if (r.failed.length) process.exitCode = 1;
  });

program
  .command('compare')
  .description('runs of train or segment side by side, from their report.json: model, parameters, epochs, loss, test and best validation scores, time per epoch, and a column for every setting in which they differ; --plot draws their curves together')
  .argument('<runs...>', 'run folders (each holding the report.json of a train or segment run), or folders of them such as runs/ or a dsd, mimic or prune output (its phases)')
  .option('--plot <file.png>', 'also draw every run\'s test score and training loss per epoch into this PNG')
  .option('--sort', 'best first: by best validation score when every run has one (--val-split), else by last test score (default: in the order given)', false)
  .option('--json', 'print the runs as JSON (scores in [0, 1]) instead of tables', false)
  .action(async (dirs: string[], o: { plot?: string; sort: boolean; json: boolean }) => {
    const { findRuns, readRun, comparisonTable, plotComparison, bestFirst } = await import('../report/compare');
    const found = findRuns(dirs).map(readRun);
    const runs = o.sort ? bestFirst(found) : found;
    if (o.json) console.log(JSON.stringify(runs, null, 2));
    else {
      // Classifiers and segmentation networks score differently: a table for each kind present.
      const kinds = [...new Set(runs.map((r) => r.kind))];
      console.log(kinds.map((k) => `${kinds.length > 1 ? `${k}:\n\n` : ''}${comparisonTable(runs.filter((r) => r.kind === k))}`).join('\n\n'));
    }
    if (o.plot) {
      await plotComparison(o.plot, runs);
      if (!o.json) console.log(`\nplot: ${o.plot}`);
    }
  });

program
  .command('reproduce')
  .description('reproduce a paper\'s central claim at small scale on Fashion-MNIST (segmentation papers: on its scenes), over seeds; writes REPORT.md and a PNG plot')
  .argument('<paper>', `one of: ${REPRODUCTIONS.join(', ')}`, (v: string): ReproductionName => {
    if (!(REPRODUCTIONS as readonly string[]).includes(v)) throw new InvalidArgumentError(`unknown paper '${v}'; known: ${REPRODUCTIONS.join(', ')}`);
    return v as ReproductionName;
  })
  .option('-o, --out <dir>', 'output folder (default reports/<paper>)')
  .option('--quick', 'a tiny version (seconds), to check the pipeline', false)
  .option('--threads <n>', 'libtorch threads (default 1: the thread count changes float sums, and one thread keeps runs reproducible)', num('--threads', { int: true, min: 1 }))
  .action(async (paper: ReproductionName, o) => {
    const r = await runReproduction(paper, { outDir: o.out, quick: o.quick, threads: o.threads });
    console.log(`report: ${r.reportPath}`);
  });

program
  .command('info')
  .description('libtorch version and location, CUDA devices, threads, allocator')
  .action(() => {
    const i = engineInfo();
    console.log(
      [
        `tsvision ${require(path.join(__dirname, '..', '..', '..', 'package.json')).version}`,
        `libtorch ${i.libtorchVersion} (${i.libtorch})`,
        `addon    ${i.addon}`,
        `CUDA     ${i.cuda ? `available, ${i.cudaDevices} device(s)` : 'not available'}`,
        `threads  ${i.threads} (of ${i.cores} cores)`,
        `allocator ${i.allocator}`,
        `denormals ${i.flushDenormals ? 'flushed to zero (FTZ/DAZ) on every thread: trained weights that drift below 1.2e-38 cost no slow multiplies (TSVISION_DENORMALS=keep for IEEE denormals)' : 'kept (IEEE; TSVISION_DENORMALS=keep, or a CPU without FTZ/DAZ)'}`,
        `bfloat16 ${{ native: 'native (AVX-512 BF16 / AMX): --bf16 speeds up convolution-heavy networks (summary <model> --time --bf16 shows which)', emulated: 'emulated by oneDNN (AVX-512 without BF16): --bf16 is seldom faster', slow: 'no AVX-512: oneDNN has no bfloat16 kernels here, so bfloat16 convolutions and linear layers sum in float32 and --bf16 (predict or train) is no faster' }[i.bfloat16]}`,
        `int8     ${{ vnni: 'VNNI: onnxruntime sums int8 convolutions exactly in 32 bits', saturating: 'no VNNI: onnxruntime sums uint8 × int8 products in 16-bit pairs, which can clip (export --int8 --reduce-range avoids it)', unknown: 'not an x86 CPU with readable flags' }[i.int8]}`,
        `models   ${listModels().join(', ')}`,
      ].join('\n'),
    );
  });

program
  .command('check-data')
  .description('check a dataset before training on it: every image decoded, masks\' labels against the classes, images (or labelled pixels) per class, image sizes, and identical files under two classes or in both the training and the test folder; changes nothing, exits 1 when it finds errors')
  .argument('<dir>', 'class sub-folders of images (or images with --labels), or images/ and masks/ folders (segmentation)')
  .option('--test-dir <dir>', 'the test folder, laid out alike: checked too, and against the training folder for identical files')
  .option('--labels <csv>', "the classes of <dir>'s images in a CSV file, as train --labels")
  .option('--test-labels <csv>', "the same for --test-dir's images")
  .option('--num-classes <n>', 'segmentation: classes of the masks when the folder has no classes.txt', num('--num-classes', { int: true, min: 2 }))
  .option('--mask-name <from=to>', MASK_NAME_HELP, maskNameArg)
  .option('--label-map <map>', LABEL_MAP_HELP, labelMapArg)
  .option('--json', 'print the check as JSON', false)
  .action(async (dir: string, o: { testDir?: string; labels?: string; testLabels?: string; numClasses?: number; maskName?: [string, string]; labelMap?: 'cityscapes' | Record<number, number>; json: boolean }) => {
    const { checkData, describeCheck } = await import('../data/check');
    const { progressReporter } = await import('./predict');
    // One progress line per folder (images decoded of its total), on stderr for long checks.
    const bar = { total: -1, line: null as ReturnType<typeof progressReporter> };
    const onProgress = (done: number, total: number): void => {
      if (bar.total !== total || done === 1) {
        bar.line?.end();
        [bar.total, bar.line] = [total, progressReporter(total)];
      }
      bar.line?.update(done);
    };
    const c = await checkData(dir, o.testDir ?? null, { labels: o.labels, testLabels: o.testLabels, segmentation: { numClasses: o.numClasses, maskName: o.maskName, labelMap: o.labelMap }, onProgress });
    bar.line?.end();
    console.log(o.json ? JSON.stringify(c, null, 2) : describeCheck(c));
    if (c.errors) process.exitCode = 1;
  });

// `tsvision … | head` closes the pipe early: stop quietly, as Unix tools do, not with an EPIPE stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
  process.exit(0);
});

program.parseAsync(process.argv).catch((e: Error) => {
  // Errors the user can act on get one clear line, not a stack trace from native code.
  const msg = e instanceof NonFiniteLossError ? e.message : e.message.split('\n').slice(0, 12).join('\n');
  process.stderr.write(`tsvision: ${msg}\n`);
  // A phase of dsd, mimic or prune stopped by Ctrl-C or SIGTERM (its checkpoint saved) exits as train does.
  process.exitCode = e instanceof PhaseInterrupted ? interruptExitCode() : 1;
});
