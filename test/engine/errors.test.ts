// Bad input never crashes the process: every libtorch failure becomes a JS Error naming op, shapes and dtypes.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';

test('shape mismatch names the op, the shapes and the dtypes', () => {
  const a = T.ones([2, 3]);
  const b = T.ones([4], { dtype: 'float64' });
  assert.throws(() => a.add(b), (e: Error) => /aten::add\.Tensor/.test(e.message) && /Tensor\[2, 3\] float32/.test(e.message) && /Tensor\[4\] float64/.test(e.message));
});

test('elementwise ops (called unboxed) take scalars and defaults as the boxed path does, and word errors the same', () => {
  const i = T.tensor([1, 2, 3], { dtype: 'int64' });
  const f = T.tensor([1, 2, 3], { dtype: 'float32' });
  // Integral numbers are integer Scalars (int64 stays int64); others are doubles (int64 + 0.5 promotes).
  assert.equal(i.add(2).dtype, 'int64');
  assert.deepEqual([...i.mul(3).toArray()], [3n, 6n, 9n]);
  assert.equal(i.add(0.5).dtype, 'float32');
  // alpha: the schema's default when left out, the given value otherwise; a boolean goes the boxed way.
  assert.deepEqual([...f.add(f).toArray()], [2, 4, 6]);
  assert.deepEqual([...f.sub(f, 0.5).toArray()], [0.5, 1, 1.5]);
  assert.deepEqual([...(T.callOp('aten::add.Scalar', f, true) as T.Tensor).toArray()], [2, 3, 4]);
  assert.throws(() => T.callOp('aten::add.Tensor', f, f, 'x'), (e: Error) => e instanceof TypeError && /argument 'alpha' must be a number/.test(e.message));
  assert.throws(() => T.callOp('aten::add.Tensor', f, f, 1, 2), /takes 3 arguments, got 4/);
  assert.throws(() => T.callOp('aten::mul.Tensor', f), /missing argument 'other'/);
  assert.throws(() => f.mul(T.ones([2, 2, 2])), (e: Error) => /^aten::mul\.Tensor\(Tensor\[3\] float32 cpu, Tensor\[2, 2, 2\] float32 cpu\): The size/.test(e.message));
});

test('conv2d with mismatched channels is an Error, not an abort', () => {
  assert.throws(() => T.conv2d(T.ones([1, 3, 8, 8]), T.ones([4, 2, 3, 3])), /aten::conv2d/);
});

test('wrong argument types are TypeErrors naming the argument', () => {
  const x = T.ones([1, 1, 4, 4]);
  assert.throws(() => T.callOp('aten::conv2d', x, 3), (e: Error) => e instanceof TypeError && /weight/.test(e.message));
  assert.throws(() => T.callOp('aten::conv2d', x, x, null, 'two'), (e: Error) => e instanceof TypeError && /stride/.test(e.message));
  assert.throws(() => T.callOp('aten::no_such_op'), /no operator aten::no_such_op/);
  assert.throws(() => T.zeros([2, -1]), /aten::zeros/);
  // Enum arguments travel as ints: an out-of-range one must not index libtorch's tables (a fuzz finding).
  assert.throws(() => T.callOp('aten::to.dtype_layout', T.ones([2]), -1), /argument 'dtype' must be a dtype/);
  assert.throws(() => T.callOp('aten::zeros', [2], 99), /argument 'dtype' must be a dtype/);
});

test('bad dtype, device and data are clear errors', () => {
  assert.throws(() => T.ones([2]).to('float7' as T.DType), /float7/);
  assert.throws(() => T.fromArray(new Float32Array(5), [2, 3]), /5 bytes|20 bytes|need/);
  assert.throws(() => T.ones([2]).to('cuda:7'), /cuda|CUDA/);
  assert.throws(() => T.ones([3]).item(), /exactly one element/);
});

test('gradient hooks: a hook rescales the gradient, and a throwing hook fails backward cleanly', () => {
  const x = T.tensor([1, 2, 3], { dtype: 'float32' }).requiresGrad_();
  const remove = x.registerHook((g) => g.mul(10));
  x.mul(x).sum().backward();
  assert.deepEqual(x.grad!.toNumbers(), [20, 40, 60]);
  remove();
  const z = T.tensor([1, 2], { dtype: 'float32' }).requiresGrad_();
  z.registerHook(() => {
    throw new Error('hook failed');
  });
  assert.throws(() => z.sum().backward(), /hook failed/);
});

test('noGrad stops recording; autograd.grad returns gradients without touching .grad', () => {
  const x = T.tensor([3], { dtype: 'float32' }).requiresGrad_();
  const y = T.noGrad(() => x.mul(2));
  assert.equal(y.requiresGrad, false);
  const [g] = T.grad(x.mul(x).sum(), x);
  assert.deepEqual(g!.toNumbers(), [6]);
  assert.equal(x.grad, null);
});
