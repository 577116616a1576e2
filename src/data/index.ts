// Data: IDX files, Fashion-MNIST, image folders, batch transforms and a prefetching DataLoader.
export { Rng, deriveSeed } from './rng';
export { readIdx, readIdxImages, readIdxLabels, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC } from './idx';
export type { IdxArray } from './idx';
export { TensorDataset, DataLoader, disposeBatch, checkLabelRange } from './loader';
export type { Dataset, Sample, PixelSample, BatchSource, Batch, DataLoaderOptions, EpochOptions } from './loader';
export { compose, toFloat, normalize, randomCrop, randomHorizontalFlip, resize } from './transforms';
export type { BatchData, BatchContext, BatchTransform } from './transforms';
export { loadFashionMNIST, FASHION_MNIST_CLASSES, FASHION_MNIST_ROOT, FASHION_MNIST_MEAN, FASHION_MNIST_STD } from './fashion-mnist';
export type { FashionMNISTOptions } from './fashion-mnist';
export { ImageFolder } from './image-folder';
export type { ImageFolderOptions, ImageFolderSample } from './image-folder';
export { PixelLabelledImages, labelCounts } from './pixel-labels';
export { FashionScenes, SCENE_CLASSES, FASHION_SCENES_DEFAULTS } from './fashion-scenes';
export type { FashionScenesOptions } from './fashion-scenes';
export { SegmentationFolder, SegmentationFiles, IGNORE_LABEL } from './segmentation-folder';
export { segmentationAugment, warpSegmentation } from './segmentation-augment';
export type { SegmentationAugmentOptions, AugmentDraw } from './segmentation-augment';
export type { SegmentationFolderOptions } from './segmentation-folder';
