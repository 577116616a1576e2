// One test image as the dataset holds it (before the loader's transform), and the file it came from: what a
// report shows of the images a network got wrong (classifiers) or segmented worst.
import { Tensor, keep, tensor, tidy } from '../torch';
import * as path from 'node:path';
import { BatchSource, Dataset, PixelSample, Sample } from './loader';
import { SampleSubset } from './split';
import { ImageFolder } from './image-folder';
import { SegmentationFiles } from './segmentation-folder';

type AnyDataset = Dataset<Sample> | Dataset<PixelSample> | BatchSource;
const isBatchSource = (d: AnyDataset): d is BatchSource => typeof (d as BatchSource).getBatch === 'function';

/** Image i of a dataset, [C, H, W] as stored (uint8 for Fashion-MNIST and image folders), untransformed. */
export async function sampleImage(dataset: AnyDataset, i: number): Promise<Tensor> {
  if (!Number.isInteger(i) || i < 0 || i >= dataset.length) throw new RangeError(`sampleImage: index ${i} outside [0, ${dataset.length})`);
  if (isBatchSource(dataset)) {
    return tidy(() => {
      const b = dataset.getBatch(tensor([i], { dtype: 'int64' }));
      return keep(b.x.squeeze(0).clone());
    });
  }
  return (await dataset.get(i)).x;
}

/** Image i of a segmentation dataset and its class map: x [C, H, W] as stored, y [H, W]; untransformed, kept. */
export async function pixelSampleAt(dataset: Dataset<PixelSample> | BatchSource, i: number): Promise<PixelSample> {
  if (!Number.isInteger(i) || i < 0 || i >= dataset.length) throw new RangeError(`pixelSampleAt: index ${i} outside [0, ${dataset.length})`);
  if (isBatchSource(dataset)) {
    return tidy(() => {
      const b = dataset.getBatch(tensor([i], { dtype: 'int64' }));
      return { x: keep(b.x.squeeze(0).clone()), y: keep(b.y.squeeze(0).clone()) };
    });
  }
  const s = await dataset.get(i);
  if (s.y.ndim !== 2) throw new Error(`pixelSampleAt: sample ${i} has no class map (its label is [${s.y.shape}])`);
  return s;
}

/** The file image i was read from (image folders, held-out parts of them), or null (in-memory data). */
export function sampleFile(dataset: AnyDataset, i: number): string | null {
  if (dataset instanceof SampleSubset) return sampleFile(dataset.dataset as AnyDataset, dataset.indices[i]);
  if (dataset instanceof ImageFolder) return dataset.samples[i]?.path ?? null;
  if (dataset instanceof SegmentationFiles) return dataset.files[i] === undefined ? null : path.join(dataset.root, 'images', dataset.files[i]);
  return null;
}
