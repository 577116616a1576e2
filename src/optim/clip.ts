// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_ (1.13).
import { Tensor, noGrad, stack, tidy } from '../torch';

export interface ClipGradNormOptions {
  /** Throw when the total norm is NaN or infinite (the gradients are then left as they are). */
  errorIfNonfinite?: boolean;
}

/**
 * Scales all gradients in place so their joint normType-norm is at most maxNorm; returns the total norm
 * before clipping. Parameters without a gradient are skipped.
 */
export function clipGradNorm_(params: Tensor[], maxNorm: number, normType = 2, o: ClipGradNormOptions = {}): number {
  return tidy(() =>
    noGrad(() => {
      const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null);
      if (!grads.length) return 0;
      const total = normType === Infinity ? stack(grads.map((g) => g.abs().max())).max() : stack(grads.map((g) => g.norm(normType))).norm(normType);
      if (o.errorIfNonfinite && !Number.isFinite(total.item())) {
        throw new Error(`clipGradNorm_: the total norm of order ${normType} of the gradients is non-finite`);
      }
      // As PyTorch: multiply by min(1, maxNorm / (norm + 1e-6)) always, so no host round-trip decides.
      const coef = total.add(1e-6).reciprocal().mul(maxNorm).clamp(null, 1);
      for (const g of grads) g.mul_(coef);
      return total.item();
    }),
  );
}

/** Clamps every gradient element to [−clip, clip] in place. */
export function clipGradValue_(params: Tensor[], clip: number): void {
  tidy(() => noGrad(() => params.forEach((p) => p.grad?.clamp_(-clip, clip))));
}
