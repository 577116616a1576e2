// Fashion-MNIST (Zalando): 28×28 grey images of 10 clothing classes, 60000 for training and 10000 for test.
// Debian ships it as the package dataset-fashion-mnist, which scripts/setup.sh installs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tidy } from '../torch';
import { readIdxImages, readIdxLabels } from './idx';
import { TensorDataset, checkLabelRange } from './loader';

export const FASHION_MNIST_ROOT = '/usr/share/datasets/fashion-mnist';

export const FASHION_MNIST_CLASSES: readonly string[] = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

/** Pixel mean and standard deviation of the training images scaled to [0, 1], for normalize(). */
export const FASHION_MNIST_MEAN = 0.286;
export const FASHION_MNIST_STD = 0.353;

export interface FashionMNISTOptions {
  /** The folder with the four IDX files (gzipped or not). Default: Debian's location. */
  root?: string;
  split: 'train' | 'test';
}

/** Finds <prefix>.gz or <prefix>, with an error that says how to get the data. */
function locate(root: string, prefix: string): string {
  for (const name of [`${prefix}.gz`, prefix]) {
    const f = path.join(root, name);
    if (fs.existsSync(f)) return f;
  }
  throw new Error(
    `Fashion-MNIST: ${path.join(root, prefix)}.gz not found. Install the Debian package dataset-fashion-mnist ` +
      `(scripts/setup.sh installs it), or pass { root } naming a folder with the IDX files.`,
  );
}

/** Loads one split as uint8 images [N, 1, 28, 28] and int64 labels [N], checked for consistency. */
export function loadFashionMNIST(o: FashionMNISTOptions): TensorDataset {
  const root = o.root ?? FASHION_MNIST_ROOT;
  if (o.split !== 'train' && o.split !== 'test') throw new Error(`Fashion-MNIST: split must be 'train' or 'test', got ${String(o.split)}`);
  const stem = o.split === 'train' ? 'train' : 't10k';
  const imagesFile = locate(root, `${stem}-images-idx3-ubyte`);
  const labelsFile = locate(root, `${stem}-labels-idx1-ubyte`);
  return tidy(() => {
    const images = readIdxImages(imagesFile);
    const labels = readIdxLabels(labelsFile);
    if (images.size(0) !== labels.size(0)) {
      throw new Error(`Fashion-MNIST: ${imagesFile} has ${images.size(0)} images but ${labelsFile} has ${labels.size(0)} labels`);
    }
    checkLabelRange(labels, FASHION_MNIST_CLASSES.length, labelsFile);
    return new TensorDataset(images, labels, FASHION_MNIST_CLASSES);
  });
}
