// Making tensors: from JavaScript data, and PyTorch's factories (zeros, randn, arange, ...).
import { native } from './native';
import { op } from './ops';
import { AnyTypedArray, DType, Device, Shape, Tensor, wrap } from './tensor';

export interface FactoryOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

function finish(t: Tensor, o: FactoryOptions): Tensor {
  if (o.requiresGrad) t.requiresGrad_(true);
  return t;
}

const shapeOf = (shape: Shape | number): number[] => (typeof shape === 'number' ? [shape] : [...shape]);

export function zeros(shape: Shape | number, o: FactoryOptions = {}): Tensor {
  return finish(wrap(op('aten::zeros').handle(shapeOf(shape), o.dtype ?? 'float32', undefined, o.device)), o);
}
export function ones(shape: Shape | number, o: FactoryOptions = {}): Tensor {
  return finish(wrap(op('aten::ones').handle(shapeOf(shape), o.dtype ?? 'float32', undefined, o.device)), o);
}
export function empty(shape: Shape | number, o: FactoryOptions = {}): Tensor {
  return finish(wrap(op('aten::empty.memory_format').handle(shapeOf(shape), o.dtype ?? 'float32', undefined, o.device)), o);
}
export function full(shape: Shape | number, value: number, o: FactoryOptions = {}): Tensor {
  return finish(wrap(op('aten::full').handle(shapeOf(shape), value, o.dtype ?? 'float32', undefined, o.device)), o);
}
/** Uniform on [0, 1), from the generator seeded by manualSeed. */
export function rand(shape: Shape | number, o: FactoryOptions = {}): Tensor {
  return finish(wrap(op('aten::rand').handle(shapeOf(shape), o.dtype ?? 'float32', undefined, o.device)), o);
}
/** Standard normal, from the generator seeded by manualSeed. */
export function randn(shape: Shape | number, o: FactoryOptions = {}): Tensor {
  return finish(wrap(op('aten::randn').handle(shapeOf(shape), o.dtype ?? 'float32', undefined, o.device)), o);
}
/** Integers uniform on [low, high). */
export function randint(low: number, high: number, shape: Shape | number, o: FactoryOptions = {}): Tensor {
  return wrap(op('aten::randint.low').handle(low, high, shapeOf(shape), o.dtype ?? 'int64', undefined, o.device));
}
export function randperm(n: number, o: FactoryOptions = {}): Tensor {
  return wrap(op('aten::randperm').handle(n, o.dtype ?? 'int64', undefined, o.device));
}
/** arange(end) or arange(start, end, step); integers give int64 unless a dtype is named, as in PyTorch. */
export function arange(start: number, end?: number, step = 1, o: FactoryOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  return wrap(op('aten::arange.start_step').handle(start, end, step, o.dtype, undefined, o.device));
}
export function linspace(start: number, end: number, steps: number, o: FactoryOptions = {}): Tensor {
  return wrap(op('aten::linspace').handle(start, end, steps, o.dtype ?? 'float32', undefined, o.device));
}
export function eye(n: number, o: FactoryOptions = {}): Tensor {
  return wrap(op('aten::eye').handle(n, o.dtype ?? 'float32', undefined, o.device));
}
export function zerosLike(t: Tensor, o: FactoryOptions = {}): Tensor {
  return wrap(op('aten::zeros_like').handle(t.h, o.dtype, undefined, o.device));
}
export function onesLike(t: Tensor, o: FactoryOptions = {}): Tensor {
  return wrap(op('aten::ones_like').handle(t.h, o.dtype, undefined, o.device));
}
export function fullLike(t: Tensor, value: number, o: FactoryOptions = {}): Tensor {
  return wrap(op('aten::full_like').handle(t.h, value, o.dtype, undefined, o.device));
}
export function randLike(t: Tensor): Tensor {
  return wrap(op('aten::rand_like').handle(t.h));
}
export function randnLike(t: Tensor): Tensor {
  return wrap(op('aten::randn_like').handle(t.h));
}

const arrayDtype = (a: AnyTypedArray): DType =>
  a instanceof Float32Array ? 'float32'
  : a instanceof Float64Array ? 'float64'
  : a instanceof BigInt64Array ? 'int64'
  : a instanceof Int32Array ? 'int32'
  : a instanceof Int16Array ? 'int16'
  : a instanceof Int8Array ? 'int8'
  : a instanceof Uint16Array ? 'float16'
  : 'uint8';

/** A tensor that copies a typed array. The dtype follows the array unless given (Uint16Array = float16 bits). */
export function fromArray(data: AnyTypedArray, shape?: Shape, o: FactoryOptions = {}): Tensor {
  const dtype = o.dtype ?? arrayDtype(data);
  return finish(wrap(native.fromBytes(data, shape ? [...shape] : [data.length], dtype, o.device)), o);
}

export type NestedNumbers = number | boolean | NestedNumbers[];

/** torch.tensor: nested arrays of numbers; dtype inferred as PyTorch does (bool, int64, else float32). */
export function tensor(data: NestedNumbers, o: FactoryOptions = {}): Tensor {
  const shape: number[] = [];
  let probe: NestedNumbers = data;
  while (Array.isArray(probe)) {
    shape.push(probe.length);
    probe = probe[0];
  }
  const flat = (Array.isArray(data) ? (data as unknown[]).flat(Infinity) : [data]) as (number | boolean)[];
  const expected = shape.reduce((a, b) => a * b, 1);
  if (flat.length !== expected) throw new Error(`tensor(): ragged nested array (shape [${shape}] needs ${expected} values, got ${flat.length})`);
  const dtype = o.dtype ?? (flat.every((v) => typeof v === 'boolean') && flat.length ? 'bool' : flat.every((v) => Number.isInteger(v)) && flat.length ? 'int64' : 'float32');
  let arr: AnyTypedArray;
  const nums = flat.map(Number);
  switch (dtype) {
    case 'float64': arr = Float64Array.from(nums); break;
    case 'int64': arr = BigInt64Array.from(nums.map((v) => BigInt(Math.trunc(v)))); break;
    case 'int32': arr = Int32Array.from(nums); break;
    case 'int16': arr = Int16Array.from(nums); break;
    case 'int8': arr = Int8Array.from(nums); break;
    case 'uint8': case 'bool': arr = Uint8Array.from(nums); break;
    default: {
      // float16/bfloat16 go through float32 and a libtorch cast.
      const t = fromArray(Float32Array.from(nums), shape, { device: o.device });
      const c = dtype === 'float32' ? t : t.to(dtype);
      return finish(c, o);
    }
  }
  return finish(wrap(native.fromBytes(arr, shape, dtype, o.device)), o);
}
