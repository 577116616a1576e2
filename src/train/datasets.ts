// The data a training run reads: Fashion-MNIST (Debian's package) or image folders (a test folder, or a test share of the training one).
import { BatchSubset, BatchTransform, ConcatDataset, NO_LABEL, Sample, TensorDataset, stratifiedSample, ColorJitterOptions, DataLoader, FASHION_MNIST_MEAN, FASHION_MNIST_STD, IMAGENET, IMAGENET_GREY, ImageFolder, RANDOM_RESIZED_CROP_SCALE, SampleSubset, TEST_SPLIT_SEED, allOf, colorJitter, compose, imageFolderFromCsv, loadFashionMNIST, normalize, ownStream, randomCrop, randomErasing, randomHorizontalFlip, randomResizedCrop, splitOff, toFloat, trivialAugment } from '../data';
import type { Fit } from '../data/decode';
import { tensor } from '../torch';

/**
 * `valSplit` (absent: 0): that share of every class of the training images is held out as a validation set
 * (`stratifiedSplit`, drawn by `valSeed`, else the run's seed), trained on never, evaluated after every epoch.
 * A fixed `valSeed` holds out the same images whatever the run's seed: runs that differ only in their seed
 * are then chosen on one validation set.
 */
export type DataSpec = (
  | { kind: 'fashion-mnist'; root?: string; valSplit?: number }
  /**
   * root/<class>/<image> folders; images are brought to `size` (square) as `resize` says. The test images
   * come from `test`, or with `testSplit` from the training folder: that share of every class, the same
   * images every run (drawn by a fixed seed, not the run's), never trained on; `valSplit` then takes its
   * share of the rest. `cropScale`: with resize 'crop' and augmentation, the smallest random crop's share
   * of the image's area. `labels` (and `testLabels` for `test`): a CSV listing the folder's images and
   * their classes (data/label-csv.ts) instead of class sub-folders.
   */
  | { kind: 'image-folder'; train: string; test?: string; testSplit?: number; size?: number; channels?: 1 | 3; valSplit?: number; normalize?: FolderNormalization; resize?: FolderResize; cropScale?: number; labels?: string; testLabels?: string }
) & LabelledPart & { valSeed?: number };

/**
 * How much of the training images a run has labels for, and what it reads without them. Images without
 * labels (NO_LABEL) teach only through a teacher's logits — mimic learning's transfer set (Ba & Caruana 2014
 * §2: the students learned from far more images than were labelled, each labelled by the teacher) — so a
 * run with them needs a method with its own loss (mimic); plain cross-entropy refuses them.
 */
export interface LabelledPart {
  /**
   * Only this many training images keep their labels: the same share of every class (stratifiedSample),
   * drawn by a fixed seed, so every run asking the same number — a teacher and its students, whatever
   * their seeds — has the same ones. Drawn after the test and validation shares are set apart.
   */
  labelled?: number;
  /**
   * `rest`: the training images `labelled` left out, without their labels; `dir`: the images below a folder
   * (sub-folders too), decoded as the training images are.
   */
  unlabelled?: { rest?: boolean; dir?: string };
}

/**
 * The spec without its transfer set (`unlabelled`): for reading a finished run's test, validation or labelled
 * training images (eval, calibrate, export --int8, prune), which neither need those images nor should fail
 * because a folder of them has since moved.
 */
export function withoutTransferSet(spec: DataSpec): DataSpec {
  const { unlabelled: _, ...rest } = spec;
  return rest;
}

// The labelled draw's seed: the same images for every run asking the same number, whatever its --seed.
const LABELLED_SEED = 0x1abe1;

/**
 * The training indices `kept` (after the held-out shares) in two: those with labels — all, or spec.labelled
 * of them — and the rest. A run trains on the labelled ones, or with `unlabelled.rest` on all of them.
 */
