// Models by name: createModel('mobilenet_v1', { alpha: 0.5, numClasses: 10, inChannels: 1, smallInput: true }).
import { SimpleCNN, SimpleCNNOptions, simpleCnn } from './cnn';
import { MobileNetV1, MobileNetV1Options, mobilenetV1 } from './mobilenet';
import { ResNet, ResNetOptions, ResNetSmall, ResNetSmallOptions, resnet101, resnet18, resnet34, resnet50 } from './resnet';
import { seResnet50 } from './senet';
import { Xception, XceptionOptions, xception } from './xception';
import { ShallowNet, ShallowNetOptions, shallowNet } from './shallow';
import { ENetOptions, enet } from './enet';
import { DeepLabV3Options, deeplabv3 } from './deeplabv3';
import { PSPNetOptions, pspnet } from './pspnet';
import { ICNetOptions, icnet } from './icnet';
import { SegmentationNet } from './segmentation';
import { Classifier } from './common';

/** The options each registered model accepts. */
export interface ModelOptions {
  cnn: SimpleCNNOptions;
  resnet_small: ResNetSmallOptions;
  resnet18: ResNetOptions;
  resnet34: ResNetOptions;
  resnet50: ResNetOptions;
  resnet101: ResNetOptions;
  se_resnet50: Omit<ResNetOptions, 'se'> & { reduction?: number };
  mobilenet_v1: MobileNetV1Options;
  xception: XceptionOptions;
  shallow: ShallowNetOptions;
}
export type ModelName = keyof ModelOptions;

/** The class each registered name builds. */
export interface ModelTypes {
  cnn: SimpleCNN;
  resnet_small: ResNetSmall;
  resnet18: ResNet;
  resnet34: ResNet;
  resnet50: ResNet;
  resnet101: ResNet;
  se_resnet50: ResNet;
  mobilenet_v1: MobileNetV1;
  xception: Xception;
  shallow: ShallowNet;
}

interface Entry<N extends ModelName> {
  create: (o: ModelOptions[N]) => ModelTypes[N];
  description: string;
}

const REGISTRY: { [N in ModelName]: Entry<N> } = {
  cnn: { create: simpleCnn, description: 'compact Fashion-MNIST CNN: 2×(conv32-BN-ReLU), pool, 2×(conv64-BN-ReLU), pool, FC' },
  resnet_small: { create: (o) => new ResNetSmall(o), description: 'CIFAR-style ResNet (He et al. §4.2), depth 6n+2, optional SE' },
  resnet18: { create: resnet18, description: 'ResNet-18 (He et al. 2016)' },
  resnet34: { create: resnet34, description: 'ResNet-34 (He et al. 2016)' },
  resnet50: { create: resnet50, description: 'ResNet-50 (He et al. 2016)' },
  resnet101: { create: resnet101, description: 'ResNet-101 (He et al. 2016)' },
  se_resnet50: { create: seResnet50, description: 'SE-ResNet-50 (Hu et al. 2018)' },
  mobilenet_v1: { create: mobilenetV1, description: 'MobileNet v1 with width multiplier α (Howard et al. 2017)' },
  xception: { create: xception, description: 'Xception (Chollet 2017)' },
  shallow: { create: shallowNet, description: 'shallow mimic student: one conv + max-pool, optional linear bottleneck, one wide hidden layer (Ba & Caruana 2014)' },
};

/** The name checks both registries share; `kind` names the registry in errors ("model", "segmentation model"). */
function lookup<Name extends string>(kind: string, table: Record<Name, { description: string }>) {
  const list = (): Name[] => Object.keys(table) as Name[];
  const has = (name: string): name is Name => Object.prototype.hasOwnProperty.call(table, name);
  const check = (name: string): void => {
    if (!has(name)) throw new Error(`unknown ${kind} '${name}'; known: ${list().join(', ')}`);
  };
  return { list, has, check, describe: (name: Name): string => table[name].description };
}

const CLASSIFIERS = lookup('model', REGISTRY);
export const listModels = CLASSIFIERS.list;
export const isModelName = CLASSIFIERS.has;
export const describeModel = CLASSIFIERS.describe;

/** Builds a registered model; throws listing the known names if there is no such model. */
export function createModel<N extends ModelName>(name: N, options: ModelOptions[N] = {}): ModelTypes[N] {
  CLASSIFIERS.check(name);
  const entry = REGISTRY[name] as Entry<N>;
  return entry.create(options);
}

/**
 * A classifier as the training commands build it for their data: its classes and channels, and the
 * small-input stem unless the options ask for ImageNet's (`smallInput: false`, e.g. to fine-tune torchvision's
 * weights on images of ImageNet's size). The run record keeps the options, so every reader rebuilds the same.
 */
export function createClassifier(name: ModelName, options: Record<string, unknown>, data: { numClasses: number; inChannels: number }): Classifier {
  return createModel(name, { smallInput: true, ...options, numClasses: data.numClasses, inChannels: data.inChannels } as ModelOptions[ModelName]);
}

// ---- segmentation ---------------------------------------------------------------------------------------
/** The options each segmentation network accepts. */
export interface SegmentationModelOptions {
  enet: ENetOptions;
  deeplabv3: DeepLabV3Options;
  pspnet: PSPNetOptions;
  icnet: ICNetOptions;
}
export type SegmentationModelName = keyof SegmentationModelOptions;

const SEGMENTATION: { [N in SegmentationModelName]: { create: (o: SegmentationModelOptions[N]) => SegmentationNet; description: string } } = {
  enet: { create: enet, description: 'ENet (Paszke et al. 2016): real-time encoder-decoder with max-unpooling, 0.37M parameters' },
  deeplabv3: { create: deeplabv3, description: 'DeepLab-V3 (Chen et al. 2017): dilated ResNet, multi-grid, ASPP with image pooling' },
  pspnet: { create: pspnet, description: 'PSPNet (Zhao et al. 2017): dilated ResNet, pyramid pooling (1, 2, 3, 6), auxiliary loss' },
  icnet: { create: icnet, description: 'ICNet (Zhao et al. 2018): image cascade (1, 1/2, 1/4), cascade feature fusion, label guidance' },
};

const SEGMENTATION_LOOKUP = lookup('segmentation model', SEGMENTATION);
export const listSegmentationModels = SEGMENTATION_LOOKUP.list;
export const isSegmentationModelName = SEGMENTATION_LOOKUP.has;
export const describeSegmentationModel = SEGMENTATION_LOOKUP.describe;

/** Builds a segmentation network by name: createSegmentationModel('icnet', { numClasses: 19, backbone: 'resnet18' }). */
export function createSegmentationModel<N extends SegmentationModelName>(name: N, options: SegmentationModelOptions[N] = {}): SegmentationNet {
  SEGMENTATION_LOOKUP.check(name);
  return (SEGMENTATION[name].create as (o: SegmentationModelOptions[N]) => SegmentationNet)(options);
}
