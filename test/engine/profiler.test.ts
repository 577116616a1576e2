// libtorch's operator profiler through profileOps (src/torch/profiler.ts, native/src/profiler.cc): the calls
// counted as made, forward and backward, self times that nest, shapes, and the profiler off after an error.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';

test('profileOps counts each operator as called, its backward functions too, and nests self time inside total time', () => {
  const x = T.randn([8, 3, 32, 32]).requiresGrad_();
  const w = T.randn([16, 3, 3, 3]).requiresGrad_();
  const { result, profile } = T.profileOps(
    () =>
      T.tidy(() => {
        // Three convolutions, two additions, one ReLU, a sum, and the backward of all of it.
        let y = T.conv2d(x, w, null, { padding: 1 });
        for (let i = 0; i < 2; i++) y = T.conv2d(x, w, null, { padding: 1 }).add(y);
        const loss = y.relu().sum();
        loss.backward();
        return loss.item();
      }),
    { shapes: true },
  );
  assert.equal(typeof result, 'number');
  const op = (name: string): T.OpStat => {
    const s = profile.ops.find((o) => o.name === name);
    assert.ok(s, `${name} among ${profile.ops.map((o) => o.name).join(', ')}`);
    return s;
  };
  assert.equal(op('aten::conv2d').calls, 3);
  assert.equal(op('aten::relu').calls, 1);
  assert.equal(op('ConvolutionBackward0').calls, 3, 'the backward pass is recorded');
  assert.equal(op('ReluBackward0').calls, 1);
  assert.deepEqual(op('aten::conv2d').inputShapes, ['8x3x32x32;16x3x3x3']);
  for (const s of profile.ops) assert.ok(s.selfMs <= s.totalMs + 1e-9 && s.selfMs >= 0, `${s.name}: self ${s.selfMs} within total ${s.totalMs}`);
  // aten::conv2d calls aten::convolution, which calls the kernels: its total holds theirs, its self time little.
  assert.ok(op('aten::conv2d').totalMs >= op('aten::convolution').totalMs);
  assert.ok(op('aten::conv2d').selfMs < op('aten::conv2d').totalMs);
  // Self times never count a nanosecond twice: on one thread they fit in the wall time.
  assert.ok(profile.opMs <= profile.wallMs * T.getNumThreads() + 1, `${profile.opMs} ms in ops, ${profile.wallMs} ms wall`);
  const table = T.formatOpProfile(profile, { top: 3 });
  assert.match(table, /the 3 largest of \d+ operators:/);
  assert.equal(table.split('\n').length, 3 + 3);
});

test('the profiler is off again after fn throws, and a second start while on is refused', () => {
  assert.throws(() => T.profileOps(() => T.randn([2, 3]).matmul(T.randn([4, 5]))), /aten::matmul|mat1 and mat2|size mismatch|shapes cannot be multiplied/);
  const { profile } = T.profileOps(() => T.tidy(() => void T.randn([4]).exp()));
  assert.equal(profile.ops.find((o) => o.name === 'aten::exp')?.calls, 1);
  assert.throws(() => T.profileOps(() => T.profileOps(() => 0)), /the profiler is already running/);
  assert.equal(T.profileOps(() => 1).result, 1, 'and still usable afterwards');
});
