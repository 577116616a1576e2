// ONNX export by tracing: one eval-mode forward pass runs with a tracer on the operator choke point
// (src/torch/ops.ts), and each ATen call it sees becomes ONNX nodes (opset 17). Parameters and buffers
// become initializers under their state-dict names; tensors made inside forward from constants alone are
// folded into initializers. Shapes read in JavaScript are fixed by the trace, except the batch dimension,
// which stays symbolic ('batch') unless fixedBatch is asked for.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Handle, NativeArg, NativeResult, isHandle, native } from '../torch/native';
import { Op, OpTracer, setOpTracer } from '../torch/ops';
import { DType, Tensor, noGrad, randint, randn, tidy } from '../torch';
import { Conv2d, Module } from '../nn';
import { writeFileAtomic } from '../util/fs';
import { AttributeValue, Dim, ModelProto, NodeProto, OnnxType, OnnxTypeName, TensorProto, ValueInfoProto, concatChunks, encodeModel } from './protobuf';

export const ONNX_OPSET = 17;
/** The IR version that goes with opset 17 (ONNX 1.12). */
const IR_VERSION = 8;

/** A module whose forward takes one image batch (every tsvision network). */
export type ExportableModule = Module & { forward(x: Tensor): unknown };

export interface OnnxExportOptions {
  /** Shape of the traced input, e.g. [1, 3, 224, 224]. */
  inputShape: readonly number[];
  /** Fix every dimension, batch included, to inputShape (default false: dimension 0 is 'batch'). */
  fixedBatch?: boolean;
  inputName?: string;
  /** Output names in order; default 'output' (one tensor), 'output_0', ... (arrays) or an object's keys. */
  outputNames?: readonly string[];
  /** The traced input; when absent, random normal (float) or uniform over the type's range (uint8). */
  example?: Tensor;
  /** Element type of the graph's input (default float32); 'uint8' for raw pixels (see preprocess.ts). */
  inputDtype?: 'float32' | 'uint8';
  docString?: string;
  /** Key/value strings stored in the file's metadata_props (e.g. the model card, see card.ts). */
  metadata?: Record<string, string>;
}

export interface OnnxGraphSummary {
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
  nodes: number;
  initializers: number;
  /** Node count per ONNX operator type. */
  opTypes: Record<string, number>;
}

export interface OnnxExport extends OnnxGraphSummary {
  model: ModelProto;
  /** The serialized file, in chunks. */
  chunks: Uint8Array[];
  bytes: number;
}

/** The model as ONNX, in memory. The model's training flags are restored afterwards. */
export function toOnnx(model: ExportableModule, o: OnnxExportOptions): OnnxExport {
  const graph = trace(model, o);
  const proto: ModelProto = {
    irVersion: IR_VERSION,
    opsetVersion: ONNX_OPSET,
    producerName: 'tsvision',
    producerVersion: packageVersion(),
    docString: o.docString,
    metadata: o.metadata,
    graph: { name: model.constructor.name, ...graph },
  };
  const chunks = encodeModel(proto);
  const opTypes: Record<string, number> = {};
  for (const n of graph.nodes) opTypes[n.opType] = (opTypes[n.opType] ?? 0) + 1;
  return {
    model: proto,
    chunks,
    bytes: chunks.reduce((a, c) => a + c.length, 0),
    inputs: graph.inputs,
    outputs: graph.outputs,
    nodes: graph.nodes.length,
    initializers: graph.initializers.length,
    opTypes,
  };
}

/** The serialized model in one buffer (for an in-memory InferenceSession). */
export function onnxBytes(model: ExportableModule, o: OnnxExportOptions): Uint8Array {
  return concatChunks(toOnnx(model, o).chunks);
}

/** Exports to a file, written atomically (temp file, then rename): a failed export leaves no partial file. */
export function exportOnnx(model: ExportableModule, file: string, o: OnnxExportOptions): OnnxExport & { file: string } {
  checkWritable(file);
  const r = toOnnx(model, o);
  try {
    writeFileAtomic(file, r.chunks);
  } catch (e) {
    throw new Error(`ONNX export: cannot write ${file}: ${(e as Error).message}`);
  }
  return { ...r, file };
}

/** Fails before the (possibly long) trace when the file clearly cannot be written. */
export function checkWritable(file: string): void {
  const target = path.resolve(file);
  if (fs.existsSync(target) && fs.statSync(target).isDirectory()) throw new Error(`ONNX export: ${file} is a directory; give a file name such as model.onnx`);
  let dir = path.dirname(target);
  while (!fs.existsSync(dir)) dir = path.dirname(dir);
  if (!fs.statSync(dir).isDirectory()) throw new Error(`ONNX export: cannot write ${file}: ${dir} is not a directory`);
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch {
    throw new Error(`ONNX export: cannot write ${file}: ${dir} is not writable`);
  }
}

function packageVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '';
  }
}

// ---- tracing ---------------------------------------------------------------------------------------------

