// Post-training static int8 quantization of an exported graph, in ONNX's QDQ form: QuantizeLinear →
// DequantizeLinear pairs on the tensors around each convolution and fully connected layer, the form
// onnxruntime's own quantizer writes. onnxruntime fuses each DequantizeLinear → Conv → QuantizeLinear group
// into one QLinearConv and runs it on 8-bit integers (QGemm for Gemm); onnxruntime-web reads the same file.
//   weights      int8, symmetric (zero point 0), scale max|w| / 127 per output channel of a Conv, per
//                tensor for Gemm and MatMul; with `reduceRange`, max|w| / 64 (7 bits), as onnxruntime's
//                quantizer does on request: x86 CPUs without VNNI multiply uint8 by int8 with VPMADDUBSW,
//                which adds two products into 16 bits and saturates (2 · 255 · 127 > 32767; 2 · 255 · 64 is not);
//   biases       int32 at the input's scale × the weight's scale, zero point 0, so the integer sum needs
//                no rescaling before the bias is added;
//   activations  uint8, asymmetric over [min(0, lo), max(0, hi)] seen on calibration images (MinMax, a
//                percentile of a histogram, or the histogram's least-squared-error span), so that 0 is exact (padding, ReLU) — ReLU and clip outputs
//                start at 0 and lose nothing.
// A ReLU or Clip right after a quantized layer moves the layer's quantization to its own output, as
// onnxruntime's quantizer does; onnxruntime then drops the activation into the integer kernel. The logits
// stay float32: nothing is quantized between the last quantized layer and the graph's outputs (a softmax,
// a resize, an argmax), whose layer then gives a float result. Operators not listed above run in float32 on
// dequantized values, which is slower but never wrong.
import type * as Ort from 'onnxruntime-node';
import { concatChunks, encodeModel, GraphProto, ModelProto, NodeProto, OnnxType, OnnxTypeName, TensorProto, ValueInfoProto } from './protobuf';

/** The range a tensor took over the calibration images. */
export interface TensorRange {
  min: number;
  max: number;
}

export interface QuantizeReport {
  /** Layers whose weights became int8 (Conv, Gemm, MatMul; weights only: ConvTranspose too). */
  layers: number;
  /** Activation tensors given a QuantizeLinear → DequantizeLinear pair. */
  activations: number;
  /** Bytes of float32 weights replaced, and of the int8/int32 tensors and scales that replaced them. */
  weightBytes: { before: number; after: number };
}

/** Layers whose weight (input 1) is quantized, and the axis of their per-channel scales (null: per tensor). */
const WEIGHTED: Record<string, number | null> = { Conv: 0, Gemm: null, MatMul: null };
/** Weights-only exports also store these layers' weights as int8 (ConvTranspose: [in, out / groups, kH, kW]). */
const WEIGHTED_WEIGHTS_ONLY: Record<string, number | null> = { ...WEIGHTED, ConvTranspose: 1 };
/** Activations a quantized layer's output moves through: ORT folds them into the integer kernel. */
const ACTIVATIONS = new Set(['Relu', 'Clip']);
/** Activation-only ops whose inputs and outputs are quantized so that onnxruntime keeps the chain in int8. */
const ACTIVATION_ONLY = new Set(['Add', 'Concat', 'MaxPool', 'AveragePool', 'GlobalAveragePool']);

export const QMAX_WEIGHT = 127;
/** The reduced range: two uint8 × int8 products still fit a signed 16-bit sum. */
export const QMAX_WEIGHT_REDUCED = 64;
const QMAX_ACTIVATION = 255;

/** Round half to even, as QuantizeLinear specifies (Math.round rounds halves up). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** uint8 scale and zero point for a range, as onnxruntime's MinMax calibration computes them. */
export function activationParams(r: TensorRange): { scale: number; zeroPoint: number } {
  const [lo, hi] = [Math.min(0, r.min), Math.max(0, r.max)];
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new Error(`int8 quantization: a calibration range is not finite ([${r.min}, ${r.max}]): the network produced NaN or infinity on a calibration image`);
  const scale = Math.fround((hi - lo) / QMAX_ACTIVATION) || 1;
  return { scale, zeroPoint: Math.min(QMAX_ACTIVATION, Math.max(0, roundHalfEven(-lo / scale))) };
}

