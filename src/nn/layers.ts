// The layers the nine architectures are built from, with PyTorch's defaults and initializations.
import * as F from '../torch/functional';
import { Pair, pairOf as pair } from '../torch/functional';
import { Tensor, arange, bfloat16Support, empty, full, getNumThreads, isGradEnabled, isHalfFloat, isOneDnnLayout, noGrad, oneDnnLayoutActive, ones, toOneDnnLayout, zeros, tensor, tidy } from '../torch';
import { defaultLayerInit } from './init';
import { Buffer, Module, Parameter } from './module';

export interface Conv2dOptions extends F.Conv2dOptions {
  bias?: boolean;
  /** 'zeros' (default), 'reflect' or 'replicate'. */
  paddingMode?: 'zeros' | 'reflect' | 'replicate';
}

/**
 * Whether a convolution keeps its prepacked weights, timed at `withPacked` ms against `perCall` ms with the
 * weights reordered by each call (Conv2d.packedIsFaster): yes unless more than 3× and 1 ms slower.
 */
export function keepPrepacked(withPacked: number, perCall: number): boolean {
  return !(withPacked > 3 * perCall && withPacked - perCall > 1);
}

export class Conv2d extends Module {
  weight: Parameter;
  bias: Parameter | null;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number] | 'same' | 'valid';
  readonly dilation: [number, number];
  groups: number;
  readonly paddingMode: 'zeros' | 'reflect' | 'replicate';

  // Not readonly: filter pruning (keepOutputs / keepInputs) narrows a trained layer in place.
  constructor(public inChannels: number, public outChannels: number, kernelSize: Pair, o: Conv2dOptions = {}) {
    super();
    this.kernelSize = pair(kernelSize);
    this.stride = pair(o.stride ?? 1);
    this.padding = typeof o.padding === 'string' ? o.padding : pair(o.padding ?? 0);
    this.dilation = pair(o.dilation ?? 1);
    this.groups = o.groups ?? 1;
    this.paddingMode = o.paddingMode ?? 'zeros';
    if (this.padding === 'same' && (this.stride[0] !== 1 || this.stride[1] !== 1)) {
      throw new Error("Conv2d: padding 'same' is not supported for strided convolutions (as in PyTorch)");
    }
    if (inChannels % this.groups || outChannels % this.groups) {
      throw new Error(`Conv2d: channels ${inChannels}->${outChannels} are not divisible by groups=${this.groups}`);
    }
    this.weight = Parameter.from(empty([outChannels, inChannels / this.groups, ...this.kernelSize]));
    this.bias = o.bias === false ? null : Parameter.from(empty([outChannels]));
    defaultLayerInit(this.weight, this.bias);
  }

  /**
   * Whether eval-mode CPU inference may keep a copy of the weights in oneDNN's blocked layout (see
   * forwardPrepacked). On by default; set to false to trade speed for the memory of one weight copy.
   */
  static prepackForInference = true;
  private static oneDnnWorks = true;
  /** Input shapes per layer whose first call times prepacked against per-call weights (packedIsFaster). */
  static readonly PREPACK_TRIALS = 8;
  /** The reordered weights, and per input shape whether they are the faster (see packedIsFaster). */
  private prepacked: { weight: Tensor; source: Tensor; version: number; faster: Map<string, boolean> } | null = null;

  forward(x: Tensor): Tensor {
    if (this.training || isGradEnabled()) this.dropPrepacked();
    else if (oneDnnLayoutActive() && this.paddingMode === 'zeros' && typeof this.padding !== 'string' && Conv2d.oneDnnWorks && (isOneDnnLayout(x) || this.canPrepack(x))) {
      // Inside withOneDnnLayout: the output stays in oneDNN's layout for the layers after this one.
      return this.forwardPrepacked(toOneDnnLayout(x));
    } else if (this.canPrepack(x)) return this.forwardPrepacked(x);
    if (this.paddingMode !== 'zeros') {
      // As torch.nn.Conv2d: pad explicitly with the mode, then convolve without padding.
      const mode = this.paddingMode === 'reflect' ? 'aten::reflection_pad2d' : 'aten::replication_pad2d';
      const padded = F.callOp(mode, x, this.reversedPadding()) as Tensor;
      return F.conv2d(padded, this.weight, this.bias, { stride: this.stride, dilation: this.dilation, groups: this.groups });
    }
    return F.conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }

  /**
   * Inference without autograd: libtorch's CPU convolution (oneDNN) reorders the weights into its blocked
   * layout on every call — at batch 1 that is ~10% of a ResNet's time (ResNet-50: 100 MB of weights moved
   * per image). Reorder them once and reuse the copy, as torch.jit.freeze does; the result is bit-identical
   * (same oneDNN primitive). The copy is rebuilt when the weights change (libtorch's version counter: any
   * in-place update, loadStateDict included) and dropped as soon as the layer runs in training mode.
   */
  private forwardPrepacked(x: Tensor): Tensor {
    const w = this.weight;
    const version = F.callOp('aten::_version', w) as number;
    if (!this.prepacked || this.prepacked.source !== w || this.prepacked.version !== version) {
      this.dropPrepacked();
      try {
        const dense = F.callOp('aten::to_mkldnn', w) as Tensor;
        const weight = (F.callOp('aten::mkldnn_reorder_conv2d_weight', dense, this.padding, this.stride, this.dilation, this.groups) as Tensor).keep();
        dense.dispose();
        this.prepacked = { weight, source: w, version, faster: new Map() };
      } catch {
        Conv2d.oneDnnWorks = false; // a libtorch built without oneDNN: the plain path from now on
        return this.forward(x);
      }
    }
    const key = x.shape.join('x');
    let packed = this.prepacked.faster.get(key);
    if (packed === undefined) {
      // A layer fed ever new sizes would time every one: past PREPACK_TRIALS shapes the prepacked weights serve.
      const trial = this.prepacked.faster.size < Conv2d.PREPACK_TRIALS;
      packed = trial ? this.packedIsFaster(x, this.prepacked.weight) : true;
      if (trial) this.prepacked.faster.set(key, packed);
    }
    return packed ? this.convolveOneDnn(x, this.prepacked.weight) : this.convolveOneDnn(x, null);
  }

  /** oneDNN's convolution of x with the reordered weights, or (null) with this.weight, reordered by the call. */
  private convolveOneDnn(x: Tensor, packed: Tensor | null): Tensor {
    if (packed) return F.callOp('aten::mkldnn_convolution', x, packed, this.bias, this.padding, this.stride, this.dilation, this.groups) as Tensor;
    return tidy(() => F.callOp('aten::mkldnn_convolution', x, F.callOp('aten::to_mkldnn', this.weight) as Tensor, this.bias, this.padding, this.stride, this.dilation, this.groups) as Tensor);
  }

  /**
   * libtorch 1.13 reorders the weights without knowing the input's size (its mkldnn_reorder_conv2d_weight
   * has no input_size), and for some shapes oneDNN then runs the convolution in a kernel tens of times slower:
   * Xception's 1×1 convolutions on 10×10 maps in bfloat16 took 127 ms prepacked against 2 ms reordered per
   * call (PyTorch's torch.jit.freeze, which prepacks alike, meets the same). So the first call of each input
   * shape times both, after one untimed call each, and keeps the prepacked weights unless they are more than
   * 3× and 1 ms slower (keepPrepacked): nothing else loses by it, and noise cannot flip so wide a margin.
   * Either way the answer is the same oneDNN convolution's.
   */
  private packedIsFaster(x: Tensor, packed: Tensor): boolean {
    const time = (w: Tensor | null): number => {
      const t0 = process.hrtime.bigint();
      this.convolveOneDnn(x, w).dispose();
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    time(packed);
    time(null);
    return keepPrepacked(time(packed), time(null));
  }

  /**
   * Only where libtorch would pick oneDNN itself (ATen's ConvParams::use_mkldnn, 1.13: always for CPU
   * bfloat16, by these size rules for float32), so that the prepacked path changes where the weights are
   * reordered and nothing else.
   */
  private canPrepack(x: Tensor): boolean {
    if (!Conv2d.prepackForInference || !Conv2d.oneDnnWorks || this.paddingMode !== 'zeros' || typeof this.padding === 'string') return false;
    if (x.device !== 'cpu' || x.dim() !== 4 || x.dtype !== this.weight.dtype) return false;
    // As use_mkldnn: oneDNN's bfloat16 kernels need AVX-512 (else it throws, and F.conv2d computes in float32).
    if (x.dtype === 'bfloat16') return bfloat16Support() !== 'slow';
    if (x.dtype !== 'float32') return false;
    const [n, c, h, w] = x.shape;
    const [kh, kw] = this.kernelSize;
    const strided = this.stride[0] !== 1 || this.stride[1] !== 1;
    const dilated = this.dilation[0] !== 1 || this.dilation[1] !== 1;
    return (strided || dilated || n >= 16 || kh !== 1 || kw !== 1 || getNumThreads() > 1) && (this.groups > 1 || (kh > 3 && kw > 3) || n > 1 || n * c * h * w > 20480);
  }

  private get isDepthwise(): boolean {
    return this.groups > 1 && this.groups === this.inChannels && this.groups === this.outChannels;
  }

  /**
   * Keeps only the output filters `index` (int64, in the order given): filter pruning. A depthwise conv's
   * filters are its channels, so its inputs and groups narrow with them.
   */
  keepOutputs(index: Tensor): void {
    if (this.groups > 1 && !this.isDepthwise) throw new Error(`Conv2d.keepOutputs: only ungrouped or depthwise convolutions (groups=${this.groups}, ${this.inChannels}→${this.outChannels})`);
    const n = index.numel();
    this.weight = Parameter.from(this.weight.detach().indexSelect(0, index));
    if (this.bias) this.bias = Parameter.from(this.bias.detach().indexSelect(0, index));
    if (this.isDepthwise) this.inChannels = this.groups = n;
    this.outChannels = n;
    this.dropPrepacked();
  }

  /** Keeps only the input channels `index` (the producer lost the others). Depthwise: as keepOutputs. */
  keepInputs(index: Tensor): void {
    if (this.isDepthwise) return this.keepOutputs(index);
    if (this.groups > 1) throw new Error(`Conv2d.keepInputs: only ungrouped or depthwise convolutions (groups=${this.groups})`);
    this.weight = Parameter.from(this.weight.detach().indexSelect(1, index));
    this.inChannels = index.numel();
    this.dropPrepacked();
  }

  private dropPrepacked(): void {
    if (this.prepacked) {
      this.prepacked.weight.dispose();
      this.prepacked = null;
    }
  }

  /** [left, right, top, bottom], torch's _reversed_padding_repeated_twice ('same' puts the odd pixel last). */
  private reversedPadding(): [number, number, number, number] {
    if (this.padding === 'valid') return [0, 0, 0, 0];
    if (this.padding === 'same') {
      const [th, tw] = [0, 1].map((d) => this.dilation[d] * (this.kernelSize[d] - 1));
      return [tw >> 1, tw - (tw >> 1), th >> 1, th - (th >> 1)];
    }
    const [ph, pw] = this.padding;
    return [pw, pw, ph, ph];
  }
}

