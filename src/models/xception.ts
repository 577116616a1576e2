// Xception: Deep Learning with Depthwise Separable Convolutions (Chollet, CVPR 2017).
//
// Fig. 5: an entry flow (two convolutions, then three residual blocks of separable convolutions that
// downsample by max-pooling and whose shortcuts are strided 1×1 convolutions), a middle flow repeated
// eight times (three ReLU → SeparableConv 728 → BN with an identity shortcut), and an exit flow (a 728 →
// 1024 block, SeparableConv 1536 and 2048 with ReLU, global average pooling, a fully connected layer).
// Every convolution and separable convolution is followed by batch normalization (§3).
//
// Field names follow the reference PyTorch port (Cadene's pretrainedmodels, timm's legacy_xception), so
// those state dicts load unchanged: block1–block3 are the entry flow, block4–block11 the middle flow,
// block12 with conv3/conv4 the exit flow.
import { Tensor } from '../torch';
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Dropout, Linear, MaxPool2d, Module, ReLU, Sequential } from '../nn';
import { Classifier, ClassifierOptions, commonDefaults, initConvNet } from './common';
import { SqueezeExcite } from './senet';

/**
 * A depthwise 3×3 convolution then a pointwise 1×1 convolution, with no nonlinearity or BN between them
 * (§4.7: an intermediate activation hurts).
 */
export class SeparableConv2d extends Module {
  /** The depthwise convolution (named conv1 in the reference port). */
  conv1: Conv2d;
  pointwise: Conv2d;

  constructor(inC: number, outC: number, kernel = 3, stride = 1, padding = 1, dilation = 1) {
    super();
    this.conv1 = new Conv2d(inC, inC, kernel, { stride, padding, dilation, groups: inC, bias: false });
    this.pointwise = new Conv2d(inC, outC, 1, { bias: false });
  }

  forward(x: Tensor): Tensor {
    return this.pointwise.forward(this.conv1.forward(x));
  }
}

export interface XceptionBlockOptions {
  /** Number of separable convolutions. */
  reps: number;
  /** 2: end with a 3×3/2 max-pool and project the shortcut with a strided 1×1 conv. */
  stride: number;
  /** The first block of the entry flow follows a ReLU already (after conv2), so it starts with the conv. */
  startWithRelu: boolean;
  /** Widen in the first separable conv (entry flow) or in the last (exit flow block). */
  growFirst: boolean;
  /** SE reduction ratio on the residual branch before the addition (0: none). */
  se: number;
}

export class XceptionBlock extends Module {
  skip: Conv2d | null;
  skipbn: BatchNorm2d | null;
  rep: Sequential;
  se: SqueezeExcite | null;

  constructor(inC: number, outC: number, o: XceptionBlockOptions) {
    super();
    const projected = inC !== outC || o.stride !== 1;
    this.skip = projected ? new Conv2d(inC, outC, 1, { stride: o.stride, bias: false }) : null;
    this.skipbn = projected ? new BatchNorm2d(outC) : null;
    const rep: Module[] = [];
    // Every ReLU but the first sees a BN output and may overwrite it; the first sees the block's input, which
    // the shortcut still needs (the reference port's in-place first ReLU corrupted it; timm fixed that).
    const unit = (a: number, b: number): void =>
      void rep.push(new ReLU({ inplace: rep.length > 0 }), new SeparableConv2d(a, b), new BatchNorm2d(b));
    let c = inC;
    if (o.growFirst) {
      unit(inC, outC);
      c = outC;
    }
    for (let i = 0; i < o.reps - 1; i++) unit(c, c);
    if (!o.growFirst) unit(inC, outC);
    if (!o.startWithRelu) rep.shift();
    if (o.stride !== 1) rep.push(new MaxPool2d(3, { stride: o.stride, padding: 1 }));
    this.rep = new Sequential(...rep);
    this.se = o.se ? new SqueezeExcite(outC, o.se) : null;
  }

  forward(x: Tensor): Tensor {
    let y = this.rep.forward(x);
    if (this.se) y = this.se.forward(y);
    const shortcut = this.skip && this.skipbn ? this.skipbn.forward(this.skip.forward(x)) : x;
    return y.add_(shortcut); // y is this block's own BN/pool/SE output
  }
}