interface Value {
  name: string;
  shape: number[];
  dtype: DType;
  /** Depends on the input (else a constant: parameter, buffer, or folded). */
  computed: boolean;
  /** Dimension 0 is the batch dimension (symbolic in a dynamic-batch export). */
  batch: boolean;
}

interface Graph {
  nodes: NodeProto[];
  initializers: TensorProto[];
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
}

function trace(model: ExportableModule, o: OnnxExportOptions): Graph {
  const training = model.modules().map((m) => m.training);
  const prepack = Conv2d.prepackForInference;
  const unwrap = wrapForwards(model);
  const t = new Tracer(model, !o.fixedBatch);
  try {
    model.eval();
    // The prepacked inference path calls oneDNN-specific ops on a reordered weight copy; the plain conv maps to ONNX.
    Conv2d.prepackForInference = false;
    return tidy(() =>
      noGrad(() => {
        const dtype = o.inputDtype ?? 'float32';
        const x = o.example ?? (dtype === 'uint8' ? randint(0, 256, [...o.inputShape], { dtype }) : randn([...o.inputShape]));
        if (o.example && x.shape.join() !== o.inputShape.join()) throw new Error(`ONNX export: example shape [${x.shape}] differs from inputShape [${o.inputShape}]`);
        if (o.example && o.inputDtype && x.dtype !== o.inputDtype) throw new Error(`ONNX export: example is ${x.dtype}, inputDtype ${o.inputDtype}`);
        t.bindInput(x, o.inputName ?? 'input');
        const previous = setOpTracer(t);
        if (previous) {
          setOpTracer(previous);
          throw new Error('ONNX export: another export is tracing (exports cannot nest)');
        }
        let out: unknown;
        try {
          out = model.forward(x);
        } finally {
          setOpTracer(null);
        }
        return t.finish(out, o.outputNames);
      }),
    );
  } finally {
    unwrap();
    Conv2d.prepackForInference = prepack;
    model.modules().forEach((m, i) => (m.training = training[i]));
  }
}

/**
 * Module paths for node names and error messages: each module's forward is shadowed by an own property that
 * pushes its state-dict path (tsvision modules call children's forward directly; there is no __call__).
 */
const moduleStack: { path: string; type: string }[] = [];
function wrapForwards(model: Module): () => void {
  const undo: (() => void)[] = [];
  const seen = new Set<Module>();
  for (const [p, m] of model.namedModules()) {
    if (seen.has(m)) continue;
    seen.add(m);
    const own = Object.getOwnPropertyDescriptor(m, 'forward');
    const fwd = (m as unknown as { forward: (...a: unknown[]) => unknown }).forward;
    const entry = { path: p, type: m.constructor.name };
    Object.defineProperty(m, 'forward', {
      configurable: true,
      writable: true,
      value: (...args: unknown[]) => {
        moduleStack.push(entry);
        try {
          return fwd.apply(m, args);
        } finally {
          moduleStack.pop();
        }
      },
    });
    undo.push(() => (own ? Object.defineProperty(m, 'forward', own) : delete (m as unknown as Record<string, unknown>).forward));
  }
  return () => undo.reverse().forEach((f) => f());
}

const where = (): string => {
  const m = moduleStack[moduleStack.length - 1];
  return m ? `module '${m.path || '(root)'}' (${m.type})` : 'the model (outside any module)';
};

function handlesIn(a: NativeArg | NativeResult | undefined, out: Handle[] = []): Handle[] {
  if (Array.isArray(a)) for (const x of a) handlesIn(x, out);
  else if (isHandle(a)) out.push(a);
  return out;
}

const ONNX_TYPES: Record<DType, OnnxTypeName> = {
  float32: 'float', float64: 'double', float16: 'float16', bfloat16: 'bfloat16', int64: 'int64',
  int32: 'int32', int16: 'int16', int8: 'int8', uint8: 'uint8', bool: 'bool',
};

/** Turns the recorded ATen calls into ONNX nodes; the handlers below build the graph through its helpers. */
class Tracer implements OpTracer {
  private readonly values = new Map<Handle, Value>();
  /** Outputs that have no ONNX counterpart (e.g. adaptive max pooling's indices): why, if something reads one. */
  private readonly poisoned = new Map<Handle, string>();
  private readonly params = new Map<Handle, string>();
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private readonly constCache = new Map<string, string>();
  private input: Value | null = null;
  private counter = 0;
  /** Values read by the current handler: its outputs inherit their batch dimension. */
  private read: Value[] = [];
  /** The op being converted, for error messages. */
  spec = '';

  constructor(model: Module, readonly dynamicBatch: boolean) {
    for (const [name, p] of model.namedParameters()) this.params.set(p.h, name);
    for (const [name, b] of model.namedBuffers()) this.params.set(b.h, name);
  }

  bindInput(x: Tensor, name: string): void {
    this.input = { name, shape: x.shape, dtype: x.dtype, computed: true, batch: true };
    this.values.set(x.h, this.input);
  }

  get batchSize(): number {
    return this.input!.shape[0];
  }