/** Symmetric int8 weights in [−qmax, qmax]: one scale per slice along `axis` (null: one for the tensor). */
export function quantizeWeights(w: Float32Array, dims: readonly number[], axis: number | null, qmax = QMAX_WEIGHT): { q: Int8Array; scales: Float32Array } {
  const channels = axis === null ? 1 : dims[axis];
  const inner = axis === null ? w.length : dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const channelOf = (i: number): number => (axis === null ? 0 : Math.floor(i / inner) % channels);
  const scales = new Float32Array(channels);
  for (let i = 0; i < w.length; i++) scales[channelOf(i)] = Math.max(scales[channelOf(i)], Math.abs(w[i]));
  for (let c = 0; c < channels; c++) scales[c] = scales[c] / qmax || 1; // an all-zero channel: any scale
  const q = new Int8Array(w.length);
  for (let i = 0; i < w.length; i++) q[i] = Math.max(-qmax, Math.min(qmax, roundHalfEven(w[i] / scales[channelOf(i)])));
  return { q, scales };
}

/**
 * The activation tensors `quantizeModel` will quantize, in graph order: the inputs of quantized layers and
 * activation-only ops, and their outputs (moved past a ReLU or Clip that alone reads them), except the
 * graph's tail (see below). Calibrate exactly these.
 */
export function activationsToQuantize(graph: GraphProto): string[] {
  const constants = new Set(graph.initializers.map((t) => t.name));
  const outputs = new Set(graph.outputs.map((v) => v.name));
  const readers = new Map<string, NodeProto[]>();
  for (const n of graph.nodes) for (const i of n.inputs) if (i) readers.set(i, [...(readers.get(i) ?? []), n]);
  const types = elementTypes(graph);
  // The tail: tensors that reach an output through float ops alone (the logits before a softmax, a resize or
  // an argmax). They stay float: 256 levels would turn near-ties of the logits into ties.
  const tail = new Set(outputs);
  for (const n of [...graph.nodes].reverse()) {
    if (n.opType in WEIGHTED || ACTIVATION_ONLY.has(n.opType)) continue;
    if (n.outputs.some((o) => tail.has(o))) for (const i of n.inputs) if (i) tail.add(i);
  }
  const chosen = new Set<string>();
  const add = (name: string): void => {
    // Shape arithmetic (ENet's unpooling sizes) runs through Concat and Add too: only float tensors.
    if (!name || constants.has(name) || types.get(name) !== 'float' || tail.has(name)) return;
    // Past an activation that is the tensor's only reader: quantize what comes out of the activation instead.
    const r = readers.get(name) ?? [];
    if (r.length === 1 && ACTIVATIONS.has(r[0].opType)) return add(r[0].outputs[0]);
    chosen.add(name);
  };
  for (const n of graph.nodes) {
    if (n.opType in WEIGHTED) {
      if (!isQuantizableLayer(n, constants)) continue;
      add(n.inputs[0]);
      add(n.outputs[0]);
    } else if (ACTIVATION_ONLY.has(n.opType)) {
      for (const i of n.opType === 'Concat' || n.opType === 'Add' ? n.inputs : n.inputs.slice(0, 1)) add(i);
      add(n.outputs[0]);
    }
  }
  // Graph order: producers before readers, so the QuantizeLinear nodes can follow their producers.
  const order = [...graph.inputs.map((v) => v.name), ...graph.nodes.flatMap((n) => n.outputs)];
  return order.filter((name) => chosen.has(name));
}

const INT64_OUT = new Set(['Shape', 'Size', 'ArgMax', 'ArgMin', 'NonZero']);
const BOOL_OUT = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);
const TYPE_OF_CODE = new Map<number, OnnxTypeName>(Object.entries(OnnxType).map(([k, v]) => [v, k as OnnxTypeName]));

