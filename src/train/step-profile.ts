// `--profile-steps n` (train, segment): libtorch's operator profile of n steps of the real run — the loading
// and augmenting of their batches, forward, loss, backward and optimizer — after the first few steps (the
// allocator and the kernels warm), written to <out>/ops.txt and logged. Within one epoch: its end (the
// evaluation follows) or a stop ends the profile early, with the steps it holds.
import * as path from 'node:path';
import { OpProfile, OpProfiler, formatOpProfile } from '../torch/profiler';
import { writeFileAtomic } from '../util/fs';

/** Steps this process runs before the profile starts. */
export const PROFILE_AFTER_STEPS = 5;

export class StepProfiler {
  private profiler: OpProfiler | null = null;
  private ran = 0;
  private profiled = 0;
  private done = false;

  /** `report` gets the profile of `steps` steps (fewer if the epoch ended first). */
  constructor(
    private readonly steps: number,
    private readonly report: (profile: OpProfile, steps: number) => void,
  ) {}

  beforeStep(): void {
    if (this.steps > 0 && !this.done && !this.profiler && this.ran === PROFILE_AFTER_STEPS) this.profiler = OpProfiler.start();
  }

  afterStep(): void {
    this.ran++;
    if (this.profiler && ++this.profiled === this.steps) this.finish();
  }

  /** Stops a profile left running by an error, without a report: the profiler must not stay on. */
  close(): void {
    this.profiler?.stop();
    this.profiler = null;
  }

  /** Stops a profile under way and reports what it holds; nothing otherwise. */
  finish(): void {
    if (!this.profiler) return;
    const p = this.profiler.stop();
    this.profiler = null;
    this.done = true;
    if (this.profiled > 0) this.report(p, this.profiled);
  }
}

/** The report train and segment give: every operator to <outDir>/ops.txt, the largest logged. */
export function stepProfileReport(outDir: string, log: (line: string) => void): (profile: OpProfile, steps: number) => void {
  return (profile, steps) => {
    const title = `time per operator of a training step (steps ${PROFILE_AFTER_STEPS + 1}–${PROFILE_AFTER_STEPS + steps} of this run, their batches' loading included)`;
    const file = path.join(outDir, 'ops.txt');
    writeFileAtomic(file, `${formatOpProfile(profile, { top: 0, passes: steps, per: 'step', title })}\n`);
    log(`${formatOpProfile(profile, { top: 15, passes: steps, per: 'step', title })}\n(every operator: ${file})`);
  };
}
