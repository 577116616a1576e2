// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_.
import { Tensor, noGrad, stack, tidy } from '../torch';

/** Scales all gradients so their joint p-norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm_(params: Tensor[], maxNorm: number, normType = 2): number {
  return tidy(() =>
    noGrad(() => {
      const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null);
      if (!grads.length) return 0;
      const total = normType === Infinity ? stack(grads.map((g) => g.abs().max())).max() : stack(grads.map((g) => g.norm(normType))).norm(normType);
      // As PyTorch: multiply by min(1, maxNorm / (norm + 1e-6)) always, so no host round-trip decides.
      const coef = total.add(1e-6).reciprocal().mul(maxNorm).clamp(null, 1);
      for (const g of grads) g.mul_(coef);
      return total.item();
    }),
  );
}

export function clipGradValue_(params: Tensor[], clip: number): void {
  tidy(() => noGrad(() => params.forEach((p) => p.grad?.clamp_(-clip, clip))));
}
