// What the segmentation networks share: per-pixel logits at the input resolution from `forward`, the paper's
// own training loss from `trainingLoss` (PSPNet's auxiliary loss, ICNet's cascade label guidance), the
// dilated ResNet backbone of DeepLab-V3, PSPNet and ICNet, and the small pieces their heads are made of.
import { Tensor, cat, crossEntropy, fromArray, interpolate, pad, softmax, tidy, zeros } from '../torch';
import { BatchNorm2d, Conv2d, Module, ReLU, Sequential } from '../nn';
import { ResNet, resnet101, resnet18, resnet34, resnet50 } from './resnet';
import type { FilterChain } from '../methods/prune';

export interface SegmentationLossOptions {
  /** Per-class weights (ENet's 1 / ln(1.02 + p), say). */
  weight?: Tensor | null;
  /** Label that counts for nothing; 255 as in Cityscapes and VOC. */
  ignoreIndex?: number;
}

/** A network mapping images [N, C, H, W] to per-pixel logits [N, numClasses, H, W]. */
export abstract class SegmentationNet extends Module {
  abstract readonly numClasses: number;
  /** Height and width must be multiples of this (the network's total downsampling). */
  abstract readonly sizeMultiple: number;
  /**
   * The state-dict name of the last layer, a linear map to the classes' logits followed only by upsampling
   * (temperature scaling divides its weight and bias).
   */
  abstract readonly lastLayer: string;

  abstract override forward(x: Tensor): Tensor;

  /** The loss the paper trains with, for labels [N, H, W]; plain per-pixel cross-entropy unless overridden. */
  trainingLoss(x: Tensor, labels: Tensor, o: SegmentationLossOptions = {}): Tensor {
    return pixelLoss(this.forward(x), labels, o);
  }

  /** The layers filter pruning may narrow (ICNet §5's kernel pruning), in state-dict names; none by default. */
  filterChains(): FilterChain[] {
    return [];
  }

  /** The options that rebuild this network at its current (possibly pruned) widths. */
  channelOptions(): { filterWidths: Record<string, number> } {
    return { filterWidths: Object.fromEntries(this.filterChains().map((c) => [c.name, c.conv.outChannels])) };
  }

  protected checkSize(x: Tensor): void {
    const [h, w] = x.shape.slice(-2);
    const m = this.sizeMultiple;
    if (h % m || w % m) throw new Error(`${this.constructor.name}: input height and width must be multiples of ${m}, got ${h}×${w}`);
  }
}

/** What inference needs of a segmentation network: a SegmentationNet, or one wrapped (Predictor's precision). */
export type SegmentationForward = Pick<SegmentationNet, 'sizeMultiple' | 'forward'>;

/**
 * The network on images of any size: padded at the bottom and right to its size multiple with 0 (the mean
 * colour after normalization), the logits cut back to the image.
 */
export function forwardAnySize(model: SegmentationForward, x: Tensor): Tensor {
  const [h, w] = x.shape.slice(2);
  const m = model.sizeMultiple;
  const [ph, pw] = [(m - (h % m)) % m, (m - (w % m)) % m];
  if (ph === 0 && pw === 0) return model.forward(x);
  return model.forward(pad(x, [0, pw, 0, ph])).narrow(2, 0, h).narrow(3, 0, w);
}

export interface MultiScaleOptions {
  /** Input scales; DeepLab-V3 §4.3 evaluates at 0.5, 0.75, 1, 1.25, 1.5, 1.75. Default [1]. */
  scales?: readonly number[];
  /** Also the mirrored image at every scale. Default false. */
  flip?: boolean;
  /**
   * Sliding-window inference, as PSPNet's evaluation (713×713 crops on Cityscapes' 1024×2048): the network
   * sees only windows of this size (H, W) at every scale, their class probabilities averaged where windows
   * overlap. A side shorter than the window is padded to it with 0 (the mean colour), evenly on both sides.
   */
  crop?: readonly [number, number];
  /** Steps between windows; default ⌈2/3 of the window⌉ (PSPNet's stride rate). */
  stride?: readonly [number, number];
  /** Windows (mirrors included; a window and its mirror always go together) the network sees in one call; default 4. Lower it where memory is short. */
  windowsPerCall?: number;
}

