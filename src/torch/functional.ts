// Free functions over tensors: joining, selection and the neural-network operators the nine architectures
// and their training need. Keyword arguments of torch.nn.functional become option objects.
import { Handle, NativeArg, isHandle, native } from './native';
import { Reduction, ReductionName, isTracing, op } from './ops';
import { bfloat16Support } from './runtime';
import { fromArray } from './creation';
import { tidy } from './memory';
import { autocast, isAutocastEnabled, isGradEnabled, noGrad } from './autograd';
import { DType, Tensor, TensorOrScalar, handles, wrap, wrapList } from './tensor';

export type Pair = number | [number, number];
/** A Pair as its two values (height, width). */
export const pairOf = (p: Pair): [number, number] => (typeof p === 'number' ? [p, p] : [p[0], p[1]]);
/** Whether autograd will record an op on x. */
const recordsGrad = (x: Tensor): boolean => x.requiresGrad && isGradEnabled();

const opt = (t: Tensor | null | undefined): Handle | null => (t ? t.h : null);

export function cat(tensors: Tensor[], dim = 0): Tensor {
  return wrap(op('aten::cat').handle(handles(tensors), dim));
}
export function stack(tensors: Tensor[], dim = 0): Tensor {
  return wrap(op('aten::stack').handle(handles(tensors), dim));
}
/** cond ? a : b, elementwise. */
export function where(cond: Tensor, a: TensorOrScalar, b: TensorOrScalar): Tensor {
  if (typeof a === 'number' && typeof b === 'number') return wrap(op('aten::where.Scalar').handle(cond.h, a, b));
  if (typeof a === 'number') return wrap(op('aten::where.ScalarSelf').handle(cond.h, a, (b as Tensor).h));
  if (typeof b === 'number') return wrap(op('aten::where.ScalarOther').handle(cond.h, a.h, b));
  return wrap(op('aten::where.self').handle(cond.h, a.h, b.h));
}
export function maximum(a: Tensor, b: Tensor): Tensor {
  return a.maximum(b);
}
export function minimum(a: Tensor, b: Tensor): Tensor {
  return a.minimum(b);
}
export function matmul(a: Tensor, b: Tensor): Tensor {
  return a.matmul(b);
}

// ---- layers --------------------------------------------------------------------------------------------
export interface Conv2dOptions {
  stride?: Pair;
  /** Numbers, or 'same' / 'valid' as in PyTorch. */
  padding?: Pair | 'same' | 'valid';
  dilation?: Pair;
  groups?: number;
}

/**
 * Without AVX-512, libtorch 1.13's bfloat16 CPU convolutions and matrix products sum in bfloat16 (oneDNN has
 * no kernel there): many times slower than float32 (README, bfloat16), and a 3×3×64 convolution 3% off
 * (test/infer/bfloat16.test.ts). Such an op — its input bfloat16, or float32 that autocast is about to cast — runs
 * instead in float32 on the bfloat16-rounded operands with autocast off, and its result is rounded once: what
 * oneDNN's bfloat16 kernels compute on AVX-512 (float32 sums), at float32's speed. Autograd records the casts.
 */
function bfloat16InFloat32(x: Tensor): boolean {
  return bfloat16Support() === 'slow' && x.device === 'cpu' && (x.dtype === 'bfloat16' || (x.dtype === 'float32' && isAutocastEnabled('cpu')));
}
function inFloat32(fn: (...operands: (Tensor | null)[]) => Tensor, ...operands: (Tensor | null | undefined)[]): Tensor {
  const up = operands.map((t) => (t ? (t.dtype === 'bfloat16' ? t.float() : roundedThroughBfloat16(t)) : null));
  try {
    const y = autocast(() => fn(...up), { enabled: false });
    try {
      return y.to('bfloat16');
    } finally {
      y.dispose();
    }
  } finally {
    for (const t of up) t?.dispose();
  }
}
/** t rounded to bfloat16 and back: the operand autocast would have given the kernel, in float32. */
function roundedThroughBfloat16(t: Tensor): Tensor {
  const low = t.to('bfloat16');
  try {
    return low.float();
  } finally {
    low.dispose();
  }
}