  record(op: Op, args: NativeArg[], result: NativeResult | undefined): void {
    const ins = handlesIn(args);
    for (const h of ins) {
      const why = this.poisoned.get(h);
      if (why) throw new Error(`ONNX export: ${op.spec} in ${where()} reads ${why}, which the export cannot represent`);
    }
    const name = op.spec.slice(0, op.spec.includes('.') ? op.spec.indexOf('.') : undefined);
    const overload = op.spec.slice(name.length + 1);
    const inPlace = name.endsWith('_') || overload === 'out';
    // In-place and out= forms write one of their arguments: self first, out last.
    const target = inPlace ? (overload === 'out' ? ins[ins.length - 1] : ins[0]) : undefined;
    const outs = handlesIn(result);
    if (!ins.some((h) => this.values.get(h)?.computed)) {
      // Constants only (a factory, or arithmetic on weights): fold. The result is captured by value where it
      // is first used; a constant changed in place is captured afresh.
      if (target && !this.params.has(target)) this.values.delete(target);
      return;
    }
    const key = inPlace ? (overload === 'out' ? name.replace(/_$/, '') : `${name.replace(/_$/, '')}${overload ? `.${overload}` : ''}`) : op.spec;
    const handler = HANDLERS[key];
    if (!handler) {
      // Ops that return no tensor (aten::_version, sizes) only inform JavaScript; the trace keeps their effect.
      if (!inPlace && outs.length === 0) return;
      throw new Error(`ONNX export: no ONNX mapping for ${op.spec} (called in ${where()}); src/export/onnx.ts lists the supported ATen ops`);
    }
    this.spec = op.spec;
    this.read = [];
    const produced = handler(this, args, outs);
    const names = typeof produced === 'string' ? [produced] : produced;
    const batch = this.read.some((v) => v.batch);
    const bind = (h: Handle, n: string | null): void => {
      if (n === null) return void this.poisoned.set(h, `an output of ${op.spec}`);
      const [shape, dtype] = native.meta(h);
      this.values.set(h, { name: n, shape, dtype: dtype as DType, computed: true, batch: batch && shape.length > 0 && shape[0] === this.batchSize });
    };
    if (target) bind(target, names[0]);
    // An in-place op called through call() also returns its target, under a new handle.
    outs.forEach((h, i) => bind(h, inPlace ? names[0] : names[i] ?? null));
  }

  /** The value of a tensor argument; a tensor first seen here is a parameter, buffer or constant. */
  value(a: NativeArg): Value {
    if (!isHandle(a)) throw new Error(`ONNX export: ${this.spec}: expected a tensor argument in ${where()}`);
    let v = this.values.get(a);
    if (!v) {
      const [shape, dtype] = native.meta(a);
      const name = this.params.get(a) ?? this.fresh('const');
      this.initializers.push({ name, dims: shape, dataType: ONNX_TYPES[dtype as DType], raw: new Uint8Array(native.toBytes(a)) });
      v = { name, shape, dtype: dtype as DType, computed: false, batch: false };
      this.values.set(a, v);
    }
    this.read.push(v);
    return v;
  }

  /** The ONNX name of a tensor argument. */
  x(a: NativeArg): string {
    return this.value(a).name;
  }

  fresh(hint: string): string {
    const m = moduleStack[moduleStack.length - 1];
    return `${m?.path ? `/${m.path}` : ''}/${hint}_${this.counter++}`;
  }

