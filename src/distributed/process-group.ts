// torch.distributed's process-group API over libtorch's c10d (native/src/distributed.cc): one default group
// per process, set up as init_process_group does — a PyTorch rank can join the same group.
import * as path from 'node:path';
import { Handle, native } from '../torch/native';
import { Tensor } from '../torch';

export type Backend = 'gloo' | 'nccl';
/** 'avg' is a sum divided by the world size (gloo has no native average). */
export type ReduceOp = 'sum' | 'avg' | 'max' | 'min' | 'product';

type StoreSpec =
  | { kind: 'tcp'; host: string; port: number; isServer: boolean; worldSize: number; timeoutMs: number; rank: number }
  | { kind: 'file'; path: string; worldSize: number; timeoutMs: number };

/** The addon's dist* functions (native/src/distributed.cc). */
interface DistNative {
  distBackends(): Backend[];
  distCreateStore(spec: StoreSpec): Promise<number>;
  distCreateProcessGroup(store: number, backend: Backend, rank: number, worldSize: number, timeoutMs: number): Promise<number>;
  distAllReduce(group: number, t: Handle, op: ReduceOp): void;
  distBroadcast(group: number, t: Handle, root: number): void;
  distAllGather(group: number, t: Handle): Handle[];
  distBarrier(group: number): void;
  distDestroyProcessGroup(group: number): void;
  distDestroyStore(store: number): void;
}

function dist(): DistNative {
  const n = native as unknown as Partial<DistNative>;
  if (typeof n.distCreateStore !== 'function') {
    throw new Error('tsvision: this build of the addon has no distributed support (native/src/distributed.cc); rebuild it with `npm run build:native`');
  }
  return n as DistNative;
}

/** The backends this build has: always 'gloo'; 'nccl' where libtorch has CUDA and NCCL. */
export function availableBackends(): Backend[] {
  return dist().distBackends();
}

export interface InitOptions {
  /** Default 'gloo'. */
  backend?: Backend;
  /** Default: $RANK (or ?rank= in initMethod). */
  rank?: number;
  /** Default: $WORLD_SIZE (or ?world_size= in initMethod). */
  worldSize?: number;
  /** 'env://' (default: $MASTER_ADDR, $MASTER_PORT), 'tcp://host:port' or 'file:///path'. */
  initMethod?: string;
  /** How long to wait for the other ranks, at set-up and in every collective. Default 30 min, as PyTorch. */
  timeoutMs?: number;
}

/** torch.distributed's default_pg_timeout. */
export const DEFAULT_TIMEOUT_MS = 30 * 60 * 1000;

interface State {
  group: number;
  store: number;
  rank: number;
  worldSize: number;
  backend: Backend;
}
let state: State | null = null;

function envInt(name: string): number {
  const v = process.env[name];
  if (!v) throw new Error(`initProcessGroup: environment variable ${name} expected, but not set (set it, pass it as an option, or start with \`tsvision launch\`)`);
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`initProcessGroup: ${name} must be a non-negative integer, got '${v}'`);
  return n;
}

