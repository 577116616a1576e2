// MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications
// (Howard, Zhu, Chen, Kalenichenko, Wang, Weyand, Andreetto, Adam, 2017).
//
// Table 1: a standard 3×3 convolution with stride 2, then 13 depthwise separable convolutions (Fig. 3:
// 3×3 depthwise + BN + ReLU, 1×1 pointwise + BN + ReLU), global average pooling and a fully connected
// classifier. §3.3: the width multiplier α thins every layer; the resolution multiplier ρ is just the
// input size (224, 192, 160, 128), since the network is fully convolutional up to the global pool.
import { Tensor } from '../torch';
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Dropout, Linear, Module, ReLU, Sequential } from '../nn';
import { Classifier, ClassifierOptions, commonDefaults, initConvNet } from './common';
import { SqueezeExcite } from './senet';
import type { FilterChain } from '../methods/prune';

/** Conv → BN → ReLU as one unit (keys `.0`, `.1` as torchvision's Conv2dNormActivation). */
export class ConvBNReLU extends Sequential {
  constructor(inC: number, outC: number, kernel: number, stride: number, groups = 1) {
    super(new Conv2d(inC, outC, kernel, { stride, padding: (kernel - 1) >> 1, groups, bias: false }), new BatchNorm2d(outC), new ReLU({ inplace: true }));
  }
  get conv(): Conv2d {
    return this.layers[0] as Conv2d;
  }
  get bn(): BatchNorm2d {
    return this.layers[1] as BatchNorm2d;
  }
}

/** Fig. 3 right: depthwise 3×3 conv (one filter per channel) then pointwise 1×1 conv, each with BN + ReLU. */
export class DepthwiseSeparable extends Module {
  depthwise: ConvBNReLU;
  pointwise: ConvBNReLU;
  se: SqueezeExcite | null;

  constructor(inC: number, outC: number, stride: number, se = 0) {
    super();
    this.depthwise = new ConvBNReLU(inC, inC, 3, stride, inC);
    this.pointwise = new ConvBNReLU(inC, outC, 1, 1);
    this.se = se ? new SqueezeExcite(outC, se) : null;
  }

  forward(x: Tensor): Tensor {
    const y = this.pointwise.forward(this.depthwise.forward(x));
    return this.se ? this.se.forward(y) : y;
  }
}

/** Table 1 after the stem: (output channels, stride) of the 13 depthwise separable layers. */
export const MOBILENET_V1_LAYERS: readonly (readonly [number, number])[] = [
  [64, 1], [128, 2], [128, 1], [256, 2], [256, 1], [512, 2],
  [512, 1], [512, 1], [512, 1], [512, 1], [512, 1],
  [1024, 2], [1024, 1],
];

export interface MobileNetV1Options extends ClassifierOptions {
  /** Width multiplier α ∈ (0, 1]: 1, 0.75, 0.5, 0.25 in Table 6. */
  alpha?: number;
  /** No layer thinner than this (TF-slim's min_depth = 8). */
  minDepth?: number;
  /** Dropout before the classifier; TF-slim trains with keep_prob 0.999. */
  dropout?: number;
  /** Squeeze-and-Excitation reduction ratio after each separable block (0: none). */
  se?: number;
  /** Output channels of the stem and the 13 pointwise convolutions, overriding α (what filter pruning leaves). */
  channels?: number[];
}

export class MobileNetV1 extends Classifier {
  features: Sequential;
  avgpool = new AdaptiveAvgPool2d(1);
  dropout: Dropout;
  fc: Linear;
  readonly head = 'fc';

  constructor(o: MobileNetV1Options = {}) {
    super();
    const { numClasses, inChannels, smallInput } = commonDefaults(o);
    const alpha = o.alpha ?? 1;
    const minDepth = o.minDepth ?? 8;
    if (!(alpha > 0)) throw new Error(`MobileNetV1: alpha must be positive, got ${alpha}`);
    const depth = (c: number): number => Math.max(minDepth, Math.round(c * alpha));
    // The small-input stem keeps stride 1: 28 px → 28, 14, 7, 4, 2 over the four stride-2 blocks.
    const widths = o.channels ?? [depth(32), ...MOBILENET_V1_LAYERS.map(([out]) => depth(out))];
    if (widths.length !== 14) throw new Error(`MobileNetV1: channels needs 14 widths (stem + 13 pointwise), got ${widths.length}`);
    let c = widths[0];
    const layers: Module[] = [new ConvBNReLU(inChannels, c, 3, smallInput ? 1 : 2)];
    MOBILENET_V1_LAYERS.forEach(([, stride], i) => {
      layers.push(new DepthwiseSeparable(c, widths[i + 1], stride, o.se ?? 0));
      c = widths[i + 1];
    });
    this.features = new Sequential(...layers);
    this.dropout = new Dropout(o.dropout ?? 0.001);
    this.fc = new Linear(c, numClasses);
    initConvNet(this);
  }

  forward(x: Tensor): Tensor {
    const f = this.avgpool.forward(this.features.forward(x)).flatten(1);
    return this.fc.forward(this.dropout.forward(f));
  }

  /**
   * The stem's and each pointwise conv's filters, and what follows them channel for channel: their BN, the
   * next block's depthwise conv and its BN, then the next pointwise conv (or the classifier) reads them.
   */
  filterChains(): FilterChain[] {
    const layers = this.features.layers;
    const blocks = layers.slice(1) as DepthwiseSeparable[];
    if (blocks.some((b) => b.se)) throw new Error('MobileNetV1: filter pruning with squeeze-and-excitation blocks is not supported');
    const out = [layers[0] as ConvBNReLU, ...blocks.map((b) => b.pointwise)];
    return out.map((unit, i) => {
      const next = blocks[i];
      const name = i === 0 ? 'features.0.0' : `features.${i}.pointwise.0`;
      return next
        ? { name, conv: unit.conv, uses: [unit.bn, next.depthwise.conv, next.depthwise.bn, next.pointwise.conv] }
        : { name, conv: unit.conv, uses: [unit.bn, { linear: this.fc, perChannel: 1 }] };
    });
  }

  channelOptions(): { channels: number[] } {
    return { channels: this.filterChains().map((c) => c.conv.outChannels) };
  }
}

export const mobilenetV1 = (o: MobileNetV1Options = {}): MobileNetV1 => new MobileNetV1(o);