/**
 * Windows per network call: one call on a batch of windows costs less than a call per window (BENCHMARKS.md,
 * "Sliding windows"), while the activations grow with the batch.
 */
export const SLIDE_WINDOWS_PER_CALL = 4;

/** PSPNet's stride rate: windows 2/3 of a crop apart, so that each overlaps its neighbours by a third. */
export const SLIDE_STRIDE_RATE = 2 / 3;

/**
 * Class probabilities [N, K, H, W] averaged over rescaled (bilinear) and mirrored copies of the input, as
 * DeepLab-V3 (§4.3) and PSPNet (§5) evaluate: each copy's logits resized back to the input size, then
 * softmax, then the mean (DeepLab's own evaluation code does it in this order). With `crop`, each scale's
 * probabilities come from sliding windows (slidingProbabilities) and are resized back as probabilities,
 * as PSPNet's evaluation code does.
 */
export function predictMultiScale(model: SegmentationForward, x: Tensor, o: MultiScaleOptions = {}): Tensor {
  const scales = o.scales ?? [1];
  if (scales.length === 0 || scales.some((s) => !(s > 0))) throw new Error(`predictMultiScale: scales must be positive, got [${scales.join(', ')}]`);
  const [h, w] = x.shape.slice(2);
  let sum: Tensor | null = null;
  let n = 0;
  const add = (p: Tensor): void => {
    sum = sum ? sum.add(p) : p;
    n++;
  };
  for (const s of scales) {
    const size = [Math.max(1, Math.round(h * s)), Math.max(1, Math.round(w * s))];
    const xs = s === 1 ? x : upsample(x, size);
    if (o.crop) {
      const p = slidingProbabilities(model, xs, o.crop, o.stride, o.flip, o.windowsPerCall);
      add(s === 1 ? p : upsample(p, [h, w]));
      continue;
    }
    for (const mirrored of o.flip ? [false, true] : [false]) {
      let logits = forwardAnySize(model, mirrored ? xs.flip(3) : xs);
      if (mirrored) logits = logits.flip(3);
      add(softmax(s === 1 ? logits : upsample(logits, [h, w]), 1));
    }
  }
  return sum!.div(n);
}

/**
 * Sliding-window class probabilities [N, K, H, W] (PSPNet's evaluation, `scale_process` in its authors'
 * code): windows of `crop` every `stride`, the last one in each direction flush with the edge, each window's
 * softmax (averaged with its mirror's with `flip`) summed into place and divided by how many windows cover
 * each pixel. Sides shorter than the window are padded to it first, evenly on both sides. The network sees
 * `windowsPerCall` windows (mirrors included) at a time, stacked along the batch.
 */