export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | null;
  constructor(public inFeatures: number, readonly outFeatures: number, o: { bias?: boolean } = {}) {
    super();
    this.weight = Parameter.from(empty([outFeatures, inFeatures]));
    this.bias = o.bias === false ? null : Parameter.from(empty([outFeatures]));
    defaultLayerInit(this.weight, this.bias);
  }
  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
  /**
   * Keeps only the input features `index`, after the layer that feeds it lost channels. When the input is
   * a flattened [C, H, W] map, pass the kept channels and perChannel = H·W: each keeps its H·W columns.
   */
  keepInputs(index: Tensor, perChannel = 1): void {
    const cols = perChannel === 1 ? index : index.mul(perChannel).unsqueeze(1).add(arange(0, perChannel, 1, { dtype: 'int64', device: index.device }).unsqueeze(0)).flatten();
    this.weight = Parameter.from(this.weight.detach().indexSelect(1, cols));
    this.inFeatures = cols.numel();
  }

}

export interface BatchNormOptions {
  eps?: number;
  /** Weight of the new batch in the running statistics; null = cumulative average (1/num_batches_tracked). */
  momentum?: number | null;
  affine?: boolean;
  trackRunningStats?: boolean;
}

export class BatchNorm2d extends Module {
  weight: Parameter | null;
  bias: Parameter | null;
  running_mean: Buffer | null;
  running_var: Buffer | null;
  num_batches_tracked: Buffer | null;
  readonly eps: number;
  readonly momentum: number | null;
  /**
   * Sums a tensor over the data-parallel replicas (an all-reduce). When set, training normalizes with the
   * statistics of the whole global batch — SyncBatchNorm, which PSPNet (§5.1) and DeepLab-V3 rely on when
   * each GPU holds only a few crops; `distributed.convertSyncBatchNorm` sets it. null: this process's batch.
   */
  crossReplicaSum: ((t: Tensor) => Tensor) | null = null;
  /** Folded into the convolution before it (nn/fold.ts): the identity in eval mode. */
  folded = false;