export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, o: Conv2dOptions = {}): Tensor {
  if (bfloat16InFloat32(x)) return inFloat32((a, w, b) => conv2d(a!, w!, b, o), x, weight, bias);
  if (typeof o.padding === 'string') {
    return wrap(op('aten::conv2d.padding').handle(x.h, weight.h, opt(bias), o.stride ?? 1, o.padding, o.dilation ?? 1, o.groups ?? 1));
  }
  return wrap(op('aten::conv2d').handle(x.h, weight.h, opt(bias), o.stride ?? 1, o.padding ?? 0, o.dilation ?? 1, o.groups ?? 1));
}

export interface ConvTranspose2dOptions {
  stride?: Pair;
  padding?: Pair;
  outputPadding?: Pair;
  groups?: number;
  dilation?: Pair;
}

export function convTranspose2d(x: Tensor, weight: Tensor, bias?: Tensor | null, o: ConvTranspose2dOptions = {}): Tensor {
  const fast = convTranspose2dAsSubpixel(x, weight, bias, o);
  if (fast) return fast;
  // libtorch 1.13 sends bfloat16 CPU convolutions to oneDNN without telling it the convolution is transposed:
  // it returns a plain strided convolution (an 8×16 input gives 4×8, not 16×32; PyTorch 1.13 does the same).
  // So in float32, rounded back: the answer a correct bfloat16 kernel would give, up to one rounding. (Under
  // autocast a bfloat16 activation arrives here too: CPU autocast leaves transposed convolutions alone.)
  if (x.dtype === 'bfloat16' && x.device === 'cpu') return inFloat32((a, w, b) => convTranspose2d(a!, w!, b, o), x, weight, bias);
  return wrap(
    op('aten::conv_transpose2d.input').handle(x.h, weight.h, opt(bias), o.stride ?? 1, o.padding ?? 0, o.outputPadding ?? 0, o.groups ?? 1, o.dilation ?? 1),
  );
}

/**
 * Below this many output elements a transposed convolution keeps libtorch's own kernel: the sub-pixel form's
 * few extra calls (weight rearranged, input padded, pixels shuffled) cost more than they save on small maps.
 */
export const SUBPIXEL_MIN_OUTPUT = 65536;

/**
 * One dimension of a stride-s transposed convolution as s phases of an ordinary one: output position
 * q·s + r receives x[q + off]·w[a] for the kernel taps a ≡ (r + p) mod s, at offsets off = ⌊(r + p)/s⌋ − t
 * (a = (r + p) mod s + s·t). All phases share the offsets lo…lo + width − 1; `taps[r·width + j]` is the tap at
 * offset lo + j of phase r, or k (a zero) where the phase has none.
 */
function subpixelAxis(k: number, s: number, p: number): { lo: number; width: number; taps: number[] } {
  const used: { r: number; off: number; a: number }[] = [];
  for (let r = 0; r < s; r++) {
    for (let a = (r + p) % s, t = 0; a < k; a += s, t++) used.push({ r, off: Math.floor((r + p) / s) - t, a });
  }
  const lo = Math.min(...used.map((u) => u.off));
  const width = Math.max(...used.map((u) => u.off)) - lo + 1;
  const taps = new Array<number>(s * width).fill(k);
  for (const u of used) taps[u.r * width + u.off - lo] = u.a;
  return { lo, width, taps };
}

/**
 * A strided transposed convolution as the sub-pixel convolution it equals (Shi et al. 2016): one ordinary
 * convolution at the input's resolution with s² filters per output channel — each phase of the output grid
 * gets the kernel taps that reach it — then pixel_shuffle interleaves the phases. libtorch 1.13's CPU kernel
 * for transposed convolutions (im2col's inverse, col2im) runs at a tenth of an ordinary convolution's
 * speed; ENet's decoder spent a quarter of its inference time there. The weight is rearranged by
 * differentiable ops on every call, so autograd sees the same function (test/engine/subpixel.test.ts checks
 * values and gradients against aten::conv_transpose2d).
 *
 * Null where libtorch's own call stays: other devices, groups or dilation, stride 1, small outputs, an output
 * not a whole number of phases, and while an ONNX export traces (onnxruntime has its own ConvTranspose).
 */