function labelledPart(spec: LabelledPart, labels: readonly number[], kept: Int32Array): { labelled: Int32Array; rest: Int32Array } {
  if (spec.unlabelled?.rest && !spec.labelled) throw new Error('unlabelled.rest is the training images without labels: set labelled (how many keep theirs) too');
  if (!spec.labelled) return { labelled: kept, rest: new Int32Array(0) };
  if (!Number.isInteger(spec.labelled) || spec.labelled < 1 || spec.labelled > kept.length) {
    throw new Error(`labelled: ${spec.labelled} labelled images asked for, but the training part has ${kept.length} (an integer from 1 up)`);
  }
  const { keep, rest } = stratifiedSample(labels, kept, spec.labelled, LABELLED_SEED);
  return { labelled: keep, rest };
}

/**
 * How image-folder images reach the square input: absent or 'squash', resized to it whatever their shape;
 * 'crop', their aspect ratio kept — torchvision's ImageNet recipe: evaluated on the centre 87.5%
 * (Resize(size / 0.875), CenterCrop(size)), trained with augmentation on random resized crops.
 */
export type FolderResize = 'squash' | 'crop';

/** torchvision's evaluation crop: the centre 224 of 256, 0.875 of the side. */
export const CENTER_CROP_FRACTION = 0.875;

/** How a folder run evaluates — and predict and exported models' readers decode — an image. */
export function folderFit(spec: { resize?: FolderResize }): { fit: Fit; cropFraction: number } {
  return spec.resize === 'crop' ? { fit: 'center-crop', cropFraction: CENTER_CROP_FRACTION } : { fit: 'fill', cropFraction: 1 };
}

/**
 * How image-folder pixels are normalized: absent, scaled to [-1, 1] (mean and std 0.5); 'imagenet', with
 * ImageNet's statistics, as torchvision's pretrained weights saw their inputs (fine-tuning them).
 */
export type FolderNormalization = 'imagenet';

/** The per-channel mean and std an image-folder run normalizes with (restore.ts reads the same). */
export function folderNormalization(spec: { channels?: 1 | 3; normalize?: FolderNormalization }): { mean: number[]; std: number[] } {
  const channels = spec.channels ?? 3;
  if (spec.normalize === 'imagenet') {
    const s = channels === 3 ? IMAGENET : IMAGENET_GREY;
    return { mean: [...s.mean], std: [...s.std] };
  }
  // Per-channel statistics of ImageNet are a poor fit for arbitrary folders from scratch; scale to [-1, 1].
  return { mean: Array<number>(channels).fill(0.5), std: Array<number>(channels).fill(0.5) };
}

export interface Loaders {
  train: DataLoader;
  /** The held-out part of the training images (DataSpec.valSplit), with the test transform; null without. */
  val: DataLoader | null;
  test: DataLoader;
  numClasses: number;
  inChannels: number;
  classes: readonly string[];
  /** Images per class in the training part (what `train` learns from, after any held-out shares). */
  trainCounts: number[];
}

/** How many of `indices` (all when absent) carry each of `numClasses` labels. */
function countLabels(labels: readonly number[], numClasses: number, indices?: Int32Array): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  if (indices) for (const i of indices) counts[labels[i]]++;
  else for (const y of labels) counts[y]++;
  return counts;
}

/** The side of the square images a data spec yields: 28 for Fashion-MNIST, the resize size for folders. */
export function imageSize(spec: DataSpec): number {
  return spec.kind === 'fashion-mnist' ? 28 : (spec.size ?? 32);
}

// Their own random streams: turning TrivialAugment or erasing on leaves every other draw where it was.
const TRIVIAL_AUGMENT_STREAM = 0x54415744;
const ERASING_STREAM = 0x45524153;

/** What a training run adds to its images; the knobs of TrainConfig that makeLoaders reads. */
export interface Augmentation {
  augment: boolean;
  colorJitter?: ColorJitterOptions | null;
  trivialAugment?: boolean;
  randomErase?: number;
}

