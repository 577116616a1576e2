// The optimizer base: parameter groups with their own hyperparameters, per-parameter state tensors, and a
// state dict that checkpoints split into tensors (safetensors) and JSON (hyperparameters, step counts).
import { Tensor, keep, noGrad, tidy } from '../torch';
import { Parameter } from '../nn/module';

export type Hyper = Record<string, number | boolean>;
export type ParamGroup<H extends Hyper> = H & { lr: number; params: Parameter[] };

export interface OptimizerStateDict {
  tensors: Record<string, Tensor>;
  meta: Record<string, unknown>;
}

/** What schedules and training loops need of any optimizer. */
export interface OptimizerLike {
  readonly paramGroups: { lr: number; params: Parameter[] }[];
  step(): void;
  zeroGrad(): void;
  stateDict(): OptimizerStateDict;
  loadStateDict(s: OptimizerStateDict): void;
}

export abstract class Optimizer<H extends Hyper = Hyper> implements OptimizerLike {
  readonly paramGroups: ParamGroup<H>[];
  /** Per-parameter state, e.g. { momentum_buffer } or { exp_avg, exp_avg_sq }. */
  protected readonly state = new Map<Parameter, Record<string, Tensor>>();
  /** Per-parameter step counts (Adam's bias correction). */
  protected readonly steps = new Map<Parameter, number>();

  /**
   * params: a list of parameters, or groups of them whose entries override the defaults (e.g. no weight
   * decay for BatchNorm parameters, a 10x rate for a segmentation head).
   */
  constructor(params: Parameter[] | ({ params: Parameter[] } & Partial<H> & { lr?: number })[], defaults: H & { lr: number }) {
    const groups = params.length && !(params[0] instanceof Tensor) ? (params as { params: Parameter[] }[]) : [{ params: params as Parameter[] }];
    this.paramGroups = groups.map((g) => ({ ...defaults, ...g, params: [...g.params] }) as ParamGroup<H>);
    const seen = new Set<Parameter>();
    for (const g of this.paramGroups) {
      if (!(g.lr >= 0)) throw new RangeError(`${this.constructor.name}: learning rate must be >= 0, got ${g.lr}`);
      for (const p of g.params) {
        // A parameter listed twice would be updated twice per step: torch.optim refuses it too.
        if (seen.has(p)) throw new Error(`${this.constructor.name}: a parameter appears more than once`);
        seen.add(p);
      }
    }
  }

  /** Updates every parameter that has a gradient, in libtorch, without recording autograd history. */
  step(): void {
    tidy(() => noGrad(() => this.paramGroups.forEach((g) => this.updateGroup(g))));
  }

  protected abstract updateGroup(group: ParamGroup<H>): void;

  /** Sets gradients to null (cheaper than zero-filling; the next backward allocates them fresh). */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) p.grad = null;
  }

  protected stateOf(p: Parameter): Record<string, Tensor> {
    let s = this.state.get(p);
    if (!s) this.state.set(p, (s = {}));
    return s;
  }

  /** Stores a state tensor that must outlive the step's scope. */
  protected setState(p: Parameter, name: string, t: Tensor): Tensor {
    const s = this.stateOf(p);
    s[name]?.dispose();
    s[name] = keep(t);
    return t;
  }

  private flat(): Parameter[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  /**
   * State tensors keyed `state.<index>.<name>` (index over all groups' parameters in order, as torch numbers
   * them) and JSON-able meta: the optimizer type, each group's hyperparameters and size, per-parameter steps.
   * The tensors are the live state: write or copy them before the next step().
   */
  stateDict(): OptimizerStateDict {
    const tensors: Record<string, Tensor> = {};
    const steps: Record<string, number> = {};
    this.flat().forEach((p, i) => {
      for (const [k, t] of Object.entries(this.state.get(p) ?? {})) tensors[`state.${i}.${k}`] = t;
      const n = this.steps.get(p);
      if (n !== undefined) steps[i] = n;
    });
    const groups = this.paramGroups.map(({ params, ...h }) => ({ ...h, size: params.length }));
    return { tensors, meta: { type: this.constructor.name, groups, steps } };
  }

  /**
   * Replaces this optimizer's hyperparameters and state with a saved one (tensors are copied onto each
   * parameter's device and dtype). Everything is checked first: on any mismatch nothing changes.
   */
  loadStateDict(s: OptimizerStateDict): void {
    const meta = s.meta as { type?: string; groups?: (Hyper & { size: number })[]; steps?: Record<string, number> };
    if (meta.type !== this.constructor.name) throw new Error(`optimizer state is for ${meta.type}, not ${this.constructor.name}`);
    const groups = meta.groups ?? [];
    if (groups.length !== this.paramGroups.length || groups.some((g, i) => g.size !== this.paramGroups[i].params.length)) {
      throw new Error(`optimizer state has groups of sizes [${groups.map((g) => g.size)}], this optimizer [${this.paramGroups.map((g) => g.params.length)}]`);
    }
    const flat = this.flat();
    const entries: [Parameter, string, Tensor][] = [];
    const problems: string[] = [];
    for (const [k, t] of Object.entries(s.tensors)) {
      const m = /^state\.(\d+)\.(.+)$/.exec(k);
      if (!m || Number(m[1]) >= flat.length) problems.push(`unexpected entry '${k}'`);
      else if (t.shape.join(',') !== flat[Number(m[1])].shape.join(',')) problems.push(`'${k}' has shape [${t.shape}], the parameter [${flat[Number(m[1])].shape}]`);
      else entries.push([flat[Number(m[1])], m[2], t]);
    }
    for (const i of Object.keys(meta.steps ?? {})) if (!(Number(i) < flat.length)) problems.push(`step count for parameter ${i}, which does not exist`);
    if (problems.length) throw new Error(`optimizer state: ${problems.join('; ')}`);

    // Copy before freeing the old state: s may be this optimizer's own stateDict().
    const copies = entries.map(([p, name, t]) => [p, name, keep(noGrad(() => t.to({ device: p.device, dtype: p.dtype, copy: true })))] as const);
    groups.forEach(({ size: _size, ...h }, i) => Object.assign(this.paramGroups[i], h));
    for (const st of this.state.values()) for (const t of Object.values(st)) t.dispose();
    this.state.clear();
    this.steps.clear();
    for (const [p, name, t] of copies) this.stateOf(p)[name] = t;
    for (const [i, n] of Object.entries(meta.steps ?? {})) this.steps.set(flat[Number(i)], n);
  }
}
