// ICNet for Real-Time Semantic Segmentation on High-Resolution Images (Zhao, Qi, Shen, Shi, Jia, ECCV 2018).
//
// Fig. 2, the image cascade: the full-resolution image goes through three light stride-2 convolutions
// (1/8); the 1/2 image through the dilated ResNet up to layer2 (1/16); those features, halved again, through
// layer3, layer4 and a pyramid pooling at 1/32 — the heavy part runs on the smallest input. Cascade feature
// fusion units (Fig. 3) merge each coarser branch into the next finer one: upsample ×2, a 3×3 conv with
// dilation 2 and BN on the coarse side, a 1×1 conv and BN on the fine side, sum, ReLU. Cascade label guidance
// (§3.3): each CFF's upsampled coarse input also predicts labels, supervised by the ground truth at its own
// scale (1/16, 1/8), and the final 1×1 classifier at 1/4; the loss weights these terms λ1, λ2, λ3. At test
// time only the 1/4 logits are computed and upsampled ×4. The pyramid pooling sums its levels, as the
// authors' released model does (PSPNet concatenates them). Table 3's cut cascades are inference choices of
// the same trained network (`output`): 'sub4' predicts from the 1/4 branch alone, 'sub24' from the 1/4 and
// 1/2 branches, through the label-guidance classifiers that cascade label guidance trained.
import { Tensor } from '../torch';
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Module, ModuleList, Sequential } from '../nn';
import { ResNet } from './resnet';
import { BackboneOptions, SegmentationLossOptions, SegmentationNet, bnOf, convBnRelu, convOf, dilatedResNet, pixelLoss, pyramidBins, upsample } from './segmentation';
import { FilterChain, narrowFilters } from '../methods/prune';
import { initConvNet } from './common';

/** The paper's (and its released model's) hyperparameters. */
export const ICNET_DEFAULTS = {
  /** Filters of the full-resolution branch's three stride-2 convs. */
  sub1Channels: [32, 32, 64],
  bins: [1, 2, 3, 6],
  /** The 1×1 conv after the pyramid pooling (conv5_4_k1). */
  pspChannels: 256,
  /** Output filters of both CFF units. */
  cffChannels: 128,
  /** Cascade label guidance weights λ1, λ2, λ3 for the 1/16, 1/8 and 1/4 predictions (the authors' 0.16, 0.4, 1). */
  lambdas: [0.16, 0.4, 1],
  output: 'sub124',
} as const;

/** Where inference ends (Table 3): the 1/4 branch alone, the 1/4 and 1/2 branches, or the whole cascade. */
export const ICNET_OUTPUTS = ['sub4', 'sub24', 'sub124'] as const;
export type ICNetOutput = (typeof ICNET_OUTPUTS)[number];

export interface ICNetOptions extends BackboneOptions {
  numClasses?: number;
  sub1Channels?: [number, number, number];
  /** Pyramid levels; one number (the CLI's `--opt bins=1`) is one level. */
  bins?: number[] | number;
  pspChannels?: number;
  cffChannels?: number;
  lambdas?: [number, number, number];
  /**
   * Inference's prediction (Table 3): 'sub124' (default) the whole cascade at 1/4; 'sub24' CFF12's guidance
   * classifier at 1/8, without the full-resolution branch; 'sub4' CFF24's at 1/16, the 1/4 branch alone.
   * Training computes, and trains, all three whatever this says; cut predictions are worth using only after
   * training with cascade label guidance (λ1, λ2 > 0), which is what trains their classifiers.
   */
  output?: ICNetOutput;
}

