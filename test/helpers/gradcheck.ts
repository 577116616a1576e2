// Finite-difference gradient check in float64: an independent check of autograd's analytic gradients.
import { Tensor, noGrad, randn, tidy } from '../../src/torch';

/** Max relative difference between autograd's and central differences' gradients of <fn(x), cot>. */
export function gradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], eps = 1e-6): number {
  return tidy(() => {
    const xs = inputs.map((x) => noGrad(() => x.to('float64').clone()).requiresGrad_(true));
    const y = fn(...xs);
    const cot = randn(y.shape, { dtype: 'float64' });
    y.backward(cot);
    const f = (args: Tensor[]): number => noGrad(() => fn(...args).mul(cot).sum().item());
    let worst = 0;
    xs.forEach((x, i) => {
      const analytic = (x.grad ?? noGrad(() => x.mul(0))).toNumbers();
      const n = x.numel();
      for (let j = 0; j < n; j++) {
        const shifted = (d: number): number =>
          tidy(() => {
            const args = xs.map((a) => noGrad(() => a.detach().clone()));
            noGrad(() => args[i].view(-1).select(0, j).add_(d));
            return f(args);
          });
        const numeric = (shifted(eps) - shifted(-eps)) / (2 * eps);
        const err = Math.abs(numeric - analytic[j]) / Math.max(1, Math.abs(numeric));
        worst = Math.max(worst, err);
      }
    });
    return worst;
  });
}