  constructor(public numFeatures: number, o: BatchNormOptions = {}) {
    super();
    this.eps = o.eps ?? 1e-5;
    this.momentum = o.momentum === undefined ? 0.1 : o.momentum;
    const affine = o.affine ?? true;
    this.weight = affine ? Parameter.from(ones([numFeatures])) : null;
    this.bias = affine ? Parameter.from(zeros([numFeatures])) : null;
    const track = o.trackRunningStats ?? true;
    this.running_mean = track ? Buffer.from(zeros([numFeatures])) : null;
    this.running_var = track ? Buffer.from(ones([numFeatures])) : null;
    this.num_batches_tracked = track ? Buffer.from(tensor(0, { dtype: 'int64' })) : null;
  }

  /** Keeps only the channels `index` (with their statistics), after the conv before it lost filters. */
  keepChannels(index: Tensor): void {
    const pick = (t: Tensor): Tensor => t.detach().indexSelect(0, index);
    if (this.weight) this.weight = Parameter.from(pick(this.weight));
    if (this.bias) this.bias = Parameter.from(pick(this.bias));
    if (this.running_mean) this.running_mean = Buffer.from(pick(this.running_mean));
    if (this.running_var) this.running_var = Buffer.from(pick(this.running_var));
    this.numFeatures = index.numel();
  }