export function slidingProbabilities(model: SegmentationForward, x: Tensor, crop: readonly [number, number], stride?: readonly [number, number], flip = false, windowsPerCall = SLIDE_WINDOWS_PER_CALL): Tensor {
  const [ch, cw] = crop;
  const [sh, sw] = stride ?? [Math.ceil(ch * SLIDE_STRIDE_RATE), Math.ceil(cw * SLIDE_STRIDE_RATE)];
  for (const [name, v] of [['crop', crop], ['stride', [sh, sw]]] as const) {
    if (!v.every((d) => Number.isInteger(d) && d >= 1)) throw new Error(`slidingProbabilities: ${name} must be positive whole numbers (H, W), got ${v.join('×')}`);
  }
  if (sh > ch || sw > cw) throw new Error(`slidingProbabilities: a stride of ${sh}×${sw} would skip pixels between windows of ${ch}×${cw}`);
  if (!(Number.isInteger(windowsPerCall) && windowsPerCall >= 1)) throw new Error(`slidingProbabilities: windowsPerCall must be a positive whole number, got ${windowsPerCall}`);
  const [h, w] = x.shape.slice(2);
  const [ph, pw] = [Math.max(ch - h, 0), Math.max(cw - w, 0)];
  const top = Math.floor(ph / 2);
  const left = Math.floor(pw / 2);
  const xp = ph || pw ? pad(x, [left, pw - left, top, ph - top]) : x;
  const [H, W] = [h + ph, w + pw];
  // Window starts: every stride, the last moved back to end at the edge (it may overlap more than the rest).
  const starts = (size: number, c: number, step: number): number[] => Array.from({ length: Math.ceil((size - c) / step) + 1 }, (_, i) => Math.min(i * step, size - c));
  const [ys, xs] = [starts(H, ch, sh), starts(W, cw, sw)];
  // The windows form a grid, so how many cover a pixel is (windows covering its row) × (covering its column).
  const cover = (size: number, begins: number[], c: number): Float32Array => Float32Array.from({ length: size }, (_, i) => begins.filter((b) => b <= i && i < b + c).length);
  const count = fromArray(cover(H, ys, ch), [H, 1]).mul(fromArray(cover(W, xs, cw), [1, W]));
  const places = ys.flatMap((y0) => xs.map((x0) => [y0, x0] as const));
  const n = x.size(0);
  const perCall = Math.max(1, Math.floor(windowsPerCall / (flip ? 2 : 1)));
  let sum: Tensor | null = null;
  for (let first = 0; first < places.length; first += perCall) {
    const group = places.slice(first, first + perCall);
    // The group's windows, then their mirrors, stacked along the batch: [(windows · views) · N, K, ch, cw].
    const probs = tidy(() => {
      const windows = group.map(([y0, x0]) => xp.narrow(2, y0, ch).narrow(3, x0, cw));
      return softmax(forwardAnySize(model, cat(flip ? [...windows, ...windows.map((w) => w.flip(3))] : windows, 0)), 1);
    });
    const total = (sum ??= zeros([n, probs.size(1), H, W], { dtype: probs.dtype, device: probs.device }));
    tidy(() =>
      group.forEach(([y0, x0], j) => {
        let p = probs.narrow(0, j * n, n);
        if (flip) p = p.add(probs.narrow(0, (group.length + j) * n, n).flip(3)).div(2);
        // Added in place through a view: a full-size tensor per window would cost its bytes again each time.
        total.narrow(2, y0, ch).narrow(3, x0, cw).add_(p);
      }),
    );
    probs.dispose();
  }
  const mean = sum!.div(count.to(sum!.device));
  return ph || pw ? mean.narrow(2, top, h).narrow(3, left, w) : mean;
}

/** Cross-entropy of logits against labels, resizing whichever is smaller: logits up (bilinear) or labels down (nearest). */
export function pixelLoss(logits: Tensor, labels: Tensor, o: SegmentationLossOptions = {}, resize: 'logits' | 'labels' = 'logits'): Tensor {
  const size = labels.shape.slice(-2) as [number, number];
  const at = logits.shape.slice(-2) as [number, number];
  const same = size[0] === at[0] && size[1] === at[1];
  const ce = { weight: o.weight ?? undefined, ignoreIndex: o.ignoreIndex ?? 255 };
  if (same) return crossEntropy(logits, labels, ce);
  return resize === 'logits' ? crossEntropy(upsample(logits, size), labels, ce) : crossEntropy(logits, labelsAt(labels, at), ce);
}

/** Bilinear resize to (H, W), align_corners false as PyTorch's default (the Caffe papers' interp is ≈ true). */
export const upsample = (x: Tensor, size: readonly number[]): Tensor => interpolate(x, { size: [size[0], size[1]], mode: 'bilinear', alignCorners: false });

