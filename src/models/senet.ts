// Squeeze-and-Excitation Networks (Hu, Shen, Sun, CVPR 2018).
//
// An SE block (§3, Fig. 1) recalibrates channels: squeeze each channel to one number by global average
// pooling (Eq. 2), excite through a bottleneck of two fully connected layers, ReLU then sigmoid (Eq. 3),
// and scale the feature map channel-wise by the result (Eq. 4). The FC layers are 1×1 convolutions with
// bias, as in the authors' released models; the fields are named fc1/fc2 as in torchvision's
// ops.SqueezeExcitation, so its state dicts load unchanged.
import { Tensor } from '../torch';
import { AdaptiveAvgPool2d, Conv2d, Module, ReLU, Sigmoid } from '../nn';
import { ResNet, ResNetOptions, Bottleneck } from './resnet';

export class SqueezeExcite extends Module {
  avgpool = new AdaptiveAvgPool2d(1);
  /** Reduction FC: C → C/r (the paper's W1). */
  fc1: Conv2d;
  /** Expansion FC: C/r → C (the paper's W2). */
  fc2: Conv2d;
  activation = new ReLU();
  scaleActivation = new Sigmoid();

  /** reduction r = 16 is the paper's choice (§6.1, Table 10: best accuracy/complexity trade-off). */
  constructor(readonly channels: number, readonly reduction = 16) {
    super();
    const squeezed = Math.max(1, Math.round(channels / reduction));
    this.fc1 = new Conv2d(channels, squeezed, 1);
    this.fc2 = new Conv2d(squeezed, channels, 1);
  }

  forward(x: Tensor): Tensor {
    const s = this.avgpool.forward(x);
    const w = this.scaleActivation.forward(this.fc2.forward(this.activation.forward(this.fc1.forward(s))));
    return x.mul(w);
  }
}

/**
 * SE-ResNet-50 (Table 1): ResNet-50 with an SE block on each bottleneck's residual branch, before the
 * addition with the identity (Fig. 3). 28.09M parameters at 1000 classes: ResNet-50's 25.56M plus the ~2.5M
 * the SE blocks add (§4).
 */
export function seResnet50(o: Omit<ResNetOptions, 'se'> & { reduction?: number } = {}): ResNet {
  return new ResNet(Bottleneck, [3, 4, 6, 3], { ...o, se: o.reduction ?? 16 });
}