export function convTranspose2dAsSubpixel(x: Tensor, weight: Tensor, bias: Tensor | null | undefined, o: ConvTranspose2dOptions = {}): Tensor | null {
  const [sh, sw] = pairOf(o.stride ?? 1);
  const [ph, pw] = pairOf(o.padding ?? 0);
  const [oh, ow] = pairOf(o.outputPadding ?? 0);
  const [dh, dw] = pairOf(o.dilation ?? 1);
  if (x.device !== 'cpu' || x.dim() !== 4 || (o.groups ?? 1) !== 1 || dh !== 1 || dw !== 1 || sh * sw < 2 || isTracing()) return null;
  if (x.dtype !== 'float32' && x.dtype !== 'float64') return null;
  const [n, , h, w] = x.shape;
  const [, cout, kh, kw] = weight.shape;
  const outH = (h - 1) * sh - 2 * ph + kh + oh;
  const outW = (w - 1) * sw - 2 * pw + kw + ow;
  if (outH % sh || outW % sw || n * cout * outH * outW < SUBPIXEL_MIN_OUTPUT || sh !== sw) return null;
  const s = sh;
  const ay = subpixelAxis(kh, s, ph);
  const ax = subpixelAxis(kw, s, pw);
  // Input padding (negative: cropping) so that the convolution's output is exactly outH/s × outW/s.
  const pads = [-ax.lo, outW / s - w + ax.lo + ax.width - 1, -ay.lo, outH / s - h + ay.lo + ay.width - 1];
  // As libtorch's own, in the input's precision: autocast leaves transposed convolutions alone.
  return autocast(
    () =>
      tidy(() => {
        // [in, out, kh, kw] → [out·s², in, height, width]: filter o·s² + ry·s + rx serves phase (ry, rx).
        const cin = weight.shape[0];
        const k = pad(weight.transpose(0, 1), [0, 1, 0, 1]) // the zero at index k stands for a missing tap
          .indexSelect(2, tensorOf(ay.taps))
          .indexSelect(3, tensorOf(ax.taps))
          .view(cout, cin, s, ay.width, s, ax.width)
          .permute(0, 2, 4, 1, 3, 5)
          .reshape(cout * s * s, cin, ay.width, ax.width);
        const input = pads.some((v) => v !== 0) ? pad(x, pads) : x;
        const phases = conv2d(input, k, bias ? bias.unsqueeze(1).expand(cout, s * s).reshape(-1) : null);
        return wrap(op('aten::pixel_shuffle').handle(phases.h, s));
      }),
    { enabled: false },
  );
}

const tensorOf = (v: number[]): Tensor => fromArray(BigInt64Array.from(v, BigInt));

export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  if (bfloat16InFloat32(x)) return inFloat32((a, w, b) => linear(a!, w!, b), x, weight, bias);
  return wrap(op('aten::linear').handle(x.h, weight.h, opt(bias)));
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  training?: boolean;
  momentum?: number;
  eps?: number;
}

/** Normalizes over (N, H, W); in training it also updates runningMean/runningVar in place. */
export function batchNorm(x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, o: BatchNormOptions = {}): Tensor {
  return wrap(
    op('aten::batch_norm').handle(x.h, opt(o.weight), opt(o.bias), opt(runningMean), opt(runningVar), o.training ?? false, o.momentum ?? 0.1, o.eps ?? 1e-5, true),
  );
}

export function groupNorm(x: Tensor, groups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  return wrap(op('aten::group_norm').handle(x.h, groups, opt(weight), opt(bias), eps, true));
}

// ---- activations ---------------------------------------------------------------------------------------
export function relu(x: Tensor): Tensor {
  return x.relu();
}
/** min(max(x, 0), 6), MobileNet's activation. */
export function relu6(x: Tensor): Tensor {
  return wrap(op('aten::hardtanh').handle(x.h, 0, 6));
}
export function hardtanh(x: Tensor, min = -1, max = 1): Tensor {
  return wrap(op('aten::hardtanh').handle(x.h, min, max));
}
/** Parametric ReLU (ENet): weight has one slope per channel, or a single shared one. */
export function prelu(x: Tensor, weight: Tensor): Tensor {
  return wrap(op('aten::prelu').handle(x.h, weight.h));
}
export function leakyRelu(x: Tensor, slope = 0.01): Tensor {
  return wrap(op('aten::leaky_relu').handle(x.h, slope));
}
export function sigmoid(x: Tensor): Tensor {
  return x.sigmoid();
}
export function tanh(x: Tensor): Tensor {
  return x.tanh();
}
export function softmax(x: Tensor, dim: number, dtype?: DType): Tensor {
  return wrap(op('aten::softmax.int').handle(x.h, dim, dtype));
}
export function logSoftmax(x: Tensor, dim: number, dtype?: DType): Tensor {
  return wrap(op('aten::log_softmax.int').handle(x.h, dim, dtype));
}

