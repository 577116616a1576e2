// The progress line every long run prints: position, loss, a metric, samples/s and the time left. On a
// terminal it redraws once a second; in a log file a line every 15 s is enough.

import { STOP_SIGNALS, StopSignal, onStopSignal } from '../util/signals';

export type Logger = (line: string, transient?: boolean) => void;

let lastStop: StopSignal = 'SIGINT';

/**
 * The exit status of a run that stopped early: 128 + the signal's number, as shells report a process killed
 * by it (130 after Ctrl-C, 143 after SIGTERM), so that a job system sees the run did not finish; 130 for a
 * run stopped by `--stop-after-steps`, which acts as Ctrl-C.
 */
export function interruptExitCode(): number {
  return 128 + STOP_SIGNALS[lastStop];
}

/**
 * Ctrl-C or SIGTERM asks a run to stop after its current step (it polls `requested`); a second signal quits
 * at once. SIGTERM is treated as Ctrl-C because that is how a run is stopped where nobody types: `docker
 * stop`, Kubernetes, SLURM and `timeout` send it and wait a grace period before SIGKILL, time enough to save
 * a checkpoint that `--resume` continues; without a handler Node would die on the spot and lose the epoch.
 * Training is synchronous libtorch work, so the loop must yield to the event loop now and then for the
 * signal to arrive.
 */
export function watchInterrupt(log: Logger, message: string): { readonly requested: boolean; dispose(): void } {
  let requested = false;
  const dispose = onStopSignal((signal) => {
    if (requested) process.exit(128 + STOP_SIGNALS[signal]);
    requested = true;
    lastStop = signal;
    log(`\n${signal === 'SIGINT' ? 'interrupt' : 'SIGTERM'}: ${message} (${signal === 'SIGINT' ? 'Ctrl-C' : 'a signal'} again to quit at once)`);
  });
  return {
    get requested() {
      return requested;
    },
    dispose,
  };
}

export const fmtTime = (s: number): string =>
  s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(0)}s`;

export class Progress {
  private readonly isTTY = Boolean(process.stderr.isTTY);
  private t0 = Date.now();
  private lastPrint = 0;

  constructor(
    private readonly log: Logger,
    private readonly stepsPerEpoch: number,
    private readonly epochs: number,
    private readonly batchSize: number,
  ) {}

  startEpoch(): void {
    this.t0 = Date.now();
    this.lastPrint = 0;
  }

  /** Seconds since the epoch started. */
  get seconds(): number {
    return (Date.now() - this.t0) / 1000;
  }

  /** After batch b (1-based) of epoch (0-based), having seen `samples` this epoch; text: loss and metric. */
  update(epoch: number, b: number, samples: number, text: string): void {
    const now = Date.now();
    const last = b === this.stepsPerEpoch;
    if (now - this.lastPrint <= (this.isTTY ? 1000 : 15000) && !last) return;
    this.lastPrint = now;
    const rate = (samples || 1) / Math.max((now - this.t0) / 1000, 1e-3);
    const left = ((this.stepsPerEpoch - b) * this.batchSize) / rate + ((this.epochs - epoch - 1) * this.stepsPerEpoch * this.batchSize) / rate;
    const w = String(this.stepsPerEpoch).length;
    this.log(`epoch ${epoch + 1}/${this.epochs} [${String(b).padStart(w)}/${this.stepsPerEpoch}] ${text} | ${rate.toFixed(0)} samples/s | ETA ${fmtTime(left)}`, this.isTTY && !last);
  }
}