/** Each tensor's element type, propagated through the graph (ONNX files carry no types for intermediates). */
export function elementTypes(graph: GraphProto): Map<string, OnnxTypeName> {
  const types = new Map<string, OnnxTypeName>();
  for (const t of graph.initializers) types.set(t.name, t.dataType);
  for (const v of graph.inputs) types.set(v.name, v.elemType);
  for (const n of graph.nodes) {
    const first = n.opType === 'Where' ? n.inputs[1] : n.inputs.find((i) => i && types.has(i));
    const same = first ? types.get(first) : undefined;
    n.outputs.forEach((o, k) => {
      const to = n.attributes?.to;
      const t: OnnxTypeName | undefined =
        INT64_OUT.has(n.opType) || (k === 1 && n.opType === 'MaxPool') ? 'int64'
        : BOOL_OUT.has(n.opType) ? 'bool'
        : n.opType === 'Cast' && typeof to === 'number' ? TYPE_OF_CODE.get(to)
        : n.opType === 'QuantizeLinear' ? types.get(n.inputs[2]) ?? 'uint8'
        : n.opType === 'DequantizeLinear' ? 'float'
        : same;
      if (t) types.set(o, t);
    });
  }
  return types;
}

/** A Conv, Gemm (plain: no transA, alpha = beta = 1) or MatMul whose weight is a constant of the graph. */
function isQuantizableLayer(n: NodeProto, constants: ReadonlySet<string>): boolean {
  if (!constants.has(n.inputs[1])) return false;
  const a = n.attributes ?? {};
  if (n.opType === 'Gemm') return !a.transA && [a.alpha, a.beta].every((v) => v === undefined || num(v) === 1);
  return true;
}

const num = (v: unknown): number => (typeof v === 'number' ? v : typeof v === 'object' && v !== null && 'float' in v ? (v as { float: number }).float : NaN);

/** The model with these tensors as extra float32 outputs of unknown shape: run it on calibration images. */
export function withCalibrationOutputs(model: ModelProto, names: readonly string[]): ModelProto {
  const extra: ValueInfoProto[] = names.filter((n) => !model.graph.outputs.some((o) => o.name === n)).map((name) => ({ name, elemType: 'float', shape: [], shapeUnknown: true }));
  return { ...model, graph: { ...model.graph, outputs: [...model.graph.outputs, ...extra] } };
}

/**
 * How calibration turns what a tensor took into its range. 'minmax' (onnxruntime's MinMax): the whole range
 * seen. 'percentile': the range without the rarest values, (100 − percentile) / 2 % cut from each tail, read
 * off a histogram; an outlier then no longer stretches the 256 steps over values that hardly occur. 'mse':
 * the range whose 256 steps leave the least squared rounding error over the histogram, found by PyTorch's
 * HistogramObserver search (its default activation observer for x86): it trades clipping the tails against
 * coarser steps per tensor, where a percentile cuts the same share from every one.
 */
export type CalibrationMethod = { method: 'minmax' } | { method: 'percentile'; percentile: number } | { method: 'mse' };

export interface CalibrateOptions {
  /** Default minmax. */
  method?: CalibrationMethod;
  /** Sees the count of feeds run so far. */
  onBatch?: (batches: number) => void;
}

/**
 * The range of each tensor `quantizeModel` quantizes, over calibration feeds (input name → tensor), run by
 * onnxruntime on the float graph.
 */