  forward(x: Tensor): Tensor {
    if (this.folded && !this.training) return x;
    if (this.training && this.crossReplicaSum) return this.syncForward(x, this.crossReplicaSum);
    const useBatchStats = this.training || !this.running_mean;
    let momentum = this.momentum ?? 0;
    if (useBatchStats) {
      // One value per channel normalizes to exactly zero: training would silently learn nothing (PyTorch
      // raises the same error). Typical cause: batch size 1 with a 1×1 feature map, or a last batch of one.
      const s = x.shape;
      if (s.length >= 2 && s.reduce((a, b) => a * b, 1) / s[1] === 1) {
        throw new Error(`BatchNorm2d: expected more than 1 value per channel when training, got input of shape [${s}] (use a batch of at least 2, or eval())`);
      }
    }
    if (this.training && this.num_batches_tracked) {
      this.num_batches_tracked.add_(1);
      // momentum=None in PyTorch: an equal-weight average of every batch seen so far.
      if (this.momentum === null) momentum = 1 / this.num_batches_tracked.item();
    }
    return F.batchNorm(x, this.running_mean, this.running_var, {
      weight: this.weight,
      bias: this.bias,
      training: useBatchStats,
      momentum,
      eps: this.eps,
    });
  }

  /**
   * Training with global-batch statistics. Each replica sums x and x² per channel (in float64, so that
   * E[x²] − E[x]² does not cancel away the variance) and its count; one all-reduce gives the global sums.
   * Their gradient must also be global — every replica's loss depends on every replica's x through the
   * mean and variance —, so a hook all-reduces the gradient arriving at the sums before it flows back into
   * this replica's x. With DDP averaging the parameter gradients, the step equals one process on the whole
   * batch.
   */
  private syncForward(x: Tensor, sum: (t: Tensor) => Tensor): Tensor {
    // The gradient's all-reduce is a hook, and hooks can call JavaScript only from a CPU backward pass.
    if (x.device !== 'cpu') throw new Error(`BatchNorm2d: synchronized BatchNorm runs on the CPU only (its gradient all-reduce is a JavaScript hook), got input on ${x.device}`);
    const c = x.size(1);
    const dims = [0, ...Array.from({ length: x.ndim - 2 }, (_, i) => i + 2)];
    // bfloat16 or float16 input (autocast's convolutions give it) is worked in float32 and the result rounded
    // once, as ATen's batch_norm kernels do. x is converted once, so that the gradients of its three uses
    // (sum, sum of squares, normalization) add up in float32: added in bfloat16 they nearly cancel, and a
    // conv's weight gradient through this layer came out 26% off where ATen's BatchNorm is 0.4% off
    // (test/nn/layers.test.ts, inputs of mean 3).
    const low = isHalfFloat(x.dtype);
    const xf = low ? x.to('float32') : x;
    const local = F.cat([xf.sum(dims, { dtype: 'float64' }), xf.square().sum(dims, { dtype: 'float64' }), full([1], x.numel() / c, { dtype: 'float64' })]);
    const total = sum(local.detach().clone());
    // The global values, differentiable as the local sums are; the hook makes their gradient global.
    const global = local.add(total.sub(local.detach()));
    if (global.requiresGrad) global.registerHook((g) => sum(g.clone()));
    const n = total.select(0, 2 * c).item();
    if (n <= 1) throw new Error(`BatchNorm2d: expected more than 1 value per channel over all replicas when training, got ${n}`);
    const mean = global.narrow(0, 0, c).div(n);
    const variance = global.narrow(0, c, c).div(n).sub(mean.square());
    const shape = [1, c, ...dims.slice(1).map(() => 1)];
    let y = xf.sub(mean.to(xf.dtype).view(...shape)).mul(variance.add(this.eps).rsqrt().to(xf.dtype).view(...shape));
    if (this.weight) y = y.mul(this.weight.to(xf.dtype).view(...shape));
    if (this.bias) y = y.add(this.bias.to(xf.dtype).view(...shape));
    if (low) y = y.to(x.dtype);
    if (this.running_mean && this.running_var && this.num_batches_tracked) {
      this.num_batches_tracked.add_(1);
      const m = this.momentum ?? 1 / this.num_batches_tracked.item();
      const rm = this.running_mean;
      const rv = this.running_var;
      noGrad(() => {
        rm.mul_(1 - m).add_(mean.detach().to(rm.dtype).mul(m));
        // The running variance is the unbiased estimate, as PyTorch's.
        rv.mul_(1 - m).add_(variance.detach().mul((m * n) / (n - 1)).to(rv.dtype));
      });
    }
    return y;
  }
}

