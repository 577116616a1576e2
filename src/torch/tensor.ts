// The Tensor class: a typed, scope-managed face over one libtorch tensor. Method names are PyTorch's in
// camelCase; keyword arguments become option objects. No element math happens in JavaScript.
import { Handle, NativeArg, NativeResult, native } from './native';
import { Tracked, keep as keepValue, track } from './memory';
import { op } from './ops';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';
export const DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'];
/** 'cpu', 'cuda' or 'cuda:N'. */
export type Device = string;
export type Shape = readonly number[];

export type TypedArrayFor<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'float64'
    ? Float64Array
    : D extends 'int64'
      ? BigInt64Array
      : D extends 'int32'
        ? Int32Array
        : D extends 'int16'
          ? Int16Array
          : D extends 'int8'
            ? Int8Array
            : D extends 'float16' | 'bfloat16'
              ? Uint16Array
              : Uint8Array;
export type AnyTypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint16Array | Uint8Array;

export function typedArrayFor(dtype: DType, buf: ArrayBuffer): AnyTypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(buf);
    case 'float64': return new Float64Array(buf);
    case 'int64': return new BigInt64Array(buf);
    case 'int32': return new Int32Array(buf);
    case 'int16': return new Int16Array(buf);
    case 'int8': return new Int8Array(buf);
    case 'float16':
    case 'bfloat16': return new Uint16Array(buf);
    default: return new Uint8Array(buf);
  }
}

export const isFloating = (d: DType): boolean => d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';
/** bfloat16 or float16: the dtypes autocast computes in, whose sums and differences ATen works in float32. */
export const isHalfFloat = (d: DType): boolean => d === 'float16' || d === 'bfloat16';

/** A tensor or a plain number where PyTorch accepts a Scalar. */
export type TensorOrScalar = Tensor | number;

export interface SumOptions {
  keepdim?: boolean;
  dtype?: DType;
}

// The safety net for tensors no scope owns: when such a Tensor is garbage-collected, its handle is freed.
const collector = new FinalizationRegistry<Handle>((h) => native.free(h));

export class Tensor implements Tracked {
  private h_: Handle | null;
  private meta_: [number[], string, string, boolean] | null = null;
  private registered = false;
  kept = false;

  constructor(h: Handle) {
    this.h_ = h;
    track(this);
  }

  /** The native handle; throws a clear error after dispose(). */
  get h(): Handle {
    if (this.h_ === null) throw new Error('Tensor used after dispose()');
    return this.h_;
  }

  get isDisposed(): boolean {
    return this.h_ === null;
  }

  /** Releases this reference to the storage now (views and autograd may still hold others). */
  dispose(): void {
    if (this.h_ !== null) {
      native.free(this.h_);
      this.h_ = null;
      if (this.registered) collector.unregister(this);
    }
  }