export interface XceptionOptions extends ClassifierOptions {
  /** Middle-flow repetitions: 8 in Fig. 5. */
  middleRepeats?: number;
  /** Dropout before the classifier: 0.5 on ImageNet (§4.3). */
  dropout?: number;
  /** SE reduction ratio on every block's residual branch (0: none). */
  se?: number;
}

export class Xception extends Classifier {
  // `declare`d so that fields are created in the order the constructor assigns them (the paper's order,
  // which is also the state-dict order), with the middle-flow blocks between block3 and conv3.
  declare conv1: Conv2d;
  declare bn1: BatchNorm2d;
  declare relu: ReLU;
  declare conv2: Conv2d;
  declare bn2: BatchNorm2d;
  /** block1 … block3: entry flow; block4 … block(3 + middleRepeats): middle flow; the last: exit flow. */
  [block: `block${number}`]: XceptionBlock;
  declare conv3: SeparableConv2d;
  declare bn3: BatchNorm2d;
  declare conv4: SeparableConv2d;
  declare bn4: BatchNorm2d;
  declare avgpool: AdaptiveAvgPool2d;
  declare dropout: Dropout;
  declare fc: Linear;
  readonly head = 'fc';
  declare readonly middleRepeats: number;

  constructor(o: XceptionOptions = {}) {
    super();
    const { numClasses, inChannels, smallInput } = commonDefaults(o);
    const se = o.se ?? 0;
    this.middleRepeats = o.middleRepeats ?? 8;
    // Entry flow. The paper's stem is unpadded (299 → 149 → 147); the small-input stem is stride 1, padded.
    this.conv1 = new Conv2d(inChannels, 32, 3, { stride: smallInput ? 1 : 2, padding: smallInput ? 1 : 0, bias: false });
    this.bn1 = new BatchNorm2d(32);
    this.relu = new ReLU({ inplace: true }); // only ever applied to BN outputs
    this.conv2 = new Conv2d(32, 64, 3, { padding: smallInput ? 1 : 0, bias: false });
    this.bn2 = new BatchNorm2d(64);
    const block = (i: number, a: number, b: number, reps: number, stride: number, startWithRelu: boolean, growFirst: boolean): void => {
      this[`block${i}`] = new XceptionBlock(a, b, { reps, stride, startWithRelu, growFirst, se });
    };
    block(1, 64, 128, 2, 2, false, true);
    block(2, 128, 256, 2, 2, true, true);
    block(3, 256, 728, 2, 2, true, true);
    // Middle flow.
    for (let i = 0; i < this.middleRepeats; i++) block(4 + i, 728, 728, 3, 1, true, true);
    // Exit flow.
    block(4 + this.middleRepeats, 728, 1024, 2, 2, true, false);
    this.conv3 = new SeparableConv2d(1024, 1536);
    this.bn3 = new BatchNorm2d(1536);
    this.conv4 = new SeparableConv2d(1536, 2048);
    this.bn4 = new BatchNorm2d(2048);
    this.avgpool = new AdaptiveAvgPool2d(1);
    this.dropout = new Dropout(o.dropout ?? 0.5);
    this.fc = new Linear(2048, numClasses);
    initConvNet(this);
  }

  /** block1 … block12 in order (entry, middle, exit). */
  get blocks(): XceptionBlock[] {
    return Array.from({ length: 4 + this.middleRepeats }, (_, i) => this[`block${i + 1}`]);
  }

  forwardFeatures(x: Tensor): Tensor {
    x = this.relu.forward(this.bn1.forward(this.conv1.forward(x)));
    x = this.relu.forward(this.bn2.forward(this.conv2.forward(x)));
    for (const b of this.blocks) x = b.forward(x);
    x = this.relu.forward(this.bn3.forward(this.conv3.forward(x)));
    return this.relu.forward(this.bn4.forward(this.conv4.forward(x)));
  }

  forward(x: Tensor): Tensor {
    const f = this.avgpool.forward(this.forwardFeatures(x)).flatten(1);
    return this.fc.forward(this.dropout.forward(f));
  }
}

export const xception = (o: XceptionOptions = {}): Xception => new Xception(o);
