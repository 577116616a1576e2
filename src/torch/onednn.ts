// oneDNN-layout inference. libtorch's CPU convolutions run in oneDNN, which wants activations in its blocked
// layout (nChw16c on AVX-512): called on ordinary NCHW tensors, every convolution reorders its input into
// that layout and its output back. Inside withOneDnnLayout, a convolution's output stays in oneDNN's layout
// (an 'mkldnn' tensor), so the next BatchNorm, ReLU, pooling, addition or convolution — which all have
// oneDNN kernels — work on it directly, as torch.utils.mkldnn.to_mkldnn and optimize_for_inference do in
// PyTorch. An op without such a kernel (cat, interpolate, max-unpooling, …) gets its arguments back in the
// ordinary layout first, so any network runs unchanged; what leaves the function is ordinary again.
import { Handle, NativeArg, NativeResult, isHandle, native } from './native';
import { Op, op, setOpInterceptor } from './ops';
import { Tensor, mapTensors, wrap } from './tensor';
import { isGradEnabled } from './autograd';

/**
 * The ops allowed to see oneDNN-layout tensors: those whose oneDNN kernels the tests run on oneDNN tensors
 * (test/engine/onednn.test.ts: every architecture, and sigmoid alone). Any other op gets its arguments in the
 * ordinary layout — a kernel may accept an 'mkldnn' tensor and still be wrong (libtorch 1.13's
 * conv_transpose2d on one runs a plain strided convolution) — among them mul (SE's rescale broadcasts, which
 * oneDNN's refuses), linear and reshape, which see pooled vectors whose reorder costs nothing.
 */
const ONEDNN_OPS = new Set([
  'aten::mkldnn_convolution',
  'aten::mkldnn_reorder_conv2d_weight',
  'aten::batch_norm',
  'aten::relu',
  'aten::relu_',
  'aten::add.Tensor',
  'aten::add_.Tensor',
  'aten::max_pool2d',
  'aten::avg_pool2d',
  'aten::adaptive_avg_pool2d',
  'aten::prelu',
  'aten::sigmoid',
  'aten::to_dense',
]);
/**
 * Allowed ops whose oneDNN kernel is right only in float32: libtorch 1.13's batch_norm on a bfloat16 oneDNN
 * tensor returns wrong values (relative error ~1), so with any other dtype they get ordinary tensors.
 */
const FLOAT32_ONLY = new Set(['aten::batch_norm']);
/**
 * How each allowed op, with its arguments' layouts, runs: as given; 'promote' — ordinary tensors shaped like
 * the oneDNN ones are reordered into oneDNN's layout (an addition of a oneDNN activation and an ordinary
 * shortcut then stays in oneDNN's layout for the layers after it); or 'dense'. Learnt on first use.
 */
type Strategy = 'direct' | 'promote' | 'dense';
const strategies = new Map<string, Strategy>();
let depth = 0;


function layouts(args: readonly NativeArg[]): string {
  let s = '';
  for (const a of args) {
    if (isHandle(a)) s += native.layout(a) === 'mkldnn' ? 'm' : 'd';
    else if (Array.isArray(a)) s += `[${layouts(a)}]`;
    else s += '.';
  }
  return s;
}

/** The arguments with every oneDNN-layout tensor reordered to the ordinary layout; `made` collects the copies. */
function toDense(args: readonly NativeArg[], made: Handle[]): NativeArg[] {
  return args.map((a) => {
    if (Array.isArray(a)) return toDense(a, made);
    if (isHandle(a) && native.layout(a) === 'mkldnn') {
      const d = op('aten::to_dense').direct([a, null], false) as Handle;
      made.push(d);
      return d;
    }
    return a;
  });
}

/** The top-level ordinary tensors shaped exactly like the first oneDNN one, reordered into oneDNN's layout. */
function promote(args: readonly NativeArg[], made: Handle[]): NativeArg[] {
  const first = args.find((a) => isHandle(a) && native.layout(a) === 'mkldnn') as Handle;
  const shape = native.shape(first).join(',');
  return args.map((a) => {
    if (isHandle(a) && native.layout(a) !== 'mkldnn' && native.shape(a).join(',') === shape) {
      const m = op('aten::to_mkldnn').direct([a, null], false) as Handle;
      made.push(m);
      return m;
    }
    return a;
  });
}