export interface ReLUOptions {
  /**
   * Overwrite the input instead of allocating the result, as PyTorch's `ReLU(inplace=True)`: for a ReLU
   * right after a BatchNorm or an addition whose output nothing else reads (torchvision's blocks). Saves
   * an activation-sized tensor and its memory traffic (ResNet-50 batch-1 inference ~10% faster on 2 cores).
   */
  inplace?: boolean;
}

export class ReLU extends Module {
  readonly inplace: boolean;
  constructor(o: ReLUOptions = {}) {
    super();
    this.inplace = o.inplace ?? false;
  }
  forward(x: Tensor): Tensor {
    return this.inplace ? x.relu_() : x.relu();
  }
}

export class ReLU6 extends Module {
  forward(x: Tensor): Tensor {
    return F.relu6(x);
  }
}

export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return x.sigmoid();
  }
}

export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.flatten(this.startDim, this.endDim);
  }
}

export class MaxPool2d extends Module {
  constructor(readonly kernelSize: Pair, readonly o: F.Pool2dOptions = {}) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.maxPool2d(x, this.kernelSize, this.o);
  }
}

export class AvgPool2d extends Module {
  constructor(readonly kernelSize: Pair, readonly o: Parameters<typeof F.avgPool2d>[2] = {}) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.avgPool2d(x, this.kernelSize, this.o);
  }
}

