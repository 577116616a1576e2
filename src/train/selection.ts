// Model selection on a held-out validation set: which epoch was best, and when to stop waiting for a better one.

/** The first epoch of the highest score in a history (records without a score are skipped); null if none has one. */
export function firstBest<T extends { epoch: number }>(history: readonly T[], score: (h: T) => number | undefined): T | null {
  let best: T | null = null;
  for (const h of history) {
    const s = score(h);
    if (s !== undefined && (best === null || s > score(best)!)) best = h;
  }
  return best;
}

/**
 * Early stopping: true when `patience` epochs have passed since the best one and epochs remain to be skipped
 * (a run at its last epoch just ends). patience 0 or absent: never.
 */
export function patienceSpent(best: { epoch: number } | null, latest: number, patience: number | undefined, epochs: number): boolean {
  return !!best && !!patience && latest - best.epoch >= patience && latest < epochs;
}
