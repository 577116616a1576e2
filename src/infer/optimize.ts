// A network made ready for CPU inference, as torch.jit.optimize_for_inference does for PyTorch: BatchNorms
// folded into the convolutions before them (nn/fold.ts), and forward passes run with activations in
// oneDNN's layout between layers (torch/onednn.ts) where that is faster. Predictor does the same for the
// networks it restores.
import { Tensor, isGradEnabled, mapTensors, noGrad, tidy, withOneDnnLayout } from '../torch';
import { FoldReport, Module, foldBatchNorm } from '../nn';

type Network = Module & { forward(x: Tensor): unknown };

/**
 * 'onednn': activations in oneDNN's layout between layers; 'ordinary': every op on ordinary tensors;
 * 'auto': whichever of the two runs this input shape faster, found by timing the first calls.
 */
export type InferenceLayout = 'onednn' | 'ordinary' | 'auto';

/** Timed calls per layout before 'auto' chooses (after one untimed call each: the first builds oneDNN's primitives). */
export const LAYOUT_TRIALS = 5;
/** Shapes 'auto' keeps a choice for; beyond them it stops timing and keeps oneDNN's layout. */
const MAX_SHAPES = 32;

/**
 * Chooses the layout per input shape, like torch.backends.cudnn.benchmark: the oneDNN layout saves the
 * reorders around each convolution, and wins on depthwise-separable and ENet-style networks, but on some
 * (ICNet, measured in bench/infer) the ordinary kernels are faster. Both compute the same function up to float
 * rounding, so 'auto' alternates the two on the first calls of each shape and keeps the faster. It compares
 * their fastest calls: on a shared machine, load only ever adds time, so the minimum is the steadiest.
 */
export class LayoutChooser {
  private readonly trials = new Map<string, { onednn: number[]; ordinary: number[] }>();
  private readonly chosen = new Map<string, 'onednn' | 'ordinary'>();

  constructor(readonly layout: InferenceLayout = 'auto') {}

  /** Runs fn (a forward pass under noGrad) in the layout chosen for `key` (the input's shape, say). */
  run<T>(key: string, fn: () => T): T {
    const fixed = this.layoutFor(key);
    if (fixed) return fixed === 'onednn' ? withOneDnnLayout(fn) : fn();
    const t = this.trials.get(key) ?? { onednn: [], ordinary: [] };
    this.trials.set(key, t);
    const which = t.onednn.length <= t.ordinary.length ? 'onednn' : 'ordinary';
    const t0 = performance.now();
    const r = which === 'onednn' ? withOneDnnLayout(fn) : fn();
    t[which].push(performance.now() - t0);
    if (t.onednn.length === LAYOUT_TRIALS + 1 && t.ordinary.length === LAYOUT_TRIALS + 1) {
      this.chosen.set(key, Math.min(...t.onednn.slice(1)) <= Math.min(...t.ordinary.slice(1)) ? 'onednn' : 'ordinary');
      this.trials.delete(key);
    }
    return r;
  }

  /** The layout `key` runs in from now on, or null while 'auto' is still timing it. */
  layoutFor(key: string): 'onednn' | 'ordinary' | null {
    if (this.layout !== 'auto') return this.layout;
    return this.chosen.get(key) ?? (this.chosen.size >= MAX_SHAPES ? 'onednn' : null);
  }

  /** The layout chosen per key so far ('auto'), or the fixed one. */
  choices(): Record<string, 'onednn' | 'ordinary'> {
    return Object.fromEntries(this.chosen);
  }
}

/**
 * The precision an optimized network computes in. 'bfloat16' keeps float32's range with 8 bits of mantissa:
 * on CPUs with AVX-512 BF16 (or AMX) oneDNN's bfloat16 convolutions are faster, at ~1% relative error.
 */
export type InferencePrecision = 'float32' | 'bfloat16';

/** The optimized network: forward under noGrad in the chosen layout, the plain forward with autograd on. */
export class OptimizedForInference<M extends Network> extends Module {
  readonly chooser: LayoutChooser;

  constructor(
    readonly network: M,
    /** What foldBatchNorm found. */
    readonly folded: FoldReport,
    layout: InferenceLayout = 'auto',
    /** What the network's weights and activations are stored in; inputs and outputs stay float32. */
    readonly precision: InferencePrecision = 'float32',
  ) {
    super();
    this.chooser = new LayoutChooser(layout);
  }

  forward(x: Tensor): ReturnType<M['forward']> {
    return this.training || isGradEnabled() ? this.run(x) : this.chooser.run(x.shape.join('×'), () => this.run(x));
  }

  /**
   * The network's forward pass in its precision, without choosing a layout (for callers that choose it
   * themselves, as Predictor does per call): a float32 input rounded to the precision, the outputs back in
   * float32, as from the plain network — a softmax or an argmax of bfloat16 logits would round again.
   */
  run(x: Tensor): ReturnType<M['forward']> {
    const low = this.precision !== 'float32' && x.dtype === 'float32';
    const out = this.network.forward(low ? x.to(this.precision) : x) as ReturnType<M['forward']>;
    return low ? mapTensors(out, (t) => (t.dtype === this.precision ? t.float() : t)) : out;
  }

  /** Runs forward passes on x until the layout for its shape is chosen, so that timings after it see only that one. */
  settle(x: Tensor): 'onednn' | 'ordinary' {
    const key = x.shape.join('×');
    for (let layout = this.chooser.layoutFor(key); ; layout = this.chooser.layoutFor(key)) {
      if (layout) return layout;
      tidy(() => noGrad(() => void this.forward(x)));
    }
  }
}

/**
 * Folds the network's BatchNorms (in place: the network given is changed, and is for inference from then on)
 * and wraps it so that forward passes under noGrad run in `layout` (default 'auto'). `example` is any input
 * the network accepts. The outputs are the plain network's up to float rounding (test/nn/fold.test.ts).
 */
export function optimizeForInference<M extends Network>(network: M, example: Tensor, o: { layout?: InferenceLayout; precision?: InferencePrecision } = {}): OptimizedForInference<M> {
  const precision = o.precision ?? 'float32';
  if (precision !== 'float32' && precision !== 'bfloat16') throw new Error(`optimizeForInference: precision must be 'float32' or 'bfloat16', got '${String(precision)}'`);
  // Folded in float32, then rounded once: rounding the convolution and the BatchNorm apart would round twice.
  const folded = foldBatchNorm(network, example);
  if (precision !== 'float32') network.to(precision);
  return new OptimizedForInference(network, folded, o.layout, precision).eval();
}