/** Labels [N, H, W] at another size by nearest neighbour: ICNet's cascade label guidance reads them at 1/16, 1/8, 1/4. */
export function labelsAt(labels: Tensor, size: readonly number[]): Tensor {
  // Class ids and 255 are exact in float32, and nearest resampling only picks values.
  return interpolate(labels.unsqueeze(1).float(), { size: [size[0], size[1]], mode: 'nearest' }).squeeze(1).long();
}

/**
 * A pyramid's bin sizes from a model option: a list, or one number (what the CLI's \`--opt bins=1\` gives),
 * each a positive whole number.
 */
export function pyramidBins(bins: readonly number[] | number | undefined, defaults: readonly number[], model: string): number[] {
  const b = typeof bins === 'number' ? [bins] : [...(bins ?? defaults)];
  if (!b.length || !b.every((x) => Number.isInteger(x) && x > 0)) throw new Error(`${model}: bins must be positive whole numbers, got [${b.join(', ')}]`);
  return b;
}

/** A conv → BN (→ ReLU) unit's conv and BN: the start of a filter chain. */
export const convOf = (unit: Sequential): Conv2d => unit.at(0) as Conv2d;
export const bnOf = (unit: Sequential): BatchNorm2d => unit.at(1) as BatchNorm2d;

/** conv → BN → ReLU, the unit every head here is built of (keys .0, .1, .2 as nn.Sequential). */
export function convBnRelu(inC: number, outC: number, k: number, o: { stride?: number; dilation?: number } = {}): Sequential {
  const dilation = o.dilation ?? 1;
  return new Sequential(
    new Conv2d(inC, outC, k, { stride: o.stride ?? 1, padding: (dilation * (k - 1)) / 2, dilation, bias: false }),
    new BatchNorm2d(outC),
    new ReLU({ inplace: true }),
  );
}

export type BackboneName = 'resnet18' | 'resnet34' | 'resnet50' | 'resnet101';
const BACKBONES: Record<BackboneName, typeof resnet50> = { resnet18, resnet34, resnet50, resnet101 };
/** Blocks in each backbone's layer4, for per-block settings such as DeepLab-V3's multi-grid. */
export const LAYER4_BLOCKS: Record<BackboneName, number> = { resnet18: 2, resnet34: 3, resnet50: 3, resnet101: 3 };

/** The option that rebuilds a filter-pruned network (ICNet §5's kernel pruning) so that its weights load. */
export interface FilterWidthsOption {
  /**
   * Filters per prunable layer (state-dict prefix → count), as filter pruning leaves them: the network is
   * built, then narrowed to these widths so that pruned weights load (`channelOptions()` gives them).
   */
  filterWidths?: Record<string, number>;
}

export interface BackboneOptions extends FilterWidthsOption {
  /** ResNet depth of the backbone. */
  backbone?: BackboneName;
  /** 8 or 16 (layer3/layer4 dilated instead of strided), or 32 (the classifier's own strides). */
  outputStride?: 8 | 16 | 32;
  /** Stem and layer1 channels (64 in the paper); smaller for CPU budgets. */
  width?: number;
  inChannels?: number;
}

/** A headless ResNet whose layer3/layer4 trade strides for dilation to reach the output stride. */
export function dilatedResNet(o: BackboneOptions & { multiGrid?: number[] }, defaultStride: 8 | 16 | 32): ResNet {
  const name = o.backbone ?? 'resnet50';
  const make = BACKBONES[name];
  if (!make) throw new Error(`unknown backbone '${name}'; known: ${Object.keys(BACKBONES).join(', ')}`);
  const os = o.outputStride ?? defaultStride;
  const dilate: Record<number, [boolean, boolean, boolean]> = { 8: [false, true, true], 16: [false, false, true], 32: [false, false, false] };
  if (!dilate[os]) throw new Error(`output stride must be 8, 16 or 32, got ${os}`);
  return make({ numClasses: 0, inChannels: o.inChannels ?? 3, width: o.width, replaceStrideWithDilation: dilate[os], multiGrid: o.multiGrid });
}