export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: Pair) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.adaptiveAvgPool2d(x, this.outputSize);
  }
}

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
  }
  forward(x: Tensor): Tensor {
    // In eval mode dropout is the identity (ATen returns its input): skip the call.
    return this.p > 0 && this.training ? F.dropout(x, this.p, true) : x;
  }
}

/** Zeroes whole channels (spatial dropout, as ENet uses). */
export class Dropout2d extends Module {
  constructor(readonly p = 0.5) {
    super();
  }
  forward(x: Tensor): Tensor {
    return this.p > 0 && this.training ? F.dropout2d(x, this.p, true) : x;
  }
}

export interface ConvTranspose2dOptions extends F.ConvTranspose2dOptions {
  bias?: boolean;
}

/**
 * Transposed convolution; weight [in, out/groups, kh, kw] as in PyTorch. Its reset_parameters is
 * _ConvNd's, whose fan_in is read from dim 1 of that weight, i.e. (out/groups)·kh·kw, not in·kh·kw.
 */
export class ConvTranspose2d extends Module {
  weight: Parameter;
  bias: Parameter | null;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly outputPadding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;

  // Not readonly: filter pruning (keepOutputs / keepInputs) narrows a trained layer in place (ENet's decoder).
  constructor(public inChannels: number, public outChannels: number, kernelSize: Pair, o: ConvTranspose2dOptions = {}) {
    super();
    this.kernelSize = pair(kernelSize);
    this.stride = pair(o.stride ?? 1);
    this.padding = pair(o.padding ?? 0);
    this.outputPadding = pair(o.outputPadding ?? 0);
    this.dilation = pair(o.dilation ?? 1);
    this.groups = o.groups ?? 1;
    if (inChannels % this.groups || outChannels % this.groups) {
      throw new Error(`ConvTranspose2d: channels ${inChannels}->${outChannels} are not divisible by groups=${this.groups}`);
    }
    for (const d of [0, 1]) {
      if (this.outputPadding[d] >= Math.max(this.stride[d], this.dilation[d])) {
        throw new Error(`ConvTranspose2d: outputPadding ${this.outputPadding} must be smaller than stride or dilation`);
      }
    }
    this.weight = Parameter.from(empty([inChannels, outChannels / this.groups, ...this.kernelSize]));
    this.bias = o.bias === false ? null : Parameter.from(empty([outChannels]));
    defaultLayerInit(this.weight, this.bias);
  }

  /** outputSize (H, W) picks the output padding, as torch's forward(input, output_size) does. */
  forward(x: Tensor, outputSize?: [number, number]): Tensor {
    const outputPadding = outputSize ? this.outputPaddingFor(x, outputSize) : this.outputPadding;
    return F.convTranspose2d(x, this.weight, this.bias, {
      stride: this.stride,
      padding: this.padding,
      outputPadding,
      groups: this.groups,
      dilation: this.dilation,
    });
  }

  private outputPaddingFor(x: Tensor, size: [number, number]): [number, number] {
    const [h, w] = x.shape.slice(-2);
    return [h, w].map((n, d) => {
      const min = (n - 1) * this.stride[d] - 2 * this.padding[d] + this.dilation[d] * (this.kernelSize[d] - 1) + 1;
      const max = min + this.stride[d] - 1;
      if (size[d] < min || size[d] > max) {
        throw new Error(`ConvTranspose2d: output size ${size} is not reachable from input [${h}, ${w}] (dimension ${d}: ${min}..${max})`);
      }
      return size[d] - min;
    }) as [number, number];
  }

  /** Keeps only the output channels `index` (int64): filter pruning. They are dim 1 of the weight [in, out, kh, kw]. */
  keepOutputs(index: Tensor): void {
    this.checkUngrouped('keepOutputs');
    this.weight = Parameter.from(this.weight.detach().indexSelect(1, index));
    if (this.bias) this.bias = Parameter.from(this.bias.detach().indexSelect(0, index));
    this.outChannels = index.numel();
  }