/**
 * The training transform, in torchvision's reference order: the geometric augmentation (on bytes), then
 * TrivialAugment (bytes), toFloat, colour jitter (pixels in [0, 1]), normalize, and random erasing (of the
 * normalized image, to 0, its mean colour).
 */
function trainTransform(geometric: BatchTransform[], norm: BatchTransform, o: Augmentation): BatchTransform {
  return compose(
    ...geometric,
    ...(o.trivialAugment ? [ownStream(trivialAugment(), TRIVIAL_AUGMENT_STREAM)] : []),
    toFloat(),
    ...(o.colorJitter ? [colorJitter(o.colorJitter)] : []),
    norm,
    ...(o.randomErase ? [ownStream(randomErasing({ p: o.randomErase }), ERASING_STREAM)] : []),
  );
}

/**
 * Training and test loaders. Training batches (trainTransform): with `augment` random crop (padded; for
 * folders with resize 'crop', a random resized crop of each image as decoded) and flip, then TrivialAugment,
 * toFloat, colour jitter (drawn after the crops and flips, so those stay where they were), normalize and
 * random erasing, each where asked. Test and validation batches: toFloat and normalize only (folders with
 * resize 'crop': the centre crop).
 */
export function makeLoaders(spec: DataSpec, o: { batchSize: number; seed: number } & Augmentation): Loaders {
  if (spec.kind === 'fashion-mnist') {
    const train = loadFashionMNIST({ split: 'train', root: spec.root });
    const test = loadFashionMNIST({ split: 'test', root: spec.root });
    const norm = normalize([FASHION_MNIST_MEAN], [FASHION_MNIST_STD]);
    const aug = o.augment ? [randomCrop(28, 2), randomHorizontalFlip()] : [];
    const labels = Array.from(train.labels.toArray(), Number);
    const val = spec.valSplit ? splitOff(labels, allOf(labels.length), spec.valSplit, spec.valSeed ?? o.seed) : null;
    const kept = val ? val.keep : allOf(labels.length);
    const { labelled, rest } = labelledPart(spec, labels, kept);
    // The rest without their labels: the same images under a copy of the labels with theirs dropped.
    const dropped = new Set(rest);
    const source = spec.unlabelled?.rest ? new TensorDataset(train.images, tensor(labels.map((y, i) => (dropped.has(i) ? NO_LABEL : y)), { dtype: 'int64' })) : train;
    const part = spec.unlabelled?.rest ? kept : labelled;
    const whole = part.length === labels.length ? source : new BatchSubset(source, part);
    // A folder of more images joins through the per-sample path, decoded to Fashion-MNIST's 28×28 grey.
    const dir = spec.unlabelled?.dir;
    const trainSet = dir ? new ConcatDataset<Sample>(new SampleSubset(source, part), ImageFolder.unlabelled(dir, { size: 28, channels: 1 }, train.classes ?? [])) : whole;
    return {
      train: new DataLoader(trainSet, { batchSize: o.batchSize, shuffle: true, seed: o.seed, transform: trainTransform(aug, norm, o), ...(dir ? { prefetch: 2 } : {}) }),
      val: val && new DataLoader(new BatchSubset(train, val.out), { batchSize: 500, transform: compose(toFloat(), norm) }),
      test: new DataLoader(test, { batchSize: 500, transform: compose(toFloat(), norm) }),
      numClasses: 10,
      inChannels: 1,
      classes: train.classes ?? [],
      trainCounts: countLabels(labels, 10, labelled),
    };
  }
  const size = imageSize(spec);
  const channels = spec.channels ?? 3;
  // Class sub-folders, or a CSV of images and labels (a test CSV numbers its labels by the training classes).
  const open = (root: string, csv: string | undefined, classes?: readonly string[]): ImageFolder =>
    csv ? imageFolderFromCsv(root, csv, { size, channels, ...folderFit(spec), classes }) : new ImageFolder(root, { size, channels, ...folderFit(spec) });
  const folder = open(spec.train, spec.labels);
  const labels = folder.samples.map((s) => s.label);
  if (Boolean(spec.test) === Boolean(spec.testSplit)) throw new Error(`image-folder data takes a test folder or a test split of ${spec.train}, one of the two`);
  if (spec.testLabels && !spec.test) throw new Error('testLabels lists the images of a test folder: give the test folder too');
  const held = spec.testSplit ? splitOff(labels, allOf(labels.length), spec.testSplit, TEST_SPLIT_SEED) : null;
  const test = held ? new SampleSubset(folder, held.out) : open(spec.test!, spec.testLabels, spec.testLabels ? folder.classes : undefined);
  if (test instanceof ImageFolder && folder.classes.join('\n') !== test.classes.join('\n')) {
    throw new Error(`image folders disagree on classes: ${spec.train} has [${folder.classes}], ${spec.test} has [${test.classes}]`);
  }
  const stats = folderNormalization(spec);
  const norm = normalize(stats.mean, stats.std);
  const cropScale = spec.cropScale ?? RANDOM_RESIZED_CROP_SCALE[0];
  const resizedCrops = spec.resize === 'crop' && o.augment;
  // Random resized crops cut each image at its own shape, so training decodes keep the aspect ratio, the
  // shorter side brought down to where the smallest crop (cropScale of the area) still spans `size` pixels:
  // no crop is enlarged from fewer pixels than the image had, and no decode is larger than that needs.
  const train = resizedCrops ? folder.decodedAs({ size: Math.ceil(size / Math.sqrt(cropScale)), fit: 'shorter-side' }) : folder;
  const crops = resizedCrops ? { sampleTransform: randomResizedCrop(size, { scale: [cropScale, 1] }) } : {};
  const aug = o.augment ? [...(resizedCrops ? [] : [randomCrop(size, Math.max(1, Math.round(size / 8)))]), randomHorizontalFlip()] : [];
  const notHeld = held ? held.keep : allOf(labels.length);
  const val = spec.valSplit ? splitOff(labels, notHeld, spec.valSplit, spec.valSeed ?? o.seed) : null;
  const kept = val ? val.keep : notHeld;
  const { labelled, rest } = labelledPart(spec, labels, kept);
  const source = spec.unlabelled?.rest ? train.withoutLabels(rest) : train;
  const part = spec.unlabelled?.rest ? kept : labelled;
  const own = part.length === labels.length ? source : new SampleSubset(source, part);
  const trainPart = spec.unlabelled?.dir ? new ConcatDataset<Sample>(own, ImageFolder.unlabelled(spec.unlabelled.dir, train.decoding(), folder.classes)) : own;
  const evalLoader = (d: DataLoader['dataset']) => new DataLoader(d, { batchSize: o.batchSize, transform: compose(toFloat(), norm), prefetch: 2 });
  return {
    // A last training batch of one image cannot be batch-normalized (BatchNorm2d refuses it): drop only that.
    train: new DataLoader(trainPart, { batchSize: o.batchSize, shuffle: true, seed: o.seed, ...crops, transform: trainTransform(aug, norm, o), prefetch: 2, dropLast: trainPart.length % o.batchSize === 1 }),
    val: val && evalLoader(new SampleSubset(folder, val.out)),
    test: evalLoader(test),
    numClasses: folder.classes.length,
    inChannels: channels,
    classes: folder.classes,
    trainCounts: countLabels(labels, folder.classes.length, labelled),
  };
}

/**
 * sklearn's "balanced" class weights, N / (K · n_c) for the K classes present among N training images (0 for
 * a class with none): a weighted cross-entropy then gives every class the same total weight.
 */
export function balancedClassWeights(counts: readonly number[]): number[] {
  const n = counts.reduce((a, c) => a + c, 0);
  const k = counts.filter((c) => c > 0).length;
  return counts.map((c) => (c > 0 ? n / (k * c) : 0));
}
