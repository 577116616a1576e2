// Fashion-MNIST scenes: a small real-data segmentation task built offline from Debian's Fashion-MNIST. Each
// scene places 1 to maxItems garments at random positions on a dark canvas (later ones on top); every pixel
// of a garment brighter than `threshold` is labelled with its class (1–10), the rest is background (0). A
// network must find the garments and tell them apart — the two halves of semantic segmentation — and the
// labels are exact, so mIoU measures the network, not the annotation. Built once, in libtorch, per split.
import { Tensor, arange, fromArray, tidy, where, zeros } from '../torch';
import { FASHION_MNIST_CLASSES, FashionMNISTOptions, loadFashionMNIST } from './fashion-mnist';
import { PixelLabelledImages } from './pixel-labels';
import { Rng } from './rng';

export const SCENE_CLASSES: readonly string[] = ['background', ...FASHION_MNIST_CLASSES];

export interface FashionScenesOptions {
  split: FashionMNISTOptions['split'];
  root?: string;
  /** Canvas side in pixels (a multiple of 8 suits ENet); at least 28. */
  size?: number;
  /** Scenes to build; default 10,000 (train) or 2,000 (test). */
  count?: number;
  maxItems?: number;
  /** Garment pixels brighter than this (0–255) are labelled; darker ones stay background. */
  threshold?: number;
  seed?: number;
}

export const FASHION_SCENES_DEFAULTS = { size: 64, trainCount: 10000, testCount: 2000, maxItems: 3, threshold: 30, seed: 0 } as const;

/** Scenes as uint8 images [N, 1, S, S] and uint8 label maps [N, S, S]; batches give int64 labels. */
export class FashionScenes extends PixelLabelledImages {
  readonly size: number;

  constructor(o: FashionScenesOptions) {
    const { images, labels, size } = buildScenes(o);
    super(images, labels, SCENE_CLASSES);
    this.size = size;
  }
}

/** The scenes of one split, as uint8 tensors kept outside any scope. */
function buildScenes(o: FashionScenesOptions): { images: Tensor; labels: Tensor; size: number } {
  const D = FASHION_SCENES_DEFAULTS;
  const s = o.size ?? D.size;
  const n = o.count ?? (o.split === 'train' ? D.trainCount : D.testCount);
  const maxItems = o.maxItems ?? D.maxItems;
  const threshold = o.threshold ?? D.threshold;
  if (!Number.isInteger(s) || s < 28) throw new RangeError(`FashionScenes: size must be an integer ≥ 28, got ${o.size}`);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`FashionScenes: count must be a positive integer, got ${o.count}`);
  if (!Number.isInteger(maxItems) || maxItems < 1) throw new RangeError(`FashionScenes: maxItems must be a positive integer, got ${o.maxItems}`);
  const fm = loadFashionMNIST({ split: o.split, root: o.root });
  // One stream per split and seed: train and test scenes never share a layout, and reruns rebuild the same.
  const rng = Rng.from(o.seed ?? D.seed, o.split === 'train' ? 1 : 2);
  const items = fm.length;
  const draws = Array.from({ length: maxItems }, () => ({ item: new Int32Array(n), oy: new Int32Array(n), ox: new Int32Array(n) }));
  const k = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    k[i] = 1 + rng.int(maxItems);
    for (const d of draws) {
      d.item[i] = rng.int(items);
      d.oy[i] = rng.int(s - 27);
      d.ox[i] = rng.int(s - 27);
    }
  }
  const [images, labels] = tidy(() => {
    let img = zeros([n, s * s], { dtype: 'uint8' });
    let lab = zeros([n, s * s], { dtype: 'uint8' });
    // Canvas offsets of a 28×28 patch at (0, 0); each garment adds its own oy·S + ox.
    const patch = arange(0, 28, 1, { dtype: 'int64' }).mul(s).unsqueeze(1).add(arange(0, 28, 1, { dtype: 'int64' }).unsqueeze(0)).flatten().unsqueeze(0);
    const count = fromArray(k).to('int64');
    draws.forEach((d, j) => {
      const idx = fromArray(d.item).to('int64');
      const garments = fm.images.indexSelect(0, idx).view(n, 784);
      const cls = fm.labels.indexSelect(0, idx).add(1).to('uint8').unsqueeze(1).expand(n, 784);
      const pos = fromArray(d.oy).to('int64').mul(s).add(fromArray(d.ox).to('int64')).unsqueeze(1).add(patch);
      const fg = garments.gt(threshold).logicalAnd(count.gt(j).unsqueeze(1));
      img = img.scatter(1, pos, where(fg, garments, img.gather(1, pos)));
      lab = lab.scatter(1, pos, where(fg, cls, lab.gather(1, pos)));
    });
    return [img.view(n, 1, s, s), lab.view(n, s, s)];
  });
  fm.dispose();
  return { images: images.keep(), labels: labels.keep(), size: s };
}