export async function calibrate(
  ort: typeof Ort,
  model: ModelProto,
  feeds: AsyncIterable<Record<string, Ort.Tensor>> | Iterable<Record<string, Ort.Tensor>>,
  o: CalibrateOptions = {},
): Promise<Map<string, TensorRange>> {
  const method = o.method ?? { method: 'minmax' };
  if (method.method === 'percentile' && !(method.percentile >= 50 && method.percentile <= 100)) throw new RangeError(`calibrate: the percentile must lie in [50, 100], got ${method.percentile}`);
  const names = activationsToQuantize(model.graph);
  const session = await ort.InferenceSession.create(concatChunks(encodeModel(withCalibrationOutputs(model, names))));
  const observer = method.method === 'minmax' ? new RangeObserver() : new HistogramObserver();
  let batches = 0;
  try {
    for await (const feed of feeds) {
      const out = await session.run(feed, names);
      for (const name of names) observer.observe(name, out[name].data as Float32Array);
      o.onBatch?.(++batches);
    }
  } finally {
    await session.release();
  }
  if (observer instanceof RangeObserver) return observer.ranges;
  return method.method === 'percentile' ? observer.ranges(method.percentile) : observer.mseRanges();
}

/** Running min/max per tensor over calibration batches. */
export class RangeObserver {
  readonly ranges = new Map<string, TensorRange>();

  observe(name: string, data: ArrayLike<number>): void {
    const r = this.ranges.get(name);
    const { min, max } = extent(data);
    this.ranges.set(name, r ? { min: Math.min(r.min, min), max: Math.max(r.max, max) } : { min, max });
  }
}

function extent(data: ArrayLike<number>): TensorRange {
  let [min, max] = [Infinity, -Infinity];
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v < min) min = v;
    if (v > max) max = v;
    if (v !== v) return { min: NaN, max: NaN };
  }
  return { min, max };
}

/** Histogram bins per tensor, as onnxruntime's histogram calibrators default to. */
export const HISTOGRAM_BINS = 2048;

interface Histogram {
  lo: number;
  hi: number;
  counts: Float64Array;
}

/**
 * A histogram of each tensor's values over calibration batches, for percentile ranges. The bins span the
 * values seen so far; a batch beyond them widens the span and moves each old bin's count to the new bin
 * holding its centre, so a range read off it is within about two of the final bins' widths of the exact
 * quantile.
 */
export class HistogramObserver {
  private readonly histograms = new Map<string, Histogram>();

  constructor(readonly bins = HISTOGRAM_BINS) {}

  observe(name: string, data: ArrayLike<number>): void {
    const { min, max } = extent(data);
    if (!Number.isFinite(min) || !Number.isFinite(max)) {
      this.histograms.set(name, { lo: NaN, hi: NaN, counts: new Float64Array(this.bins) });
      return;
    }
    let h = this.histograms.get(name);
    if (!h) this.histograms.set(name, (h = { lo: min, hi: max > min ? max : min + 1e-8, counts: new Float64Array(this.bins) }));
    else if (Number.isNaN(h.lo)) return;
    else if (min < h.lo || max > h.hi) this.histograms.set(name, (h = this.widened(h, Math.min(min, h.lo), Math.max(max, h.hi))));
    const scale = this.bins / (h.hi - h.lo);
    for (let i = 0; i < data.length; i++) h.counts[Math.min(this.bins - 1, Math.floor((data[i] - h.lo) * scale))]++;
  }

  private widened(h: Histogram, lo: number, hi: number): Histogram {
    const counts = new Float64Array(this.bins);
    const [width, scale] = [(h.hi - h.lo) / this.bins, this.bins / (hi - lo)];
    h.counts.forEach((c, i) => {
      if (c) counts[Math.min(this.bins - 1, Math.floor((h.lo + (i + 0.5) * width - lo) * scale))] += c;
    });
    return { lo, hi, counts };
  }

  /** Each tensor's range without (100 − percentile) / 2 % of its values on either side: bin edges. */
  ranges(percentile: number): Map<string, TensorRange> {
    const cut = (100 - percentile) / 200;
    return this.each((h, total) => {
      // The first bin whose cumulative count passes the cut from the left, and likewise from the right.
      let [left, right, seen] = [0, this.bins - 1, 0];
      for (; left < this.bins - 1 && (seen += h.counts[left]) <= cut * total; left++);
      for (seen = 0; right > 0 && (seen += h.counts[right]) <= cut * total; right--);
      return [left, right];
    });
  }

