// RMSprop (Tieleman & Hinton 2012, lecture 6e) in its two common forms.
//
// torch.optim.RMSprop's single-tensor update (1.13), with α the decay of the mean square:
//   g += wd·p; v = α·v + (1−α)·g² (v starts at 0); centered: m = α·m + (1−α)·g, v' = v − m²;
//   d = √v' + ε; with momentum μ: b = μ·b + g/d, p −= lr·b; without: p −= lr·g/d.
//
// TensorFlow's (tf.compat.v1.train.RMSPropOptimizer), the optimizer Inception v3, MobileNet v1 and Xception's
// JFT runs were trained with, differs in three places that change the trajectory, not only the rounding:
// the mean square starts at 1 (so the first steps are small: a built-in warm-up), ε sits inside the root,
// and the rate multiplies each gradient as it enters the momentum buffer (so a rate change by a schedule
// acts on new gradients only):
//   v = ρ·v + (1−ρ)·g²; b = μ·b + lr·g/√(v' + ε); p −= b.
// Its defaults here are those papers' (TF-slim's train_image_classifier): ρ 0.9, μ 0.9, ε 1.
import { Tensor, onesLike, zerosLike } from '../torch';
import { Parameter } from '../nn/module';
import { Optimizer, ParamGroup } from './optimizer';

export interface RMSpropOptions {
  lr?: number;
  /** Decay of the running mean square (TensorFlow's `decay`, ρ). */
  alpha?: number;
  eps?: number;
  weightDecay?: number;
  momentum?: number;
  /** Divide by the running variance (mean square less the squared running mean) instead of the mean square. */
  centered?: boolean;
}
/** A parameter group: its own entries override the optimizer's options. */
export type RMSpropParamGroup = { params: Parameter[] } & RMSpropOptions;
type RMSpropHyper = { alpha: number; eps: number; weightDecay: number; momentum: number; centered: boolean };

/** torch.optim.RMSprop's defaults. */
const TORCH_DEFAULTS = { lr: 1e-2, alpha: 0.99, eps: 1e-8, momentum: 0 };
/** The defaults of the papers trained with TensorFlow's RMSprop (Inception v3 §8, MobileNet v1 §4). */
export const RMSPROP_TF_DEFAULTS = { lr: 0.045, alpha: 0.9, eps: 1, momentum: 0.9 };

export class RMSprop extends Optimizer<RMSpropHyper> {
  /** TensorFlow's form (see the top of this file). */
  protected readonly tfForm: boolean = false;

  constructor(params: Parameter[] | RMSpropParamGroup[], o: RMSpropOptions = {}, d: typeof TORCH_DEFAULTS = TORCH_DEFAULTS) {
    super(params, { lr: o.lr ?? d.lr, alpha: o.alpha ?? d.alpha, eps: o.eps ?? d.eps, weightDecay: o.weightDecay ?? 0, momentum: o.momentum ?? d.momentum, centered: o.centered ?? false });
    for (const g of this.paramGroups) {
      if (!(g.alpha >= 0 && g.alpha < 1)) throw new RangeError(`${this.constructor.name}: alpha must be in [0, 1), got ${g.alpha}`);
      if (!(g.eps >= 0)) throw new RangeError(`${this.constructor.name}: eps must be >= 0, got ${g.eps}`);
      if (!(g.momentum >= 0)) throw new RangeError(`${this.constructor.name}: momentum must be >= 0, got ${g.momentum}`);
      if (!(g.weightDecay >= 0)) throw new RangeError(`${this.constructor.name}: weightDecay must be >= 0, got ${g.weightDecay}`);
    }
  }

  protected updateGroup(g: ParamGroup<RMSpropHyper>): void {
    for (const p of g.params) {
      let grad: Tensor | null = p.grad;
      if (!grad) continue;
      const s = this.stateOf(p);
      this.steps.set(p, (this.steps.get(p) ?? 0) + 1);
      if (g.weightDecay) grad = grad.add(p, g.weightDecay);
      const square = s.square_avg ?? this.setState(p, 'square_avg', this.tfForm ? onesLike(p) : zerosLike(p));
      square.mul_(g.alpha).addcmul_(grad, grad, 1 - g.alpha);
      let variance: Tensor = square;
      if (g.centered) {
        const mean = s.grad_avg ?? this.setState(p, 'grad_avg', zerosLike(p));
        mean.mul_(g.alpha).add_(grad, 1 - g.alpha);
        variance = square.sub(mean.mul(mean));
      }
      const denom = this.tfForm ? variance.add(g.eps).sqrt_() : variance.sqrt().add_(g.eps);
      if (g.momentum > 0) {
        const buf = s.momentum_buffer ?? this.setState(p, 'momentum_buffer', zerosLike(p));
        if (this.tfForm) {
          buf.mul_(g.momentum).addcdiv_(grad, denom, g.lr);
          p.sub_(buf);
        } else {
          buf.mul_(g.momentum).addcdiv_(grad, denom);
          p.add_(buf, -g.lr);
        }
      } else {
        p.addcdiv_(grad, denom, -g.lr);
      }
    }
  }
}

/** TensorFlow's RMSprop, with the defaults of the papers trained with it (ρ 0.9, μ 0.9, ε 1, lr 0.045). */
export class RMSpropTF extends RMSprop {
  protected override readonly tfForm: boolean = true;
  constructor(params: Parameter[] | RMSpropParamGroup[], o: RMSpropOptions = {}) {
    super(params, o, RMSPROP_TF_DEFAULTS);
  }
}