  /** Adds a node; returns its output names. */
  node(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}, outputs = 1): string[] {
    const name = this.fresh(opType);
    const outs = Array.from({ length: outputs }, (_, i) => (outputs === 1 ? name : `${name}:${i}`));
    this.nodes.push({ opType, inputs, outputs: outs, name, attributes });
    return outs;
  }

  /** node() for the common single-output case. */
  one(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}): string {
    return this.node(opType, inputs, attributes)[0];
  }

  /** A constant initializer (deduplicated by content). */
  constant(dtype: DType, dims: number[], values: readonly number[]): string {
    const key = `${dtype}[${dims}]${values.join(',')}`;
    let name = this.constCache.get(key);
    if (!name) {
      if (!['float32', 'float64', 'int64', 'int32', 'bool', 'uint8'].includes(dtype)) this.fail(`constants of ${dtype} are not supported`);
      name = `/const/${dtype}_${this.counter++}`;
      const data =
        dtype === 'int64' ? BigInt64Array.from(values.map((v) => BigInt(Math.trunc(v))))
        : dtype === 'float64' ? Float64Array.from(values)
        : dtype === 'int32' ? Int32Array.from(values)
        : dtype === 'bool' || dtype === 'uint8' ? Uint8Array.from(values)
        : Float32Array.from(values);
      this.initializers.push({ name, dims, dataType: ONNX_TYPES[dtype], raw: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
      this.constCache.set(key, name);
    }
    return name;
  }

  ints(values: readonly number[]): string {
    return this.constant('int64', [values.length], values);
  }

  scalar(v: number, dtype: DType): string {
    return this.constant(dtype, [], [v]);
  }

  /** Casts a value to dtype when it differs (ATen promotes types implicitly; ONNX does not). */
  cast(name: string, from: DType, to: DType): string {
    return from === to ? name : this.one('Cast', [name], { to: OnnxType[ONNX_TYPES[to]] });
  }

  /** The first two dimensions of a value at run time (N, C): batch-independent shapes for Resize and MaxUnpool. */
  leadingDims(name: string): string {
    return this.one('Shape', [name], { start: 0, end: 2 });
  }

  fail(why: string): never {
    throw new Error(`ONNX export: ${this.spec} in ${where()}: ${why}`);
  }

  /** Graph inputs, outputs and the value infos that describe them. */
  finish(out: unknown, names?: readonly string[]): Graph {
    const results: [string, Tensor][] =
      out instanceof Tensor ? [[names?.[0] ?? 'output', out]]
      : Array.isArray(out) && out.every((t) => t instanceof Tensor) ? (out as Tensor[]).map((t, i) => [names?.[i] ?? `output_${i}`, t])
      : out !== null && typeof out === 'object' && Object.values(out).every((t) => t instanceof Tensor)
        ? Object.entries(out as Record<string, Tensor>).map(([k, t], i) => [names?.[i] ?? k, t])
        : [];
    if (!results.length) throw new Error('ONNX export: forward must return a tensor, an array of tensors, or an object of tensors');
    const outputs: ValueInfoProto[] = [];
    const renamed = new Set<string>();
    for (const [outName, t] of results) {
      const v = this.values.get(t.h);
      if (!v || !v.computed) throw new Error(`ONNX export: output '${outName}' does not depend on the input`);
      const producer = this.nodes.find((n) => n.outputs.includes(v.name));
      if (producer && !renamed.has(v.name)) {
        // Give the graph output its public name where it is produced, and where it is read.
        renamed.add(v.name);
        const swap = (n: string): string => (n === v.name ? outName : n);
        for (const n of this.nodes) {
          n.inputs = n.inputs.map(swap);
          n.outputs = n.outputs.map(swap);
        }
        for (const other of this.values.values()) if (other.name === v.name) other.name = outName;
      } else {
        this.nodes.push({ opType: 'Identity', inputs: [v.name], outputs: [outName], name: `/output/${outName}` });
      }
      outputs.push({ name: outName, elemType: ONNX_TYPES[v.dtype], shape: this.dims(v) });
    }
    const input = this.input!;
    return {
      nodes: this.nodes,
      initializers: this.initializers,
      inputs: [{ name: input.name, elemType: ONNX_TYPES[input.dtype], shape: this.dims(input) }],
      outputs,
    };
  }

  private dims(v: Value): Dim[] {
    return v.shape.map((d, i) => (i === 0 && v.batch && this.dynamicBatch ? 'batch' : d));
  }
}

// ---- ATen → ONNX -------------------------------------------------------------------------------------------

/** Converts one ATen call: returns the ONNX names of its tensor results (null: not representable). */
type Handler = (g: Tracer, a: NativeArg[], outs: Handle[]) => string | (string | null)[];

const pair = (v: NativeArg, dflt: number): [number, number] => {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2) return [v[0] as number, v[1] as number];
  if (Array.isArray(v) && v.length === 1) return [v[0] as number, v[0] as number];
  return [dflt, dflt];
};
const num = (v: NativeArg, dflt: number): number => (typeof v === 'number' ? v : dflt);
const list = (v: NativeArg): number[] => (Array.isArray(v) ? (v as number[]) : typeof v === 'number' ? [v] : []);
const shapeOf = (h: Handle): number[] => native.meta(h)[0];
const dtypeOf = (h: Handle): DType => native.meta(h)[1] as DType;
/** ATen's symmetric [ph, pw] → ONNX's [top, left, bottom, right]. */
const pads2 = ([ph, pw]: [number, number]): number[] => [ph, pw, ph, pw];

function conv(g: Tracer, a: NativeArg[]): string {
  const [x, w, b] = [g.x(a[0]), g.value(a[1]), a[2]];
  const k = w.shape.slice(2) as [number, number];
  const dilation = pair(a[5], 1);
  let pads: number[];
  if (a[4] === 'valid') pads = [0, 0, 0, 0];
  else if (a[4] === 'same') {
    // As ATen: the total padding d·(k−1), the odd pixel at the end.
    const total = [0, 1].map((i) => dilation[i] * (k[i] - 1));
    pads = [total[0] >> 1, total[1] >> 1, total[0] - (total[0] >> 1), total[1] - (total[1] >> 1)];
  } else pads = pads2(pair(a[4], 0));
  const inputs = [x, w.name, ...(isHandle(b) ? [g.x(b)] : [])];
  return g.one('Conv', inputs, { kernel_shape: k, strides: pair(a[3], 1), pads, dilations: dilation, group: num(a[6], 1) });
}

