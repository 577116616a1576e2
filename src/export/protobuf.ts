// A small protobuf encoder for the part of onnx.proto an exported inference graph needs (ModelProto,
// GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto). Writing it ourselves keeps the
// export free of a protobuf dependency; the wire format is a handful of rules. Field numbers are onnx.proto's
// (github.com/onnx/onnx/blob/main/onnx/onnx.proto). Repeated numbers are written unpacked: onnx.proto is
// proto2, and every parser accepts that form.

/** TensorProto.DataType. */
export const OnnxType = { float: 1, uint8: 2, int8: 3, int16: 5, int32: 6, int64: 7, bool: 9, float16: 10, double: 11, bfloat16: 16 } as const;
export type OnnxTypeName = keyof typeof OnnxType;

export interface TensorProto {
  name: string;
  dims: readonly number[];
  dataType: OnnxTypeName;
  /** Little-endian element bytes (TensorProto.raw_data). */
  raw: Uint8Array;
}

export type AttributeValue = number | string | readonly number[] | TensorProto | { float: number } | { floats: readonly number[] } | { int: number };

export interface NodeProto {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  /** Whole numbers become INT attributes and others FLOAT; { float }, { int } and { floats } say which. */
  attributes?: Record<string, AttributeValue>;
}

/** A dimension: a size, or a name for a size chosen at run time ('batch'). */
export type Dim = number | string;

export interface ValueInfoProto {
  name: string;
  elemType: OnnxTypeName;
  shape: readonly Dim[];
  /** The shape is not known (no shape field is written; `shape` is ignored): intermediates added as outputs. */
  shapeUnknown?: boolean;
}

export interface GraphProto {
  name: string;
  nodes: readonly NodeProto[];
  initializers: readonly TensorProto[];
  inputs: readonly ValueInfoProto[];
  outputs: readonly ValueInfoProto[];
}

export interface ModelProto {
  irVersion: number;
  opsetVersion: number;
  producerName: string;
  producerVersion: string;
  docString?: string;
  graph: GraphProto;
  /** ModelProto.metadata_props: free-form key/value strings that travel with the file. */
  metadata?: Record<string, string>;
}

// ---- wire format ---------------------------------------------------------------------------------------

const VARINT = 0;
const FIXED32 = 5;
const BYTES = 2;

/** Collects bytes in chunks so that large initializers are copied once, when the file is assembled. */
class Writer {
  readonly chunks: Uint8Array[] = [];
  length = 0;
  private scratch: number[] = [];

  private flush(): void {
    if (this.scratch.length) {
      this.push(Uint8Array.from(this.scratch));
      this.scratch = [];
    }
  }

  private push(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }

  varint(v: number | bigint): void {
    // int64 fields: negative values are their 64-bit two's complement (ten bytes), as protobuf specifies.
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.scratch.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.scratch.push(Number(x));
  }

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, v: number | bigint): void {
    this.tag(field, VARINT);
    this.varint(v);
  }

  float(field: number, v: number): void {
    this.tag(field, FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.scratch.push(...b);
  }

  bytes(field: number, b: Uint8Array): void {
    this.tag(field, BYTES);
    this.varint(b.length);
    this.flush();
    this.push(b);
  }

  string(field: number, s: string): void {
    this.bytes(field, new TextEncoder().encode(s));
  }

  message(field: number, write: (w: Writer) => void): void {
    const inner = new Writer();
    write(inner);
    inner.flush();
    this.tag(field, BYTES);
    this.varint(inner.length);
    this.flush();
    for (const c of inner.chunks) this.push(c);
  }

  finish(): Uint8Array[] {
    this.flush();
    return this.chunks;
  }
}

// ---- ONNX messages -------------------------------------------------------------------------------------

function writeTensor(w: Writer, t: TensorProto): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, OnnxType[t.dataType]);
  w.string(8, t.name);
  w.bytes(9, t.raw);
}

// AttributeProto.AttributeType
const ATTR = { float: 1, int: 2, string: 3, tensor: 4, floats: 6, ints: 7 } as const;

function writeAttribute(w: Writer, name: string, v: AttributeValue): void {
  w.string(1, name);
  if (typeof v === 'number') {
    if (Number.isInteger(v)) {
      w.int(3, v);
      w.int(20, ATTR.int);
    } else {
      w.float(2, v);
      w.int(20, ATTR.float);
    }
  } else if (typeof v === 'string') {
    w.string(4, v);
    w.int(20, ATTR.string);
  } else if (isNumberList(v)) {
    for (const x of v) w.int(8, x);
    w.int(20, ATTR.ints);
  } else if ('floats' in v) {
    for (const x of v.floats) w.float(7, x);
    w.int(20, ATTR.floats);
  } else if ('float' in v) {
    w.float(2, v.float);
    w.int(20, ATTR.float);
  } else if ('int' in v) {
    w.int(3, v.int);
    w.int(20, ATTR.int);
  } else {
    w.message(5, (m) => writeTensor(m, v));
    w.int(20, ATTR.tensor);
  }
}

function isNumberList(v: AttributeValue): v is readonly number[] {
  return Array.isArray(v);
}

function writeNode(w: Writer, n: NodeProto): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name) w.string(3, n.name);
  w.string(4, n.opType);
  for (const [k, v] of Object.entries(n.attributes ?? {})) w.message(5, (m) => writeAttribute(m, k, v));
}

function writeValueInfo(w: Writer, v: ValueInfoProto): void {
  w.string(1, v.name);
  // TypeProto.tensor_type → TypeProto.Tensor { elem_type, shape { dim { dim_value | dim_param } } }
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, OnnxType[v.elemType]);
      if (!v.shapeUnknown) tensor.message(2, (shape) => {
        for (const d of v.shape) shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
      });
    }),
  );
}

function writeGraph(w: Writer, g: GraphProto): void {
  for (const n of g.nodes) w.message(1, (m) => writeNode(m, n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, (m) => writeTensor(m, t));
  for (const v of g.inputs) w.message(11, (m) => writeValueInfo(m, v));
  for (const v of g.outputs) w.message(12, (m) => writeValueInfo(m, v));
}

/** The serialized model as chunks (write them in order; a large model is not copied into one buffer). */
export function encodeModel(m: ModelProto): Uint8Array[] {
  const w = new Writer();
  w.int(1, m.irVersion);
  w.string(2, m.producerName);
  w.string(3, m.producerVersion);
  if (m.docString) w.string(6, m.docString);
  w.message(7, (g) => writeGraph(g, m.graph));
  w.message(8, (o) => {
    o.string(1, '');
    o.int(2, m.opsetVersion);
  });
  for (const [key, value] of Object.entries(m.metadata ?? {})) {
    w.message(14, (e) => {
      e.string(1, key);
      e.string(2, value);
    });
  }
  return w.finish();
}

/** The serialized model in one buffer (for in-memory sessions). */
export function concatChunks(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