/** Fig. 3: fuses a coarse map F1 into a finer F2 (twice its resolution); also predicts labels from F1 upsampled. */
export class CascadeFeatureFusion extends Module {
  low: Sequential;
  high: Sequential;
  classifier: Conv2d;
  constructor(lowC: number, highC: number, outC: number, numClasses: number) {
    super();
    this.low = new Sequential(new Conv2d(lowC, outC, 3, { padding: 2, dilation: 2, bias: false }), new BatchNorm2d(outC));
    this.high = new Sequential(new Conv2d(highC, outC, 1, { bias: false }), new BatchNorm2d(outC));
    this.classifier = new Conv2d(lowC, numClasses, 1);
  }
  /** guide: the label-guidance logits, in training only (inference has no use for them). */
  forward(low: Tensor, high: Tensor): { fused: Tensor; guide: Tensor | null } {
    const up = upsample(low, high.shape.slice(-2));
    return { fused: this.low.forward(up).add_(this.high.forward(high)).relu_(), guide: this.training ? this.classifier.forward(up) : null };
  }
}

/** The pyramid pooling of the released ICNet: the feature map plus its upsampled average-pooled levels. */
export class PyramidPoolingSum extends Module {
  pools: ModuleList;
  constructor(bins: readonly number[]) {
    super();
    this.pools = new ModuleList(bins.map((b) => new AdaptiveAvgPool2d(b)));
  }
  forward(x: Tensor): Tensor {
    const size = x.shape.slice(-2);
    let sum = x;
    for (const p of this.pools.items) sum = sum.add(upsample((p as AdaptiveAvgPool2d).forward(x), size));
    return sum;
  }
}

export class ICNet extends SegmentationNet {
  readonly numClasses: number;
  readonly sizeMultiple = 1;
  readonly lastLayer = 'classifier';
  readonly lambdas: [number, number, number];
  readonly output: ICNetOutput;
  /** Full resolution → 1/8. */
  sub1: Sequential;
  /** Its stem..layer2 serve the 1/2 image (→ 1/16), layer3..layer4 (dilated) the 1/4 branch (→ 1/32). */
  backbone: ResNet;
  ppm: PyramidPoolingSum;
  pspReduce: Sequential;
  cff24: CascadeFeatureFusion;
  cff12: CascadeFeatureFusion;
  classifier: Conv2d;

  constructor(o: ICNetOptions = {}) {
    super();
    this.numClasses = o.numClasses ?? 19;
    this.lambdas = o.lambdas ?? [...ICNET_DEFAULTS.lambdas];
    this.output = o.output ?? ICNET_DEFAULTS.output;
    if (!ICNET_OUTPUTS.includes(this.output)) throw new Error(`ICNet: output must be one of ${ICNET_OUTPUTS.join(', ')}, got '${String(this.output)}'`);
    const [a, b, c] = o.sub1Channels ?? ICNET_DEFAULTS.sub1Channels;
    const inC = o.inChannels ?? 3;
    this.sub1 = new Sequential(convBnRelu(inC, a, 3, { stride: 2 }), convBnRelu(a, b, 3, { stride: 2 }), convBnRelu(b, c, 3, { stride: 2 }));
    this.backbone = dilatedResNet({ ...o, outputStride: 8 }, 8);
    const f4 = this.backbone.featureChannels;
    const psp = o.pspChannels ?? ICNET_DEFAULTS.pspChannels;
    const cff = o.cffChannels ?? ICNET_DEFAULTS.cffChannels;
    this.ppm = new PyramidPoolingSum(pyramidBins(o.bins, ICNET_DEFAULTS.bins, 'ICNet'));
    this.pspReduce = convBnRelu(f4, psp, 1);
    this.cff24 = new CascadeFeatureFusion(psp, f4 / 4, cff, this.numClasses); // layer2 has a quarter of layer4's channels
    this.cff12 = new CascadeFeatureFusion(cff, c, cff, this.numClasses);
    this.classifier = new Conv2d(cff, this.numClasses, 1);
    for (const m of [this.sub1, this.pspReduce, this.cff24, this.cff12]) initConvNet(m);
    if (o.filterWidths) narrowFilters(this, o.filterWidths);
  }

