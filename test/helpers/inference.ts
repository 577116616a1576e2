// Shared by the inference-speed tests (oneDNN layout, BatchNorm folding): every architecture at a small size,
// BatchNorms that are not the identity, and one number for how far two outputs are apart.
import * as T from '../../src/torch';
import * as nn from '../../src/nn';
import { createModel, createSegmentationModel } from '../../src/models/registry';
import { Module } from '../../src/nn';

type Net = Module & { forward(x: T.Tensor): unknown };

/** Random affine parameters and statistics, so that no BatchNorm is the identity and none silences a branch. */
export function randomBatchNorms(model: Module): void {
  T.noGrad(() => {
    for (const m of model.modules()) {
      if (!(m instanceof nn.BatchNorm2d)) continue;
      m.weight?.uniform_(0.5, 1.5);
      m.bias?.uniform_(-0.5, 0.5);
      m.running_mean?.uniform_(-0.5, 0.5);
      m.running_var?.uniform_(0.5, 1.5);
    }
  });
}

export const first = (y: unknown): T.Tensor => (y instanceof T.Tensor ? y : Array.isArray(y) ? (y[0] as T.Tensor) : ((y as Record<string, T.Tensor>).out ?? Object.values(y as Record<string, T.Tensor>)[0]));

/** Largest |a − b| over the largest |a|. */
export function relMaxDiff(a: T.Tensor, b: T.Tensor): number {
  return T.tidy(() => a.sub(b).abs().max().item() / Math.max(a.abs().max().item(), 1e-12));
}

export const ARCHITECTURES: [string, () => Net, number[]][] = [
  ['cnn', () => createModel('cnn', { inChannels: 1 }) as Net, [2, 1, 28, 28]],
  ['resnet18', () => createModel('resnet18', { numClasses: 10 }) as Net, [1, 3, 64, 64]],
  ['se_resnet50', () => createModel('se_resnet50', { numClasses: 10 }) as Net, [1, 3, 64, 64]],
  ['mobilenet_v1', () => createModel('mobilenet_v1', { alpha: 0.5, numClasses: 10 }) as Net, [2, 3, 64, 64]],
  ['xception', () => createModel('xception', { numClasses: 10 }) as Net, [1, 3, 71, 71]],
  ['enet', () => createSegmentationModel('enet', { numClasses: 5 }) as Net, [1, 3, 64, 128]],
  ['deeplabv3', () => createSegmentationModel('deeplabv3', { numClasses: 5, backbone: 'resnet18' }) as Net, [1, 3, 64, 128]],
  ['pspnet', () => createSegmentationModel('pspnet', { numClasses: 5, backbone: 'resnet18' }) as Net, [1, 3, 64, 128]],
  ['icnet', () => createSegmentationModel('icnet', { numClasses: 5, backbone: 'resnet18' }) as Net, [1, 3, 64, 128]],
];


/** Each architecture built with `seed`, its BatchNorms randomized, in eval mode, with a kept input of its shape. */
export function* evalArchitectures(seed: number): Generator<{ name: string; model: Net; x: T.Tensor }> {
  for (const [name, make, shape] of ARCHITECTURES) {
    T.manualSeed(seed);
    const model = make();
    randomBatchNorms(model);
    model.eval();
    const x = T.randn(shape).keep();
    yield { name, model, x };
    x.dispose();
  }
}