  /** Each tensor's range of least squared rounding error over `levels` steps (`mseSearch`): bin edges. */
  mseRanges(levels = 256): Map<string, TensorRange> {
    return this.each((h) => mseSearch(h.counts, levels));
  }

  /** A range per tensor from the first and last bin `pick` keeps; NaN for a tensor that took NaN. */
  private each(pick: (h: Histogram, total: number) => [number, number]): Map<string, TensorRange> {
    const out = new Map<string, TensorRange>();
    for (const [name, h] of this.histograms) {
      if (Number.isNaN(h.lo)) {
        out.set(name, { min: NaN, max: NaN });
        continue;
      }
      const [first, last] = pick(h, h.counts.reduce((a, c) => a + c, 0));
      const width = (h.hi - h.lo) / this.bins;
      out.set(name, { min: h.lo + first * width, max: h.lo + (last + 1) * width });
    }
    return out;
  }
}

/**
 * The first and last bin of a histogram whose span, cut into `levels` equal steps, rounds its values with the
 * least squared error — clipped values counting as rounded to the nearest end — among the spans of one path:
 * PyTorch's HistogramObserver search (`_non_linear_param_search`, after caffe2's NormMinimization), in which the
 * ends move in turn toward the middle by quantiles of 1e-5, the side with more bins to give up first. PyTorch
 * stops at the first span whose error is larger than the last one's (`firstMinimum`, for its ranges); that
 * keeps far outliers whenever dropping the first of them costs more than the finer steps gain, so by default
 * the whole path is searched, the full span included, and its least error wins. Each bin's values count as
 * spread evenly over it. Where PyTorch rescans the cumulative counts bin by bin at every step, this finds the
 * same bins by bisection.
 */
export function mseSearch(counts: ArrayLike<number>, levels: number, o: { firstMinimum?: boolean } = {}): [number, number] {
  const bins = counts.length;
  const cum = new Float64Array(bins);
  for (let i = 0, a = 0; i < bins; i++) cum[i] = a += counts[i];
  const total = cum[bins - 1];
  // The first index in [from, to) where \`before\` stops holding (it holds on a prefix: cum only grows), else \`to\`.
  const bisect = (from: number, to: number, before: (c: number) => boolean) => {
    while (from < to) {
      const mid = (from + to) >> 1;
      if (before(cum[mid])) from = mid + 1;
      else to = mid;
    }
    return from;
  };
  const stepsize = 1e-5;
  let [alpha, beta, start, end] = [0, 1, 0, bins - 1];
  let [bestStart, bestEnd] = [start, end];
  let [best, last] = [o.firstMinimum ? Infinity : roundingError(counts, start, end, levels), Infinity];
  while (alpha < beta) {
    const [nextAlpha, nextBeta] = [alpha + stepsize, beta - stepsize];
    // PyTorch's scans: l from start while cum[l] < nextAlpha·total (stopping at end); r from end while
    // cum[r] > nextBeta·total (stopping at start).
    const l = bisect(start, end, (c) => c < nextAlpha * total);
    const r = bisect(start + 1, end + 1, (c) => c <= nextBeta * total) - 1;
    let [nextStart, nextEnd] = [start, end];
    if (l - start > end - r) [nextStart, alpha] = [l, nextAlpha];
    else [nextEnd, beta] = [r, nextBeta];
    if (nextStart === start && nextEnd === end) continue;
    const err = roundingError(counts, nextStart, nextEnd, levels);
    if (o.firstMinimum && err > last) break;
    [last, start, end] = [err, nextStart, nextEnd];
    if (o.firstMinimum || err < best) [best, bestStart, bestEnd] = [err, start, end];
  }
  return [bestStart, bestEnd];
}

/**
 * Σ over bins of ∫ (x − q(x))² for values spread evenly over each bin (bin width 1 here: the search only
 * compares errors, and PyTorch's bin width scales them all alike), with bins start…end cut into `levels`
 * steps and q rounding to a step's centre, values outside falling in the first or last step. Term by term
 * PyTorch's `_compute_quantization_error`.
 */
