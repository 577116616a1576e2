// Operators by schema name. Each is looked up in the c10 dispatcher on first use (so one missing in an
// older libtorch fails only where it is used) and then called by integer id.
import { Handle, NativeArg, NativeResult, native } from './native';

/**
 * Sees every operator call while an ONNX export traces a forward pass (src/export/onnx.ts). A single
 * module-level slot checked for null costs the untraced hot path one comparison.
 */
export interface OpTracer {
  /** After the op ran: its arguments as passed, and its result (undefined for in-place and out= calls). */
  record(op: Op, args: NativeArg[], result: NativeResult | undefined): void;
}
let tracer: OpTracer | null = null;

/** Installs (or, with null, removes) the tracer; returns the previous one so that callers can restore it. */
export function setOpTracer(t: OpTracer | null): OpTracer | null {
  const previous = tracer;
  tracer = t;
  return previous;
}

/** Whether an ONNX export is tracing: ops with faster compositions keep their one ATen call then. */
export function isTracing(): boolean {
  return tracer !== null;
}

/**
 * Runs instead of the plain call while oneDNN-layout inference is on (onednn.ts), to convert arguments
 * between layouts where an op lacks a oneDNN kernel. Null otherwise: one more null check on the hot path.
 */
export type OpInterceptor = (op: Op, args: NativeArg[], inPlace: boolean) => NativeResult | undefined;
let interceptor: OpInterceptor | null = null;

/** Installs (or, with null, removes) the interceptor; returns the previous one. */
export function setOpInterceptor(i: OpInterceptor | null): OpInterceptor | null {
  const previous = interceptor;
  interceptor = i;
  return previous;
}

export class Op {
  private id = -1;
  private schemaText = '';
  constructor(readonly spec: string) {}

  private resolve(): number {
    const dot = this.spec.indexOf('.');
    const name = dot < 0 ? this.spec : this.spec.slice(0, dot);
    const overload = dot < 0 ? '' : this.spec.slice(dot + 1);
    const r = native.lookup(name, overload);
    this.schemaText = r.schema;
    return (this.id = r.id);
  }

  get schema(): string {
    if (this.id < 0) this.resolve();
    return this.schemaText;
  }

  call(...args: NativeArg[]): NativeResult {
    if (interceptor !== null) return interceptor(this, args, false) as NativeResult;
    const r = native.call(this.id >= 0 ? this.id : this.resolve(), ...args);
    if (tracer !== null) tracer.record(this, args, r);
    return r;
  }

  /** For in-place and out= forms, whose result is an argument the caller already holds. */
  run(...args: NativeArg[]): void {
    if (interceptor !== null) {
      interceptor(this, args, true);
      return;
    }
    native.callVoid(this.id >= 0 ? this.id : this.resolve(), ...args);
    if (tracer !== null) tracer.record(this, args, undefined);
  }

  /** The common case: one tensor comes back. */
  handle(...args: NativeArg[]): Handle {
    if (interceptor !== null) return interceptor(this, args, false) as Handle;
    const r = native.call(this.id >= 0 ? this.id : this.resolve(), ...args) as Handle;
    if (tracer !== null) tracer.record(this, args, r);
    return r;
  }

  /** The call itself, past any interceptor (for the interceptor's own use). */
  direct(args: NativeArg[], inPlace: boolean): NativeResult | undefined {
    const id = this.id >= 0 ? this.id : this.resolve();
    if (inPlace) {
      native.callVoid(id, ...args);
      if (tracer !== null) tracer.record(this, args, undefined);
      return undefined;
    }
    const r = native.call(id, ...args);
    if (tracer !== null) tracer.record(this, args, r);
    return r;
  }
}

const table = new Map<string, Op>();

/** The operator for a schema name such as 'aten::conv2d' or 'aten::add.Tensor' (cached). */
export function op(spec: string): Op {
  let o = table.get(spec);
  if (!o) {
    o = new Op(spec);
    table.set(spec, o);
  }
  return o;
}

/** Reduction modes as ATen's loss ops number them. */
export const Reduction = { none: 0, mean: 1, sum: 2 } as const;
export type ReductionName = keyof typeof Reduction;
