// The IDX format of (Fashion-)MNIST: a big-endian header (two zero bytes, a type code, the number of
// dimensions, then one uint32 per dimension) followed by the elements. Files may be gzipped. Every check
// names the file, because "unexpected end of file" from zlib alone does not say which of four files broke.
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { Tensor, fromArray } from '../torch';

/** IDX type code for unsigned bytes, the only element type (Fashion-)MNIST uses. */
const UBYTE = 0x08;
export const IDX_IMAGES_MAGIC = 0x00000803;
export const IDX_LABELS_MAGIC = 0x00000801;

export interface IdxArray {
  /** Sizes as declared in the header. */
  dims: number[];
  /** The elements (a view into the decompressed file, no copy). */
  data: Uint8Array;
}

/** Reads the bytes of a file, gunzipping when it starts with the gzip signature. */
function readMaybeGzip(file: string): Buffer {
  let raw: Buffer;
  try {
    raw = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`IDX file ${file}: cannot read it (${(e as Error).message})`);
  }
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return zlib.gunzipSync(raw);
    } catch (e) {
      throw new Error(`IDX file ${file}: corrupt or truncated gzip data (${(e as Error).message})`);
    }
  }
  return raw;
}

/** Parses an IDX file of unsigned bytes with the expected number of dimensions. */
export function readIdx(file: string, expectedDims: number): IdxArray {
  const buf = readMaybeGzip(file);
  if (buf.length < 4) throw new Error(`IDX file ${file}: only ${buf.length} bytes, too short for the 4-byte magic number`);
  const magic = buf.readUInt32BE(0);
  const expectedMagic = (UBYTE << 8) | expectedDims;
  if (magic !== expectedMagic) {
    const hex = (v: number): string => `0x${v.toString(16).padStart(8, '0')}`;
    throw new Error(`IDX file ${file}: wrong magic number ${hex(magic)}, expected ${hex(expectedMagic)} (unsigned bytes, ${expectedDims} dimension${expectedDims > 1 ? 's' : ''})`);
  }
  const headerBytes = 4 + 4 * expectedDims;
  if (buf.length < headerBytes) throw new Error(`IDX file ${file}: header needs ${headerBytes} bytes, file has ${buf.length}`);
  const dims: number[] = [];
  for (let d = 0; d < expectedDims; d++) dims.push(buf.readUInt32BE(4 + 4 * d));
  const declared = dims.reduce((a, b) => a * b, 1);
  const actual = buf.length - headerBytes;
  if (actual !== declared) {
    const what = actual < declared ? 'truncated' : 'has trailing bytes';
    throw new Error(`IDX file ${file}: ${what}: header declares [${dims.join(', ')}] = ${declared} bytes of data, file has ${actual}`);
  }
  return { dims, data: buf.subarray(headerBytes) };
}

/** Images as a uint8 tensor [N, 1, H, W] (one copy, from the decompressed buffer into libtorch). */
export function readIdxImages(file: string): Tensor {
  const { dims, data } = readIdx(file, 3);
  const [n, h, w] = dims;
  return fromArray(data, [n, 1, h, w]);
}

/** Labels as an int64 tensor [N]; the widening from bytes happens in libtorch. */
export function readIdxLabels(file: string): Tensor {
  const { dims, data } = readIdx(file, 1);
  const bytes = fromArray(data, [dims[0]]);
  const labels = bytes.to('int64');
  bytes.dispose();
  return labels;
}
