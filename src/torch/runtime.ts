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

/** Runs fn with the generators seeded, then puts the CPU generator's stream back (torch.random.fork_rng on CPU). */
export function forkRng<T>(seed: number, fn: () => T): T {
  const saved = getRngState();
  try {
    manualSeed(seed);
    return fn();
  } finally {
    setRngState(saved);
    saved.dispose();
  }
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
  /**
   * Whether float denormals are flushed to zero and read as zero (FTZ/DAZ) on every libtorch thread: on by
   * default, because trained weights drift into them and each costs a slow multiply (an ENet training step
   * ran 2.5× slower from trained weights); TSVISION_DENORMALS=keep in the environment keeps IEEE behaviour.
   */
  flushDenormals: boolean;
  /**
   * bfloat16 on this CPU: 'native' (AVX-512 BF16 or AMX instructions), 'emulated' (AVX-512 without them:
   * oneDNN converts in software, and float32 is usually as fast), or 'slow' (no AVX-512: oneDNN has no
   * bfloat16 kernels, and libtorch 1.13's own sum in bfloat16 — many times slower than float32 and ~3% off
   * on a 3×3×64 convolution — so tsvision computes bfloat16 convolutions and linear layers, autocast's included,
   * in float32 and rounds the result).
   */
  bfloat16: 'native' | 'emulated' | 'slow';
  /**
   * onnxruntime's int8 convolutions on this CPU: 'vnni' (AVX-512 VNNI, AVX-VNNI or AMX: exact 32-bit sums),
   * 'saturating' (x86 without them: uint8 × int8 products are summed in pairs into 16 bits, which can clip
   * unless weights keep to ±64 — `export --int8 --reduce-range`), or 'unknown' (not x86, or no flags).
   */
  int8: 'vnni' | 'saturating' | 'unknown';
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
    flushDenormals: i.flushDenormals,
    bfloat16: bfloat16Support(),
    int8: int8Support(),
  };
}

let flagsRead: Set<string> | undefined;
/** The CPU's x86 feature flags (Linux's /proc/cpuinfo, read once); empty where there are none to read. */
function cpuFlags(): Set<string> {
  if (flagsRead) return flagsRead;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const cpuinfo: string = require('node:fs').readFileSync('/proc/cpuinfo', 'utf8');
    flagsRead = new Set((/^flags\s*:(.*)$/m.exec(cpuinfo)?.[1] ?? '').trim().split(/\s+/).filter(Boolean));
  } catch {
    flagsRead = new Set();
  }
  return flagsRead;
}

/** From the CPU's flags, as libtorch 1.13's mkldnn_bf16_device_check and oneDNN's ISA choice read them. */
export function bfloat16Support(): EngineInfo['bfloat16'] {
  if (bfloat16Read) return bfloat16Read;
  const flags = cpuFlags();
  if (flags.has('avx512_bf16') || flags.has('amx_bf16')) return (bfloat16Read = 'native');
  return (bfloat16Read = ['avx512bw', 'avx512vl', 'avx512dq'].every((f) => flags.has(f)) ? 'emulated' : 'slow');
}
let bfloat16Read: EngineInfo['bfloat16'] | undefined;

/** From the CPU's flags, as onnxruntime's MLAS picks its uint8 × int8 kernels (VPDPBUSD or VPMADDUBSW). */
export function int8Support(): EngineInfo['int8'] {
  const flags = cpuFlags();
  if (['avx512_vnni', 'avx_vnni', 'amx_int8'].some((f) => flags.has(f))) return 'vnni';
  return flags.has('sse2') ? 'saturating' : 'unknown';
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