// ---- pooling and resampling ----------------------------------------------------------------------------
export interface Pool2dOptions {
  /** Defaults to the kernel size, as in PyTorch. */
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  ceilMode?: boolean;
}

/**
 * Whether max pooling runs channels-last. libtorch 1.13's CPU max pooling is many times slower on NCHW tensors
 * than on channels-last ones (a 3×3, stride-2 pool of 128×147×147, Xception's first: 9.8 against 0.8 ms), so
 * the input is reordered and pooled channels-last (pooledChannelsLast). Few channels (3: the reorders cost
 * more), oneDNN-layout tensors (their own kernel), other dtypes and devices, and ONNX export (one MaxPool)
 * keep the plain call.
 */
function poolChannelsLast(x: Tensor): boolean {
  return x.device === 'cpu' && x.dim() === 4 && x.size(1) >= 16 && (x.dtype === 'float32' || x.dtype === 'float64') && !isTracing() && native.layout(x.h) === 'strided';
}

/**
 * Max pooling's values and indices through the channels-last kernel, returned in NCHW: the same values and
 * indices (a maximum is exact; NaN propagates alike). With autograd the values are instead gathered from x at
 * those indices, whose backward (a scatter-add of the gradient to the argmax positions) is what
 * max_pool2d's backward computes, and faster than the channels-last backward: a training step's pooling,
 * forward and backward, takes 0.5–0.7× of the NCHW kernel's (test/engine/maxpool.test.ts checks values,
 * indices and gradients against PyTorch's).
 */
function pooledChannelsLast(x: Tensor, pool: (t: Tensor) => Tensor[]): [Tensor, Tensor] {
  const [output, indices] = noGrad(() => tidy(() => pool(x.contiguous('channels_last')).map((t) => t.contiguous())));
  if (!recordsGrad(x)) return [output, indices];
  output.dispose();
  const [n, c, h, w] = indices.shape;
  return [tidy(() => x.flatten(2).gather(2, indices.flatten(2)).view(n, c, h, w)), indices];
}

export function maxPool2d(x: Tensor, kernelSize: Pair, o: Pool2dOptions = {}): Tensor {
  const pool = (t: Tensor): Tensor => wrap(op('aten::max_pool2d').handle(t.h, kernelSize, o.stride ?? [], o.padding ?? 0, o.dilation ?? 1, o.ceilMode ?? false));
  if (!poolChannelsLast(x)) return pool(x);
  // Without autograd no indices are needed: the values alone are quicker still.
  if (!recordsGrad(x)) return tidy(() => pool(x.contiguous('channels_last')).contiguous());
  const [output, indices] = pooledChannelsLast(x, (t) => maxPool2dWithIndicesCall(t, kernelSize, o));
  indices.dispose();
  return output;
}
/** Max pooling that also returns the argmax positions, which ENet's decoder feeds to maxUnpool2d. */
export function maxPool2dWithIndices(x: Tensor, kernelSize: Pair, o: Pool2dOptions = {}): { output: Tensor; indices: Tensor } {
  const pool = (t: Tensor): Tensor[] => maxPool2dWithIndicesCall(t, kernelSize, o);
  const [output, indices] = poolChannelsLast(x) ? pooledChannelsLast(x, pool) : pool(x);
  return { output, indices };
}
const maxPool2dWithIndicesCall = (x: Tensor, kernelSize: Pair, o: Pool2dOptions): Tensor[] =>
  wrapList(op('aten::max_pool2d_with_indices').call(x.h, kernelSize, o.stride ?? [], o.padding ?? 0, o.dilation ?? 1, o.ceilMode ?? false));
