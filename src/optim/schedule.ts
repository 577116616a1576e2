// Learning-rate schedules, stepped once per optimizer step: poly (DeepLab, PSPNet, ICNet: power 0.9),
// step decay, cosine annealing, and a linear warm-up in front of any of them.
import { OptimizerLike } from './optimizer';

export abstract class LRScheduler {
  /** Steps taken so far. */
  t = 0;
  readonly baseLrs: number[];

  constructor(readonly optimizer: OptimizerLike, readonly warmup = 0) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.lr);
    // Subclasses call apply() at the end of their constructors: their fields (tMax, ...) are not set yet here.
  }

  /** The multiplier of the base learning rate at step t, before warm-up. */
  protected abstract factor(t: number): number;

  getLr(): number[] {
    const w = this.warmup > 0 && this.t < this.warmup ? (this.t + 1) / this.warmup : 1;
    const f = this.factor(this.t) * w;
    return this.baseLrs.map((b) => b * f);
  }

  protected apply(): void {
    this.getLr().forEach((lr, i) => (this.optimizer.paramGroups[i].lr = lr));
  }

  step(): void {
    this.t++;
    this.apply();
  }

  stateDict(): { t: number } {
    return { t: this.t };
  }

  loadStateDict(s: { t: number }): void {
    this.t = s.t;
    this.apply();
  }
}

/** base · (1 − t/maxSteps)^power. */
export class PolyLR extends LRScheduler {
  constructor(opt: OptimizerLike, readonly maxSteps: number, readonly power = 0.9, warmup = 0) {
    super(opt, warmup);
    this.apply();
  }
  protected factor(t: number): number {
    return Math.max(0, 1 - Math.min(t, this.maxSteps) / this.maxSteps) ** this.power;
  }
}

/** base · gamma^⌊t/stepSize⌋. */
export class StepLR extends LRScheduler {
  constructor(opt: OptimizerLike, readonly stepSize: number, readonly gamma = 0.1, warmup = 0) {
    super(opt, warmup);
    this.apply();
  }
  protected factor(t: number): number {
    return this.gamma ** Math.floor(t / this.stepSize);
  }
}

/** etaMin + (base − etaMin)(1 + cos(π t/tMax))/2, as a multiplier of each group's base rate. */
export class CosineAnnealingLR extends LRScheduler {
  constructor(opt: OptimizerLike, readonly tMax: number, readonly etaMinRatio = 0, warmup = 0) {
    super(opt, warmup);
    this.apply();
  }
  protected factor(t: number): number {
    const c = (1 + Math.cos((Math.PI * Math.min(t, this.tMax)) / this.tMax)) / 2;
    return this.etaMinRatio + (1 - this.etaMinRatio) * c;
  }
}

/** A constant rate (with optional warm-up). */
export class ConstantLR extends LRScheduler {
  constructor(opt: OptimizerLike, warmup = 0) {
    super(opt, warmup);
    this.apply();
  }
  protected factor(): number {
    return 1;
  }
}
