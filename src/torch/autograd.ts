// Autograd switches and torch.autograd.grad.
import { native } from './native';
import { Tensor } from './tensor';

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
    outs.map((t) => t.h),
    ins.map((t) => t.h),
    o.gradOutputs ? o.gradOutputs.map((t) => t.h) : null,
    o.retainGraph,
    o.createGraph,
  );
  return r.map((h) => (h === null ? null : new Tensor(h)));
}