/** Scatters values back to the positions maxPool2dWithIndices recorded; outputSize is (H, W). */
export function maxUnpool2d(x: Tensor, indices: Tensor, outputSize: [number, number]): Tensor {
  // libtorch 1.13 has no bfloat16 kernel on CPU. Unpooling only moves values, and bfloat16 → float32 → bfloat16
  // is exact, so the float kernel gives the same answer.
  if (x.dtype === 'bfloat16' && x.device === 'cpu') return maxUnpool2d(x.float(), indices, outputSize).to('bfloat16');
  return wrap(op('aten::max_unpool2d').handle(x.h, indices.h, outputSize));
}
export function avgPool2d(
  x: Tensor,
  kernelSize: Pair,
  o: { stride?: Pair; padding?: Pair; ceilMode?: boolean; countIncludePad?: boolean; divisorOverride?: number } = {},
): Tensor {
  return wrap(
    op('aten::avg_pool2d').handle(x.h, kernelSize, o.stride ?? [], o.padding ?? 0, o.ceilMode ?? false, o.countIncludePad ?? true, o.divisorOverride ?? null),
  );
}
export function adaptiveAvgPool2d(x: Tensor, outputSize: Pair): Tensor {
  const size = pairOf(outputSize);
  // Pooling to the input's own size averages one value into each output: a copy, which libtorch 1.13 computes
  // as a pooling anyway (`npm start`'s CNN pools its 7×7 maps to 7×7: 1.7 ms forward and 3.6 ms with backward
  // at batch 128, against 0.02 and 0.12 for a copy). oneDNN-layout tensors and ONNX export keep the op.
  if (x.dim() === 4 && x.size(2) === size[0] && x.size(3) === size[1] && !isTracing() && native.layout(x.h) === 'strided') return x.clone();
  return wrap(op('aten::adaptive_avg_pool2d').handle(x.h, size));
}
export function adaptiveMaxPool2d(x: Tensor, outputSize: Pair): Tensor {
  const [out] = wrapList(op('aten::adaptive_max_pool2d').call(x.h, pairOf(outputSize)));
  return out;
}

export interface InterpolateOptions {
  size?: [number, number];
  scaleFactor?: number | [number, number];
  mode?: 'nearest' | 'bilinear';
  /** Bilinear only. PyTorch's default is false; DeepLab/PSPNet-era code often used true. */
  alignCorners?: boolean;
  /**
   * Bilinear only: when shrinking, average over the whole footprint of each output pixel (a wider triangle
   * filter) instead of reading 2×2 input pixels, which aliases (PyTorch's antialias=True, as torchvision
   * resizes images). Default false.
   */
  antialias?: boolean;
}

/** torch.nn.functional.interpolate for 4-D input. */
export function interpolate(x: Tensor, o: InterpolateOptions): Tensor {
  if (!o.size && o.scaleFactor === undefined) throw new Error('interpolate: give size or scaleFactor');
  const size = o.size ?? null;
  const scales = o.size ? null : typeof o.scaleFactor === 'number' ? [o.scaleFactor, o.scaleFactor] : (o.scaleFactor as number[]);
  if ((o.mode ?? 'nearest') === 'nearest') {
    if (o.alignCorners !== undefined || o.antialias !== undefined) throw new Error('interpolate: alignCorners and antialias apply only to bilinear mode');
    return wrap(op('aten::upsample_nearest2d.vec').handle(x.h, size, scales));
  }
  return wrap(op(o.antialias ? 'aten::_upsample_bilinear2d_aa.vec' : 'aten::upsample_bilinear2d.vec').handle(x.h, size, o.alignCorners ?? false, scales));
}

export interface GridSampleOptions {
  mode?: 'bilinear' | 'nearest' | 'bicubic';
  paddingMode?: 'zeros' | 'border' | 'reflection';
  /** PyTorch's default is false: -1 and 1 are the outer edges of the corner pixels. */
  alignCorners?: boolean;
}
const GRID_MODES = { bilinear: 0, nearest: 1, bicubic: 2 } as const;
const GRID_PADDING = { zeros: 0, border: 1, reflection: 2 } as const;

/** torch.nn.functional.grid_sample for 4-D input: x [N, C, H, W] read at grid [N, h, w, 2] (x, y in [-1, 1]). */
export function gridSample(x: Tensor, grid: Tensor, o: GridSampleOptions = {}): Tensor {
  return wrap(op('aten::grid_sampler').handle(x.h, grid.h, GRID_MODES[o.mode ?? 'bilinear'], GRID_PADDING[o.paddingMode ?? 'zeros'], o.alignCorners ?? false));
}

/** torch.nn.functional.affine_grid: theta [N, 2, 3] to a sampling grid [N, H, W, 2] for size [N, C, H, W]. */
export function affineGrid(theta: Tensor, size: readonly number[], alignCorners = false): Tensor {
  return wrap(op('aten::affine_grid_generator').handle(theta.h, [...size], alignCorners));
}

