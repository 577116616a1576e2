// Learning-rate schedules, stepped once per optimizer step: poly (DeepLab, PSPNet, ICNet: power 0.9),
// step decay, cosine annealing, and a linear warm-up in front of any of them. Each rate is computed in
// closed form from the step count, so a restored schedule continues exactly where it stopped.
import { OptimizerLike } from './optimizer';

/** What a schedule saves: JSON-able. */
export interface ScheduleState {
  t: number;
  baseLrs?: number[];
  inner?: ScheduleState;
}

/**
 * The linear warm-up multiplier over n steps: startFactor at t = 0, rising linearly to 1 at t = n − 1 and 1
 * afterwards (torch's LinearLR(start_factor, 1, total_iters = n − 1)). The default startFactor 1/n gives
 * (t + 1)/n: the first step is not wasted at rate 0.
 */
export function warmupFactor(t: number, n: number, startFactor = 1 / n): number {
  if (n <= 1 || t >= n - 1) return 1;
  return startFactor + ((1 - startFactor) * t) / (n - 1);
}

export abstract class LRScheduler {
  /** Steps taken so far. */
  t = 0;
  /** Each group's rate when the schedule was made (torch's base_lrs). */
  readonly baseLrs: number[];

  /** warmup: steps of linear warm-up (warmupFactor with its default start) in front of this schedule. */
  constructor(readonly optimizer: OptimizerLike, readonly warmup = 0) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.lr);
    // Subclasses call apply() at the end of their constructors: their fields (tMax, ...) are not set yet here.
  }

  /** A group's rate at step t, before warm-up. */
  protected abstract lrAt(base: number, t: number): number;

  /** The rates for the current step, one per parameter group (what step() has put into the optimizer). */
  getLr(): number[] {
    const w = warmupFactor(this.t, this.warmup);
    return this.baseLrs.map((b) => this.lrAt(b, this.t) * w);
  }

  protected apply(): void {
    this.getLr().forEach((lr, i) => (this.optimizer.paramGroups[i].lr = lr));
  }

  /** Advances one step (call after optimizer.step()) and sets the optimizer's rates. */
  step(): void {
    this.t++;
    this.apply();
  }

  stateDict(): ScheduleState {
    return { t: this.t, baseLrs: [...this.baseLrs] };
  }

  loadStateDict(s: ScheduleState): void {
    if (s.baseLrs) {
      if (s.baseLrs.length !== this.baseLrs.length) throw new Error(`schedule state has ${s.baseLrs.length} groups, the optimizer ${this.baseLrs.length}`);
      this.baseLrs.splice(0, this.baseLrs.length, ...s.baseLrs);
    }
    this.t = s.t;
    this.apply();
  }
}

/** base · (1 − min(t, maxSteps)/maxSteps)^power: torch's PolynomialLR(total_iters = maxSteps, power). */
export class PolyLR extends LRScheduler {
  constructor(opt: OptimizerLike, readonly maxSteps: number, readonly power = 0.9, warmup = 0) {
    super(opt, warmup);
    if (!(maxSteps > 0)) throw new RangeError(`PolyLR: maxSteps must be > 0, got ${maxSteps}`);
    this.apply();
  }
  protected lrAt(base: number, t: number): number {
    return base * (1 - Math.min(t, this.maxSteps) / this.maxSteps) ** this.power;
  }
}

/** base · gamma^⌊t/stepSize⌋. */
export class StepLR extends LRScheduler {
  constructor(opt: OptimizerLike, readonly stepSize: number, readonly gamma = 0.1, warmup = 0) {
    super(opt, warmup);
    if (!(stepSize >= 1)) throw new RangeError(`StepLR: stepSize must be >= 1, got ${stepSize}`);
    this.apply();
  }
  protected lrAt(base: number, t: number): number {
    return base * this.gamma ** Math.floor(t / this.stepSize);
  }
}

/** etaMin + (base − etaMin)(1 + cos(π·min(t, tMax)/tMax))/2: torch's CosineAnnealingLR, closed form, one cycle. */
export class CosineAnnealingLR extends LRScheduler {
  constructor(opt: OptimizerLike, readonly tMax: number, readonly etaMin = 0, warmup = 0) {
    super(opt, warmup);
    if (!(tMax > 0)) throw new RangeError(`CosineAnnealingLR: tMax must be > 0, got ${tMax}`);
    this.apply();
  }
  protected lrAt(base: number, t: number): number {
    return this.etaMin + ((base - this.etaMin) * (1 + Math.cos((Math.PI * Math.min(t, this.tMax)) / this.tMax))) / 2;
  }
}

/** A constant rate (with optional warm-up). */
export class ConstantLR extends LRScheduler {
  constructor(opt: OptimizerLike, warmup = 0) {
    super(opt, warmup);
    this.apply();
  }
  protected lrAt(base: number): number {
    return base;
  }
}

/**
 * Linear warm-up in front of another schedule: for the first `steps` steps the inner schedule's rate is
 * scaled by warmupFactor(t, steps, startFactor). The inner schedule keeps counting from step 0, so a
 * poly or cosine decay still ends where it would without warm-up (DeepLab-style training).
 */
export class LinearWarmup extends LRScheduler {
  constructor(readonly inner: LRScheduler, readonly steps: number, readonly startFactor = 1 / steps) {
    super(inner.optimizer);
    if (!(steps >= 1)) throw new RangeError(`LinearWarmup: steps must be >= 1, got ${steps}`);
    if (!(startFactor >= 0 && startFactor <= 1)) throw new RangeError(`LinearWarmup: startFactor must be in [0, 1], got ${startFactor}`);
    this.baseLrs.splice(0, this.baseLrs.length, ...inner.baseLrs);
    this.t = inner.t;
    this.apply();
  }
  protected lrAt(base: number): number {
    return base;
  }
  override getLr(): number[] {
    const w = warmupFactor(this.t, this.steps, this.startFactor);
    return this.inner.getLr().map((lr) => lr * w);
  }
  override step(): void {
    this.inner.step();
    super.step();
  }
  override stateDict(): ScheduleState {
    return { ...super.stateDict(), inner: this.inner.stateDict() };
  }
  override loadStateDict(s: ScheduleState): void {
    this.inner.loadStateDict(s.inner ?? { t: s.t });
    super.loadStateDict(s);
  }
}
