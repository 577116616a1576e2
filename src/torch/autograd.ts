// Autograd switches and torch.autograd.grad.
import { native } from './native';
import { Tensor, handles } from './tensor';

/** Runs fn with gradient recording off (inference, optimizer updates); restores the previous mode. */
export function noGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(false);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

export function enableGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(true);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

/** torch.autograd.grad: gradients of outputs with respect to inputs (null where an input is unused). */
export function grad(
  outputs: Tensor | Tensor[],
  inputs: Tensor | Tensor[],
  o: { gradOutputs?: Tensor[]; retainGraph?: boolean; createGraph?: boolean } = {},
): (Tensor | null)[] {
  const outs = Array.isArray(outputs) ? outputs : [outputs];
  const ins = Array.isArray(inputs) ? inputs : [inputs];
  const r = native.autogradGrad(
    handles(outs),
    handles(ins),
    o.gradOutputs ? handles(o.gradOutputs) : null,
    o.retainGraph,
    o.createGraph,
  );
  return r.map((h) => (h === null ? null : new Tensor(h)));
}

export interface AutocastOptions {
  /** Device type whose ops autocast: 'cpu' (default) or 'cuda'. */
  device?: 'cpu' | 'cuda';
  /** The lower precision: 'bfloat16' (default; the CPU's) or 'float16' (CUDA's usual). */
  dtype?: 'bfloat16' | 'float16';
  /** false runs fn with autocast off (inside an autocast region: a part that needs float32). */
  enabled?: boolean;
}

/**
 * Mixed precision, as PyTorch's `torch.autocast`: inside fn, the ops on libtorch's autocast lists run in
 * `dtype` (convolutions, linear layers, matmuls) or in float32 (losses, softmax, norms), with the inputs cast
 * on the way in; autograd records the casts, so call backward() on the loss after fn returns. Weights stay
 * float32 (their bfloat16 copies are cached until the outermost autocast ends). fn must be synchronous.
 */
export function autocast<T>(fn: () => T, o: AutocastOptions = {}): T {
  const device = o.device ?? 'cpu';
  const dtype = o.dtype ?? 'bfloat16';
  if (device !== 'cpu' && device !== 'cuda') throw new Error(`autocast: device must be 'cpu' or 'cuda', got '${String(device)}'`);
  if (dtype !== 'bfloat16' && dtype !== 'float16') throw new Error(`autocast: dtype must be 'bfloat16' or 'float16', got '${String(dtype)}'`);
  const [prev, prevDtype] = native.enterAutocast(device, o.enabled ?? true, dtype);
  let r: T;
  try {
    r = fn();
  } finally {
    native.exitAutocast(device, prev, prevDtype);
  }
  if (r !== null && typeof r === 'object' && typeof (r as { then?: unknown }).then === 'function') {
    throw new Error('autocast: fn must be synchronous (autocast ends when it returns, before a promise settles)');
  }
  return r;
}

/** Whether autocast is on for the device type (inside torch.autocast). */
export function isAutocastEnabled(device: 'cpu' | 'cuda' = 'cpu'): boolean {
  return native.isAutocastEnabled(device);
}