  /** §5: the kernels pruning may remove — the light branch, the backbone blocks' inner widths, the pyramid's reduction. */
  override filterChains(): FilterChain[] {
    const [s0, s1, s2] = this.sub1.layers as Sequential[];
    return [
      { name: 'sub1.0.0', conv: convOf(s0), uses: [bnOf(s0), convOf(s1)] },
      { name: 'sub1.1.0', conv: convOf(s1), uses: [bnOf(s1), convOf(s2)] },
      { name: 'sub1.2.0', conv: convOf(s2), uses: [bnOf(s2), convOf(this.cff12.high)] },
      ...this.backbone.residualFilterChains('backbone.'),
      { name: 'pspReduce.0', conv: convOf(this.pspReduce), uses: [bnOf(this.pspReduce), convOf(this.cff24.low), this.cff24.classifier] },
    ];
  }

  /** The heavy part: the 1/2 image's features at 1/16, and the 1/4 branch's at 1/32 after the pyramid. */
  private coarseBranches(x: Tensor): { f2: Tensor; f4: Tensor } {
    const half = (t: Tensor): Tensor => upsample(t, t.shape.slice(-2).map((s) => Math.ceil(s / 2)));
    const bb = this.backbone;
    const f2 = bb.layer2.forward(bb.layer1.forward(bb.stem(half(x)))); // 1/16
    const f4 = this.pspReduce.forward(this.ppm.forward(bb.layer4.forward(bb.layer3.forward(half(f2))))); // 1/32
    return { f2, f4 };
  }

  /** The 1/4 logits and, in training, the guidance logits at 1/16 and 1/8. */
  forwardCascade(x: Tensor): { logits: Tensor; guides: [Tensor | null, Tensor | null] } {
    const [h, w] = x.shape.slice(-2);
    const f1 = this.sub1.forward(x); // 1/8
    const { f2, f4 } = this.coarseBranches(x);
    const c24 = this.cff24.forward(f4, f2);
    const c12 = this.cff12.forward(c24.fused, f1);
    const logits = this.classifier.forward(upsample(c12.fused, [Math.ceil(h / 4), Math.ceil(w / 4)]));
    return { logits, guides: [c24.guide, c12.guide] };
  }

  /** Table 3's cut cascades: the guidance classifier of the last branch kept, the finer branches not run. */
  private forwardCut(x: Tensor, cut: 'sub4' | 'sub24'): Tensor {
    const { f2, f4 } = this.coarseBranches(x);
    if (cut === 'sub4') return this.cff24.classifier.forward(upsample(f4, f2.shape.slice(-2)));
    // CFF12 upsamples to the full-resolution branch's size, which its three stride-2 3×3 convs (padding 1) make ⌈n/8⌉.
    const [h, w] = x.shape.slice(-2);
    return this.cff12.classifier.forward(upsample(this.cff24.forward(f4, f2).fused, [Math.ceil(h / 8), Math.ceil(w / 8)]));
  }

  forward(x: Tensor): Tensor {
    return upsample(this.output === 'sub124' ? this.forwardCascade(x).logits : this.forwardCut(x, this.output), x.shape.slice(-2));
  }

  /** §3.3: λ1·L(1/16) + λ2·L(1/8) + λ3·L(1/4), each against the labels resized (nearest) to its scale. */
  override trainingLoss(x: Tensor, labels: Tensor, o: SegmentationLossOptions = {}): Tensor {
    const { logits, guides } = this.forwardCascade(x);
    const [l1, l2, l3] = this.lambdas;
    const at = (t: Tensor | null): Tensor => {
      if (!t) throw new Error('ICNet.trainingLoss: call it in train mode (the label-guidance branches run only in training)');
      return pixelLoss(t, labels, o, 'labels');
    };
    return at(logits).mul(l3).add(at(guides[1]).mul(l2)).add(at(guides[0]).mul(l1));
  }
}

export const icnet = (o: ICNetOptions = {}): ICNet => new ICNet(o);
