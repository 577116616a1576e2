// Inference speed of several models on one input, measured fairly on a noisy machine: the models take turns
// in every round (so a slow spell hits all of them), each round is warmed up, and the median is reported.
import { Tensor, cuda, noGrad, tidy } from '../torch';
import { Module } from '../nn';
import { median } from '../util/stats';

export interface LatencyOptions {
  /** Rounds of turns; the median over all timed calls is reported. */
  rounds?: number;
  /** Timed forward passes per model per round. */
  reps?: number;
  /** Untimed passes per model per round, first. */
  warmup?: number;
}

export interface Latency {
  /** Median milliseconds per forward pass. */
  ms: number;
  /** Images per second at that median: batch / ms. */
  imagesPerSecond: number;
}

/** Eval-mode, no-autograd forward latency of each model on x (models are put back in their modes). */
export function measureLatency(models: (Module & { forward(x: Tensor): unknown })[], x: Tensor, o: LatencyOptions = {}): Latency[] {
  const { rounds = 5, reps = 10, warmup = 2 } = o;
  const modes = models.map((m) => m.training);
  models.forEach((m) => m.eval());
  const times: number[][] = models.map(() => []);
  // CUDA kernels run asynchronously: wait for them, or the clock measures only the launches.
  const sync = x.device.startsWith('cuda') ? () => cuda.synchronize() : () => {};
  try {
    for (let r = 0; r < rounds; r++) {
      // Alternate who goes first, so neither always runs right after the other's allocations.
      const order = r % 2 ? [...models.keys()].reverse() : [...models.keys()];
      for (const i of order) {
        for (let k = 0; k < warmup + reps; k++) {
          sync();
          const t0 = process.hrtime.bigint();
          tidy(() => noGrad(() => models[i].forward(x)));
          sync();
          if (k >= warmup) times[i].push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
      }
    }
  } finally {
    models.forEach((m, i) => m.train(modes[i]));
  }
  const batch = x.shape[0];
  return times.map((t) => {
    const ms = median(t);
    return { ms, imagesPerSecond: (1000 * batch) / ms };
  });
}
