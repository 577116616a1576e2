// The signals that ask a run to stop: Ctrl-C, and SIGTERM, which `docker stop`, Kubernetes, SLURM and
// `timeout` send before SIGKILL. Listening to either also keeps Node from dying on it at once.

export const STOP_SIGNALS = { SIGINT: 2, SIGTERM: 15 } as const;
export type StopSignal = keyof typeof STOP_SIGNALS;

/**
 * Calls `on` with the signal on every Ctrl-C or SIGTERM until the returned function removes the listeners;
 * `first`: ahead of the listeners already there (which then run after it).
 */
export function onStopSignal(on: (signal: StopSignal) => void, o: { first?: boolean } = {}): () => void {
  const listeners = (Object.keys(STOP_SIGNALS) as StopSignal[]).map((signal) => {
    const listener = (): void => on(signal);
    if (o.first) process.prependListener(signal, listener);
    else process.on(signal, listener);
    return [signal, listener] as const;
  });
  return () => listeners.forEach(([signal, listener]) => process.off(signal, listener));
}
