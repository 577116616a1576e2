// ENet: A Deep Neural Network Architecture for Real-Time Semantic Segmentation
// (Paszke, Chaurasia, Kim, Culurciello, 2016).
//
// Table 1: an initial block that halves the image at once (Fig. 2a: a 3×3 stride-2 conv with 13 filters
// beside a 2×2 max-pool, concatenated to 16 channels); a large encoder of bottlenecks (Fig. 2b: 1×1
// projection to a quarter of the channels, a main conv — regular 3×3, dilated 3×3, or asymmetric 5×1 then
// 1×5 —, 1×1 expansion, spatial dropout, added to the shortcut); downsampling bottlenecks whose shortcut
// max-pools and remembers where the maxima were; and a small decoder whose upsampling bottlenecks put values
// back with max-unpooling at those positions. PReLU in the encoder, ReLU in the decoder, BatchNorm ε = 1e-3,
// as in the authors' Torch code.
//
// Filter pruning (ICNet §5's kernel pruning, after Li et al. 2017) narrows every bottleneck's inner width:
// the projection's filters and the main conv's (both halves of an asymmetric one, the transposed conv of an
// upsampling one). A bottleneck's output channels are added to its shortcut and stay whole.
import { Tensor, cat, maxPool2dWithIndices, maxUnpool2d, pad } from '../torch';
import { BatchNorm2d, Conv2d, ConvTranspose2d, Dropout2d, Module, PReLU, ReLU, Sequential } from '../nn';
import { FilterWidthsOption, SegmentationNet, convOf } from './segmentation';
import { FilterChain, FilterUse, narrowFilters } from '../methods/prune';

/** The paper's hyperparameters. */
export const ENET_DEFAULTS = {
  /** Bottlenecks work at channels / internalRatio. */
  internalRatio: 4,
  /** Spatial dropout: 0.01 up to bottleneck1.4, 0.1 afterwards (§4: "Regularization"). */
  dropoutStage1: 0.01,
  dropout: 0.1,
  bnEps: 1e-3,
} as const;

export interface ENetOptions extends FilterWidthsOption {
  /** Output classes (per-pixel logits); 19 as Cityscapes. */
  numClasses?: number;
  inChannels?: number;
  /** Spatial dropout of stage 1 and of everything after it. */
  dropoutStage1?: number;
  dropout?: number;
}

const bn = (c: number): BatchNorm2d => new BatchNorm2d(c, { eps: ENET_DEFAULTS.bnEps });
const act = (c: number, decoder: boolean): Module => (decoder ? new ReLU({ inplace: true }) : new PReLU(c));
type Forward = Module & { forward(x: Tensor): Tensor };

/** The layers among `ms` that hold one value per channel (BN, PReLU's slopes; the decoder's ReLU has none). */
const channelwise = (ms: Module[]): FilterUse[] => ms.filter((m): m is BatchNorm2d | PReLU => m instanceof BatchNorm2d || m instanceof PReLU);

/**
 * A bottleneck's inner filter chains, from its project → conv → expand units: the projection's filters, read
 * by the (first) main conv; an asymmetric pair's 5×1 filters, read by its 1×5; the main conv's filters, read
 * by the expansion.
 */
function innerFilterChains(prefix: string, b: { project: Sequential; conv: Sequential; expand: Sequential }): FilterChain[] {
  const convs = b.conv.layers.filter((m): m is Conv2d => m instanceof Conv2d);
  const last = convs.length - 1;
  return [
    { name: `${prefix}.project.0`, conv: convOf(b.project), uses: [...channelwise(b.project.layers), convs[0]] },
    ...convs.map((conv, i) => ({
      name: `${prefix}.conv.${i}`,
      conv,
      uses: i < last ? [convs[i + 1]] : [...channelwise(b.conv.layers), convOf(b.expand)],
    })),
  ];
}

/** Fig. 2a: conv 3×3/2 (16 − C filters) ∥ max-pool 2×2, concatenated, then BN and PReLU. */
export class InitialBlock extends Module {
  conv: Conv2d;
  bn = bn(16);
  act = new PReLU(16);
  constructor(inChannels: number) {
    super();
    this.conv = new Conv2d(inChannels, 16 - inChannels, 3, { stride: 2, padding: 1, bias: false });
  }
  forward(x: Tensor): Tensor {
    const pooled = maxPool2dWithIndices(x, 2).output;
    return this.act.forward(this.bn.forward(cat([this.conv.forward(x), pooled], 1)));
  }
}

export type BottleneckKind = { kind: 'regular' } | { kind: 'dilated'; dilation: number } | { kind: 'asymmetric'; size: number };

/** Fig. 2b: the regular, dilated and asymmetric bottlenecks (same channels in and out). */
export class ENetBottleneck extends Module {
  project: Sequential;
  conv: Sequential;
  expand: Sequential;
  dropout: Dropout2d;
  act: Module;

