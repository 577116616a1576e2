// Deep Residual Learning for Image Recognition (He, Zhang, Ren, Sun, CVPR 2016).
//
// Layout, field names and initialization follow torchvision's models/resnet.py, so its state dicts
// (converted to safetensors) load unchanged: conv1, bn1, layer1.0.conv1, layer1.0.downsample.0, fc, ...
// As in torchvision ("ResNet v1.5") the bottleneck strides in its 3×3 convolution, not in the first 1×1.
import { Tensor } from '../torch';
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Identity, Linear, MaxPool2d, Module, ReLU, Sequential, init } from '../nn';
import { Classifier, ClassifierOptions, commonDefaults, initConvNet } from './common';
import { SqueezeExcite } from './senet';
import type { FilterChain } from '../methods/prune';

const conv3x3 = (inC: number, outC: number, stride = 1, dilation = 1): Conv2d =>
  new Conv2d(inC, outC, 3, { stride, padding: dilation, dilation, bias: false });
const conv1x1 = (inC: number, outC: number, stride = 1): Conv2d => new Conv2d(inC, outC, 1, { stride, bias: false });

/** What a residual block needs to know when a stage builds it. */
export interface BlockConfig {
  stride: number;
  /** 1×1 projection shortcut (Eq. 2, option B) when the shape changes; null: identity shortcut (Eq. 1). */
  downsample: Sequential | null;
  /** Dilation of the (first) 3×3 convolution. */
  dilation: number;
  /** Dilation of a BasicBlock's second 3×3 (default: dilation): the first block of a dilated stage keeps the
   * old rate where the stride was and uses the new one after it, as torchvision's Bottleneck does. */
  dilation2?: number;
  /** SE reduction ratio, or 0 for a plain residual block (Hu et al.: SE on the residual branch). */
  se: number;
}

/** Two 3×3 convolutions (Fig. 5 left): ResNet-18/34. */
export class BasicBlock extends Module {
  static readonly expansion = 1;
  conv1: Conv2d;
  bn1: BatchNorm2d;
  relu = new ReLU({ inplace: true }); // as torchvision: it only ever sees a BN output or a sum
  conv2: Conv2d;
  bn2: BatchNorm2d;
  se: SqueezeExcite | null;
  downsample: Sequential | null;

  constructor(inplanes: number, planes: number, c: BlockConfig) {
    super();
    // torchvision refuses dilation here; dilated ResNet-18/34 backbones (DeepLab, PSPNet, ICNet on small
    // budgets) need it, and the atrous rule is the same as in the bottleneck.
    this.conv1 = conv3x3(inplanes, planes, c.stride, c.dilation);
    this.bn1 = new BatchNorm2d(planes);
    this.conv2 = conv3x3(planes, planes, 1, c.dilation2 ?? c.dilation);
    this.bn2 = new BatchNorm2d(planes);
    this.se = c.se ? new SqueezeExcite(planes, c.se) : null;
    this.downsample = c.downsample;
  }

  /** The BN whose γ zeroInitResidual sets to 0, so that each block starts as the identity. */
  get lastBn(): BatchNorm2d {
    return this.bn2;
  }

  forward(x: Tensor): Tensor {
    let out = this.relu.forward(this.bn1.forward(this.conv1.forward(x)));
    out = this.bn2.forward(this.conv2.forward(out));
    if (this.se) out = this.se.forward(out);
    const identity = this.downsample ? this.downsample.forward(x) : x;
    return this.relu.forward(out.add_(identity)); // torchvision: out += identity; relu(out)
  }
}

/** 1×1 reduce, 3×3, 1×1 expand ×4 (Fig. 5 right): ResNet-50/101/152. */
export class Bottleneck extends Module {
  static readonly expansion = 4;
  conv1: Conv2d;
  bn1: BatchNorm2d;
  conv2: Conv2d;
  bn2: BatchNorm2d;
  conv3: Conv2d;
  bn3: BatchNorm2d;
  relu = new ReLU({ inplace: true }); // as torchvision: it only ever sees a BN output or a sum
  se: SqueezeExcite | null;
  downsample: Sequential | null;

