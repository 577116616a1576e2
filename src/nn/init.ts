// PyTorch's initializers, in place and without gradient tracking, so that an untrained tsvision layer is
// distributed like an untrained PyTorch layer.
import { Tensor, noGrad } from '../torch';

/** (fan_in, fan_out) of a weight: Linear [out, in], Conv [out, in/groups, kh, kw]. */
export function fans(w: Tensor): { fanIn: number; fanOut: number } {
  const s = w.shape;
  if (s.length < 2) throw new Error(`fans: need a weight with at least 2 dimensions, got [${s}]`);
  const receptive = s.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: s[1] * receptive, fanOut: s[0] * receptive };
}

export type Nonlinearity = 'linear' | 'conv2d' | 'conv_transpose2d' | 'relu' | 'leaky_relu' | 'tanh' | 'sigmoid' | 'selu';

/** torch.nn.init.calculate_gain; for leaky_relu, param is the negative slope (0.01 when omitted, as in torch). */
export function gain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'relu': return Math.SQRT2;
    case 'leaky_relu': {
      const a = param ?? 0.01;
      return Math.sqrt(2 / (1 + a * a));
    }
    case 'tanh': return 5 / 3;
    case 'selu': return 3 / 4;
    default: return 1;
  }
}

export function uniform_(t: Tensor, low: number, high: number): Tensor {
  return noGrad(() => t.uniform_(low, high));
}
export function normal_(t: Tensor, mean = 0, std = 1): Tensor {
  return noGrad(() => t.normal_(mean, std));
}
export function constant_(t: Tensor, v: number): Tensor {
  return noGrad(() => t.fill_(v));
}
export const zeros_ = (t: Tensor): Tensor => constant_(t, 0);
export const ones_ = (t: Tensor): Tensor => constant_(t, 1);

export interface KaimingOptions {
  a?: number;
  mode?: 'fan_in' | 'fan_out';
  nonlinearity?: Nonlinearity;
}

function kaimingStd(t: Tensor, o: KaimingOptions): number {
  const f = fans(t);
  const fan = (o.mode ?? 'fan_in') === 'fan_in' ? f.fanIn : f.fanOut;
  return gain(o.nonlinearity ?? 'leaky_relu', o.a ?? 0) / Math.sqrt(fan);
}

export function kaimingUniform_(t: Tensor, o: KaimingOptions = {}): Tensor {
  const bound = Math.sqrt(3) * kaimingStd(t, o);
  return uniform_(t, -bound, bound);
}
export function kaimingNormal_(t: Tensor, o: KaimingOptions = {}): Tensor {
  return normal_(t, 0, kaimingStd(t, o));
}
export function xavierUniform_(t: Tensor, g = 1): Tensor {
  const { fanIn, fanOut } = fans(t);
  const bound = g * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -bound, bound);
}
export function xavierNormal_(t: Tensor, g = 1): Tensor {
  const { fanIn, fanOut } = fans(t);
  return normal_(t, 0, g * Math.sqrt(2 / (fanIn + fanOut)));
}

/** nn.Conv2d / nn.Linear reset_parameters: kaiming_uniform(a=√5) weights, U(±1/√fan_in) bias. */
export function defaultLayerInit(weight: Tensor, bias: Tensor | null): void {
  kaimingUniform_(weight, { a: Math.sqrt(5) });
  if (bias) {
    const b = 1 / Math.sqrt(fans(weight).fanIn);
    uniform_(bias, -b, b);
  }
}
