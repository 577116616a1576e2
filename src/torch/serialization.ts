// safetensors: the weight format PyTorch users exchange. 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets}, __metadata__: {string: string}}, then the raw little-endian bytes.
import * as fs from 'node:fs';
import { writeFileAtomic } from '../util/fs';
import { fromArray } from './creation';
import { DType, Tensor, typedArrayFor } from './tensor';
import { native } from './native';

const CODES: Record<DType, string> = {
  float32: 'F32', float64: 'F64', float16: 'F16', bfloat16: 'BF16', int64: 'I64', int32: 'I32', int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};
const FROM_CODE: Record<string, DType> = Object.fromEntries(Object.entries(CODES).map(([k, v]) => [v, k as DType]));

export type Metadata = Record<string, string>;

/** Serializes named tensors (any device; copied to host) with optional string metadata. */
export function encodeSafetensors(tensors: Record<string, Tensor>, metadata: Metadata = {}): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of Object.keys(tensors).sort()) {
    const t = tensors[name];
    const bytes = new Uint8Array(native.toBytes(t.h));
    header[name] = { dtype: CODES[t.dtype], shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return [head, Buffer.from(json, 'utf8'), ...chunks];
}

export function saveSafetensors(file: string, tensors: Record<string, Tensor>, metadata: Metadata = {}): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}

export interface Loaded {
  tensors: Record<string, Tensor>;
  metadata: Metadata;
}

/** Parses a safetensors buffer; `source` names the file in errors. */
export function decodeSafetensors(buf: Uint8Array, source = 'buffer'): Loaded {
  const bad = (why: string): never => {
    throw new Error(`${source}: not a valid safetensors file (${why})`);
  };
  if (buf.length < 8) bad('shorter than its 8-byte header length');
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(view.readBigUInt64LE(0));
  if (n > buf.length - 8) bad(`header length ${n} exceeds the file size ${buf.length}`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(view.subarray(8, 8 + n).toString('utf8'));
  } catch {
    return bad('header is not JSON');
  }
  const base = 8 + n;
  const tensors: Record<string, Tensor> = {};
  let metadata: Metadata = {};
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = e as unknown as Metadata;
      continue;
    }
    const dtype = FROM_CODE[e.dtype] ?? bad(`tensor '${name}' has unsupported dtype ${e.dtype}`);
    const [begin, end] = e.data_offsets;
    if (!(begin >= 0 && end >= begin && base + end <= buf.length)) bad(`tensor '${name}' data lies outside the file (truncated?)`);
    const numel = e.shape.reduce((a, b) => a * b, 1);
    const bytes = view.subarray(base + begin, base + end);
    // Copy into an aligned buffer: typed arrays need element alignment, file offsets need not have it.
    const aligned = new ArrayBuffer(bytes.length);
    new Uint8Array(aligned).set(bytes);
    const arr = typedArrayFor(dtype, aligned);
    if (arr.length !== numel) bad(`tensor '${name}' has ${arr.length} elements, shape [${e.shape}] needs ${numel}`);
    tensors[name] = fromArray(arr, e.shape, { dtype });
  }
  return { tensors, metadata };
}

/**
 * A file's string metadata alone: reads the 8-byte length and the JSON header, none of the tensor bytes (a
 * run's record without loading its weights).
 */
export function readSafetensorsMetadata(file: string): Metadata {
  if (!fs.existsSync(file)) throw new Error(`${file}: no such file`);
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(8);
    if (fs.readSync(fd, head, 0, 8, 0) < 8) throw new Error(`${file}: not a valid safetensors file (shorter than its 8-byte header length)`);
    const n = Number(head.readBigUInt64LE(0));
    const size = fs.fstatSync(fd).size;
    if (n > size - 8) throw new Error(`${file}: not a valid safetensors file (header length ${n} exceeds the file size ${size})`);
    const json = Buffer.alloc(n);
    fs.readSync(fd, json, 0, n, 8);
    try {
      return ((JSON.parse(json.toString('utf8')) as { __metadata__?: Metadata }).__metadata__ ?? {});
    } catch {
      throw new Error(`${file}: not a valid safetensors file (header is not JSON)`);
    }
  } finally {
    fs.closeSync(fd);
  }
}

export function loadSafetensors(file: string): Loaded {
  if (!fs.existsSync(file)) throw new Error(`${file}: no such file`);
  return decodeSafetensors(fs.readFileSync(file), file);
}