  constructor(inplanes: number, planes: number, c: BlockConfig) {
    super();
    const out = planes * Bottleneck.expansion;
    this.conv1 = conv1x1(inplanes, planes);
    this.bn1 = new BatchNorm2d(planes);
    this.conv2 = conv3x3(planes, planes, c.stride, c.dilation);
    this.bn2 = new BatchNorm2d(planes);
    this.conv3 = conv1x1(planes, out);
    this.bn3 = new BatchNorm2d(out);
    this.se = c.se ? new SqueezeExcite(out, c.se) : null;
    this.downsample = c.downsample;
  }

  get lastBn(): BatchNorm2d {
    return this.bn3;
  }

  forward(x: Tensor): Tensor {
    let out = this.relu.forward(this.bn1.forward(this.conv1.forward(x)));
    out = this.relu.forward(this.bn2.forward(this.conv2.forward(out)));
    out = this.bn3.forward(this.conv3.forward(out));
    if (this.se) out = this.se.forward(out);
    const identity = this.downsample ? this.downsample.forward(x) : x;
    return this.relu.forward(out.add_(identity)); // torchvision: out += identity; relu(out)
  }
}

export type ResidualBlock = BasicBlock | Bottleneck;
export interface BlockType {
  new (inplanes: number, planes: number, c: BlockConfig): ResidualBlock;
  readonly expansion: number;
}

export interface ResNetOptions extends ClassifierOptions {
  /**
   * Replace the stride of layer2, layer3, layer4 by dilation (atrous convolution), as torchvision's
   * replace_stride_with_dilation: output stride 16 with [false, false, true], 8 with [false, true, true]
   * (DeepLab, PSPNet).
   */
  replaceStrideWithDilation?: [boolean, boolean, boolean];
  /** Zero γ of each block's last BN (Goyal et al. 2017, "Accurate, Large Minibatch SGD", §5.1). */
  zeroInitResidual?: boolean;
  /** Squeeze-and-Excitation reduction ratio on every block (0: none). SE-ResNet uses 16. */
  se?: number;
  /**
   * DeepLab-V3's Multi_Grid (§3.2): unit rates of layer4's blocks, multiplied by the stage's rate — (1, 2, 4)
   * at output stride 16 gives rates (2, 4, 8). Needs layer4 dilated.
   */
  multiGrid?: number[];
  /** Channels of the stem and layer1 (64 in the paper; each later stage doubles them): narrow backbones. */
  width?: number;
}

export class ResNet extends Classifier {
  conv1: Conv2d;
  bn1: BatchNorm2d;
  relu = new ReLU({ inplace: true }); // as torchvision: it only ever sees a BN output or a sum
  maxpool: MaxPool2d | Identity;
  layer1: Sequential;
  layer2: Sequential;
  layer3: Sequential;
  layer4: Sequential;
  avgpool = new AdaptiveAvgPool2d(1);
  /** null with numClasses 0: a headless backbone whose forward returns the pooled features. */
  fc: Linear | null;
  readonly head = 'fc';
  readonly featureChannels: number;
  private inplanes: number;
  private dilation = 1;

