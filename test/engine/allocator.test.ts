// The CPU allocator's large-block cache (native/src/allocator.cc) and its counters (cpuAllocatorStats).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const MiB2 = 2n << 20n;
// The kernel grants transparent huge pages on advice where its mode reads [always] or [madvise].
function thpMode(): string {
  try {
    return /\[(\w+)\]/.exec(fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? 'never';
  } catch {
    return 'never';
  }
}
// AnonHugePages (kB) of the mapping that holds `addr`, from /proc/self/smaps.
function anonHugeKbAt(addr: bigint): number {
  let inside = false;
  for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const range = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (range) inside = BigInt(`0x${range[1]}`) <= addr && addr < BigInt(`0x${range[2]}`);
    else if (inside && line.startsWith('AnonHugePages:')) return Number(/(\d+)/.exec(line)?.[1] ?? 0);
  }
  return 0;
}

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

test('blocks of 2 MiB and more are backed by transparent huge pages where the kernel grants them', (t) => {
  const huge = T.engineInfo().allocator.includes('huge pages');
  if (thpMode() === 'never' || T.cpuAllocatorStats().capBytes === 0) {
    assert.equal(huge, false);
    return t.skip('no transparent huge pages here');
  }
  assert.ok(huge, `allocator '${T.engineInfo().allocator}' should use huge pages`);
  const x = T.ones([(9 << 20) / 4]); // 9 MiB, written through
  const p = x.dataPtr();
  assert.equal(p % MiB2, 0n);
  // The kernel may fall back to 4 KiB pages when it cannot find free 2 MiB ones; on an idle machine it can.
  const hugeKb = anonHugeKbAt(p);
  assert.ok(hugeKb >= 2048, `mapping at 0x${p.toString(16)} has ${hugeKb} kB in huge pages`);
  x.dispose();
});

test('TSVISION_HUGE_PAGES=0 turns huge pages off', () => {
  const root = path.resolve(__dirname, '..', '..', '..');
  const script = `const T = require(${JSON.stringify(path.join(root, 'dist', 'src', 'torch'))}); console.log(T.engineInfo().allocator)`;
  const name = execFileSync(process.execPath, ['-e', script], { env: { ...process.env, TSVISION_HUGE_PAGES: '0' }, encoding: 'utf8' }).trim();
  assert.ok(!name.includes('huge pages') && name.includes('cache'), name);
});