function runWith(s: Strategy, o: Op, args: NativeArg[], inPlace: boolean): NativeResult | undefined {
  if (s === 'direct') return o.direct(args, inPlace);
  const made: Handle[] = [];
  try {
    return o.direct(s === 'promote' ? promote(args, made) : toDense(args, made), inPlace);
  } finally {
    for (const h of made) native.free(h);
  }
}

function intercept(o: Op, args: NativeArg[], inPlace: boolean): NativeResult | undefined {
  const sig = layouts(args);
  if (!sig.includes('m')) return o.direct(args, inPlace);
  // An in-place op writes into its first argument, which the caller holds: that one keeps its layout, so
  // an ordinary one gets ordinary arguments, and a oneDNN one needs a oneDNN kernel.
  const selfOneDnn = inPlace && sig[0] === 'm';
  if (inPlace && !selfOneDnn) return runWith('dense', o, args, inPlace);
  if (!ONEDNN_OPS.has(o.spec) || (FLOAT32_ONLY.has(o.spec) && native.meta(args[0] as Handle)[1] !== 'float32')) {
    if (selfOneDnn) throw new Error(`${o.spec}: no kernel for a tensor in oneDNN's layout (inside withOneDnnLayout)`);
    return runWith('dense', o, args, inPlace);
  }
  const key = `${o.spec}|${sig}`;
  const tries: Strategy[] = ['direct'];
  if (sig.includes('d')) tries.push('promote');
  if (!selfOneDnn) tries.push('dense');
  // Start from what worked last time; the other arguments may still make it fail (adaptive pooling to a
  // size that does not divide the input has no oneDNN kernel), and then the next strategy runs.
  const known = strategies.get(key);
  for (let i = known ? tries.indexOf(known) : 0; ; i++) {
    try {
      const r = runWith(tries[i], o, args, inPlace);
      if (!known) strategies.set(key, tries[i]);
      return r;
    } catch (e) {
      if (i === tries.length - 1) throw e;
    }
  }
}

/** Whether withOneDnnLayout is running (Conv2d then keeps its output in oneDNN's layout). */
export function oneDnnLayoutActive(): boolean {
  return depth > 0;
}

/** The tensor in oneDNN's layout (a new tensor), or itself when it already is. */
export function toOneDnnLayout(t: Tensor): Tensor {
  return native.layout(t.h) === 'mkldnn' ? t : wrap(op('aten::to_mkldnn').handle(t.h, null));
}

export function isOneDnnLayout(t: Tensor): boolean {
  return native.layout(t.h) === 'mkldnn';
}

/** Tensors found in a forward pass's result (a tensor, an array, or an object of them) back in the ordinary layout. */
const densify = <T>(v: T): T => mapTensors(v, (t) => (isOneDnnLayout(t) ? wrap(op('aten::to_dense').handle(t.h, null)) : t));

/**
 * Runs an inference forward pass with activations in oneDNN's layout between the ops that have oneDNN
 * kernels (CPU, float32 or bfloat16, no autograd: call it inside noGrad with the model in eval mode). The results are
 * numerically those of the ordinary path up to float rounding (the same oneDNN primitives run; only the
 * reorders between them go away). Tensors returned, alone or in arrays or plain objects, are ordinary.
 */
export function withOneDnnLayout<T>(fn: () => T): T {
  if (isGradEnabled()) throw new Error('withOneDnnLayout: for inference only; call it inside noGrad (oneDNN-layout tensors carry no gradients)');
  const previous = depth === 0 ? setOpInterceptor(intercept) : null;
  depth++;
  let r: T;
  try {
    r = fn();
  } finally {
    if (--depth === 0) setOpInterceptor(previous);
  }
  if (r !== null && typeof r === 'object' && typeof (r as { then?: unknown }).then === 'function') {
    throw new Error('withOneDnnLayout: fn must be synchronous (the layout ends when it returns, before a promise settles)');
  }
  return densify(r);
}

/** Allowed ops, with their arguments' layouts (m: oneDNN, d: ordinary), that needed a conversion, and which. */
export function oneDnnFallbacks(): string[] {
  return [...strategies].filter(([, s]) => s !== 'direct').map(([k, s]) => `${k} → ${s}`).sort();
}
