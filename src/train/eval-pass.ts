// One pass over a loader for scoring or collecting answers: networks in eval mode (BatchNorm's running
// statistics, no dropout) and no autograd, each batch in its own scope and freed after, the networks' modes
// restored even when a step throws. Every evaluation loop (classification, segmentation, a student's
// fidelity to its teacher, calibration, a teacher's cached logits) is this loop with its own step.
import { noGrad, tidy } from '../torch';
import { Module } from '../nn';
import { Batch, DataLoader, disposeBatch } from '../data';

export interface EvalPassOptions {
  /** Only the first n batches (quick checks); 0 or absent: all. */
  limitBatches?: number;
  /** After each batch: samples done, samples in the loader's dataset. */
  progress?: (done: number, total: number) => void;
}

/**
 * Calls `step` on each batch of epoch 0 of `loader`. Tensors a step wants to outlive its batch must be
 * keep()'d (they then belong to the caller).
 */
export async function evalPass(models: readonly Module[], loader: DataLoader, o: EvalPassOptions, step: (b: Batch) => void): Promise<void> {
  const modes = models.map((m) => m.training);
  for (const m of models) m.eval();
  let [k, done] = [0, 0];
  try {
    for await (const b of loader.epoch(0)) {
      try {
        tidy(() => noGrad(() => step(b)));
        done += b.x.size(0);
      } finally {
        disposeBatch(b);
      }
      o.progress?.(done, loader.dataset.length);
      if (o.limitBatches && ++k >= o.limitBatches) break;
    }
  } finally {
    models.forEach((m, i) => m.train(modes[i]));
  }
}
