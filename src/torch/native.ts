// Loads the libtorch addon and declares its surface. Everything here is raw: handles are opaque numbers;
// src/torch/tensor.ts gives them a typed, memory-managed face.
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Opaque reference to one at::Tensor inside the addon. At run time it is a number in [2^52, 2^53) that
 * names a slot of the addon's tensor table and its generation (native/src/addon.cc).
 */
export interface Handle {
  readonly __tensorHandle: unique symbol;
}

const HANDLE_MIN = 2 ** 52;
const HANDLE_END = 2 ** 53;

/**
 * Whether an operator argument or result is a tensor handle rather than a plain number. Sizes and
 * scalars never reach 2^52 in practice; the addon itself goes by the schema, so this matters only to
 * code that inspects arguments generically (the ONNX tracer, the oneDNN interceptor).
 */
export function isHandle(a: unknown): a is Handle {
  return typeof a === 'number' && a >= HANDLE_MIN && a < HANDLE_END;
}

/** What a boxed operator call may take and give back. */
export type NativeArg = Handle | number | boolean | string | null | undefined | NativeArg[];
export type NativeResult = Handle | number | boolean | string | null | NativeResult[];

export interface NativeInfo {
  version: string;
  cuda: boolean;
  cudaDevices: number;
  threads: number;
  allocator: string;
  flushDenormals: boolean;
  parallel: string;
  config: string;
}

/** The CPU allocator's large-block cache (native/src/allocator.cc): counters since start, and its state now. */
export interface AllocatorStats {
  /** Large-block requests served from the cache. */
  hits: number;
  /** Large-block requests the cache could not serve: each took a fresh block from the system. */
  misses: number;
  /** Freed blocks handed back to the system because the cache was full. */
  overflows: number;
  /** Bytes in large blocks the allocator holds, in use or cached. */
  ownedBytes: number;
  cachedBytes: number;
  cachedBlocks: number;
  /** The cache's cap (TSVISION_CPU_CACHE_MB). */
  capBytes: number;
}

export interface Native {
  lookup(name: string, overload: string): { id: number; schema: string };
  call(id: number, ...args: NativeArg[]): NativeResult;
  callVoid(id: number, ...args: NativeArg[]): void;
  free(h: Handle): void;
  /** The GC now owns this tensor: report its CPU bytes to V8 (undone by free). */
  gcOwned(h: Handle): void;
  fromBytes(data: ArrayBufferView, shape: number[], dtype: string, device?: string): Handle;
  toBytes(h: Handle): ArrayBuffer;
  meta(h: Handle): [number[], string, string, boolean];
  shape(h: Handle): number[];
  /** 'strided' (ordinary), 'mkldnn' (oneDNN's opaque blocked layout, see onednn.ts) or 'sparse'. */
  layout(h: Handle): 'strided' | 'mkldnn' | 'sparse';
  /** The address of the first element (PyTorch's data_ptr); throws for non-strided layouts. */
  dataPtr(h: Handle): bigint;
  item(h: Handle): number | boolean;
  setRequiresGrad(h: Handle, on: boolean): void;
  grad(h: Handle): Handle | null;
  setGrad(h: Handle, g: Handle | null): void;
  isLeaf(h: Handle): boolean;
  retainGrad(h: Handle): void;
  backward(h: Handle, grad?: Handle | null, retainGraph?: boolean, createGraph?: boolean): void;
  autogradGrad(outputs: Handle[], inputs: Handle[], gradOutputs: Handle[] | null, retainGraph?: boolean, createGraph?: boolean): (Handle | null)[];
  registerHook(h: Handle, fn: (grad: Handle) => Handle | null | undefined): number;
  removeHook(h: Handle, id: number): void;
  setGradEnabled(on: boolean): boolean;
  /** Enters torch.autocast for a device type; returns the previous [enabled, dtype] for exitAutocast. */
  enterAutocast(device: 'cpu' | 'cuda', enabled: boolean, dtype: string): [boolean, string];
  exitAutocast(device: 'cpu' | 'cuda', prevEnabled: boolean, prevDtype: string): void;
  isAutocastEnabled(device: 'cpu' | 'cuda'): boolean;
  isGradEnabled(): boolean;
  manualSeed(seed: number): void;
  getRngState(): Handle;
  setRngState(state: Handle): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  cudaDeviceCount(): number;
  cudaSynchronize(): void;
  info(): NativeInfo;
  liveTensors(): number;
  allocatorStats(): AllocatorStats;
  /** libtorch's operator profiler (profiler.ts): on, optionally recording input shapes. */
  profilerStart(shapes: boolean): void;
  profilerStop(): ProfilerEvents;
}

/** The profiler's events as parallel arrays: kinds 0 push, 1 pop, 2 other; times in µs. */
export interface ProfilerEvents {
  names: string[];
  kinds: Uint8Array;
  threads: Float64Array;
  handles: Float64Array;
  us: Float64Array;
  shapes: string[];
}

/** Where the addon was loaded from (shown by `tsvision info`). */
export let addonPath = '';

function load(): Native {
  const root = path.resolve(__dirname, '..', '..', '..');
  const candidates = [
    process.env.TSVISION_ADDON,
    path.join(root, 'native', 'build', 'Release', 'tsvision.node'),
    path.join(root, 'native', 'build', 'tsvision.node'),
  ].filter((p): p is string => Boolean(p));
  for (const p of candidates) {
    if (fs.existsSync(p)) {
      addonPath = p;
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      return require(p) as Native;
    }
  }
  // A checkout builds the addon with scripts/setup.sh; an installed package with its install script, which
  // npm 11 runs for a dependency only once the project has approved it.
  const checkout = fs.existsSync(path.join(root, 'scripts', 'setup.sh'));
  throw new Error(
    `tsvision: the libtorch addon is not built (looked in ${candidates.join(', ')}). ` +
      (checkout
        ? 'Run `npm run setup` (installs libtorch-dev and builds it), or `npm run build:native`.'
        : 'In your project run `npm install-scripts approve tsvision` (npm 11 skips dependencies\' install ' +
          'scripts until approved), then `npm rebuild tsvision`. The build needs libtorch (apt-get install ' +
          'libtorch-dev libmimalloc-dev libgloo-dev, or LIBTORCH=/path/to/libtorch, or LIBTORCH_USE_PYTORCH=1), g++ and make.'),
  );
}

export const native: Native = load();
