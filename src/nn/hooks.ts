// Forward hooks, as PyTorch's register_forward_hook, for the length of one call: each watched module's
// forward is shadowed by an own property that calls the prototype's and shows `hook` its arguments and
// output; deleting the property afterwards restores the module exactly.
import { Module } from './module';

type Forward = (...args: unknown[]) => unknown;

/** Runs fn with `hook(name, module, args, output)` called after every forward of the given modules. */
export function withForwardHooks<T>(modules: readonly (readonly [string, Module])[], hook: (name: string, module: Module, args: unknown[], output: unknown) => void, fn: () => T): T {
  const patched: Module[] = [];
  try {
    for (const [name, m] of modules) {
      const target = m as unknown as { forward: Forward };
      const original = target.forward;
      target.forward = function (this: Module, ...args: unknown[]): unknown {
        const out = original.apply(this, args);
        hook(name, m, args, out);
        return out;
      };
      patched.push(m);
    }
    return fn();
  } finally {
    for (const m of patched) delete (m as unknown as { forward?: Forward }).forward;
  }
}
