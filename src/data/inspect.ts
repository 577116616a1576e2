// One test image as the dataset holds it (before the loader's transform), and the file it came from: what a
// report shows of the images a network got wrong.
import { Tensor, keep, tensor, tidy } from '../torch';
import { BatchSource, Dataset, Sample } from './loader';
import { SampleSubset } from './split';
import { ImageFolder } from './image-folder';

type AnyDataset = Dataset<Sample> | BatchSource;
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

/** The file image i was read from (image folders, held-out parts of them), or null (in-memory data). */
export function sampleFile(dataset: AnyDataset, i: number): string | null {
  if (dataset instanceof SampleSubset) return sampleFile(dataset.dataset as AnyDataset, dataset.indices[i]);
  if (dataset instanceof ImageFolder) return dataset.samples[i]?.path ?? null;
  return null;
}
