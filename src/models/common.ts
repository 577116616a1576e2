// What every tsvision classifier shares: the options the registry passes to all of them, and the
// initialization recipe torchvision uses for its convolutional networks.
import { Tensor, softmax } from '../torch';
import { BatchNorm2d, Conv2d, Linear, Module, init } from '../nn';

/** Options common to every classifier in the registry. */
export interface ClassifierOptions {
  /** Output logits; 1000 (ImageNet) unless said otherwise. */
  numClasses?: number;
  /** Input image channels: 3 for RGB, 1 for Fashion-MNIST. */
  inChannels?: number;
  /**
   * A stem for 28–64 px images (Fashion-MNIST, CIFAR): a 3×3 stride-1 first convolution and no early
   * max-pool, so that a 28×28 image is not reduced to 7×7 before the first block.
   */
  smallInput?: boolean;
}

/** A network mapping images [N, C, H, W] to logits [N, numClasses]. */
export abstract class Classifier extends Module {
  abstract override forward(x: Tensor): Tensor;
  /**
   * The state-dict prefix of the last layer, the one mapping features to logits (`fc` in torchvision's
   * networks): what fine-tuning on other classes starts afresh, and what a frozen backbone leaves trainable.
   */
  abstract readonly head: string;
}

/**
 * torchvision's recipe: He-normal convolutions (fan_out, ReLU gain; He et al. 2015), BatchNorm γ = 1,
 * β = 0, and (linearInit 'normal') classifier weights N(0, 0.01) with zero bias as in its MobileNets.
 * ResNet keeps PyTorch's default Linear init, so 'default' leaves Linear layers alone.
 */
export function initConvNet(model: Module, linearInit: 'default' | 'normal' = 'normal'): void {
  for (const m of model.modules()) {
    if (m instanceof Conv2d) {
      init.kaimingNormal_(m.weight, { mode: 'fan_out', nonlinearity: 'relu' });
      if (m.bias) init.zeros_(m.bias);
    } else if (m instanceof BatchNorm2d) {
      if (m.weight) init.ones_(m.weight);
      if (m.bias) init.zeros_(m.bias);
    } else if (m instanceof Linear && linearInit === 'normal') {
      init.normal_(m.weight, 0, 0.01);
      if (m.bias) init.zeros_(m.bias);
    }
  }
}

/** Resolved common options with their defaults. */
export function commonDefaults(o: ClassifierOptions): Required<ClassifierOptions> {
  return { numClasses: o.numClasses ?? 1000, inChannels: o.inChannels ?? 3, smallInput: o.smallInput ?? false };
}

/**
 * A classifier's class probabilities [N, K]: the softmax of `forward(x)`, or with `flip` its mean with the
 * mirror images' (test-time augmentation: `eval --flip`, `predict --flip`).
 */
export function classProbabilities(forward: (x: Tensor) => Tensor, x: Tensor, flip = false): Tensor {
  const p = softmax(forward(x), 1);
  return flip ? p.add(softmax(forward(x.flip(3)), 1)).div(2) : p;
}
