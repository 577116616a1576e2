// A launcher like torchrun: starts N worker processes with RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
// GROUP_RANK, MASTER_ADDR and MASTER_PORT set, shows rank 0's output as it is and the others' prefixed with
// their rank, and when one worker fails stops the rest and reports which rank failed. On one machine it is
// torchrun --standalone; across machines (`nnodes` > 1) one launcher runs on each, all given the same
// address and port of node 0, where global rank 0 serves the rendezvous store, as torchrun's static
// rendezvous (--nnodes, --node-rank, --master-addr, --master-port) does.
import { ChildProcess, spawn } from 'node:child_process';
import * as net from 'node:net';
import * as os from 'node:os';
import * as readline from 'node:readline';
import { StopSignal, onStopSignal } from '../util/signals';

export interface LaunchOptions {
  /** Worker processes (ranks) on this machine. */
  nproc: number;
  /** Machines taking part, each running one launcher with the same nproc (default 1). */
  nnodes?: number;
  /** This machine's place among them, 0 … nnodes − 1 (default 0); node 0 holds global rank 0. */
  nodeRank?: number;
  /** The worker command: a Node script and its arguments, run with this Node. */
  script: string;
  args: string[];
  /** Node 0's address (default 127.0.0.1; required with nnodes > 1). */
  masterAddr?: string;
  /** Default: a free port (required with nnodes > 1: every launcher must name the same one). */
  masterPort?: number;
  /** Where the launcher's own messages go. Default stderr. */
  log?: (line: string) => void;
}

export interface LaunchResult {
  /**
   * 0 when every rank succeeded, else the first failing rank's exit code (1 for a signal); 130 or 143 when
   * the launcher's Ctrl-C or SIGTERM stopped the ranks (failedRank null).
   */
  exitCode: number;
  /** The rank that failed first, or null. */
  failedRank: number | null;
}

/** A TCP port nothing listens on right now (the store server binds it moments later). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export async function launch(o: LaunchOptions): Promise<LaunchResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (!Number.isInteger(o.nproc) || o.nproc < 1) throw new RangeError(`launch: nproc must be a positive integer, got ${o.nproc}`);
  const nnodes = o.nnodes ?? 1;
  const nodeRank = o.nodeRank ?? 0;
  if (!Number.isInteger(nnodes) || nnodes < 1) throw new RangeError(`launch: nnodes must be a positive integer, got ${nnodes}`);
  if (!Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= nnodes) throw new RangeError(`launch: node rank must be an integer in [0, ${nnodes - 1}], got ${nodeRank}`);
  if (nnodes > 1 && (!o.masterAddr || !o.masterPort)) throw new Error(`launch: with ${nnodes} nodes every launcher needs node 0's address and one port, the same on all: give --master-addr and --master-port`);
  const addr = o.masterAddr ?? '127.0.0.1';
  const port = o.masterPort ?? (await freePort(addr));
  const world = nnodes * o.nproc;
  // The cores are shared: without OMP_NUM_THREADS each rank would start one libtorch thread per core.
  // (torchrun sets 1; an even share uses the machine when there are more cores than ranks.)
  const threads = String(Math.max(1, Math.floor(os.availableParallelism() / o.nproc)));
  const workers: ChildProcess[] = [];
  let failed: LaunchResult | null = null;
  let running = o.nproc;

  // SIGTERM asks a rank to finish its step and save (as Ctrl-C does); one still running after `graceMs` —
  // blocked in a collective whose peer is gone — is killed.
  const stopOthers = (graceMs: number): void => {
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGTERM');
    setTimeout(() => workers.forEach((w) => w.exitCode === null && w.signalCode === null && w.kill('SIGKILL')), graceMs).unref();
  };
  // Ctrl-C on a terminal reaches every worker directly (same process group): each saves and stops by
  // itself, so the launcher only waits. SIGTERM (a job system) is passed on, with time for the ranks to agree
  // on a last step and save it (job systems wait 10–30 s before SIGKILL); after a rank's failure the others
  // have no step to agree on, so they get 5 s.
  // A rank that exits on such a signal (130, 143) has stopped as asked, not failed.
  let stopping: StopSignal | null = null;
  const stopWatching = onStopSignal((signal) => {
    stopping = signal;
    if (signal === 'SIGTERM') stopOthers(60_000);
  });

  try {
    return await new Promise<LaunchResult>((resolve) => {
      for (let local = 0; local < o.nproc; local++) {
        const rank = nodeRank * o.nproc + local;
        const env = {
          ...process.env,
          RANK: String(rank),
          LOCAL_RANK: String(local),
          WORLD_SIZE: String(world),
          LOCAL_WORLD_SIZE: String(o.nproc),
          GROUP_RANK: String(nodeRank),
          MASTER_ADDR: addr,
          MASTER_PORT: String(port),
          OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? threads,
        };
        const w = spawn(process.execPath, [o.script, ...o.args], { env, stdio: rank === 0 ? ['inherit', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'] });
        workers.push(w);
        for (const stream of rank === 0 ? [] : [w.stdout!, w.stderr!]) {
          const out = stream === w.stdout ? process.stdout : process.stderr;
          readline.createInterface({ input: stream }).on('line', (line) => out.write(`[rank ${rank}] ${line}\n`));
        }
        w.on('error', (e) => {
          if (!failed) failed = { exitCode: 1, failedRank: rank };
          log(`tsvision launch: rank ${rank} could not start: ${e.message}`);
          stopOthers(5000);
        });
        w.on('close', (code, signal) => {
          running--;
          if (stopping && (code === 130 || code === 143) && !failed) {
            failed = { exitCode: code, failedRank: null };
            log(`tsvision launch: stopped by ${stopping}: the ranks ended on the same step, which rank 0 saved`);
          } else if ((code !== 0 || signal) && !failed) {
            failed = { exitCode: code || 1, failedRank: rank };
            log(`tsvision launch: rank ${rank} failed (${signal ? `signal ${signal}` : `exit code ${code}`}); stopping the other ranks${nnodes > 1 ? ' on this machine (those on the others stop when their next collective fails)' : ''}`);
            stopOthers(5000);
          }
          if (running === 0) resolve(failed ?? { exitCode: 0, failedRank: null });
        });
      }
    });
  } finally {
    stopWatching();
  }
}