function convTranspose(g: Tracer, a: NativeArg[]): string {
  const [x, w, b] = [g.x(a[0]), g.value(a[1]), a[2]];
  const inputs = [x, w.name, ...(isHandle(b) ? [g.x(b)] : [])];
  return g.one('ConvTranspose', inputs, {
    kernel_shape: w.shape.slice(2),
    strides: pair(a[3], 1),
    pads: pads2(pair(a[4], 0)),
    output_padding: pair(a[5], 0),
    group: num(a[6], 1),
    dilations: pair(a[7], 1),
  });
}

/** Elementwise binary ops with ATen's type promotion made explicit, and add/sub's alpha. */
function binary(opType: string): Handler {
  return (g, a, outs) => {
    const out = dtypeOf(outs[0] ?? (a[0] as Handle));
    const operand = (v: NativeArg): string => (isHandle(v) ? g.cast(g.x(v), g.value(v).dtype, out) : g.scalar(v as number, out));
    const lhs = operand(a[0]);
    let rhs = operand(a[1]);
    const alpha = num(a[2], 1);
    if (alpha !== 1) rhs = typeof a[1] === 'number' ? g.scalar((a[1] as number) * alpha, out) : g.one('Mul', [rhs, g.scalar(alpha, out)]);
    return g.one(opType, [lhs, rhs]);
  };
}

const unary = (opType: string): Handler => (g, a) => g.one(opType, [g.x(a[0])]);

/** Tensor.to(dtype) and its lower forms: a Cast to the traced result's type (none where it is the input's). */
const castToResult: Handler = (g, a, outs) => {
  const v = g.value(a[0]);
  return g.cast(v.name, v.dtype, dtypeOf(outs[0]));
};

/** No node: the result is its input (eval-mode dropout, contiguous, clone, detach). */
const identity: Handler = (g, a) => g.x(a[0]);

function noTraining(name: string): Handler {
  return (g, a) => {
    if (a[2] === true) g.fail(`${name} in training mode: the export traces eval mode`);
    return g.x(a[0]);
  };
}

/**
 * Reshape to the traced result's shape. Dimension 0 is copied from the input at run time (ONNX's 0) when it
 * is the batch; a reshape that mixes the batch with other dimensions needs a fixed-batch export.
 */
const reshape: Handler = (g, a, outs) => {
  const v = g.value(a[0]);
  const shape = shapeOf(outs[0]);
  if (g.dynamicBatch && v.batch) {
    if (shape.length === 0 || shape[0] !== v.shape[0]) g.fail(`reshapes the batch dimension ([${v.shape}] → [${shape}]); export with a fixed batch`);
    shape[0] = 0;
  }
  return g.one('Reshape', [v.name, g.ints(shape)]);
};

function transpose(g: Tracer, v: Value, perm: number[]): string {
  const p = perm.map((d) => (d < 0 ? d + v.shape.length : d));
  if (g.dynamicBatch && v.batch && p[0] !== 0) g.fail('moves the batch dimension; export with a fixed batch');
  return g.one('Transpose', [v.name], { perm: p });
}

function pool(kind: 'MaxPool' | 'AveragePool', g: Tracer, a: NativeArg[], outputs = 1): string[] {
  const k = pair(a[1], 1);
  const stride = list(a[2]).length ? pair(a[2], 1) : k;
  const attrs: Record<string, AttributeValue> = { kernel_shape: k, strides: stride, pads: pads2(pair(a[3], 0)) };
  if (kind === 'MaxPool') Object.assign(attrs, { dilations: pair(a[4], 1), ceil_mode: a[5] === true ? 1 : 0 });
  else {
    if (a[6] !== null && a[6] !== undefined) g.fail('divisor_override has no ONNX counterpart');
    Object.assign(attrs, { ceil_mode: a[4] === true ? 1 : 0, count_include_pad: a[5] === false ? 0 : 1 });
  }
  return g.node(kind, [g.x(a[0])], attrs, outputs);
}

/**
 * Adaptive pooling, exactly: global pooling for 1×1; a plain pooling when the size divides evenly; else
 * ATen's bins (start ⌊i·H/h⌋, end ⌈(i+1)·H/h⌉, overlapping where they must), one Slice + Reduce each,
 * first over H then over W — a mean (or max) over a rectangle is the mean of its row means.
 */
function adaptive(kind: 'avg' | 'max'): Handler {
  return (g, a) => {
    const v = g.value(a[0]);
    const [h, w] = v.shape.slice(-2);
    const [oh, ow] = pair(a[1], 1);
    if (oh === 1 && ow === 1) return [g.one(kind === 'avg' ? 'GlobalAveragePool' : 'GlobalMaxPool', [v.name]), null];
    if (h % oh === 0 && w % ow === 0) {
      const k = [h / oh, w / ow];
      return [g.one(kind === 'avg' ? 'AveragePool' : 'MaxPool', [v.name], { kernel_shape: k, strides: k }), null];
    }
    const reduce = kind === 'avg' ? 'ReduceMean' : 'ReduceMax';
    let y = v.name;
    for (const [axis, size, out] of [[2, h, oh], [3, w, ow]]) {
      if (size === out) continue;
      const bins = Array.from({ length: out }, (_, i) => {
        const [s, e] = [Math.floor((i * size) / out), Math.floor(((i + 1) * size + out - 1) / out)];
        const slice = g.one('Slice', [y, g.ints([s]), g.ints([e]), g.ints([axis])]);
        return g.one(reduce, [slice], { axes: [axis], keepdims: 1 });
      });
      y = g.one('Concat', bins, { axis });
    }
    return [y, null];
  };
}

