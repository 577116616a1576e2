// What a piece of code spends in each libtorch operator, forward and backward (torch.autograd.profiler's
// key_averages table): libtorch's own profiler records a push and a pop event per ATen op and per autograd
// backward function (native/src/profiler.cc); here they are paired per thread, nested, and summed by name.
// Self time is an op's time minus the ops it called (aten::conv2d → aten::convolution → … → the kernel),
// so self times add up to the time spent in operators without counting any twice.
import { ProfilerEvents, native } from './native';
import { textTable } from '../util/text-table';

export interface OpStat {
  /** The operator ('aten::conv2d') or backward function ('autograd::engine::evaluate_function: ConvolutionBackward0'). */
  name: string;
  calls: number;
  /** Milliseconds in the op itself, its callees' time taken out. */
  selfMs: number;
  /** Milliseconds from its start to its end, callees included. */
  totalMs: number;
  /** With `shapes`: the input shapes of its calls, most frequent first ('8x3x32x32;16x3x3x3'). */
  inputShapes?: string[];
}

export interface OpProfile {
  /** By self time, largest first. */
  ops: OpStat[];
  /** Wall-clock milliseconds of the profiled function. */
  wallMs: number;
  /** Σ self time: the time inside operators (on all threads that recorded any). */
  opMs: number;
}

/**
 * libtorch's profiler, on from start() to stop(): what the calling thread (and the tasks it launches) spends
 * in each operator meanwhile, across awaits too — for a training loop's steps with their data loading.
 * Only one runs at a time.
 */
export class OpProfiler {
  private stopped = false;
  private constructor(
    private readonly shapes: boolean,
    private readonly t0: bigint,
  ) {}

  static start(o: { shapes?: boolean } = {}): OpProfiler {
    native.profilerStart(o.shapes ?? false);
    return new OpProfiler(o.shapes ?? false, process.hrtime.bigint());
  }

  /** Turns the profiler off and sums what it recorded. */
  stop(): OpProfile {
    if (this.stopped) throw new Error('OpProfiler: already stopped');
    this.stopped = true;
    const events = native.profilerStop();
    return summarize(events, Number(process.hrtime.bigint() - this.t0) / 1e6, this.shapes);
  }
}

/**
 * Runs fn (synchronous: libtorch records the thread it runs on and the tasks it launches) under libtorch's
 * profiler and returns its result with the time per operator. A backward pass inside fn is recorded too, with
 * its backward functions. The profiler adds about a microsecond per op.
 */
export function profileOps<T>(fn: () => T, o: { shapes?: boolean } = {}): { result: T; profile: OpProfile } {
  const profiler = OpProfiler.start(o);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    profiler.stop(); // the profiler must not stay on
    throw e;
  }
  return { result, profile: profiler.stop() };
}

/** Pairs each thread's push and pop events, nests them, and sums them by name. */
function summarize(events: ProfilerEvents, wallMs: number, shapes: boolean): OpProfile {
  const stats = new Map<string, { calls: number; self: number; total: number; shapes: Map<string, number> }>();
  // Per thread, the ops open now (innermost last), each with the time its finished callees took.
  const open = new Map<number, { name: string; handle: number; start: number; children: number; shape: string }[]>();
  for (let i = 0; i < events.names.length; i++) {
    const kind = events.kinds[i];
    if (kind === 2) continue;
    const thread = events.threads[i];
    let stack = open.get(thread);
    if (!stack) open.set(thread, (stack = []));
    if (kind === 0) {
      // Non-tensor arguments record empty shapes: '8x3x32x32;16x3x3x3;;;' → '8x3x32x32;16x3x3x3'.
      stack.push({ name: events.names[i], handle: events.handles[i], start: events.us[i], children: 0, shape: events.shapes[i].replace(/;+$/, '') });
      continue;
    }
    const at = stack.map((e) => e.handle).lastIndexOf(events.handles[i]);
    if (at < 0) continue; // a pop whose push came before the profiler started
    const [e] = stack.splice(at, 1);
    const total = events.us[i] - e.start;
    if (at > 0) stack[at - 1].children += total;
    const s = stats.get(e.name) ?? { calls: 0, self: 0, total: 0, shapes: new Map<string, number>() };
    s.calls += 1;
    s.self += total - e.children;
    s.total += total;
    if (e.shape) s.shapes.set(e.shape, (s.shapes.get(e.shape) ?? 0) + 1);
    stats.set(e.name, s);
  }
  const ops = [...stats].map(([name, s]) => ({
    name,
    calls: s.calls,
    selfMs: s.self / 1000,
    totalMs: s.total / 1000,
    ...(shapes ? { inputShapes: [...s.shapes].sort((a, b) => b[1] - a[1]).map(([k]) => k) } : {}),
  }));
  ops.sort((a, b) => b.selfMs - a.selfMs);
  return { ops, wallMs, opMs: ops.reduce((a, s) => a + s.selfMs, 0) };
}

/**
 * The ops with the most self time (`top`; all with 0), as a text table. With `passes`, fn ran that many
 * passes of the same work: calls and times are shown per pass (or per `per`, e.g. 'step').
 */
export function formatOpProfile(p: OpProfile, o: { top?: number; title?: string; passes?: number; per?: string } = {}): string {
  const top = o.top ?? 20;
  const k = o.passes ?? 1;
  const per = o.per ?? 'pass';
  const rows = p.ops.slice(0, top > 0 ? top : undefined);
  const head = ['Operator', k > 1 ? `calls/${per}` : 'calls', 'self ms', 'self %', 'total ms'];
  const calls = (n: number): string => (Number.isInteger(n / k) ? String(n / k) : (n / k).toFixed(1));
  const body = rows.map((s) => [s.name, calls(s.calls), (s.selfMs / k).toFixed(3), `${((100 * s.selfMs) / p.opMs).toFixed(1)}%`, (s.totalMs / k).toFixed(3)]);
  return [
    `${o.title ?? 'time per operator'}: ${(p.wallMs / k).toFixed(2)} ms wall, ${(p.opMs / k).toFixed(2)} ms in operators${k > 1 ? ` per ${per} (${k} ${per === 'pass' ? 'passes' : `${per}s`})` : ''}; by self time, ${rows.length < p.ops.length ? `the ${rows.length} largest of ${p.ops.length} operators` : `all ${p.ops.length} operators`}:`,
    ...textTable(head, body),
  ].join('\n');
}
