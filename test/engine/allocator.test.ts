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
