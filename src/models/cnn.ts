// A compact CNN for Fashion-MNIST, `npm start`'s default: two VGG-style stages (Simonyan & Zisserman 2015)
// of two 3×3 conv + BN + ReLU and a 2×2 max-pool, then a small fully connected head: 0.47M parameters,
// 18.7M mult-adds per 28×28 image. Networks of this shape reach 91–93% Fashion-MNIST test accuracy in about
// five epochs; BN lets them train at high learning rates, dropout in the head keeps them from overfitting.
import { Tensor } from '../torch';
import { AdaptiveAvgPool2d, Dropout, Linear, MaxPool2d, ReLU, Sequential } from '../nn';
import { Classifier, ClassifierOptions, commonDefaults, initConvNet } from './common';
import { ConvBNReLU } from './mobilenet';
import type { FilterChain } from '../methods/prune';

export interface SimpleCNNOptions extends ClassifierOptions {
  /** Filters of the two stages. */
  widths?: [number, number];
  /** Hidden units of the fully connected head. */
  hidden?: number;
  /** Dropout before the last layer. */
  dropout?: number;
  /** Filters of each of the four convolutions, overriding widths (what filter pruning leaves). */
  channels?: [number, number, number, number];
}

export class SimpleCNN extends Classifier {
  features: Sequential;
  /** 28 px → 7×7 after two pools; other sizes are pooled to 7×7 so the head's width is fixed. */
  pool = new AdaptiveAvgPool2d(7);
  classifier: Sequential;
  readonly head = 'classifier.3';

  constructor(o: SimpleCNNOptions = {}) {
    super();
    const { numClasses, inChannels } = commonDefaults(o);
    // This network is made for small images: smallInput: false only adds a stride-2 first conv.
    const stride = (o.smallInput ?? true) ? 1 : 2;
    const [a, b] = o.widths ?? [32, 64];
    const [c0, c1, c2, c3] = o.channels ?? [a, a, b, b];
    const hidden = o.hidden ?? 128;
    this.features = new Sequential(
      new ConvBNReLU(inChannels, c0, 3, stride),
      new ConvBNReLU(c0, c1, 3, 1),
      new MaxPool2d(2),
      new ConvBNReLU(c1, c2, 3, 1),
      new ConvBNReLU(c2, c3, 3, 1),
      new MaxPool2d(2),
    );
    this.classifier = new Sequential(new Linear(c3 * 49, hidden), new ReLU(), new Dropout(o.dropout ?? 0.3), new Linear(hidden, numClasses));
    initConvNet(this, 'default');
  }

  forward(x: Tensor): Tensor {
    return this.classifier.forward(this.pool.forward(this.features.forward(x)).flatten(1));
  }

  /** Each conv's filters and what reads them; the last feeds the head through a 7×7 flatten. */
  filterChains(): FilterChain[] {
    const [c0, c1, , c2, c3] = this.features.layers as ConvBNReLU[];
    const fc = this.classifier.at(0) as Linear;
    return [
      { name: 'features.0.0', conv: c0.conv, uses: [c0.bn, c1.conv] },
      { name: 'features.1.0', conv: c1.conv, uses: [c1.bn, c2.conv] },
      { name: 'features.3.0', conv: c2.conv, uses: [c2.bn, c3.conv] },
      { name: 'features.4.0', conv: c3.conv, uses: [c3.bn, { linear: fc, perChannel: 49 }] },
    ];
  }

  channelOptions(): { channels: [number, number, number, number] } {
    const convs = this.filterChains().map((c) => c.conv.outChannels);
    return { channels: [convs[0], convs[1], convs[2], convs[3]] };
  }
}

export const simpleCnn = (o: SimpleCNNOptions = {}): SimpleCNN => new SimpleCNN(o);
