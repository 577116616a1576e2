// Builds the optimizer and schedule a training run asks for, and bundles them with clipping behind one
// small interface the loop calls.
import { Parameter } from '../nn/module';
import { Adam, AdamW, ConstantLR, CosineAnnealingLR, LRScheduler, OptimizerLike, OptimizerStateDict, PolyLR, RMSprop, RMSpropTF, SGD, StepLR, clipGradNorm_ } from '../optim';

/** rmsprop: torch.optim.RMSprop; rmsprop-tf: TensorFlow's, as Inception v3, MobileNet v1 and Xception (JFT) were trained (optim/rmsprop.ts). */
export const OPTIMIZER_NAMES = ['sgd', 'adam', 'adamw', 'rmsprop', 'rmsprop-tf'] as const;
export type OptimizerName = (typeof OPTIMIZER_NAMES)[number];
/** exp: the rate times `decayRate` every `decayEpochs` epochs, a staircase (Inception v3, Xception, MobileNet v1: 0.94 every 2). */
export const SCHEDULE_NAMES = ['cosine', 'poly', 'step', 'exp', 'none'] as const;
export type ScheduleName = (typeof SCHEDULE_NAMES)[number];
/** The staircase of `exp`: Inception v3's and Xception's ImageNet schedule (×0.94 every 2 epochs). */
export const EXP_DECAY = { rate: 0.94, epochs: 2 };

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
  o: { optimizer: OptimizerName; lr: number; momentum: number; weightDecay: number; schedule: ScheduleName; warmupEpochs: number; decayRate?: number; decayEpochs?: number },
  totalSteps: number,
  stepsPerEpoch: number,
): Trainable {
  const params = groups.flatMap((g: Parameter | { params: Parameter[] }) => (g instanceof Parameter ? [g] : g.params));
  // RMSprop takes the run's momentum (0.9 by default, the papers' too); its other constants are its own.
  const optimizer: OptimizerLike =
    o.optimizer === 'sgd' ? new SGD(groups, { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay, nesterov: o.momentum > 0 })
    : o.optimizer === 'adam' ? new Adam(groups, { lr: o.lr, weightDecay: o.weightDecay })
    : o.optimizer === 'adamw' ? new AdamW(groups, { lr: o.lr, weightDecay: o.weightDecay })
    : o.optimizer === 'rmsprop' ? new RMSprop(groups, { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay })
    : new RMSpropTF(groups, { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay });
  const warmup = Math.round(o.warmupEpochs * stepsPerEpoch);
  const schedule =
    o.schedule === 'cosine' ? new CosineAnnealingLR(optimizer, totalSteps, 0, warmup)
    : o.schedule === 'poly' ? new PolyLR(optimizer, totalSteps, 0.9, warmup)
    : o.schedule === 'step' ? new StepLR(optimizer, Math.max(1, Math.round(totalSteps / 3)), 0.1, warmup)
    : o.schedule === 'exp' ? new StepLR(optimizer, Math.max(1, Math.round((o.decayEpochs ?? EXP_DECAY.epochs) * stepsPerEpoch)), o.decayRate ?? EXP_DECAY.rate, warmup)
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
