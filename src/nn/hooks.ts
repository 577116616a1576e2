// Forward hooks, as PyTorch's register_forward_hook, for the length of one call: each watched module's
// forward is shadowed by an own property that calls the prototype's and shows `hook` its arguments and
// output; deleting the property afterwards restores the module exactly.
import { Module } from './module';

type Forward = (...args: unknown[]) => unknown;

/**
 * Runs fn with every forward of the given modules going through `around(name, module, args, call)`, which
 * must call `call()` once and return its result: the general form, for work on both sides of a call (a
 * profiler's clock). The modules are restored exactly afterwards, also when fn throws.
 */
export function withForwardWrappers<T>(modules: readonly (readonly [string, Module])[], around: (name: string, module: Module, args: unknown[], call: () => unknown) => unknown, fn: () => T): T {
  const patched: Module[] = [];
  try {
    for (const [name, m] of modules) {
      const target = m as unknown as { forward: Forward };
      const original = target.forward;
      target.forward = function (this: Module, ...args: unknown[]): unknown {
        return around(name, m, args, () => original.apply(this, args));
      };
      patched.push(m);
    }
    return fn();
  } finally {
    for (const m of patched) delete (m as unknown as { forward?: Forward }).forward;
  }
}

/** Runs fn with `hook(name, module, args, output)` called after every forward of the given modules. */
export function withForwardHooks<T>(modules: readonly (readonly [string, Module])[], hook: (name: string, module: Module, args: unknown[], output: unknown) => void, fn: () => T): T {
  return withForwardWrappers(
    modules,
    (name, m, args, call) => {
      const out = call();
      hook(name, m, args, out);
      return out;
    },
    fn,
  );
}
