// Builds the optimizer and schedule a training run asks for, and bundles them with clipping behind one
// small interface the loop calls.
import { Parameter } from '../nn/module';
import { Adam, AdamW, ConstantLR, CosineAnnealingLR, LRScheduler, OptimizerLike, OptimizerStateDict, PolyLR, SGD, StepLR, clipGradNorm_ } from '../optim';

export type OptimizerName = 'sgd' | 'adam' | 'adamw';
export type ScheduleName = 'cosine' | 'poly' | 'step' | 'none';

export interface Trainable {
  readonly optimizer: OptimizerLike;
  readonly schedule: LRScheduler;
  zeroGrad(): void;
  /** Clips (if maxNorm > 0), steps the optimizer, then the schedule. */
  clipAndStep(maxNorm: number): void;
  stateDict(): OptimizerStateDict;
  loadStateDict(s: OptimizerStateDict): void;
}

/** Parameters, or groups of them with a rate of their own (finetune.ts's backbone and head). */
export type ParameterGroups = Parameter[] | { params: Parameter[]; lr: number }[];

export function makeOptimizer(
  groups: ParameterGroups,
  o: { optimizer: OptimizerName; lr: number; momentum: number; weightDecay: number; schedule: ScheduleName; warmupEpochs: number },
  totalSteps: number,
  stepsPerEpoch: number,
): Trainable {
  const params = groups.flatMap((g: Parameter | { params: Parameter[] }) => (g instanceof Parameter ? [g] : g.params));
  const optimizer: OptimizerLike =
    o.optimizer === 'sgd'
      ? new SGD(groups, { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay, nesterov: o.momentum > 0 })
      : o.optimizer === 'adam'
        ? new Adam(groups, { lr: o.lr, weightDecay: o.weightDecay })
        : new AdamW(groups, { lr: o.lr, weightDecay: o.weightDecay });
  const warmup = Math.round(o.warmupEpochs * stepsPerEpoch);
  const schedule =
    o.schedule === 'cosine' ? new CosineAnnealingLR(optimizer, totalSteps, 0, warmup)
    : o.schedule === 'poly' ? new PolyLR(optimizer, totalSteps, 0.9, warmup)
    : o.schedule === 'step' ? new StepLR(optimizer, Math.max(1, Math.round(totalSteps / 3)), 0.1, warmup)
    : new ConstantLR(optimizer, warmup);
  return {
    optimizer,
    schedule,
    zeroGrad: () => optimizer.zeroGrad(),
    clipAndStep(maxNorm: number) {
      if (maxNorm > 0) clipGradNorm_(params, maxNorm);
      optimizer.step();
      schedule.step();
    },
    stateDict() {
      const s = optimizer.stateDict();
      return { tensors: s.tensors, meta: { ...s.meta, schedule: schedule.stateDict() } };
    },
    loadStateDict(s: OptimizerStateDict) {
      optimizer.loadStateDict(s);
      const sched = (s.meta as { schedule?: { t: number } }).schedule;
      if (sched) schedule.loadStateDict(sched);
    },
  };
}