  constructor(block: BlockType, layers: [number, number, number, number], o: ResNetOptions = {}) {
    super();
    const { numClasses, inChannels, smallInput } = commonDefaults(o);
    const dilate = o.replaceStrideWithDilation ?? [false, false, false];
    const se = o.se ?? 0;
    const w = o.width ?? 64;
    if (o.multiGrid && !dilate[2]) throw new Error('ResNet: multiGrid needs layer4 dilated (replaceStrideWithDilation[2])');
    this.inplanes = w;
    // Table 1: conv1 7×7/2 then 3×3/2 max-pool; the small-input stem keeps full resolution.
    this.conv1 = smallInput
      ? new Conv2d(inChannels, w, 3, { stride: 1, padding: 1, bias: false })
      : new Conv2d(inChannels, w, 7, { stride: 2, padding: 3, bias: false });
    this.bn1 = new BatchNorm2d(w);
    this.maxpool = smallInput ? new Identity() : new MaxPool2d(3, { stride: 2, padding: 1 });
    this.layer1 = this.makeLayer(block, w, layers[0], 1, false, se);
    this.layer2 = this.makeLayer(block, 2 * w, layers[1], 2, dilate[0], se);
    this.layer3 = this.makeLayer(block, 4 * w, layers[2], 2, dilate[1], se);
    this.layer4 = this.makeLayer(block, 8 * w, layers[3], 2, dilate[2], se, o.multiGrid);
    this.featureChannels = 8 * w * block.expansion;
    this.fc = numClasses > 0 ? new Linear(this.featureChannels, numClasses) : null;

    initConvNet(this, 'default');
    if (o.zeroInitResidual) {
      for (const m of this.modules()) if (m instanceof BasicBlock || m instanceof Bottleneck) if (m.lastBn.weight) init.zeros_(m.lastBn.weight);
    }
  }

  /**
   * torchvision's _make_layer: the first block changes stride/width, the rest keep them. A dilated stage
   * trades its stride for a rate (the atrous algorithm); with a multi-grid, block i uses rate × grid[i].
   */
  private makeLayer(block: BlockType, planes: number, blocks: number, stride: number, dilate: boolean, se: number, multiGrid?: number[]): Sequential {
    const previousDilation = this.dilation;
    if (dilate) {
      this.dilation *= stride;
      stride = 1;
    }
    if (multiGrid && multiGrid.length !== blocks) throw new Error(`ResNet: multiGrid needs one rate per block of layer4 (${blocks}), got ${multiGrid.length}`);
    const rate = (i: number): number => (multiGrid ? this.dilation * multiGrid[i] : this.dilation);
    const outC = planes * block.expansion;
    const downsample = stride !== 1 || this.inplanes !== outC ? new Sequential(conv1x1(this.inplanes, outC, stride), new BatchNorm2d(outC)) : null;
    const first = multiGrid ? rate(0) : previousDilation;
    const out: ResidualBlock[] = [new block(this.inplanes, planes, { stride, downsample, dilation: first, dilation2: rate(0), se })];
    this.inplanes = outC;
    for (let i = 1; i < blocks; i++) out.push(new block(this.inplanes, planes, { stride: 1, downsample: null, dilation: rate(i), se }));
    return new Sequential(...out);
  }

  /** conv1, BN, ReLU, max-pool: stride 4 (1 with the small-input stem). */
  stem(x: Tensor): Tensor {
    return this.maxpool.forward(this.relu.forward(this.bn1.forward(this.conv1.forward(x))));
  }

  /**
   * Filter chains inside the residual blocks (conv1 → conv2, and conv2 → conv3 in a bottleneck): the inner
   * widths, which filter pruning may narrow without touching the residual stream the blocks add to.
   */
  residualFilterChains(prefix: string): FilterChain[] {
    const chains: FilterChain[] = [];
    [this.layer1, this.layer2, this.layer3, this.layer4].forEach((layer, li) =>
      (layer.layers as ResidualBlock[]).forEach((b, bi) => {
        const p = `${prefix}layer${li + 1}.${bi}`;
        chains.push({ name: `${p}.conv1`, conv: b.conv1, uses: [b.bn1, b.conv2] });
        if (b instanceof Bottleneck) chains.push({ name: `${p}.conv2`, conv: b.conv2, uses: [b.bn2, b.conv3] });
      }),
    );
    return chains;
  }

  /** The feature maps after layer1..layer4 (strides 4, 8, 16, 32 without dilation): backbone use. */
  forwardFeatures(x: Tensor): [Tensor, Tensor, Tensor, Tensor] {
    const c2 = this.layer1.forward(this.stem(x));
    const c3 = this.layer2.forward(c2);
    const c4 = this.layer3.forward(c3);
    const c5 = this.layer4.forward(c4);
    return [c2, c3, c4, c5];
  }