/** Zero-pads (or pads with value) the last dimensions; pad = [left, right, top, bottom]. */
export function pad(x: Tensor, padding: number[], value = 0): Tensor {
  return wrap(op('aten::constant_pad_nd').handle(x.h, padding, value));
}

// ---- regularization ------------------------------------------------------------------------------------
export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  return wrap(op('aten::dropout').handle(x.h, p, training));
}
/** Drops whole channels (nn.Dropout2d; ENet's spatial dropout). */
export function dropout2d(x: Tensor, p = 0.5, training = true): Tensor {
  return wrap(op('aten::feature_dropout').handle(x.h, p, training));
}

// ---- losses ---------------------------------------------------------------------------------------------
export interface CrossEntropyOptions {
  weight?: Tensor | null;
  ignoreIndex?: number;
  reduction?: ReductionName;
  labelSmoothing?: number;
}

/** Logits (N, C, ...) against int64 class indices (N, ...); pixels labelled ignoreIndex count for nothing. */
export function crossEntropy(logits: Tensor, target: Tensor, o: CrossEntropyOptions = {}): Tensor {
  return wrap(
    op('aten::cross_entropy_loss').handle(logits.h, target.h, opt(o.weight), Reduction[o.reduction ?? 'mean'], o.ignoreIndex ?? -100, o.labelSmoothing ?? 0),
  );
}
export function nllLoss(logProbs: Tensor, target: Tensor, o: Omit<CrossEntropyOptions, 'labelSmoothing'> = {}): Tensor {
  return wrap(op('aten::nll_loss_nd').handle(logProbs.h, target.h, opt(o.weight), Reduction[o.reduction ?? 'mean'], o.ignoreIndex ?? -100));
}
export function mseLoss(input: Tensor, target: Tensor, reduction: ReductionName = 'mean'): Tensor {
  return wrap(op('aten::mse_loss').handle(input.h, target.h, Reduction[reduction]));
}
export function l1Loss(input: Tensor, target: Tensor, reduction: ReductionName = 'mean'): Tensor {
  return wrap(op('aten::l1_loss').handle(input.h, target.h, Reduction[reduction]));
}
/** KL(target || input) with input as log-probabilities, as torch.nn.functional.kl_div. */
export function klDiv(input: Tensor, target: Tensor, o: { reduction?: ReductionName | 'batchmean'; logTarget?: boolean } = {}): Tensor {
  const r = o.reduction ?? 'mean';
  if (r === 'batchmean') {
    const s = wrap(op('aten::kl_div').handle(input.h, target.h, Reduction.sum, o.logTarget ?? false));
    return s.div(input.size(0));
  }
  return wrap(op('aten::kl_div').handle(input.h, target.h, Reduction[r], o.logTarget ?? false));
}
export function binaryCrossEntropyWithLogits(input: Tensor, target: Tensor, o: { weight?: Tensor; posWeight?: Tensor; reduction?: ReductionName } = {}): Tensor {
  return wrap(op('aten::binary_cross_entropy_with_logits').handle(input.h, target.h, opt(o.weight), opt(o.posWeight), Reduction[o.reduction ?? 'mean']));
}
export function smoothL1Loss(input: Tensor, target: Tensor, beta = 1, reduction: ReductionName = 'mean'): Tensor {
  return wrap(op('aten::smooth_l1_loss').handle(input.h, target.h, Reduction[reduction], beta));
}

/** Any operator by schema name, e.g. callOp('aten::pixel_shuffle', x, 2): the whole ATen surface. */
export function callOp(spec: string, ...args: (Tensor | Tensor[] | NativeArg)[]): Tensor | Tensor[] | number | boolean | null {
  const conv = (a: Tensor | Tensor[] | NativeArg): NativeArg =>
    a instanceof Tensor ? a.h : Array.isArray(a) ? (a as (Tensor | NativeArg)[]).map((x) => conv(x)) : a;
  const r = op(spec).call(...args.map(conv));
  const back = (v: unknown): Tensor | Tensor[] | number | boolean | null =>
    isHandle(v) ? wrap(v)
    : v === null || typeof v === 'number' || typeof v === 'boolean' ? v
    : Array.isArray(v) ? (v.map(back) as Tensor[])
    : null;
  return back(r);
}