  constructor(channels: number, type: BottleneckKind, o: { dropout: number; decoder?: boolean }) {
    super();
    const internal = channels / ENET_DEFAULTS.internalRatio;
    const decoder = o.decoder ?? false;
    this.project = new Sequential(new Conv2d(channels, internal, 1, { bias: false }), bn(internal), act(internal, decoder));
    const main: Module[] =
      type.kind === 'asymmetric'
        ? [
            new Conv2d(internal, internal, [type.size, 1], { padding: [(type.size - 1) / 2, 0], bias: false }),
            new Conv2d(internal, internal, [1, type.size], { padding: [0, (type.size - 1) / 2] }),
          ]
        : [new Conv2d(internal, internal, 3, { padding: type.kind === 'dilated' ? type.dilation : 1, dilation: type.kind === 'dilated' ? type.dilation : 1 })];
    this.conv = new Sequential(...main, bn(internal), act(internal, decoder));
    this.expand = new Sequential(new Conv2d(internal, channels, 1, { bias: false }), bn(channels));
    this.dropout = new Dropout2d(o.dropout);
    this.act = act(channels, decoder);
  }

  forward(x: Tensor): Tensor {
    const ext = this.dropout.forward(this.expand.forward(this.conv.forward(this.project.forward(x))));
    return (this.act as Forward).forward(ext.add(x));
  }

  /** The inner widths (prefix: this block's state-dict name). */
  filterChains(prefix: string): FilterChain[] {
    return innerFilterChains(prefix, this);
  }
}

/**
 * Downsampling bottleneck: the projection is a 2×2 stride-2 conv; the shortcut max-pools (keeping the
 * indices for the decoder) and pads the new channels with zeros.
 */
export class DownsamplingBottleneck extends Module {
  project: Sequential;
  conv: Sequential;
  expand: Sequential;
  dropout: Dropout2d;
  act: PReLU;

  constructor(readonly inChannels: number, readonly outChannels: number, dropout: number) {
    super();
    const internal = outChannels / ENET_DEFAULTS.internalRatio;
    this.project = new Sequential(new Conv2d(inChannels, internal, 2, { stride: 2, bias: false }), bn(internal), new PReLU(internal));
    this.conv = new Sequential(new Conv2d(internal, internal, 3, { padding: 1 }), bn(internal), new PReLU(internal));
    this.expand = new Sequential(new Conv2d(internal, outChannels, 1, { bias: false }), bn(outChannels));
    this.dropout = new Dropout2d(dropout);
    this.act = new PReLU(outChannels);
  }

  forward(x: Tensor): { output: Tensor; indices: Tensor } {
    const { output: pooled, indices } = maxPool2dWithIndices(x, 2);
    const shortcut = pad(pooled, [0, 0, 0, 0, 0, this.outChannels - this.inChannels]);
    const ext = this.dropout.forward(this.expand.forward(this.conv.forward(this.project.forward(x))));
    return { output: this.act.forward(ext.add(shortcut)), indices };
  }

  /** The inner widths; the 2×2 strided projection is pruned like a 1×1 one. */
  filterChains(prefix: string): FilterChain[] {
    return innerFilterChains(prefix, this);
  }
}

/**
 * Upsampling bottleneck (decoder): the shortcut is a 1×1 conv and BN, then max-unpooling at the indices the
 * matching downsampling recorded; the residual branch upsamples with a 3×3 stride-2 transposed conv.
 */
export class UpsamplingBottleneck extends Module {
  shortcut: Sequential;
  project: Sequential;
  upsample: ConvTranspose2d;
  upsampleBn: BatchNorm2d;
  upsampleAct = new ReLU({ inplace: true });
  expand: Sequential;
  dropout: Dropout2d;
  act = new ReLU({ inplace: true });

  constructor(inChannels: number, outChannels: number, dropout: number) {
    super();
    const internal = inChannels / ENET_DEFAULTS.internalRatio;
    this.shortcut = new Sequential(new Conv2d(inChannels, outChannels, 1, { bias: false }), bn(outChannels));
    this.project = new Sequential(new Conv2d(inChannels, internal, 1, { bias: false }), bn(internal), new ReLU({ inplace: true }));
    this.upsample = new ConvTranspose2d(internal, internal, 3, { stride: 2, padding: 1 });
    this.upsampleBn = bn(internal);
    this.expand = new Sequential(new Conv2d(internal, outChannels, 1, { bias: false }), bn(outChannels));
    this.dropout = new Dropout2d(dropout);
  }

  /** size: the (H, W) before the matching downsampling. */
  forward(x: Tensor, indices: Tensor, size: [number, number]): Tensor {
    const shortcut = maxUnpool2d(this.shortcut.forward(x), indices, size);
    const up = this.upsampleAct.forward(this.upsampleBn.forward(this.upsample.forward(this.project.forward(x), size)));
    const ext = this.dropout.forward(this.expand.forward(up));
    return this.act.forward(ext.add(shortcut));
  }

