// Pyramid Scene Parsing Network — PSPNet (Zhao, Shi, Qi, Wang, Jia, CVPR 2017).
//
// Fig. 3: a dilated ResNet (output stride 8) gives the feature map; the pyramid pooling module average-pools
// it into 1×1, 2×2, 3×3 and 6×6 bins, reduces each level to 1/N of the channels with a 1×1 conv (N = 4
// levels), upsamples them bilinearly and concatenates them with the feature map; a 3×3 conv (512 filters),
// dropout 0.1 and a 1×1 conv give the logits, upsampled 8× to the image. §3.4: an auxiliary loss on the
// res4b22 features (layer3 here) with its own small head, weighted 0.4, helps optimization and is dropped at
// test time.
import { Tensor, cat } from '../torch';
import { AdaptiveAvgPool2d, Conv2d, Dropout2d, Module, ModuleList, Sequential } from '../nn';
import { ResNet } from './resnet';
import { BackboneOptions, SegmentationLossOptions, SegmentationNet, bnOf, convBnRelu, convOf, dilatedResNet, pixelLoss, pyramidBins, upsample } from './segmentation';
import { FilterChain, narrowFilters } from '../methods/prune';
import { initConvNet } from './common';

/** The paper's hyperparameters. */
export const PSPNET_DEFAULTS = {
  outputStride: 8 as 8 | 16,
  /** Pyramid levels (bin sizes), §3.3. */
  bins: [1, 2, 3, 6],
  /** Filters of the 3×3 conv after the pyramid. */
  headChannels: 512,
  /** Filters of the auxiliary head's 3×3 conv. */
  auxChannels: 256,
  /** Weight of the auxiliary loss (§3.4, Table 3's best). */
  auxWeight: 0.4,
  dropout: 0.1,
} as const;

export interface PSPNetOptions extends BackboneOptions {
  numClasses?: number;
  /** false: no pyramid pooling module, the head on the feature map alone — Table 2's dilated-FCN baseline. */
  ppm?: boolean;
  /** Pyramid levels; one number (the CLI's `--opt bins=1`) is one level. */
  bins?: number[] | number;
  headChannels?: number;
  auxChannels?: number;
  /** 0 removes the auxiliary head and loss. */
  auxWeight?: number;
  dropout?: number;
}

/** The pyramid pooling module (Fig. 3 c): the feature map with its pooled, reduced, upsampled levels. */
export class PyramidPooling extends Module {
  stages: ModuleList;
  constructor(inC: number, bins: readonly number[]) {
    super();
    this.stages = new ModuleList(bins.map((b) => new Sequential(new AdaptiveAvgPool2d(b), ...convBnRelu(inC, inC / bins.length, 1).layers)));
  }
  forward(x: Tensor): Tensor {
    const size = x.shape.slice(-2);
    return cat([x, ...this.stages.items.map((s) => upsample((s as Sequential).forward(x), size))], 1);
  }
}

/** 3×3 conv + BN + ReLU, dropout, 1×1 conv to the classes: the head after the pyramid, and the auxiliary one. */
const head = (inC: number, mid: number, classes: number, p: number): Sequential =>
  new Sequential(...convBnRelu(inC, mid, 3).layers, new Dropout2d(p), new Conv2d(mid, classes, 1));

export class PSPNet extends SegmentationNet {
  readonly numClasses: number;
  readonly sizeMultiple = 1;
  readonly lastLayer = 'head.4';
  readonly auxWeight: number;
  backbone: ResNet;
  ppm: PyramidPooling | null;
  head: Sequential;
  aux: Sequential | null;

  constructor(o: PSPNetOptions = {}) {
    super();
    this.numClasses = o.numClasses ?? 21;
    this.backbone = dilatedResNet(o, PSPNET_DEFAULTS.outputStride);
    const c = this.backbone.featureChannels;
    const bins = pyramidBins(o.bins, PSPNET_DEFAULTS.bins, 'PSPNet');
    if (c % bins.length) throw new Error(`PSPNet: ${c} feature channels do not split into ${bins.length} pyramid levels`);
    const p = o.dropout ?? PSPNET_DEFAULTS.dropout;
    this.ppm = o.ppm === false ? null : new PyramidPooling(c, bins);
    this.head = head(this.ppm ? 2 * c : c, o.headChannels ?? PSPNET_DEFAULTS.headChannels, this.numClasses, p);
    this.auxWeight = o.auxWeight ?? PSPNET_DEFAULTS.auxWeight;
    // layer3 has half of layer4's channels in every ResNet.
    this.aux = this.auxWeight > 0 ? head(c / 2, o.auxChannels ?? PSPNET_DEFAULTS.auxChannels, this.numClasses, p) : null;
    if (this.ppm) initConvNet(this.ppm);
    initConvNet(this.head);
    if (this.aux) initConvNet(this.aux);
    if (o.filterWidths) narrowFilters(this, o.filterWidths);
  }

  /** The backbone blocks' inner widths and the 3×3 convs of both heads. */
  override filterChains(): FilterChain[] {
    const heads = [['head', this.head], ['aux', this.aux]] as const;
    return [
      ...this.backbone.residualFilterChains('backbone.'),
      ...heads.flatMap(([name, h]) => (h ? [{ name: `${name}.0`, conv: convOf(h), uses: [bnOf(h), h.at(4) as Conv2d] }] : [])),
    ];
  }

  /** Logits at the feature resolution, and the auxiliary head's (training only). */
  forwardHeads(x: Tensor): { logits: Tensor; aux: Tensor | null } {
    const [, , c4, c5] = this.backbone.forwardFeatures(x);
    const logits = this.head.forward(this.ppm ? this.ppm.forward(c5) : c5);
    return { logits, aux: this.aux && this.training ? this.aux.forward(c4) : null };
  }

  forward(x: Tensor): Tensor {
    return upsample(this.forwardHeads(x).logits, x.shape.slice(-2));
  }

  /** §3.4: the main loss plus auxWeight × the auxiliary loss, both on logits upsampled to the labels. */
  override trainingLoss(x: Tensor, labels: Tensor, o: SegmentationLossOptions = {}): Tensor {
    const { logits, aux } = this.forwardHeads(x);
    const main = pixelLoss(logits, labels, o);
    return aux ? main.add(pixelLoss(aux, labels, o).mul(this.auxWeight)) : main;
  }
}

export const pspnet = (o: PSPNetOptions = {}): PSPNet => new PSPNet(o);
