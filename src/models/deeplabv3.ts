// Rethinking Atrous Convolution for Semantic Image Segmentation — DeepLab-V3 (Chen, Papandreou, Schroff,
// Adam, 2017).
//
// A ResNet whose last blocks trade stride for atrous rate (output stride 16, or 8 for denser features, §3.2),
// block4 with the Multi_Grid unit rates (1, 2, 4), then Atrous Spatial Pyramid Pooling (§3.3, Fig. 5): one
// 1×1 and three 3×3 convolutions at rates (6, 12, 18) — doubled at output stride 8 — and image-level
// features (global average pooling, 1×1 conv, bilinear upsampling), each with 256 filters and batch norm,
// concatenated, fused by another 1×1 conv with 256 filters and BN, and a final 1×1 conv to the logits, which
// are bilinearly upsampled to the image. Field names follow torchvision's ASPP (convs.i, project).
//
// Filter pruning (ICNet §5's kernel pruning) narrows the backbone blocks' inner widths, every ASPP branch (the
// projection then reads fewer channels at that branch's place in the concatenation) and the projection.
import { Tensor, cat } from '../torch';
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Module, ModuleList, Sequential } from '../nn';
import { ResNet } from './resnet';
import { BackboneOptions, LAYER4_BLOCKS, SegmentationNet, bnOf, convBnRelu, convOf, dilatedResNet, upsample } from './segmentation';
import { initConvNet } from './common';
import { FilterChain, narrowFilters } from '../methods/prune';

/** The paper's hyperparameters. */
export const DEEPLABV3_DEFAULTS = {
  outputStride: 16 as 8 | 16,
  /** Block4's unit rates (Table 3's best: (1, 2, 4)). */
  multiGrid: [1, 2, 4],
  /** ASPP rates at output stride 16; doubled at 8. */
  atrousRates: [6, 12, 18],
  /** Filters of every ASPP branch and of the fusing 1×1 conv. */
  channels: 256,
} as const;

export interface DeepLabV3Options extends BackboneOptions {
  numClasses?: number;
  /** Block4's unit rates, one per block; [] for plain dilation. Default (1, 2, 4); (1, 2) on ResNet-18. */
  multiGrid?: number[];
  /** ASPP rates at output stride 16 (doubled at 8). Small images want small rates: a 3×3 filter whose
   * rate exceeds the feature map degenerates to its centre tap (§3.3, Fig. 4). */
  atrousRates?: number[];
  channels?: number;
  /** false: ASPP without its image-level features (Table 5 compares the two). */
  imagePooling?: boolean;
}

/** Fig. 5 (b): image-level features — global pooling, 1×1 conv + BN + ReLU, upsampled back. */
export class ImagePooling extends Sequential {
  constructor(inC: number, outC: number) {
    super(new AdaptiveAvgPool2d(1), ...convBnRelu(inC, outC, 1).layers);
  }
  override forward(x: Tensor): Tensor {
    return upsample(super.forward(x), x.shape.slice(-2));
  }
}

/** Atrous Spatial Pyramid Pooling (§3.3). */
export class ASPP extends Module {
  convs: ModuleList;
  project: Sequential;
  constructor(inC: number, rates: readonly number[], outC: number, imagePooling = true) {
    super();
    const branches = [convBnRelu(inC, outC, 1), ...rates.map((r) => convBnRelu(inC, outC, 3, { dilation: r })), ...(imagePooling ? [new ImagePooling(inC, outC)] : [])];
    this.convs = new ModuleList(branches);
    this.project = convBnRelu(branches.length * outC, outC, 1);
  }
  forward(x: Tensor): Tensor {
    return this.project.forward(cat(this.convs.items.map((m) => (m as Sequential).forward(x)), 1));
  }

  /**
   * Each branch's filters: its BN follows them, and the projection reads them at the branch's place in the
   * concatenation. `classifier` reads the projection's filters.
   */
  filterChains(prefix: string, classifier: Conv2d): FilterChain[] {
    // Every branch is conv → BN → ReLU; the image pooling's starts after its pooling layer.
    const branches = (this.convs.items as Sequential[]).map((b) => ({ b, at: b instanceof ImagePooling ? 1 : 0 }));
    const parts = branches.map(({ b, at }) => b.at(at) as Conv2d);
    const project = { conv: convOf(this.project), parts };
    return [
      ...branches.map(({ b, at }, i) => ({ name: `${prefix}convs.${i}.${at}`, conv: parts[i], uses: [b.at(at + 1) as BatchNorm2d, project] })),
      { name: `${prefix}project.0`, conv: convOf(this.project), uses: [bnOf(this.project), classifier] },
    ];
  }
}

export class DeepLabV3 extends SegmentationNet {
  readonly numClasses: number;
  // Any size: features are upsampled to the image (the paper trains on 513×513 crops).
  readonly sizeMultiple = 1;
  readonly lastLayer = 'classifier';
  backbone: ResNet;
  aspp: ASPP;
  classifier: Conv2d;

  constructor(o: DeepLabV3Options = {}) {
    super();
    this.numClasses = o.numClasses ?? 21;
    const os = o.outputStride ?? DEEPLABV3_DEFAULTS.outputStride;
    if (os !== 8 && os !== 16) throw new Error(`DeepLabV3: output stride must be 8 or 16, got ${os}`);
    // The paper's grid is for three blocks; ResNet-18 has two in layer4 and takes the first two rates.
    const grid = o.multiGrid ?? DEEPLABV3_DEFAULTS.multiGrid.slice(0, LAYER4_BLOCKS[o.backbone ?? 'resnet50'] ?? 3);
    this.backbone = dilatedResNet({ ...o, outputStride: os, multiGrid: grid.length ? grid : undefined }, 16);
    const rates = (o.atrousRates ?? DEEPLABV3_DEFAULTS.atrousRates).map((r) => (os === 8 ? 2 * r : r));
    const c = o.channels ?? DEEPLABV3_DEFAULTS.channels;
    this.aspp = new ASPP(this.backbone.featureChannels, rates, c, o.imagePooling ?? true);
    this.classifier = new Conv2d(c, this.numClasses, 1);
    initConvNet(this.aspp);
    if (o.filterWidths) narrowFilters(this, o.filterWidths);
  }

  /** The backbone blocks' inner widths, ASPP's branches (narrowing the projection's inputs) and its projection. */
  override filterChains(): FilterChain[] {
    return [...this.backbone.residualFilterChains('backbone.'), ...this.aspp.filterChains('aspp.', this.classifier)];
  }

  forward(x: Tensor): Tensor {
    const features = this.backbone.forwardFeatures(x)[3];
    return upsample(this.classifier.forward(this.aspp.forward(features)), x.shape.slice(-2));
  }
}

export const deeplabv3 = (o: DeepLabV3Options = {}): DeepLabV3 => new DeepLabV3(o);