  unscoped(): void {
    if (!this.registered && this.h_ !== null) {
      this.registered = true;
      collector.register(this, this.h_, this);
      native.gcOwned(this.h_);
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Survive enclosing tidy()/scope(): freed only by dispose() or the garbage collector. */
  keep(): this {
    return keepValue(this);
  }

  private meta(): [number[], string, string, boolean] {
    // Shape, dtype and device never change for a handle (we expose no in-place resize), so read them once.
    return this.meta_ ?? (this.meta_ = native.meta(this.h));
  }

  get shape(): number[] {
    return this.meta()[0].slice();
  }
  get dtype(): DType {
    return this.meta()[1] as DType;
  }
  get device(): Device {
    return this.meta()[2];
  }
  get ndim(): number {
    return this.meta()[0].length;
  }
  dim(): number {
    return this.ndim;
  }
  size(d: number): number {
    const s = this.meta()[0];
    const i = d < 0 ? d + s.length : d;
    if (i < 0 || i >= s.length) throw new RangeError(`size(${d}): tensor has ${s.length} dimensions`);
    return s[i];
  }
  numel(): number {
    return this.meta()[0].reduce((a, b) => a * b, 1);
  }
  /** The address of the first element, as PyTorch's `data_ptr()`: whether two tensors share memory, or which
   * block the allocator handed out. Views report their offset address. */
  dataPtr(): bigint {
    return native.dataPtr(this.h);
  }

  // ---- autograd -------------------------------------------------------------------------------------
  get requiresGrad(): boolean {
    return native.meta(this.h)[3];
  }
  set requiresGrad(on: boolean) {
    native.setRequiresGrad(this.h, on);
  }
  requiresGrad_(on = true): this {
    native.setRequiresGrad(this.h, on);
    return this;
  }
  /** The accumulated gradient (a new reference each read), or null. */
  get grad(): Tensor | null {
    const g = native.grad(this.h);
    return g === null ? null : new Tensor(g);
  }
  set grad(g: Tensor | null) {
    native.setGrad(this.h, g === null ? null : g.h);
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.h);
  }
  retainGrad(): this {
    native.retainGrad(this.h);
    return this;
  }
  backward(gradient?: Tensor, opts: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    native.backward(this.h, gradient?.h ?? null, opts.retainGraph, opts.createGraph);
  }
  /**
   * Calls fn with this tensor's gradient during backward; a returned tensor replaces it. Runs on the
   * JavaScript thread, i.e. for CPU backward passes. Returns a function that removes the hook.
   */
  registerHook(fn: (grad: Tensor) => Tensor | void): () => void {
    const id = native.registerHook(this.h, (g: Handle) => {
      const r = fn(new Tensor(g));
      return r instanceof Tensor ? r.h : null;
    });
    return () => native.removeHook(this.h, id);
  }
  detach(): Tensor {
    return wrap(op('aten::detach').handle(this.h));
  }

  // ---- data out ---------------------------------------------------------------------------------------
  /** A copy of the elements as a typed array matching the dtype (float16/bfloat16 as raw Uint16 bits). */
  toArray(): AnyTypedArray {
    return typedArrayFor(this.dtype, native.toBytes(this.h));
  }
  /** The elements as plain numbers, flattened (int64 converted through Number). */
  toNumbers(): number[] {
    const d = this.dtype;
    if (isHalfFloat(d)) return this.to('float32').toNumbers();
    const a = this.toArray();
    return a instanceof BigInt64Array ? Array.from(a, Number) : Array.from(a as ArrayLike<number>);
  }
  item(): number {
    const v = native.item(this.h);
    return typeof v === 'boolean' ? Number(v) : v;
  }
  toString(): string {
    return this.isDisposed ? 'Tensor(<disposed>)' : `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ---- conversion -------------------------------------------------------------------------------------
  /** to('float16'), to('cuda:0'), to({ device, dtype }). */
  to(target: DType | Device | { dtype?: DType; device?: Device; copy?: boolean }): Tensor {
    let dtype: DType | undefined;
    let device: Device | undefined;
    let copy = false;
    if (typeof target === 'string') {
      if ((DTYPES as readonly string[]).includes(target)) dtype = target as DType;
      else device = target;
    } else {
      ({ dtype, device } = target);
      copy = target.copy ?? false;
    }
    return wrap(op('aten::to.dtype_layout').handle(this.h, dtype, undefined, device, undefined, false, copy));
  }
  cpu(): Tensor {
    return this.to('cpu');
  }
  cuda(index = 0): Tensor {
    return this.to(`cuda:${index}`);
  }
  float(): Tensor {
    return this.to('float32');
  }
  double(): Tensor {
    return this.to('float64');
  }
  long(): Tensor {
    return this.to('int64');
  }
  int(): Tensor {
    return this.to('int32');
  }
  half(): Tensor {
    return this.to('float16');
  }
  bool(): Tensor {
    return this.to('bool');
  }
  clone(): Tensor {
    return wrap(op('aten::clone').handle(this.h));
  }
  contiguous(memoryFormat?: 'contiguous_format' | 'channels_last'): Tensor {
    return wrap(op('aten::contiguous').handle(this.h, memoryFormat));
  }

  // ---- views and indexing -----------------------------------------------------------------------------
  view(...shape: number[]): Tensor {
    return wrap(op('aten::view').handle(this.h, shape));
  }
  reshape(...shape: number[]): Tensor {
    return wrap(op('aten::reshape').handle(this.h, shape));
  }
  permute(...dims: number[]): Tensor {
    return wrap(op('aten::permute').handle(this.h, dims));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return wrap(op('aten::transpose.int').handle(this.h, dim0, dim1));
  }
  t(): Tensor {
    return wrap(op('aten::t').handle(this.h));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return wrap(op('aten::flatten.using_ints').handle(this.h, startDim, endDim));
  }
  unsqueeze(dim: number): Tensor {
    return wrap(op('aten::unsqueeze').handle(this.h, dim));
  }
  squeeze(dim?: number): Tensor {
    return dim === undefined ? wrap(op('aten::squeeze').handle(this.h)) : wrap(op('aten::squeeze.dim').handle(this.h, dim));
  }
  expand(...shape: number[]): Tensor {
    return wrap(op('aten::expand').handle(this.h, shape));
  }
  expandAs(other: Tensor): Tensor {
    return wrap(op('aten::expand_as').handle(this.h, other.h));
  }
  repeat(...repeats: number[]): Tensor {
    return wrap(op('aten::repeat').handle(this.h, repeats));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return wrap(op('aten::narrow').handle(this.h, dim, start, length));
  }
  /** Python's t[..., start:end:step] along one dimension. */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return wrap(op('aten::slice.Tensor').handle(this.h, dim, start ?? null, end ?? null, step));
  }
  select(dim: number, index: number): Tensor {
    return wrap(op('aten::select.int').handle(this.h, dim, index));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return wrap(op('aten::index_select').handle(this.h, dim, index.h));
  }
  /** Advanced indexing t[i0, i1, ...] with tensors (null skips a dimension). */
  index(indices: (Tensor | null)[]): Tensor {
    return wrap(op('aten::index.Tensor').handle(this.h, indices.map((t) => t?.h ?? null)));
  }
  gather(dim: number, index: Tensor): Tensor {
    return wrap(op('aten::gather').handle(this.h, dim, index.h));
  }
  scatter(dim: number, index: Tensor, src: TensorOrScalar): Tensor {
    return typeof src === 'number'
      ? wrap(op('aten::scatter.value').handle(this.h, dim, index.h, src))
      : wrap(op('aten::scatter.src').handle(this.h, dim, index.h, src.h));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return wrapList(op('aten::chunk').call(this.h, chunks, dim));
  }
  split(size: number | number[], dim = 0): Tensor[] {
    return typeof size === 'number'
      ? wrapList(op('aten::split.Tensor').call(this.h, size, dim))
      : wrapList(op('aten::split_with_sizes').call(this.h, size, dim));
  }
  unbind(dim = 0): Tensor[] {
    return wrapList(op('aten::unbind.int').call(this.h, dim));
  }
  flip(...dims: number[]): Tensor {
    return wrap(op('aten::flip').handle(this.h, dims));
  }
  maskedFill(mask: Tensor, value: TensorOrScalar): Tensor {
    return typeof value === 'number'
      ? wrap(op('aten::masked_fill.Scalar').handle(this.h, mask.h, value))
      : wrap(op('aten::masked_fill.Tensor').handle(this.h, mask.h, value.h));
  }
  maskedSelect(mask: Tensor): Tensor {
    return wrap(op('aten::masked_select').handle(this.h, mask.h));
  }
  /** where(cond, this, other): this where cond holds, other elsewhere. */
  where(cond: Tensor, other: TensorOrScalar): Tensor {
    return typeof other === 'number'
      ? wrap(op('aten::where.ScalarOther').handle(cond.h, this.h, other))
      : wrap(op('aten::where.self').handle(cond.h, this.h, other.h));
  }

  // ---- elementwise --------------------------------------------------------------------------------------
  add(other: TensorOrScalar, alpha = 1): Tensor {
    return binary(this, other, 'aten::add.Tensor', 'aten::add.Scalar', alpha);
  }
  sub(other: TensorOrScalar, alpha = 1): Tensor {
    return binary(this, other, 'aten::sub.Tensor', 'aten::sub.Scalar', alpha);
  }
  mul(other: TensorOrScalar): Tensor {
    return binary(this, other, 'aten::mul.Tensor', 'aten::mul.Scalar');
  }
  div(other: TensorOrScalar): Tensor {
    return binary(this, other, 'aten::div.Tensor', 'aten::div.Scalar');
  }
  pow(exponent: TensorOrScalar): Tensor {
    return binary(this, exponent, 'aten::pow.Tensor_Tensor', 'aten::pow.Tensor_Scalar');
  }
  remainder(other: TensorOrScalar): Tensor {
    return binary(this, other, 'aten::remainder.Tensor', 'aten::remainder.Scalar');
  }
  eq(other: TensorOrScalar): Tensor {
    return binary(this, other, 'aten::eq.Tensor', 'aten::eq.Scalar');
  }
  ne(other: TensorOrScalar): Tensor {
    return binary(this, other, 'aten::ne.Tensor', 'aten::ne.Scalar');
  }
  lt(other: TensorOrScalar): Tensor {
    return binary(this, other, 'aten::lt.Tensor', 'aten::lt.Scalar');
  }
  le(other: TensorOrScalar): Tensor {
    return binary(this, other, 'aten::le.Tensor', 'aten::le.Scalar');
  }
  gt(other: TensorOrScalar): Tensor {
    return binary(this, other, 'aten::gt.Tensor', 'aten::gt.Scalar');
  }
  ge(other: TensorOrScalar): Tensor {
    return binary(this, other, 'aten::ge.Tensor', 'aten::ge.Scalar');
  }
  maximum(other: Tensor): Tensor {
    return wrap(op('aten::maximum').handle(this.h, other.h));
  }
  minimum(other: Tensor): Tensor {
    return wrap(op('aten::minimum').handle(this.h, other.h));
  }
  logicalAnd(other: Tensor): Tensor {
    return wrap(op('aten::logical_and').handle(this.h, other.h));
  }
  logicalOr(other: Tensor): Tensor {
    return wrap(op('aten::logical_or').handle(this.h, other.h));
  }
  clamp(min?: number | null, max?: number | null): Tensor {
    return wrap(op('aten::clamp').handle(this.h, min ?? null, max ?? null));
  }
  neg(): Tensor { return unary(this, 'aten::neg'); }
  abs(): Tensor { return unary(this, 'aten::abs'); }
  exp(): Tensor { return unary(this, 'aten::exp'); }
  log(): Tensor { return unary(this, 'aten::log'); }
  sqrt(): Tensor { return unary(this, 'aten::sqrt'); }
  rsqrt(): Tensor { return unary(this, 'aten::rsqrt'); }
  square(): Tensor { return unary(this, 'aten::square'); }
  reciprocal(): Tensor { return unary(this, 'aten::reciprocal'); }
  sign(): Tensor { return unary(this, 'aten::sign'); }
  floor(): Tensor { return unary(this, 'aten::floor'); }
  ceil(): Tensor { return unary(this, 'aten::ceil'); }
  round(): Tensor { return unary(this, 'aten::round'); }
  sin(): Tensor { return unary(this, 'aten::sin'); }
  cos(): Tensor { return unary(this, 'aten::cos'); }
  tanh(): Tensor { return unary(this, 'aten::tanh'); }
  sigmoid(): Tensor { return unary(this, 'aten::sigmoid'); }
  relu(): Tensor { return unary(this, 'aten::relu'); }
  logicalNot(): Tensor { return unary(this, 'aten::logical_not'); }
  isnan(): Tensor { return unary(this, 'aten::isnan'); }
  isfinite(): Tensor { return unary(this, 'aten::isfinite'); }

  // ---- reductions -----------------------------------------------------------------------------------------
  sum(dim?: number | number[], opts: SumOptions = {}): Tensor {
    return dim === undefined
      ? wrap(op('aten::sum').handle(this.h, opts.dtype))
      : wrap(op('aten::sum.dim_IntList').handle(this.h, asList(dim), opts.keepdim ?? false, opts.dtype));
  }
  mean(dim?: number | number[], opts: SumOptions = {}): Tensor {
    return dim === undefined
      ? wrap(op('aten::mean').handle(this.h, opts.dtype))
      : wrap(op('aten::mean.dim').handle(this.h, asList(dim), opts.keepdim ?? false, opts.dtype));
  }
  prod(dim?: number, opts: SumOptions = {}): Tensor {
    return dim === undefined
      ? wrap(op('aten::prod').handle(this.h, opts.dtype))
      : wrap(op('aten::prod.dim_int').handle(this.h, dim, opts.keepdim ?? false, opts.dtype));
  }
  /** Whole-tensor maximum. For a dimension, use maxDim. */
  max(): Tensor {
    return wrap(op('aten::max').handle(this.h));
  }
  min(): Tensor {
    return wrap(op('aten::min').handle(this.h));
  }
  maxDim(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = wrapList(op('aten::max.dim').call(this.h, dim, keepdim));
    return { values, indices };
  }
  minDim(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = wrapList(op('aten::min.dim').call(this.h, dim, keepdim));
    return { values, indices };
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return wrap(op('aten::argmax').handle(this.h, dim ?? null, keepdim));
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return wrap(op('aten::argmin').handle(this.h, dim ?? null, keepdim));
  }
  std(dim?: number | number[], opts: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
    return dim === undefined
      ? wrap(op('aten::std').handle(this.h, opts.unbiased ?? true))
      : wrap(op('aten::std.dim').handle(this.h, asList(dim), opts.unbiased ?? true, opts.keepdim ?? false));
  }
  var(dim?: number | number[], opts: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
    return dim === undefined
      ? wrap(op('aten::var').handle(this.h, opts.unbiased ?? true))
      : wrap(op('aten::var.dim').handle(this.h, asList(dim), opts.unbiased ?? true, opts.keepdim ?? false));
  }
  /** Vector p-norm over all elements or the given dimensions. */
  norm(p = 2, dim?: number | number[], keepdim = false): Tensor {
    return wrap(op('aten::linalg_vector_norm').handle(this.h, p, dim === undefined ? null : asList(dim), keepdim));
  }
  all(): Tensor { return unary(this, 'aten::all'); }
  any(): Tensor { return unary(this, 'aten::any'); }
  logsumexp(dim: number | number[], keepdim = false): Tensor {
    return wrap(op('aten::logsumexp').handle(this.h, asList(dim), keepdim));
  }
  cumsum(dim: number): Tensor {
    return wrap(op('aten::cumsum').handle(this.h, dim));
  }
  topk(k: number, dim = -1, largest = true, sorted = true): { values: Tensor; indices: Tensor } {
    const [values, indices] = wrapList(op('aten::topk').call(this.h, k, dim, largest, sorted));
    return { values, indices };
  }
  sort(dim = -1, descending = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = wrapList(op('aten::sort').call(this.h, dim, descending));
    return { values, indices };
  }

  // ---- linear algebra -------------------------------------------------------------------------------------
  matmul(other: Tensor): Tensor {
    return wrap(op('aten::matmul').handle(this.h, other.h));
  }
  mm(other: Tensor): Tensor {
    return wrap(op('aten::mm').handle(this.h, other.h));
  }
  bmm(other: Tensor): Tensor {
    return wrap(op('aten::bmm').handle(this.h, other.h));
  }

  // ---- in place (optimizers, initializers) ------------------------------------------------------------------
  add_(other: TensorOrScalar, alpha = 1): this {
    return inplace(this, other, 'aten::add_.Tensor', 'aten::add_.Scalar', alpha);
  }
  sub_(other: TensorOrScalar, alpha = 1): this {
    return inplace(this, other, 'aten::sub_.Tensor', 'aten::sub_.Scalar', alpha);
  }
  mul_(other: TensorOrScalar): this {
    return inplace(this, other, 'aten::mul_.Tensor', 'aten::mul_.Scalar');
  }
  div_(other: TensorOrScalar): this {
    return inplace(this, other, 'aten::div_.Tensor', 'aten::div_.Scalar');
  }
  /** In-place ReLU, as torchvision's `ReLU(inplace=True)`: no new activation tensor (see nn.ReLU). */
  relu_(): this {
    op('aten::relu_').run(this.h);
    return this;
  }
  addcmul_(t1: Tensor, t2: Tensor, value = 1): this {
    op('aten::addcmul_').run(this.h, t1.h, t2.h, value);
    return this;
  }
  addcdiv_(t1: Tensor, t2: Tensor, value = 1): this {
    op('aten::addcdiv_').run(this.h, t1.h, t2.h, value);
    return this;
  }
  lerp_(end: Tensor, weight: number): this {
    op('aten::lerp_.Scalar').run(this.h, end.h, weight);
    return this;
  }
  clamp_(min?: number | null, max?: number | null): this {
    op('aten::clamp_').run(this.h, min ?? null, max ?? null);
    return this;
  }
  sqrt_(): this {
    op('aten::sqrt_').run(this.h);
    return this;
  }
  maximum_(other: Tensor): this {
    op('aten::maximum.out').run(this.h, other.h, this.h);
    return this;
  }
  zero_(): this {
    op('aten::zero_').run(this.h);
    return this;
  }
  fill_(value: number): this {
    op('aten::fill_.Scalar').run(this.h, value);
    return this;
  }
  copy_(src: Tensor): this {
    op('aten::copy_').run(this.h, src.h, false);
    return this;
  }
  uniform_(from = 0, to = 1): this {
    op('aten::uniform_').run(this.h, from, to);
    return this;
  }
  normal_(mean = 0, std = 1): this {
    op('aten::normal_').run(this.h, mean, std);
    return this;
  }
  bernoulli_(p = 0.5): this {
    op('aten::bernoulli_.float').run(this.h, p);
    return this;
  }
}

export function wrap(h: Handle): Tensor {
  return new Tensor(h);
}

/** The native handles of a tensor list, for a Tensor[] argument of a native call. */
export function handles(ts: readonly Tensor[]): Handle[] {
  return ts.map((t) => t.h);
}

/** Wraps a native result that is a tensor list or tuple. */
export function wrapList(r: NativeResult): Tensor[] {
  return (r as Handle[]).map((h) => new Tensor(h));
}

export function asList(d: number | number[]): number[] {
  return typeof d === 'number' ? [d] : d;
}

function unary(t: Tensor, spec: string): Tensor {
  return new Tensor(op(spec).handle(t.h));
}

function binary(t: Tensor, other: TensorOrScalar, tensorSpec: string, scalarSpec: string, alpha?: number): Tensor {
  const extra: NativeArg[] = alpha === undefined || alpha === 1 ? [] : [alpha];
  return typeof other === 'number'
    ? new Tensor(op(scalarSpec).handle(t.h, other, ...extra))
    : new Tensor(op(tensorSpec).handle(t.h, other.h, ...extra));
}

function inplace<T extends Tensor>(t: T, other: TensorOrScalar, tensorSpec: string, scalarSpec: string, alpha?: number): T {
  const extra: NativeArg[] = alpha === undefined || alpha === 1 ? [] : [alpha];
  if (typeof other === 'number') op(scalarSpec).run(t.h, other, ...extra);
  else op(tensorSpec).run(t.h, other.h, ...extra);
  return t;
}

/** v with every tensor in it — alone, in arrays, in plain objects, as forward passes return them — replaced by f(tensor). */
export function mapTensors<T>(v: T, f: (t: Tensor) => Tensor): T {
  if (v instanceof Tensor) return f(v) as T;
  if (Array.isArray(v)) return v.map((x) => mapTensors(x, f)) as T;
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mapTensors(x, f)])) as T;
  }
  return v;
}
