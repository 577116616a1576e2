// Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019): torch.optim's single-tensor updates.
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
type AdamHyper = { beta1: number; beta2: number; eps: number; weightDecay: number; amsgrad: boolean };

export class Adam extends Optimizer<AdamHyper> {
  /** AdamW decays weights directly (decoupled) instead of adding the decay to the gradient. */
  protected readonly decoupled: boolean = false;

  constructor(params: Parameter[] | { params: Parameter[]; lr?: number }[], o: AdamOptions = {}, defaultDecay = 0) {
    const [beta1, beta2] = o.betas ?? [0.9, 0.999];
    super(params, { lr: o.lr ?? 1e-3, beta1, beta2, eps: o.eps ?? 1e-8, weightDecay: o.weightDecay ?? defaultDecay, amsgrad: o.amsgrad ?? false });
    if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)) throw new RangeError(`${this.constructor.name}: betas must be in [0, 1), got [${beta1}, ${beta2}]`);
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
      const denom = second.sqrt().div(bc2Sqrt).add_(g.eps);
      p.addcdiv_(expAvg, denom, -g.lr / bc1);
    }
  }
}

export class AdamW extends Adam {
  protected override readonly decoupled: boolean = true;
  constructor(params: Parameter[] | { params: Parameter[]; lr?: number }[], o: AdamOptions = {}) {
    super(params, o, 1e-2);
  }
}
