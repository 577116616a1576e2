// The data a training run reads: Fashion-MNIST (Debian's package) or a pair of image folders.
import { ColorJitterOptions, DataLoader, FASHION_MNIST_MEAN, FASHION_MNIST_STD, ImageFolder, colorJitter, compose, loadFashionMNIST, normalize, randomCrop, randomHorizontalFlip, toFloat } from '../data';

export type DataSpec =
  | { kind: 'fashion-mnist'; root?: string }
  /** root/<class>/<image> folders; images are resized to `size` (square). */
  | { kind: 'image-folder'; train: string; test: string; size?: number; channels?: 1 | 3 };

export interface Loaders {
  train: DataLoader;
  test: DataLoader;
  numClasses: number;
  inChannels: number;
  classes: readonly string[];
}

/** The side of the square images a data spec yields: 28 for Fashion-MNIST, the resize size for folders. */
export function imageSize(spec: DataSpec): number {
  return spec.kind === 'fashion-mnist' ? 28 : (spec.size ?? 32);
}

/**
 * Training and test loaders. Training batches: toFloat, then with `augment` random crop and flip, then with
 * `colorJitter` the jitter (pixels in [0, 1]; drawn after the crops and flips, so those stay where they were),
 * then normalize. Test batches: toFloat and normalize only.
 */
export function makeLoaders(spec: DataSpec, o: { batchSize: number; seed: number; augment: boolean; colorJitter?: ColorJitterOptions | null }): Loaders {
  const jitter = o.colorJitter ? [colorJitter(o.colorJitter)] : [];
  if (spec.kind === 'fashion-mnist') {
    const train = loadFashionMNIST({ split: 'train', root: spec.root });
    const test = loadFashionMNIST({ split: 'test', root: spec.root });
    const norm = normalize([FASHION_MNIST_MEAN], [FASHION_MNIST_STD]);
    const aug = [...(o.augment ? [randomCrop(28, 2), randomHorizontalFlip()] : []), ...jitter];
    return {
      train: new DataLoader(train, { batchSize: o.batchSize, shuffle: true, seed: o.seed, transform: compose(toFloat(), ...aug, norm) }),
      test: new DataLoader(test, { batchSize: 500, transform: compose(toFloat(), norm) }),
      numClasses: 10,
      inChannels: 1,
      classes: train.classes ?? [],
    };
  }
  const size = imageSize(spec);
  const channels = spec.channels ?? 3;
  const train = new ImageFolder(spec.train, { size, channels });
  const test = new ImageFolder(spec.test, { size, channels });
  if (train.classes.join('\n') !== test.classes.join('\n')) {
    throw new Error(`image folders disagree on classes: ${spec.train} has [${train.classes}], ${spec.test} has [${test.classes}]`);
  }
  // Per-channel statistics of ImageNet are a poor fit for arbitrary folders; scale to [-1, 1] instead.
  const norm = normalize(Array(channels).fill(0.5), Array(channels).fill(0.5));
  const aug = [...(o.augment ? [randomCrop(size, Math.max(1, Math.round(size / 8))), randomHorizontalFlip()] : []), ...jitter];
  return {
    // A last training batch of one image cannot be batch-normalized (BatchNorm2d refuses it): drop only that.
    train: new DataLoader(train, { batchSize: o.batchSize, shuffle: true, seed: o.seed, transform: compose(toFloat(), ...aug, norm), prefetch: 2, dropLast: train.length % o.batchSize === 1 }),
    test: new DataLoader(test, { batchSize: o.batchSize, transform: compose(toFloat(), norm), prefetch: 2 }),
    numClasses: train.classes.length,
    inChannels: channels,
    classes: train.classes,
  };
}