/** Resolves rank, world size and the store exactly as torch.distributed's rendezvous handlers do. */
export function resolveInit(o: InitOptions = {}): { rank: number; worldSize: number; store: StoreSpec } {
  const method = o.initMethod ?? 'env://';
  let url: URL;
  try {
    url = new URL(method);
  } catch {
    throw new Error(`initProcessGroup: initMethod must be 'env://', 'tcp://host:port' or 'file:///path', got '${method}'`);
  }
  const query = (k: string): number | undefined => (url.searchParams.has(k) ? Number(url.searchParams.get(k)) : undefined);
  const rank = o.rank ?? query('rank') ?? envInt('RANK');
  const worldSize = o.worldSize ?? query('world_size') ?? envInt('WORLD_SIZE');
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new Error(`initProcessGroup: worldSize must be a positive integer, got ${worldSize}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new Error(`initProcessGroup: rank must be an integer in [0, ${worldSize}), got ${rank}`);
  if (!(timeoutMs >= 1)) throw new Error(`initProcessGroup: timeoutMs must be >= 1, got ${timeoutMs}`);
  const tcp = (host: string, port: number): StoreSpec => {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`initProcessGroup: the store port must be in [1, 65535], got ${port}`);
    return { kind: 'tcp', host, port, isServer: rank === 0, worldSize, timeoutMs, rank };
  };
  switch (url.protocol) {
    case 'env:': {
      const host = process.env.MASTER_ADDR;
      if (!host) throw new Error('initProcessGroup: environment variable MASTER_ADDR expected, but not set');
      return { rank, worldSize, store: tcp(host, envInt('MASTER_PORT')) };
    }
    case 'tcp:':
      if (!url.port) throw new Error(`initProcessGroup: ${method} has no port`);
      // URL keeps IPv6 brackets; c10d wants the bare address.
      return { rank, worldSize, store: tcp(url.hostname.replace(/^\[|\]$/g, ''), Number(url.port)) };
    case 'file:':
      if (!url.pathname || url.pathname === '/') throw new Error(`initProcessGroup: ${method} has no path`);
      return { rank, worldSize, store: { kind: 'file', path: path.resolve(decodeURIComponent(url.pathname)), worldSize, timeoutMs } };
    default:
      throw new Error(`initProcessGroup: unsupported initMethod '${method}' (use env://, tcp://host:port or file:///path)`);
  }
}

/**
 * Joins the default process group (torch.distributed.init_process_group). Resolves once every rank has
 * joined; rejects with an error naming the rank and the store when that does not happen within timeoutMs.
 */
export async function initProcessGroup(o: InitOptions = {}): Promise<void> {
  if (state) throw new Error(`initProcessGroup: already initialized (rank ${state.rank} of ${state.worldSize}); call destroyProcessGroup() first`);
  const backend = o.backend ?? 'gloo';
  const { rank, worldSize, store: spec } = resolveInit(o);
  const d = dist();
  const store = await d.distCreateStore(spec);
  try {
    const group = await d.distCreateProcessGroup(store, backend, rank, worldSize, spec.timeoutMs);
    state = { group, store, rank, worldSize, backend };
  } catch (e) {
    d.distDestroyStore(store);
    throw e;
  }
}

export function isInitialized(): boolean {
  return state !== null;
}

function current(op: string): State {
  if (!state) throw new Error(`${op}: the default process group is not initialized (call initProcessGroup() first)`);
  return state;
}

export function getRank(): number {
  return current('getRank').rank;
}

export function getWorldSize(): number {
  return current('getWorldSize').worldSize;
}

export function getBackend(): Backend {
  return current('getBackend').backend;
}

/** Reduces t across all ranks, in place (every rank ends with the result); returns t. */
export function allReduce(t: Tensor, op: ReduceOp = 'sum'): Tensor {
  dist().distAllReduce(current('allReduce').group, t.h, op);
  return t;
}

/** Overwrites t on every rank with src's t, in place; returns t. */
export function broadcast(t: Tensor, src = 0): Tensor {
  dist().distBroadcast(current('broadcast').group, t.h, src);
  return t;
}

/** Every rank's t, in rank order (new tensors; t must have the same shape and dtype on every rank). */
export function allGather(t: Tensor): Tensor[] {
  return dist().distAllGather(current('allGather').group, t.h).map((h) => new Tensor(h));
}

/** Waits until every rank has called barrier(). */
export function barrier(): void {
  dist().distBarrier(current('barrier').group);
}

/** Leaves the default group (and closes its store); initProcessGroup may be called again. */
export function destroyProcessGroup(): void {
  if (!state) return;
  const d = dist();
  d.distDestroyProcessGroup(state.group);
  d.distDestroyStore(state.store);
  state = null;
}

/**
 * Joins the default group when this process was started as one of several ranks (WORLD_SIZE > 1 in the
 * environment, as `tsvision launch` and torchrun set it); returns whether it did.
 */
export async function initFromEnvironment(o: Omit<InitOptions, 'initMethod' | 'rank' | 'worldSize'> = {}): Promise<boolean> {
  if (state || !(Number(process.env.WORLD_SIZE) > 1)) return false;
  await initProcessGroup({ ...o, initMethod: 'env://' });
  return true;
}