  /** The inner widths: the projection's filters feed the transposed conv, whose filters feed the expansion. */
  filterChains(prefix: string): FilterChain[] {
    return [
      { name: `${prefix}.project.0`, conv: convOf(this.project), uses: [...channelwise(this.project.layers), this.upsample] },
      { name: `${prefix}.upsample`, conv: this.upsample, uses: [this.upsampleBn, convOf(this.expand)] },
    ];
  }
}

/** Table 1's section 2 (and 3, without bottleneck2.0): regular, dilated 2, asymmetric 5, dilated 4, ... */
const SECTION_2: BottleneckKind[] = [
  { kind: 'regular' }, { kind: 'dilated', dilation: 2 }, { kind: 'asymmetric', size: 5 }, { kind: 'dilated', dilation: 4 },
  { kind: 'regular' }, { kind: 'dilated', dilation: 8 }, { kind: 'asymmetric', size: 5 }, { kind: 'dilated', dilation: 16 },
];

/** ENet: logits [N, numClasses, H, W] for images [N, C, H, W] with H and W multiples of 8. */
export class ENet extends SegmentationNet {
  readonly numClasses: number;
  /** Three halvings, undone exactly by max-unpooling. */
  readonly sizeMultiple = 8;
  readonly lastLayer = 'fullconv';
  initial: InitialBlock;
  bottleneck1_0: DownsamplingBottleneck;
  stage1: Sequential;
  bottleneck2_0: DownsamplingBottleneck;
  stage2: Sequential;
  stage3: Sequential;
  bottleneck4_0: UpsamplingBottleneck;
  stage4: Sequential;
  bottleneck5_0: UpsamplingBottleneck;
  stage5: Sequential;
  fullconv: ConvTranspose2d;

  constructor(o: ENetOptions = {}) {
    super();
    const p1 = o.dropoutStage1 ?? ENET_DEFAULTS.dropoutStage1;
    const p = o.dropout ?? ENET_DEFAULTS.dropout;
    const numClasses = (this.numClasses = o.numClasses ?? 19);
    this.initial = new InitialBlock(o.inChannels ?? 3);
    this.bottleneck1_0 = new DownsamplingBottleneck(16, 64, p1);
    this.stage1 = new Sequential(...Array.from({ length: 4 }, () => new ENetBottleneck(64, { kind: 'regular' }, { dropout: p1 })));
    this.bottleneck2_0 = new DownsamplingBottleneck(64, 128, p);
    this.stage2 = new Sequential(...SECTION_2.map((t) => new ENetBottleneck(128, t, { dropout: p })));
    this.stage3 = new Sequential(...SECTION_2.map((t) => new ENetBottleneck(128, t, { dropout: p })));
    this.bottleneck4_0 = new UpsamplingBottleneck(128, 64, p);
    this.stage4 = new Sequential(...Array.from({ length: 2 }, () => new ENetBottleneck(64, { kind: 'regular' }, { dropout: p, decoder: true })));
    this.bottleneck5_0 = new UpsamplingBottleneck(64, 16, p);
    this.stage5 = new Sequential(new ENetBottleneck(16, { kind: 'regular' }, { dropout: p, decoder: true }));
    // The authors' last layer: a 2×2 stride-2 transposed conv back to the input resolution.
    this.fullconv = new ConvTranspose2d(16, numClasses, 2, { stride: 2 });
    if (o.filterWidths) narrowFilters(this, o.filterWidths);
  }

  /**
   * Every bottleneck's inner widths (regular, dilated, asymmetric, downsampling, upsampling). The initial
   * block and the bottlenecks' outputs feed shortcuts (additions, zero padding, max-unpooling) and stay whole,
   * as does the last transposed conv, whose outputs are the classes.
   */
  override filterChains(): FilterChain[] {
    return this.namedModules().flatMap(([name, m]) =>
      m instanceof ENetBottleneck || m instanceof DownsamplingBottleneck || m instanceof UpsamplingBottleneck ? m.filterChains(name) : [],
    );
  }

  forward(x: Tensor): Tensor {
    this.checkSize(x);
    const [h, w] = x.shape.slice(-2);
    const x0 = this.initial.forward(x);
    const d1 = this.bottleneck1_0.forward(x0);
    const x1 = this.stage1.forward(d1.output);
    const d2 = this.bottleneck2_0.forward(x1);
    const x3 = this.stage3.forward(this.stage2.forward(d2.output));
    const size1 = x1.shape.slice(-2) as [number, number];
    const size0 = x0.shape.slice(-2) as [number, number];
    const x4 = this.stage4.forward(this.bottleneck4_0.forward(x3, d2.indices, size1));
    const x5 = this.stage5.forward(this.bottleneck5_0.forward(x4, d1.indices, size0));
    return this.fullconv.forward(x5, [h, w]);
  }
}

export const enet = (o: ENetOptions = {}): ENet => new ENet(o);