export function roundingError(counts: ArrayLike<number>, start: number, end: number, levels: number): number {
  const step = (end - start + 1) / levels;
  if (step === 0) return 0;
  const cube = (v: number) => v * v * v;
  const half = step / 2;
  let err = 0;
  for (let i = 0; i < counts.length; i++) {
    const density = counts[i];
    if (density === 0) continue;
    const begin = i - start;
    const stepOfBegin = Math.min(levels - 1, Math.max(0, Math.floor(begin / step)));
    const stepOfEnd = Math.min(levels - 1, Math.max(0, Math.floor((begin + 1) / step)));
    // From the bin's start to the end of its step, whole steps between, then from the last step's start.
    const first = cube(half) - cube(begin - (stepOfBegin + 0.5) * step);
    const middle = (stepOfEnd - stepOfBegin - 1) * 2 * cube(half);
    const last = cube(begin + 1 - (stepOfEnd + 0.5) * step) + cube(half);
    err += (density * (first + middle + last)) / 3;
  }
  return err;
}

const f32 = (t: TensorProto): Float32Array => {
  if (t.dataType !== 'float') throw new Error(`int8 quantization: weight ${t.name} is ${t.dataType}, not float`);
  const b = t.raw;
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const tensor = (name: string, dims: readonly number[], data: Float32Array | Int8Array | Uint8Array | Int32Array): TensorProto => ({
  name,
  dims,
  dataType: data instanceof Float32Array ? 'float' : data instanceof Int8Array ? 'int8' : data instanceof Uint8Array ? 'uint8' : 'int32',
  raw: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
});

/**
 * The model in QDQ form, given each tensor of `activationsToQuantize` and its calibration range. With
 * `ranges` null, weights only: int8 weights behind a DequantizeLinear, everything else float32 — a 4×
 * smaller file that computes in float (no calibration; for networks whose float operators between layers
 * would cost more in requantization than integer kernels save). `reduceRange`: 7-bit weights (see the top).
 * The input model is not changed.
 */
export function quantizeModel(model: ModelProto, ranges: ReadonlyMap<string, TensorRange> | null, o: { reduceRange?: boolean } = {}): { model: ModelProto; report: QuantizeReport } {
  const g = model.graph;
  const initializers = new Map(g.initializers.map((t) => [t.name, t]));
  const constants = new Set(initializers.keys());
  const activations = ranges ? activationsToQuantize(g) : [];
  const params = new Map<string, { scale: number; zeroPoint: number }>();
  for (const name of activations) {
    const r = ranges?.get(name);
    if (!r) throw new Error(`int8 quantization: no calibration range for tensor '${name}'`);
    params.set(name, activationParams(r));
  }
  const replaced = new Set<string>(); // float initializers now stored as integers
  const added: TensorProto[] = [];
  const front: NodeProto[] = []; // weight DequantizeLinear nodes: their inputs are constants
  const after = new Map<string, NodeProto[]>(); // activation QuantizeLinear → DequantizeLinear, by tensor
  const rename = new Map<string, string>(); // tensor → its dequantized copy, for the readers
  const report: QuantizeReport = { layers: 0, activations: activations.length, weightBytes: { before: 0, after: 0 } };

  for (const name of activations) {
    const { scale, zeroPoint } = params.get(name)!;
    const [s, z, q, dq] = [`${name}_scale`, `${name}_zero_point`, `${name}_quantized`, `${name}_dequantized`];
    added.push(tensor(s, [], Float32Array.of(scale)), tensor(z, [], Uint8Array.of(zeroPoint)));
    after.set(name, [
      { opType: 'QuantizeLinear', inputs: [name, s, z], outputs: [q], name: `${name}_QuantizeLinear` },
      { opType: 'DequantizeLinear', inputs: [q, s, z], outputs: [dq], name: `${name}_DequantizeLinear` },
    ]);
    rename.set(name, dq);
  }

  // Weights (and biases) of each quantized layer, dequantized once at the front of the graph per layer.
  const layerInputs = new Map<NodeProto, string[]>();
  for (const n of g.nodes) {
    const layers = ranges ? WEIGHTED : WEIGHTED_WEIGHTS_ONLY;
    if (!(n.opType in layers) || !isQuantizableLayer(n, constants)) continue;
    const x = params.get(n.inputs[0]);
    if (ranges && !x) continue; // its input is not quantized (the graph's tail): leave the layer in float
    const w = initializers.get(n.inputs[1])!;
    const axis = layers[n.opType];
    const id = n.name || n.outputs[0];
    const { q, scales } = quantizeWeights(f32(w), w.dims, axis, o.reduceRange ? QMAX_WEIGHT_REDUCED : QMAX_WEIGHT);
    const perChannel = axis !== null;
    const [wq, ws, wz, wdq] = [`${id}_weight_quantized`, `${id}_weight_scale`, `${id}_weight_zero_point`, `${id}_weight_dequantized`];
    added.push(tensor(wq, w.dims, q), tensor(ws, perChannel ? [scales.length] : [], scales), tensor(wz, perChannel ? [scales.length] : [], new Int8Array(scales.length)));
    front.push({ opType: 'DequantizeLinear', inputs: [wq, ws, wz], outputs: [wdq], name: `${id}_weight_DequantizeLinear`, attributes: perChannel ? { axis } : undefined });
    report.weightBytes.before += w.raw.byteLength;
    report.weightBytes.after += q.byteLength + 5 * scales.length;
    const inputs = [...n.inputs];
    inputs[1] = wdq;
    const biasName = n.opType === 'MatMul' ? undefined : n.inputs[2];
    const b = biasName ? initializers.get(biasName) : undefined;
    if (x && b && b.dims.length === 1) {
      // int32 at scale s_x · s_w[c]: the integer kernel adds it to the int32 sum directly.
      const bias = f32(b);
      const bs = Float32Array.from(bias, (_, c) => x.scale * scales[perChannel ? c : 0]);
      const bq = Int32Array.from(bias, (v, c) => Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, roundHalfEven(v / bs[c]))));
      const [bqn, bsn, bzn, bdq] = [`${id}_bias_quantized`, `${id}_bias_scale`, `${id}_bias_zero_point`, `${id}_bias_dequantized`];
      added.push(tensor(bqn, b.dims, bq), tensor(bsn, b.dims, bs), tensor(bzn, b.dims, new Int32Array(bias.length)));
      front.push({ opType: 'DequantizeLinear', inputs: [bqn, bsn, bzn], outputs: [bdq], name: `${id}_bias_DequantizeLinear`, attributes: { axis: 0 } });
      report.weightBytes.before += b.raw.byteLength;
      report.weightBytes.after += 12 * bias.length;
      inputs[2] = bdq;
      replaced.add(biasName!);
    }
    replaced.add(n.inputs[1]);
    layerInputs.set(n, inputs);
    report.layers++;
  }

  // Rebuild the node list: readers see dequantized tensors; each pair follows its tensor's producer.
  const nodes: NodeProto[] = [...front];
  for (const v of g.inputs) nodes.push(...(after.get(v.name) ?? []));
  for (const n of g.nodes) {
    const inputs = (layerInputs.get(n) ?? n.inputs).map((i) => rename.get(i) ?? i);
    nodes.push({ ...n, inputs });
    for (const o of n.outputs) nodes.push(...(after.get(o) ?? []));
  }
  // A replaced initializer may still be read by a layer left in float (a weight shared with one): keep it then.
  const stillRead = new Set(nodes.flatMap((n) => n.inputs));
  const kept = g.initializers.filter((t) => !replaced.has(t.name) || stillRead.has(t.name));
  const graph: GraphProto = { ...g, nodes, initializers: [...kept, ...added] };
  return { model: { ...model, graph }, report };
}
