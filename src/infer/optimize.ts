// A network made ready for CPU inference, as torch.jit.optimize_for_inference does for PyTorch: BatchNorms
// folded into the convolutions before them (nn/fold.ts), and each forward pass run with activations in
// oneDNN's layout between layers (torch/onednn.ts). Predictor does the same for the networks it restores.
import { Tensor, isGradEnabled, withOneDnnLayout } from '../torch';
import { FoldReport, Module, foldBatchNorm } from '../nn';

type Network = Module & { forward(x: Tensor): unknown };

/** The optimized network: forward in oneDNN's layout without autograd, the plain forward otherwise. */
export class OptimizedForInference<M extends Network> extends Module {
  constructor(
    readonly network: M,
    /** What foldBatchNorm found. */
    readonly folded: FoldReport,
  ) {
    super();
  }

  forward(x: Tensor): ReturnType<M['forward']> {
    const run = (): ReturnType<M['forward']> => this.network.forward(x) as ReturnType<M['forward']>;
    return this.training || isGradEnabled() ? run() : withOneDnnLayout(run);
  }
}

/**
 * Folds the network's BatchNorms (in place: the network given is changed, and is for inference from then on)
 * and wraps it so that forward passes under noGrad run in oneDNN's layout. `example` is any input the
 * network accepts. The outputs are the plain network's up to float rounding (test/nn/fold.test.ts).
 */
export function optimizeForInference<M extends Network>(network: M, example: Tensor): OptimizedForInference<M> {
  const folded = foldBatchNorm(network, example);
  return new OptimizedForInference(network, folded).eval();
}
