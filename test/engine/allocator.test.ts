// The CPU allocator's large-block cache (native/src/allocator.cc) and its counters (cpuAllocatorStats).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';

test('a freed large block is reused by the next request of its size class: a hit, no new system allocation', () => {
  const s0 = T.cpuAllocatorStats();
  if (s0.capBytes === 0) return; // TSVISION_ALLOCATOR=default: libtorch's allocator, no cache
  T.zeros([1 << 20]).dispose(); // 4 MiB: a large block, cached on free
  const s1 = T.cpuAllocatorStats();
  for (let i = 0; i < 5; i++) T.zeros([1 << 20]).dispose();
  const s2 = T.cpuAllocatorStats();
  assert.equal(s2.misses, s1.misses);
  assert.equal(s2.hits - s1.hits, 5);
  assert.ok(s2.cachedBytes >= 4 << 20 && s2.ownedBytes >= s2.cachedBytes);
});

test('the most recently freed block of a size class is handed out first (its pages are resident and warm)', () => {
  if (T.cpuAllocatorStats().capBytes === 0) return;
  // 3.3 MiB: a size class nothing else in the test process uses, so the cache's order is ours alone.
  const n = Math.round((3.3 * (1 << 20)) / 4);
  const a = T.zeros([n]);
  const b = T.zeros([n]);
  const [pa, pb] = [a.dataPtr(), b.dataPtr()];
  assert.notEqual(pa, pb);
  a.dispose();
  b.dispose(); // b freed last
  const c = T.zeros([n]);
  const d = T.zeros([n]);
  // First-in-first-out would hand out a's block first: one allocated long ago, possibly touched only in part.
  assert.equal(c.dataPtr(), pb);
  assert.equal(d.dataPtr(), pa);
  c.dispose();
  d.dispose();
});

test('dataPtr: views share their base memory at an offset; clones do not', () => {
  const x = T.arange(0, 16, 1, { dtype: 'float32' });
  const v = x.slice(0, 4, 8);
  assert.equal(v.dataPtr() - x.dataPtr(), 16n); // 4 float32 elements in
  const c = x.clone();
  assert.notEqual(c.dataPtr(), x.dataPtr());
  for (const t of [x, v, c]) t.dispose();
});
