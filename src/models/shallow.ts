// The shallow student of "Do Deep Nets Really Need to be Deep?" (Ba & Caruana 2014): one non-linear hidden
// layer. For images (their SNN-CNN-MIMIC on CIFAR-10) a single convolution and max-pooling come first. A
// linear bottleneck of k units may sit between the input and the hidden layer (§2.3): it factors the large
// weight matrix W = U·V, which has far fewer parameters and, the paper found, trains faster by mimicry.
import { Tensor, adaptiveMaxPool2d } from '../torch';
import { Conv2d, Linear, ReLU } from '../nn';
import { Classifier, ClassifierOptions, commonDefaults, initConvNet } from './common';

export interface ShallowNetOptions extends ClassifierOptions {
  /** Filters of the one 5×5 convolution (0: none, the input feeds the hidden layer directly). */
  conv?: number;
  /**
   * The conv features (or, without conv, the pixels) are max-pooled to grid × grid, so any input size gives
   * the same width. A plain MLP on 28×28 pixels: { conv: 0, grid: 28 }.
   */
  grid?: number;
  /** Linear units of the bottleneck between input and hidden layer (0: none). */
  bottleneck?: number;
  /** Units of the single non-linear hidden layer. */
  hidden?: number;
}

export const SHALLOW_DEFAULTS = { conv: 32, grid: 7, bottleneck: 0, hidden: 1024 } as const;

export class ShallowNet extends Classifier {
  conv: Conv2d | null;
  /** Linear, no bias: a bias here would only add to the hidden layer's. */
  bottleneck: Linear | null;
  hidden: Linear;
  relu = new ReLU({ inplace: true });
  fc: Linear;
  readonly head = 'fc';
  readonly grid: number;

  constructor(o: ShallowNetOptions = {}) {
    super();
    const { numClasses, inChannels } = commonDefaults(o);
    const conv = o.conv ?? SHALLOW_DEFAULTS.conv;
    this.grid = o.grid ?? SHALLOW_DEFAULTS.grid;
    const k = o.bottleneck ?? SHALLOW_DEFAULTS.bottleneck;
    const hidden = o.hidden ?? SHALLOW_DEFAULTS.hidden;
    this.conv = conv > 0 ? new Conv2d(inChannels, conv, 5, { padding: 2 }) : null;
    const features = (conv > 0 ? conv : inChannels) * this.grid * this.grid;
    this.bottleneck = k > 0 ? new Linear(features, k, { bias: false }) : null;
    this.hidden = new Linear(k > 0 ? k : features, hidden);
    this.fc = new Linear(hidden, numClasses);
    initConvNet(this, 'default');
  }

  forward(x: Tensor): Tensor {
    if (this.conv) x = this.conv.forward(x).relu_();
    x = adaptiveMaxPool2d(x, this.grid).flatten(1);
    if (this.bottleneck) x = this.bottleneck.forward(x);
    return this.fc.forward(this.relu.forward(this.hidden.forward(x)));
  }
}

export const shallowNet = (o: ShallowNetOptions = {}): ShallowNet => new ShallowNet(o);
