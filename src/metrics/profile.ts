// Where a forward pass spends its time, layer by layer (as torch.profiler's table, at module granularity):
// every leaf module's calls timed over several passes, medians, and the time between the layers (the
// functional additions, concatenations, pooling and resizing that no module holds). Multiply-adds per
// millisecond tell compute-bound layers (convolutions near the CPU's peak) from memory-bound ones (BatchNorm,
// PReLU, unpooling: few operations per byte), which is what decides whether folding, another layout or
// bfloat16 can help.
import { Tensor, cuda, noGrad, tidy } from '../torch';
import { Module, withForwardWrappers } from '../nn';
import { multAddsOf } from './summary';
import { median } from '../util/stats';
import { textTable } from '../util/text-table';

export interface ProfileOptions {
  /** Timed passes; each layer's time is its median over them. */
  passes?: number;
  /** Untimed passes first (allocator and kernels warm). */
  warmup?: number;
}

export interface LayerTime {
  /** Dotted module path; a module called more than once in a pass (a shared ReLU) gets `#2`, `#3`, … */
  name: string;
  type: string;
  outputShape: number[];
  /** Multiply-adds of this call for the whole batch (summary's convention: convolutions and linear layers). */
  multAdds: number;
  /** Median milliseconds of this call. */
  ms: number;
}

export interface LayerTypeTime {
  type: string;
  /** Calls per pass. */
  calls: number;
  /** Σ of its calls' median milliseconds. */
  ms: number;
  multAdds: number;
}

export interface Profile {
  /** In execution order. */
  layers: LayerTime[];
  /** By module class, slowest first. */
  byType: LayerTypeTime[];
  /** Median milliseconds of a whole pass. */
  ms: number;
  /**
   * Median over passes of the pass's time outside every layer: what no module holds (functional additions,
   * concatenations, pooling, resizing) and the calls between them. Taken per pass, because a sum of medians
   * leaves out each layer's occasional slow call that a whole pass does contain.
   */
  betweenMs: number;
  passes: number;
  batch: number;
}

/**
 * Eval-mode, no-autograd forward passes of `model` on x with every leaf module timed (on CUDA each call is
 * synchronized on both sides, so the kernels' time is the layer's). The model's modes and forward methods
 * are restored afterwards. The clocks add about a microsecond per layer to the pass.
 */
export function profileLayers(model: Module & { forward(x: Tensor): unknown }, x: Tensor, o: ProfileOptions = {}): Profile {
  const { passes = 10, warmup = 2 } = o;
  if (!(Number.isInteger(passes) && passes >= 1)) throw new RangeError(`profileLayers: passes must be a positive integer, got ${passes}`);
  const leaves = model.namedModules().filter(([, m]) => m.namedChildren().length === 0);
  const sync = x.device.startsWith('cuda') ? () => cuda.synchronize() : () => {};
  const modes = new Map(model.modules().map((m) => [m, m.training] as const));
  const calls = new Map<string, { type: string; outputShape: number[]; multAdds: number; times: number[] }>();
  const totals: number[] = [];
  const between: number[] = [];
  let inLayers = 0;
  let seen = new Map<string, number>();
  let timing = false;
  const around = (name: string, m: Module, args: unknown[], call: () => unknown): unknown => {
    sync();
    const t0 = process.hrtime.bigint();
    const out = call();
    sync();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    inLayers += ms;
    const n = (seen.get(name) ?? 0) + 1;
    seen.set(name, n);
    const key = `${name || '(model)'}${n > 1 ? `#${n}` : ''}`;
    let c = calls.get(key);
    if (!c) {
      const first = Array.isArray(out) ? out[0] : out;
      const shape = first instanceof Tensor ? first.shape : [];
      const multAdds = first instanceof Tensor ? multAddsOf(m, first, args[0] instanceof Tensor ? args[0] : undefined) * shape[0] : 0;
      calls.set(key, (c = { type: m.constructor.name, outputShape: shape, multAdds, times: [] }));
    }
    if (timing) c.times.push(ms);
    return out;
  };
  try {
    model.eval();
    withForwardWrappers(leaves, around, () => {
      for (let k = 0; k < warmup + passes; k++) {
        timing = k >= warmup;
        seen = new Map();
        inLayers = 0;
        sync();
        const t0 = process.hrtime.bigint();
        tidy(() => noGrad(() => void model.forward(x)));
        sync();
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (timing) totals.push(ms), between.push(ms - inLayers);
      }
    });
  } finally {
    for (const [m, t] of modes) m.training = t;
  }
  // A call seen in only some passes (data-dependent control flow) counts by the passes it ran in.
  const layers = [...calls].filter(([, c]) => c.times.length).map(([name, c]) => ({ name, type: c.type, outputShape: c.outputShape, multAdds: c.multAdds, ms: median(c.times) }));
  const types = new Map<string, LayerTypeTime>();
  for (const l of layers) {
    const t = types.get(l.type) ?? { type: l.type, calls: 0, ms: 0, multAdds: 0 };
    types.set(l.type, { type: l.type, calls: t.calls + 1, ms: t.ms + l.ms, multAdds: t.multAdds + l.multAdds });
  }
  return {
    layers,
    byType: [...types.values()].sort((a, b) => b.ms - a.ms),
    ms: median(totals),
    betweenMs: median(between),
    passes,
    batch: x.shape[0],
  };
}

/** Multiply-adds per second in billions, or '--' for layers that count none. */
const gmacs = (multAdds: number, ms: number): string => (multAdds && ms > 0 ? (multAdds / ms / 1e6).toFixed(1) : '--');
const pct = (ms: number, of: number): string => `${((100 * ms) / of).toFixed(1)}%`;

/**
 * The slowest `top` layers (all with top ≤ 0), the table by layer type, and the time between layers;
 * `network` names what was profiled (e.g. 'the network as built').
 */
export function formatProfile(p: Profile, o: { top?: number; network?: string } = {}): string {
  const top = o.top ?? 15;
  const slowest = [...p.layers].sort((a, b) => b.ms - a.ms).slice(0, top > 0 ? top : undefined);
  return [
    `time per layer${o.network ? ` of ${o.network}` : ''}: eval mode, batch ${p.batch}, medians of ${p.passes} passes; a pass ${p.ms.toFixed(2)} ms (medians: the rows need not add up to it)`,
    '',
    `${slowest.length < p.layers.length ? `the ${slowest.length} slowest of ${p.layers.length} layer calls` : `all ${p.layers.length} layer calls, slowest first`}:`,
    ...textTable(
      ['Layer (type)', 'Output shape', 'ms', 'share', 'GMAC/s'],
      slowest.map((l) => [`${l.name} (${l.type})`, `[${l.outputShape.join(', ')}]`, l.ms.toFixed(3), pct(l.ms, p.ms), gmacs(l.multAdds, l.ms)]),
    ),
    '',
    'by layer type:',
    ...textTable(
      ['Type', 'calls', 'ms', 'share', 'GMAC/s'],
      [
        ...p.byType.map((t) => [t.type, String(t.calls), t.ms.toFixed(3), pct(t.ms, p.ms), gmacs(t.multAdds, t.ms)]),
        ['(between layers)', '', p.betweenMs.toFixed(3), pct(p.betweenMs, p.ms), '--'],
      ],
    ),
    '(between layers: what no module holds — functional additions, concatenations, pooling, resizing — and the calls between them)',
  ].join('\n');
}