  /** Keeps only the input channels `index` (the producer lost the others): dim 0 of the weight. */
  keepInputs(index: Tensor): void {
    this.checkUngrouped('keepInputs');
    this.weight = Parameter.from(this.weight.detach().indexSelect(0, index));
    this.inChannels = index.numel();
  }

  // With groups, an input channel's slice of outputs depends on its group: not needed by any network here.
  private checkUngrouped(what: string): void {
    if (this.groups > 1) throw new Error(`ConvTranspose2d.${what}: only ungrouped transposed convolutions (groups=${this.groups})`);
  }
}

/** Parametric ReLU (He et al. 2015; ENet): one learned slope per channel (numParameters = C) or shared. */
export class PReLU extends Module {
  weight: Parameter;
  /** channels: torch's num_parameters (1 = one slope shared by all channels). Not readonly: filter pruning narrows it. */
  constructor(public channels = 1, init = 0.25) {
    super();
    this.weight = Parameter.from(full([channels], init));
  }
  forward(x: Tensor): Tensor {
    return F.prelu(x, this.weight);
  }
  /**
   * Keeps only the slopes of channels `index`, after the conv before it lost filters (ENet's bottlenecks). A
   * single shared slope serves any width and stays as it is.
   */
  keepChannels(index: Tensor): void {
    if (this.channels === 1) return;
    this.weight = Parameter.from(this.weight.detach().indexSelect(0, index));
    this.channels = index.numel();
  }
}

export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return x.tanh();
  }
}

export class LeakyReLU extends Module {
  constructor(readonly negativeSlope = 0.01) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.leakyRelu(x, this.negativeSlope);
  }
}

export class Softmax extends Module {
  constructor(readonly dim = 1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.softmax(x, this.dim);
  }
}

/** Max pooling that also returns where each maximum came from (ENet's encoder, for MaxUnpool2d). */
export class MaxPool2dWithIndices extends Module {
  constructor(readonly kernelSize: Pair, readonly o: F.Pool2dOptions = {}) {
    super();
  }
  forward(x: Tensor): { output: Tensor; indices: Tensor } {
    return F.maxPool2dWithIndices(x, this.kernelSize, this.o);
  }
}

/**
 * Puts values back where MaxPool2dWithIndices found them. ENet's decoder passes the encoder's size
 * explicitly (odd sizes are ambiguous); without one, the size follows from kernel, stride and padding.
 */
export class MaxUnpool2d extends Module {
  readonly kernelSize: [number, number] | null;
  readonly stride: [number, number] | null;
  readonly padding: [number, number];
  constructor(kernelSize?: Pair, o: { stride?: Pair; padding?: Pair } = {}) {
    super();
    this.kernelSize = kernelSize === undefined ? null : pair(kernelSize);
    this.stride = o.stride !== undefined ? pair(o.stride) : this.kernelSize;
    this.padding = pair(o.padding ?? 0);
  }
  forward(x: Tensor, indices: Tensor, outputSize?: [number, number]): Tensor {
    return F.maxUnpool2d(x, indices, outputSize ?? this.defaultSize(x));
  }
  private defaultSize(x: Tensor): [number, number] {
    const k = this.kernelSize;
    const s = this.stride;
    if (!k || !s) throw new Error('MaxUnpool2d: give outputSize, or construct with a kernel size');
    const [h, w] = x.shape.slice(-2);
    return [(h - 1) * s[0] - 2 * this.padding[0] + k[0], (w - 1) * s[1] - 2 * this.padding[1] + k[1]];
  }
}

export class AdaptiveMaxPool2d extends Module {
  constructor(readonly outputSize: Pair) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.adaptiveMaxPool2d(x, this.outputSize);
  }
}

/** nn.Upsample: nearest or bilinear, to a size or by a scale factor. */
export class Upsample extends Module {
  constructor(readonly o: F.InterpolateOptions) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.interpolate(x, this.o);
  }
}
