// Magnitude pruning with held masks, the "S" step of DSD (Han et al. 2017, §2): in every pruned layer keep the
// K weights of largest |w| (K = (1 − sparsity)·N, per layer, not one global threshold), zero the rest, and keep
// them zero while training goes on. Only weights of convolutions and fully connected layers are pruned
// (tensors of 2 or more dimensions); biases and BatchNorm parameters stay dense. The first layer is skipped by
// default: it has few weights and every later feature depends on it (the paper's choice too).
import { Tensor, noGrad, ones, tidy, zeros } from '../torch';
import { Module, Parameter } from '../nn';

export interface MagnitudePruneOptions {
  /** Fraction of each pruned layer's weights set to zero; DSD uses 0.25–0.5. */
  sparsity: number;
  /** Leave the first convolution / linear layer dense (default true). */
  skipFirst?: boolean;
}

export interface LayerSparsity {
  name: string;
  numel: number;
  /** Weights that are exactly zero now. */
  zeros: number;
  sparsity: number;
  pruned: boolean;
}

/** The weights pruning applies to, in module order: conv and linear weights (2+ dimensions). */
export function prunableWeights(model: Module): [string, Parameter][] {
  return model.namedParameters().filter(([name, p]) => name.endsWith('weight') && p.ndim >= 2);
}

/** A 0/1 mask of w's shape keeping exactly its k largest-magnitude entries. */
export function topKMask(w: Tensor, k: number): Tensor {
  const n = w.numel();
  if (!Number.isInteger(k) || k < 0 || k > n) throw new RangeError(`topKMask: k must be an integer in [0, ${n}], got ${k}`);
  return noGrad(() => {
    if (k === n) return ones(w.shape, { dtype: w.dtype, device: w.device });
    const flat = zeros([n], { dtype: w.dtype, device: w.device });
    if (k === 0) return flat.view(...w.shape);
    // topk, not a threshold: ties at the K-th magnitude would otherwise keep more than K weights.
    const idx = w.detach().abs().flatten().topk(k).indices;
    return flat.scatter(0, idx, 1).view(...w.shape);
  });
}

/**
 * Masks over a model's prunable weights. `apply()` zeroes the pruned weights, `maskGradients()` zeroes their
 * gradients before the optimizer step, so neither momentum nor weight decay nor Adam's moments move them.
 */
export class MagnitudeMasks {
  private constructor(
    /** Parameter name → [parameter, mask]; only pruned layers appear. */
    readonly masks: Map<string, [Parameter, Tensor]>,
    private readonly model: Module,
  ) {}

  /** Keeps the top-K |w| of each prunable layer (all but the first, by default). */
  static topK(model: Module, o: MagnitudePruneOptions): MagnitudeMasks {
    if (!(o.sparsity >= 0 && o.sparsity < 1)) throw new RangeError(`sparsity must be in [0, 1), got ${o.sparsity}`);
    const layers = prunableWeights(model).slice((o.skipFirst ?? true) ? 1 : 0);
    const masks = new Map<string, [Parameter, Tensor]>();
    for (const [name, p] of layers) {
      const n = p.numel();
      masks.set(name, [p, topKMask(p, n - Math.floor(o.sparsity * n)).keep()]);
    }
    return new MagnitudeMasks(masks, model);
  }

  /** Masks saved by stateDict(), checked against the model's parameters. */
  static fromStateDict(model: Module, saved: Record<string, Tensor>): MagnitudeMasks {
    const params = new Map(model.namedParameters());
    const masks = new Map<string, [Parameter, Tensor]>();
    for (const [name, m] of Object.entries(saved)) {
      const p = params.get(name);
      if (!p) throw new Error(`pruning mask for '${name}', which the model does not have`);
      if (m.shape.join(',') !== p.shape.join(',')) throw new Error(`pruning mask for '${name}' has shape [${m.shape}], the weight [${p.shape}]`);
      masks.set(name, [p, m.to({ device: p.device, dtype: p.dtype }).keep()]);
    }
    return new MagnitudeMasks(masks, model);
  }

  apply(): void {
    noGrad(() => {
      for (const [p, m] of this.masks.values()) p.mul_(m);
    });
  }

  maskGradients(): void {
    for (const [p, m] of this.masks.values()) {
      const g = p.grad;
      if (g) {
        g.mul_(m);
        g.dispose();
      }
    }
  }

  stateDict(): Record<string, Tensor> {
    return Object.fromEntries([...this.masks].map(([name, [, m]]) => [name, m]));
  }

  /** Per prunable layer: how many weights are zero now (pruned or not). */
  report(): LayerSparsity[] {
    return tidy(() =>
      prunableWeights(this.model).map(([name, p]) => {
        const z = p.detach().eq(0).sum().item();
        return { name, numel: p.numel(), zeros: z, sparsity: z / p.numel(), pruned: this.masks.has(name) };
      }),
    );
  }

  dispose(): void {
    for (const [, m] of this.masks.values()) m.dispose();
    this.masks.clear();
  }
}

/** Fraction of zeros over all prunable weights of a model. */
export function overallSparsity(model: Module): number {
  let z = 0;
  let n = 0;
  tidy(() => {
    for (const [, p] of prunableWeights(model)) {
      z += p.detach().eq(0).sum().item();
      n += p.numel();
    }
  });
  return n ? z / n : 0;
}
