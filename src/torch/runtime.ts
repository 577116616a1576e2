// Process-wide settings: seeds, threads, devices, and what `tsvision info` reports.
import * as os from 'node:os';
import { AllocatorStats, addonPath, native } from './native';
import { Tensor } from './tensor';

/** Seeds libtorch's default generators (CPU and CUDA), as torch.manual_seed. */
export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}

/** The CPU generator's state as a uint8 tensor, for checkpoints that must resume a random stream. */
export function getRngState(): Tensor {
  return new Tensor(native.getRngState());
}
export function setRngState(state: Tensor): void {
  native.setRngState(state.h);
}

export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setNumThreads: need a positive integer, got ${n}`);
  native.setNumThreads(n);
}
export function getNumThreads(): number {
  return native.getNumThreads();
}

export const cuda = {
  isAvailable: (): boolean => native.cudaDeviceCount() > 0,
  deviceCount: (): number => native.cudaDeviceCount(),
  synchronize: (): void => native.cudaSynchronize(),
};

export interface EngineInfo {
  libtorchVersion: string;
  addon: string;
  libtorch: string;
  cuda: boolean;
  cudaDevices: number;
  threads: number;
  cores: number;
  allocator: string;
}

export function engineInfo(): EngineInfo {
  const i = native.info();
  return {
    libtorchVersion: i.version,
    addon: addonPath,
    libtorch: libtorchPath(),
    cuda: i.cuda,
    cudaDevices: i.cudaDevices,
    threads: i.threads,
    cores: os.cpus().length,
    allocator: i.allocator,
  };
}

/** Where the loaded libtorch_cpu lives, read from the process's own memory map. */
function libtorchPath(): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const maps: string = require('node:fs').readFileSync('/proc/self/maps', 'utf8');
    const m = maps.split('\n').find((l) => l.includes('libtorch_cpu'));
    return m ? m.slice(m.indexOf('/')) : 'unknown';
  } catch {
    return 'unknown';
  }
}

export function engineConfig(): string {
  return native.info().config;
}

/** Tensor handles alive right now: a number that stays flat in a leak-free loop. */
export function liveTensors(): number {
  return native.liveTensors();
}

export type { AllocatorStats };

/** The CPU allocator's large-block cache counters: misses that keep growing in a steady loop mean fresh pages every step. */
export function cpuAllocatorStats(): AllocatorStats {
  return native.allocatorStats();
}
