// Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019): torch.optim's single-tensor updates (1.13):
//   g += wd·p (Adam) or p *= 1 − lr·wd (AdamW); m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
//   v̂ = amsgrad ? max(v̂, v) : v; p −= lr/(1−β1^t) · m / (√v̂/√(1−β2^t) + eps).
import { Tensor, zerosLike } from '../torch';
import { Parameter } from '../nn/module';
import { Optimizer, ParamGroup } from './optimizer';

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  amsgrad?: boolean;
}
/** A parameter group: its own entries override the optimizer's options. */
export type AdamParamGroup = { params: Parameter[] } & AdamOptions;
type AdamHyper = { beta1: number; beta2: number; eps: number; weightDecay: number; amsgrad: boolean };

/** Groups carry betas as a pair (PyTorch's spelling); the hyperparameters store them as two numbers. */
function flattenBetas(params: Parameter[] | AdamParamGroup[]): Parameter[] | ({ params: Parameter[] } & Partial<AdamHyper> & { lr?: number })[] {
  if (!params.length || params[0] instanceof Tensor) return params as Parameter[];
  return (params as AdamParamGroup[]).map(({ betas, ...g }) => (betas ? { ...g, beta1: betas[0], beta2: betas[1] } : g));
}

export class Adam extends Optimizer<AdamHyper> {
  /** AdamW decays weights directly (decoupled) instead of adding the decay to the gradient. */
  protected readonly decoupled: boolean = false;

  constructor(params: Parameter[] | AdamParamGroup[], o: AdamOptions = {}, defaultDecay = 0) {
    const [beta1, beta2] = o.betas ?? [0.9, 0.999];
    super(flattenBetas(params), { lr: o.lr ?? 1e-3, beta1, beta2, eps: o.eps ?? 1e-8, weightDecay: o.weightDecay ?? defaultDecay, amsgrad: o.amsgrad ?? false });
    for (const g of this.paramGroups) {
      if (!(g.beta1 >= 0 && g.beta1 < 1 && g.beta2 >= 0 && g.beta2 < 1)) throw new RangeError(`${this.constructor.name}: betas must be in [0, 1), got [${g.beta1}, ${g.beta2}]`);
      if (!(g.eps >= 0)) throw new RangeError(`${this.constructor.name}: eps must be >= 0, got ${g.eps}`);
      if (!(g.weightDecay >= 0)) throw new RangeError(`${this.constructor.name}: weightDecay must be >= 0, got ${g.weightDecay}`);
    }
  }

  protected updateGroup(g: ParamGroup<AdamHyper>): void {
    for (const p of g.params) {
      let grad: Tensor | null = p.grad;
      if (!grad) continue;
      const s = this.stateOf(p);
      const expAvg = s.exp_avg ?? this.setState(p, 'exp_avg', zerosLike(p));
      const expAvgSq = s.exp_avg_sq ?? this.setState(p, 'exp_avg_sq', zerosLike(p));
      const step = (this.steps.get(p) ?? 0) + 1;
      this.steps.set(p, step);
      if (g.weightDecay) {
        if (this.decoupled) p.mul_(1 - g.lr * g.weightDecay);
        else grad = grad.add(p, g.weightDecay);
      }
      expAvg.mul_(g.beta1).add_(grad, 1 - g.beta1);
      expAvgSq.mul_(g.beta2).addcmul_(grad, grad, 1 - g.beta2);
      const bc1 = 1 - g.beta1 ** step;
      const bc2Sqrt = Math.sqrt(1 - g.beta2 ** step);
      let second = expAvgSq;
      if (g.amsgrad) {
        const max = s.max_exp_avg_sq ?? this.setState(p, 'max_exp_avg_sq', zerosLike(p));
        max.maximum_(expAvgSq);
        second = max;
      }
      const denom = second.sqrt().div_(bc2Sqrt).add_(g.eps);
      p.addcdiv_(expAvg, denom, -g.lr / bc1);
    }
  }
}

/** Adam with decoupled weight decay; PyTorch's default decay 1e-2. */
export class AdamW extends Adam {
  protected override readonly decoupled: boolean = true;
  constructor(params: Parameter[] | AdamParamGroup[], o: AdamOptions = {}) {
    super(params, o, 1e-2);
  }
}
