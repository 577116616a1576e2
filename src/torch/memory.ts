// Deterministic memory. V8 runs finalizers late (Node defers them past synchronous loops), so a training
// loop that waits for the GC holds every step's activations far too long and forces fresh allocations.
// Scopes free every tensor created inside them when they end, except what is returned or kept.

/** What a scope can free: the Tensor class implements it (kept out of this file to avoid a cycle). */
export interface Tracked {
  dispose(): void;
  readonly isDisposed: boolean;
  /** Set by keep(): a kept tensor outlives every scope and is freed only by dispose() or the GC. */
  kept: boolean;
  /** Hands the tensor to the garbage collector's safety net (it is no longer owned by a scope). */
  unscoped(): void;
}

const stack: Tracked[][] = [];

/**
 * Called by every new Tensor: it belongs to the innermost open scope, if any. Only tensors that no scope
 * owns are registered with the GC safety net: a weak reference per tensor would cost more than the op.
 */
export function track(t: Tracked): void {
  if (stack.length > 0) stack[stack.length - 1].push(t);
  else t.unscoped();
}

/** Marks tensors (or any structure holding them) to survive the enclosing scopes. */
export function keep<T>(value: T): T {
  visit(value, (t) => {
    if (!t.kept) {
      t.kept = true;
      if (stack.length > 0) t.unscoped();
    }
  });
  return value;
}

function isTracked(v: unknown): v is Tracked {
  return typeof v === 'object' && v !== null && 'kept' in v && typeof (v as Tracked).dispose === 'function';
}

/** Walks arrays, plain objects and Maps, calling fn on each tensor found. */
function visit(value: unknown, fn: (t: Tracked) => void, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (isTracked(value)) {
    fn(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) visit(v, fn, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) visit(v, fn, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) visit(v, fn, seen);
  }
}

function close(scope: Tracked[], result: unknown): void {
  const survivors = new Set<Tracked>();
  visit(result, (t) => survivors.add(t));
  for (const t of scope) {
    if (!t.kept && !survivors.has(t)) t.dispose();
  }
  // What the scope returns now belongs to the enclosing scope (or to nobody, at top level).
  if (stack.length > 0) {
    const outer = stack[stack.length - 1];
    for (const t of survivors) if (!t.isDisposed && !t.kept) outer.push(t);
  } else {
    for (const t of survivors) if (!t.isDisposed && !t.kept) t.unscoped();
  }
}

/**
 * Runs fn and frees every tensor it created, except those in its return value (tensors, arrays and plain
 * objects of tensors) and those passed to keep(). The training-loop idiom:
 *
 *   for (const { x, y } of loader) tidy(() => { const loss = ...; loss.backward(); opt.step(); });
 */
export function tidy<T>(fn: () => T): T {
  const scope: Tracked[] = [];
  stack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    close(scope, undefined);
    throw e;
  }
  if (result instanceof Promise) {
    stack.pop();
    close(scope, undefined);
    throw new Error('tidy(fn): fn must be synchronous; use `using s = scope()` around await points');
  }
  stack.pop();
  close(scope, result);
  return result;
}

/**
 * A scope for `using`: `{ using s = scope(); ... }` frees what was created inside when the block ends.
 * Unlike tidy() it cannot see return values, so pass survivors to s.keep() — they move to the outer scope.
 */
export class Scope {
  private readonly tensors: Tracked[] = [];
  private readonly survivors: unknown[] = [];
  private open = true;
  constructor() {
    stack.push(this.tensors);
  }
  keep<T>(value: T): T {
    this.survivors.push(value);
    return value;
  }
  dispose(): void {
    if (!this.open) return;
    this.open = false;
    const i = stack.lastIndexOf(this.tensors);
    if (i !== stack.length - 1) throw new Error('scopes must be closed in the order they were opened');
    stack.pop();
    close(this.tensors, this.survivors);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

export function scope(): Scope {
  return new Scope();
}

/** Number of open scopes (for tests and leak diagnostics). */
export function scopeDepth(): number {
  return stack.length;
}
