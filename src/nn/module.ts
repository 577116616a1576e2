// Module: the base of every layer and network. Parameters, buffers and child modules are discovered from
// the object's own fields (nested modules, arrays of modules included), in declaration order, so state-dict
// keys come out as PyTorch's: `layer1.0.conv1.weight`, `bn.running_mean`. Field names are the state-dict
// names, which is why buffers keep PyTorch's snake_case (`running_mean`).
import { DType, Device, Tensor, isFloating, keep, noGrad, op } from '../torch';

/** A trainable tensor: requires grad, survives every scope. */
export class Parameter extends Tensor {
  /** Wraps the same storage as t (t itself may then be disposed). */
  static from(t: Tensor, requiresGrad = true): Parameter {
    const p = new Parameter(op('aten::detach').handle(t.h));
    p.requiresGrad_(requiresGrad);
    return keep(p);
  }
}

/** Non-trainable state saved with the model (BatchNorm running statistics, ...). */
export class Buffer extends Tensor {
  static from(t: Tensor): Buffer {
    return keep(new Buffer(op('aten::detach').handle(t.h)));
  }
}

type Slot = { owner: Record<string, unknown> | unknown[]; key: string | number };

export abstract class Module {
  training = true;

  /** Subclasses define forward with their own signature; this declaration only names it. */
  abstract forward(...args: never[]): unknown;

  /** Child modules by name: fields holding a Module, or arrays of Modules (`blocks.0`, `blocks.1`). */
  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [k, v] of Object.entries(this)) {
      if (v instanceof Module) out.push([k, v]);
      else if (Array.isArray(v)) v.forEach((m, i) => m instanceof Module && out.push([`${k}.${i}`, m]));
    }
    return out;
  }

  /** Own tensor slots (parameters and buffers held directly by this module). */
  protected ownSlots(): [string, Slot, Tensor][] {
    const out: [string, Slot, Tensor][] = [];
    const self = this as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(this)) {
      if (v instanceof Parameter || v instanceof Buffer) out.push([k, { owner: self, key: k }, v]);
    }
    return out;
  }

  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, m] of this.namedChildren()) out.push(...m.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  private namedSlots(): [string, Slot, Tensor][] {
    const out: [string, Slot, Tensor][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [n, slot, t] of m.ownSlots()) out.push([prefix ? `${prefix}.${n}` : n, slot, t]);
    }
    return out;
  }

  namedParameters(): [string, Parameter][] {
    return this.namedSlots().filter((e): e is [string, Slot, Parameter] => e[2] instanceof Parameter).map(([n, , t]) => [n, t]);
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(): [string, Buffer][] {
    return this.namedSlots().filter((e): e is [string, Slot, Buffer] => e[2] instanceof Buffer).map(([n, , t]) => [n, t]);
  }

  /** Parameters and buffers by key. The tensors are the live ones: read them, do not dispose them. */
  stateDict(): Record<string, Tensor> {
    return Object.fromEntries(this.namedSlots().map(([n, , t]) => [n, t]));
  }

  /**
   * Copies tensors into this module's parameters and buffers in place (optimizers keep their references).
   * Checks every name, shape and dtype first and reports all mismatches at once; nothing is copied if any.
   */
  loadStateDict(sd: Record<string, Tensor>, opts: { strict?: boolean } = {}): { missing: string[]; unexpected: string[] } {
    const strict = opts.strict ?? true;
    const own = this.stateDict();
    const missing = Object.keys(own).filter((k) => !(k in sd));
    const unexpected = Object.keys(sd).filter((k) => !(k in own));
    const problems: string[] = [];
    for (const [k, t] of Object.entries(own)) {
      const s = sd[k];
      if (!s) continue;
      if (s.shape.join(',') !== t.shape.join(',')) problems.push(`${k}: shape [${s.shape}] in the file, [${t.shape}] in the model`);
      else if (s.dtype !== t.dtype && !(isFloating(s.dtype) && isFloating(t.dtype))) problems.push(`${k}: dtype ${s.dtype} in the file, ${t.dtype} in the model`);
    }
    if (strict) {
      for (const k of missing) problems.push(`${k}: missing from the file`);
      for (const k of unexpected) problems.push(`${k}: not in the model`);
    }
    if (problems.length) throw new Error(`loadStateDict: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
    noGrad(() => {
      for (const [k, t] of Object.entries(own)) if (sd[k]) t.copy_(sd[k]);
    });
    return { missing, unexpected };
  }

  train(on = true): this {
    for (const m of this.modules()) m.training = on;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Calls fn on every module (children first is not guaranteed; PyTorch's order: self last). */
  apply(fn: (m: Module) => void): this {
    const all = this.modules();
    for (let i = all.length - 1; i >= 0; i--) fn(all[i]);
    return this;
  }

  /** Moves parameters and buffers to a device and/or floating dtype (integer buffers keep their dtype). */
  to(target: Device | DType | { device?: Device; dtype?: DType }): this {
    const spec = typeof target === 'string' ? (isDType(target) ? { dtype: target } : { device: target }) : target;
    noGrad(() => {
      for (const [, slot, t] of this.namedSlots()) {
        const dtype = spec.dtype && isFloating(t.dtype) ? spec.dtype : undefined;
        if (!dtype && (!spec.device || t.device === spec.device)) continue;
        const moved = t.to({ dtype, device: spec.device });
        const repl = t instanceof Parameter ? Parameter.from(moved, t.requiresGrad) : Buffer.from(moved);
        moved.dispose();
        (slot.owner as Record<string | number, unknown>)[slot.key] = repl;
        t.dispose();
      }
    });
    return this;
  }

  /** Stops (or restarts) gradient flow into this module's parameters: transfer learning, teachers. */
  freeze(on = true): this {
    for (const p of this.parameters()) p.requiresGrad_(!on);
    return this;
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  numParameters(trainableOnly = false): number {
    return this.parameters()
      .filter((p) => !trainableOnly || p.requiresGrad)
      .reduce((a, p) => a + p.numel(), 0);
  }
}

function isDType(s: string): s is DType {
  return ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'].includes(s);
}

/** Runs modules in order; children are keyed 0, 1, 2 ... as in torch.nn.Sequential. */
export class Sequential extends Module {
  readonly layers: Module[];
  constructor(...layers: Module[]) {
    super();
    this.layers = layers;
  }
  override namedChildren(): [string, Module][] {
    return this.layers.map((m, i) => [String(i), m]);
  }
  forward(x: Tensor): Tensor {
    for (const m of this.layers) x = (m as unknown as { forward(x: Tensor): Tensor }).forward(x);
    return x;
  }
  get length(): number {
    return this.layers.length;
  }
  at(i: number): Module {
    return this.layers[i < 0 ? this.layers.length + i : i];
  }
}

/** Holds modules keyed 0, 1, 2 ... without a forward of its own (torch.nn.ModuleList). */
export class ModuleList extends Module {
  readonly items: Module[];
  constructor(items: Module[] = []) {
    super();
    this.items = items;
  }
  override namedChildren(): [string, Module][] {
    return this.items.map((m, i) => [String(i), m]);
  }
  forward(): never {
    throw new Error('ModuleList has no forward; iterate over .items');
  }
}
