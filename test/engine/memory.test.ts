// Deterministic memory: scopes free what they create, and the documented training-loop idiom does not leak.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { BatchNorm2d, Conv2d, Linear } from '../../src/nn';

test('tidy frees intermediates and keeps what it returns', () => {
  let inner: T.Tensor[] = [];
  const out = T.tidy(() => {
    const a = T.ones([3]);
    const b = a.mul(2);
    inner = [a, b];
    return { sum: b.add(1), list: [b.sub(1)] };
  });
  assert.ok(inner.every((t) => t.isDisposed));
  assert.deepEqual(out.sum.toNumbers(), [3, 3, 3]);
  assert.deepEqual(out.list[0].toNumbers(), [1, 1, 1]);
});

test('nested tidy hands results to the outer scope, which frees them', () => {
  let mid: T.Tensor | null = null;
  T.tidy(() => {
    mid = T.tidy(() => T.zeros([2]).add(1));
    assert.equal(mid.isDisposed, false);
    return null;
  });
  assert.equal(mid!.isDisposed, true);
});

test('keep() survives scopes; tidy frees on exceptions too', () => {
  let kept: T.Tensor | null = null;
  let lost: T.Tensor | null = null;
  assert.throws(() =>
    T.tidy(() => {
      kept = T.ones([1]).keep();
      lost = T.ones([1]);
      throw new Error('boom');
    }),
  );
  assert.equal(kept!.isDisposed, false);
  assert.equal(lost!.isDisposed, true);
  kept!.dispose();
});

test('`using` scopes free on block exit and pass kept values outward', () => {
  let a: T.Tensor;
  let b: T.Tensor;
  {
    using s = T.scope();
    a = T.ones([2]);
    b = s.keep(a.add(1));
  }
  assert.equal(a.isDisposed, true);
  assert.equal(b.isDisposed, false);
  assert.equal(T.scopeDepth(), 0);
});

test('use after dispose is a clear error, not a crash', () => {
  const t = T.ones([2]);
  const h = t.h;
  t.dispose();
  assert.throws(() => t.add(1), /used after dispose/);
  // A stale native handle that reaches the addon directly is caught there too.
  assert.throws(() => T.op('aten::neg').call(h), /used after dispose/);
  t.dispose(); // double dispose is harmless
  // Its slot in the addon's table is taken by the next tensor (freed slots are reused last-in, first-out):
  // the handle's generation still tells the two apart, on the typed path (neg, add) and the boxed (sum).
  const next = T.full([2], 7);
  assert.throws(() => T.op('aten::neg').call(h), /used after dispose/);
  assert.throws(() => T.op('aten::add.Tensor').call(next.h, h), /other: tensor used after dispose/);
  assert.throws(() => T.op('aten::sum').call(h), /used after dispose/);
  assert.deepEqual([...next.neg().toArray()], [-7, -7]);
  // Handles are numbers, but ordinary numbers are not handles.
  for (const n of [0, 3, -1, 2 ** 31, 1e300, NaN]) assert.throws(() => T.op('aten::neg').call(n), /self must be a Tensor/);
});

test('2,000 training steps with the documented idiom keep RSS flat (within 50 MB after warm-up)', () => {
  T.manualSeed(0);
  const conv1 = new Conv2d(1, 16, 3, { padding: 1 });
  const bn1 = new BatchNorm2d(16);
  const conv2 = new Conv2d(16, 32, 3, { padding: 1, stride: 2 });
  const fc = new Linear(32 * 14 * 14, 10);
  const params = [conv1, bn1, conv2, fc].flatMap((m) => m.parameters());
  const x = T.randn([16, 1, 28, 28]).keep();
  const y = T.randint(0, 10, [16]).keep();
  const step = (): number =>
    T.tidy(() => {
      const h = conv2.forward(bn1.forward(conv1.forward(x)).relu()).relu();
      const loss = T.crossEntropy(fc.forward(h.flatten(1)), y);
      for (const p of params) p.grad = null;
      loss.backward();
      T.noGrad(() => {
        for (const p of params) p.sub_(p.grad!, 0.01);
      });
      return loss.item();
    });
  for (let i = 0; i < 200; i++) step();
  global.gc?.();
  const base = process.memoryUsage().rss;
  let last = 0;
  for (let i = 0; i < 2000; i++) last = step();
  const grown = (process.memoryUsage().rss - base) / 2 ** 20;
  assert.ok(Number.isFinite(last));
  assert.ok(grown < 50, `RSS grew by ${grown.toFixed(1)} MB over 2,000 steps`);
});

test('tensors no scope owns are freed by the garbage collector (safety net)', async () => {
  if (!global.gc) return; // npm test runs with --expose-gc
  const base = T.liveTensors();
  for (let i = 0; i < 5000; i++) T.ones([4]).add(1);
  assert.ok(T.liveTensors() >= base + 5000);
  for (let k = 0; k < 10 && T.liveTensors() > base + 100; k++) {
    global.gc();
    await new Promise((r) => setImmediate(r));
  }
  assert.ok(T.liveTensors() <= base + 100, `${T.liveTensors() - base} tensors still alive after GC`);
});

test('the training idiom leaves no tensor behind', () => {
  const w = T.randn([8, 8]).requiresGrad_().keep();
  const before = T.liveTensors();
  for (let i = 0; i < 100; i++) {
    T.tidy(() => {
      const loss = T.randn([4, 8]).matmul(w).relu().sum();
      w.grad = null;
      loss.backward();
      T.noGrad(() => w.sub_(w.grad!, 0.01));
    });
  }
  assert.equal(T.liveTensors(), before);
});

test('V8 is told about the bytes of GC-owned tensors, so they are collected without an explicit gc()', async () => {
  // 2 GB of 4 MB tensors that no scope owns: only V8's external-memory accounting can make it collect them.
  const rss0 = process.memoryUsage().rss;
  let peak = 0;
  for (let i = 0; i < 500; i++) {
    T.zeros([1024, 1024]).add(1);
    if (i % 10 === 9) {
      await new Promise((r) => setImmediate(r)); // finalizers run between tasks
      peak = Math.max(peak, process.memoryUsage().rss - rss0);
    }
  }
  assert.ok(peak < 1024 * 2 ** 20, `RSS grew by ${(peak / 2 ** 20).toFixed(0)} MB while allocating 2 GB of unscoped tensors`);
});

test('scoped tensors do not pressure V8 into full garbage collections', async () => {
  // Reporting scoped (deterministically freed) tensors to V8 made it run a mark-compact every ~30 ms during
  // ResNet-50 inference; its marking thread then competed with libtorch's threads.
  const { PerformanceObserver, constants } = await import('node:perf_hooks');
  let major = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (((e as unknown as { detail?: { kind?: number } }).detail)?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) major++;
  });
  obs.observe({ entryTypes: ['gc'] });
  await new Promise((r) => setImmediate(r));
  major = 0;
  // Each scope holds 160 MB at its end, as a forward pass holds its activations.
  for (let i = 0; i < 100; i++) T.tidy(() => { for (let k = 0; k < 40; k++) T.empty([1024, 1024]); });
  await new Promise((r) => setTimeout(r, 50)); // gc entries are delivered asynchronously
  obs.disconnect();
  assert.ok(major <= 1, `${major} full garbage collections while 16 GB passed through scopes`);
});