  forward(x: Tensor): Tensor {
    const pooled = this.avgpool.forward(this.forwardFeatures(x)[3]).flatten(1);
    return this.fc ? this.fc.forward(pooled) : pooled;
  }
}

/** Table 1 depths. */
export const resnet18 = (o: ResNetOptions = {}): ResNet => new ResNet(BasicBlock, [2, 2, 2, 2], o);
export const resnet34 = (o: ResNetOptions = {}): ResNet => new ResNet(BasicBlock, [3, 4, 6, 3], o);
export const resnet50 = (o: ResNetOptions = {}): ResNet => new ResNet(Bottleneck, [3, 4, 6, 3], o);
export const resnet101 = (o: ResNetOptions = {}): ResNet => new ResNet(Bottleneck, [3, 4, 23, 3], o);

export interface ResNetSmallOptions extends ClassifierOptions {
  /** 6n + 2 weighted layers: 20, 32, 44, 56, 110 in the paper's Table 6. */
  depth?: number;
  /** Squeeze-and-Excitation reduction ratio on every block (0: none); 16 in the SENet paper. */
  se?: number;
  /** Width of the first stage; the paper's 16 (then 32, 64). */
  width?: number;
}

/**
 * The CIFAR-10 ResNet of §4.2: a 3×3 conv, then three stages of n BasicBlocks on 32×32, 16×16, 8×8 maps
 * with 16, 32, 64 filters, global pooling and an FC layer. Shortcuts that change shape use 1×1 projections
 * (the paper's option B) rather than zero padding (option A): the difference is small (Table 3) and it keeps
 * one block type. smallInput is this network's native stem; smallInput: false adds a stride-2 conv and
 * max-pool for larger images.
 */
export class ResNetSmall extends Classifier {
  conv1: Conv2d;
  bn1: BatchNorm2d;
  relu = new ReLU({ inplace: true }); // as torchvision: it only ever sees a BN output or a sum
  maxpool: MaxPool2d | Identity;
  layer1: Sequential;
  layer2: Sequential;
  layer3: Sequential;
  avgpool = new AdaptiveAvgPool2d(1);
  fc: Linear;
  readonly head = 'fc';

  constructor(o: ResNetSmallOptions = {}) {
    super();
    const { numClasses, inChannels } = commonDefaults(o);
    const smallInput = o.smallInput ?? true;
    const depth = o.depth ?? 20;
    if ((depth - 2) % 6 !== 0) throw new Error(`ResNetSmall: depth must be 6n + 2, got ${depth}`);
    const n = (depth - 2) / 6;
    const w = o.width ?? 16;
    const se = o.se ?? 0;
    this.conv1 = new Conv2d(inChannels, w, 3, { stride: smallInput ? 1 : 2, padding: 1, bias: false });
    this.bn1 = new BatchNorm2d(w);
    this.maxpool = smallInput ? new Identity() : new MaxPool2d(3, { stride: 2, padding: 1 });
    const stage = (inC: number, outC: number, stride: number): Sequential => {
      const blocks: BasicBlock[] = [];
      for (let i = 0; i < n; i++) {
        const first = i === 0 && (stride !== 1 || inC !== outC);
        const downsample = first ? new Sequential(conv1x1(inC, outC, stride), new BatchNorm2d(outC)) : null;
        blocks.push(new BasicBlock(i === 0 ? inC : outC, outC, { stride: i === 0 ? stride : 1, downsample, dilation: 1, se }));
      }
      return new Sequential(...blocks);
    };
    this.layer1 = stage(w, w, 1);
    this.layer2 = stage(w, 2 * w, 2);
    this.layer3 = stage(2 * w, 4 * w, 2);
    this.fc = new Linear(4 * w, numClasses);
    initConvNet(this, 'default');
  }

  forward(x: Tensor): Tensor {
    x = this.maxpool.forward(this.relu.forward(this.bn1.forward(this.conv1.forward(x))));
    x = this.layer3.forward(this.layer2.forward(this.layer1.forward(x)));
    return this.fc.forward(this.avgpool.forward(x).flatten(1));
  }
}