/**
 * ATen's pooling indices count within each (n, c) plane; ONNX's count over the whole N·C·H·W tensor
 * (MaxPool's second output, MaxUnpool's input). Plane p's offset is p·H·W.
 */
function planeOffsets(g: Tracer, indices: string, channels: number, planeSize: number): string {
  const nc = g.one('ReduceProd', [g.leadingDims(indices)], { keepdims: 0 });
  const planes = g.one('Range', [g.scalar(0, 'int64'), nc, g.scalar(1, 'int64')]);
  const byPlane = g.one('Reshape', [planes, g.ints([-1, channels, 1, 1])]);
  return g.one('Mul', [byPlane, g.scalar(planeSize, 'int64')]);
}

function resize(g: Tracer, a: NativeArg[], mode: 'linear' | 'nearest', alignCorners: boolean, scales: NativeArg): string {
  const x = g.x(a[0]);
  const size = list(a[1]);
  const attrs: Record<string, AttributeValue> =
    mode === 'linear'
      ? { mode, coordinate_transformation_mode: alignCorners ? 'align_corners' : 'half_pixel' }
      : { mode, coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' };
  if (size.length === 2) {
    // Sizes, not scales: ATen maps coordinates by in/out, as Resize does from sizes; N and C come from the input.
    const sizes = g.one('Concat', [g.leadingDims(x), g.ints(size)], { axis: 0 });
    return g.one('Resize', [x, '', '', sizes], attrs);
  }
  const s = pair(scales, 1);
  return g.one('Resize', [x, '', g.constant('float32', [4], [1, 1, s[0], s[1]])], attrs);
}

function reduce(opType: 'ReduceMean' | 'ReduceSum' | 'ReduceMax'): Handler {
  return (g, a) => {
    const v = g.value(a[0]);
    const dims = list(a[1]);
    const keepdims = a[2] === true ? 1 : 0;
    if (g.dynamicBatch && v.batch && keepdims === 0 && (dims.length === 0 || dims.some((d) => d === 0 || d === -v.shape.length))) {
      g.fail('reduces over the batch dimension; export with a fixed batch');
    }
    if (opType === 'ReduceSum') return g.one(opType, dims.length ? [v.name, g.ints(dims)] : [v.name], { keepdims });
    return g.one(opType, [v.name], dims.length ? { axes: dims, keepdims } : { keepdims });
  };
}

/** Whole-tensor reductions (aten::mean, aten::sum with no dims). */
function reduceAll(opType: 'ReduceMean' | 'ReduceSum' | 'ReduceMax'): Handler {
  return (g, a) => {
    const v = g.value(a[0]);
    if (g.dynamicBatch && v.batch) g.fail('reduces over the batch dimension; export with a fixed batch');
    return g.one(opType, [v.name], { keepdims: 0 });
  };
}

function pad(g: Tracer, x: Value, torchPads: number[], mode: string, value?: string): string {
  const r = x.shape.length;
  const begin = new Array<number>(r).fill(0);
  const end = new Array<number>(r).fill(0);
  for (let i = 0; i < torchPads.length / 2; i++) {
    begin[r - 1 - i] = torchPads[2 * i];
    end[r - 1 - i] = torchPads[2 * i + 1];
  }
  return g.one('Pad', [x.name, g.ints([...begin, ...end]), ...(value ? [value] : [])], { mode });
}

const slice = (g: Tracer, a: NativeArg, dim: number, start: number, end: number, step = 1): string =>
  g.one('Slice', [g.x(a), g.ints([start]), g.ints([end]), g.ints([dim]), g.ints([step])]);

/** The ATen ops tsvision's networks emit, by schema name (in-place forms map through their plain name). */
const HANDLERS: Record<string, Handler> = {
  'aten::conv2d': conv,
  'aten::conv2d.padding': conv,
  'aten::conv_transpose2d.input': convTranspose,
  'aten::linear': (g, a) => {
    const [x, w] = [g.value(a[0]), g.value(a[1])];
    const b = isHandle(a[2]) ? g.x(a[2]) : null;
    if (x.shape.length === 2) return g.one('Gemm', [x.name, w.name, ...(b ? [b] : [])], { transB: 1 });
    const y = g.one('MatMul', [x.name, g.one('Transpose', [w.name], { perm: [1, 0] })]);
    return b ? g.one('Add', [y, b]) : y;
  },
  'aten::matmul': (g, a) => g.one('MatMul', [g.x(a[0]), g.x(a[1])]),
  'aten::mm': (g, a) => g.one('MatMul', [g.x(a[0]), g.x(a[1])]),
  'aten::bmm': (g, a) => g.one('MatMul', [g.x(a[0]), g.x(a[1])]),
  'aten::addmm': (g, a) => g.one('Gemm', [g.x(a[1]), g.x(a[2]), g.x(a[0])], { beta: { float: num(a[3], 1) }, alpha: { float: num(a[4], 1) } }),
  'aten::batch_norm': (g, a) => {
    if (a[5] === true) g.fail('batch statistics (training mode, or a BatchNorm without running statistics) cannot be exported');
    const x = g.value(a[0]);
    const c = x.shape[1];
    const scale = isHandle(a[1]) ? g.x(a[1]) : g.constant(x.dtype, [c], new Array<number>(c).fill(1));
    const bias = isHandle(a[2]) ? g.x(a[2]) : g.constant(x.dtype, [c], new Array<number>(c).fill(0));
    return g.one('BatchNormalization', [x.name, scale, bias, g.x(a[3]), g.x(a[4])], { epsilon: { float: num(a[7], 1e-5) } });
  },
  'aten::relu': unary('Relu'),
  'aten::sigmoid': unary('Sigmoid'),
  'aten::tanh': unary('Tanh'),
  'aten::exp': unary('Exp'),
  'aten::log': unary('Log'),
  'aten::sqrt': unary('Sqrt'),
  'aten::neg': unary('Neg'),
  'aten::abs': unary('Abs'),
  'aten::reciprocal': unary('Reciprocal'),
  'aten::floor': unary('Floor'),
  'aten::ceil': unary('Ceil'),
  'aten::rsqrt': (g, a) => g.one('Reciprocal', [g.one('Sqrt', [g.x(a[0])])]),
  'aten::hardtanh': (g, a) => {
    const v = g.value(a[0]);
    return g.one('Clip', [v.name, g.scalar(num(a[1], -1), v.dtype), g.scalar(num(a[2], 1), v.dtype)]);
  },
  'aten::clamp': (g, a) => {
    const v = g.value(a[0]);
    const bound = (b: NativeArg): string => (typeof b === 'number' ? g.scalar(b, v.dtype) : '');
    return g.one('Clip', [v.name, bound(a[1]), bound(a[2])]);
  },
  'aten::prelu': (g, a) => {
    const [x, w] = [g.value(a[0]), g.value(a[1])];
    // One slope per channel broadcasts along dimension 1: [C] → [C, 1, 1] for images.
    const slope = w.shape.reduce((p, d) => p * d, 1) === 1 || x.shape.length < 3 ? w.name : g.one('Reshape', [w.name, g.ints([-1, ...new Array<number>(x.shape.length - 2).fill(1)])]);
    return g.one('PRelu', [x.name, slope]);
  },
  'aten::leaky_relu': (g, a) => g.one('LeakyRelu', [g.x(a[0])], { alpha: { float: num(a[1], 0.01) } }),
  'aten::softmax.int': (g, a) => g.one('Softmax', [g.x(a[0])], { axis: num(a[1], -1) }),
  'aten::log_softmax.int': (g, a) => g.one('LogSoftmax', [g.x(a[0])], { axis: num(a[1], -1) }),
  'aten::add.Tensor': binary('Add'),
  'aten::add.Scalar': binary('Add'),
  'aten::sub.Tensor': binary('Sub'),
  'aten::sub.Scalar': binary('Sub'),
  'aten::mul.Tensor': binary('Mul'),
  'aten::mul.Scalar': binary('Mul'),
  'aten::div.Tensor': binary('Div'),
  'aten::div.Scalar': binary('Div'),
  'aten::pow.Tensor_Scalar': binary('Pow'),
  'aten::maximum': binary('Max'),
  'aten::minimum': binary('Min'),
  'aten::cat': (g, a) => g.one('Concat', (a[0] as NativeArg[]).map((t) => g.x(t)), { axis: num(a[1], 0) }),
  'aten::view': reshape,
  'aten::reshape': reshape,
  'aten::_unsafe_view': reshape,
  'aten::flatten.using_ints': reshape,
  'aten::unsqueeze': reshape,
  'aten::squeeze': reshape,
  'aten::squeeze.dim': reshape,
  'aten::permute': (g, a) => transpose(g, g.value(a[0]), list(a[1])),
  'aten::transpose.int': (g, a) => {
    const v = g.value(a[0]);
    const perm = v.shape.map((_, i) => i);
    const [d0, d1] = [num(a[1], 0), num(a[2], 1)].map((d) => (d < 0 ? d + v.shape.length : d));
    [perm[d0], perm[d1]] = [perm[d1], perm[d0]];
    return transpose(g, v, perm);
  },
  'aten::t': (g, a) => transpose(g, g.value(a[0]), [1, 0]),
  'aten::contiguous': identity,
  'aten::clone': identity,
  'aten::detach': identity,
  'aten::alias': identity,
  'aten::dropout': noTraining('dropout'),
  'aten::feature_dropout': noTraining('dropout2d'),
  'aten::alpha_dropout': noTraining('alpha dropout'),
  'aten::to.dtype_layout': castToResult,
  'aten::to.dtype': castToResult,
  'aten::_to_copy': castToResult,
  'aten::argmax': (g, a, outs) => {
    const v = g.value(a[0]);
    const [dim, keepdims] = [a[1], a[2] === true ? 1 : 0];
    // ONNX's ArgMax yields int64 as ATen's does; select_last_index 0 keeps ATen's first index among ties.
    if (typeof dim !== 'number') {
      if (g.dynamicBatch && v.batch) g.fail('argmax over the whole tensor mixes the batch; export with a fixed batch');
      const flat = g.one('ArgMax', [g.one('Reshape', [v.name, g.ints([-1])])], { axis: 0, keepdims: 0, select_last_index: 0 });
      return keepdims ? g.one('Reshape', [flat, g.ints(shapeOf(outs[0]))]) : flat;
    }
    const axis = dim < 0 ? dim + v.shape.length : dim;
    if (g.dynamicBatch && v.batch && axis === 0) g.fail('argmax over the batch dimension; export with a fixed batch');
    return g.one('ArgMax', [v.name], { axis, keepdims, select_last_index: 0 });
  },
  'aten::max_pool2d': (g, a) => pool('MaxPool', g, a)[0],
  'aten::max_pool2d_with_indices': (g, a) => {
    const v = g.value(a[0]);
    const [y, flat] = pool('MaxPool', g, a, 2);
    // Back to ATen's per-plane indices: the remainder modulo the input plane's size.
    const [h, w] = v.shape.slice(-2);
    return [y, g.one('Mod', [flat, g.scalar(h * w, 'int64')])];
  },
  'aten::max_unpool2d': (g, a) => {
    const [x, idx] = [g.value(a[0]), g.value(a[1])];
    const [oh, ow] = pair(a[2], 1);
    const [h, w] = x.shape.slice(-2);
    // MaxUnpool requires a kernel; the explicit output shape decides the size, so stride = kernel = ratio.
    const k = [Math.max(1, Math.floor(oh / h)), Math.max(1, Math.floor(ow / w))];
    const flat = g.one('Add', [idx.name, planeOffsets(g, idx.name, idx.shape[1], oh * ow)]);
    const outShape = g.one('Concat', [g.leadingDims(x.name), g.ints([oh, ow])], { axis: 0 });
    return g.one('MaxUnpool', [x.name, flat, outShape], { kernel_shape: k, strides: k });
  },
  'aten::avg_pool2d': (g, a) => pool('AveragePool', g, a)[0],
  'aten::adaptive_avg_pool2d': (g, a, outs) => adaptive('avg')(g, a, outs)[0] as string,
  'aten::adaptive_max_pool2d': adaptive('max'),
  'aten::upsample_bilinear2d.vec': (g, a) => resize(g, a, 'linear', a[2] === true, a[3]),
  'aten::upsample_nearest2d.vec': (g, a) => resize(g, a, 'nearest', false, a[2]),
  'aten::mean.dim': reduce('ReduceMean'),
  'aten::sum.dim_IntList': reduce('ReduceSum'),
  'aten::mean': reduceAll('ReduceMean'),
  'aten::sum': reduceAll('ReduceSum'),
  'aten::constant_pad_nd': (g, a) => {
    const v = g.value(a[0]);
    return pad(g, v, list(a[1]), 'constant', g.scalar(num(a[2], 0), v.dtype));
  },
  'aten::reflection_pad2d': (g, a) => pad(g, g.value(a[0]), list(a[1]), 'reflect'),
  'aten::replication_pad2d': (g, a) => pad(g, g.value(a[0]), list(a[1]), 'edge'),
  'aten::narrow': (g, a) => slice(g, a[0], num(a[1], 0), num(a[2], 0), num(a[2], 0) + num(a[3], 0)),
  'aten::slice.Tensor': (g, a) =>
    slice(g, a[0], num(a[1], 0), num(a[2], 0), typeof a[3] === 'number' ? a[3] : Number.MAX_SAFE_INTEGER, num(a[4], 1)),
  'aten::select.int': (g, a) => g.one('Gather', [g.x(a[0]), g.scalar(num(a[2], 0), 'int64')], { axis: num(a[1], 0) }),
  'aten::expand': (g, a) => {
    const v = g.value(a[0]);
    // -1 keeps a dimension; so does 1 under ONNX's broadcasting, which also keeps a symbolic batch.
    const sizes = list(a[1]).map((s, i) => (s === -1 || (i === 0 && v.batch && g.dynamicBatch) ? 1 : s));
    return g.one('Expand', [v.name, g.ints(sizes)]);
  },
  'aten::expand_as': (g, a) => g.one('Expand', [g.x(a[0]), g.one('Shape', [g.x(a[1])])]),
};
