// Denormal floats are flushed to zero and read as zero (FTZ/DAZ) on every libtorch thread from load on
// (native/src/addon.cc); TSVISION_DENORMALS=keep keeps IEEE behaviour. The expectations are IEEE's, by hand:
// 1e-39 is a float32 denormal (the smallest normal is 2^-126 ≈ 1.18e-38), and 1e-20 · 1e-20 = 1e-40 would be one.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import * as T from '../../src/torch';

const TORCH = path.resolve(__dirname, '..', '..', 'src', 'torch');
const SMALLEST_NORMAL = 2 ** -126;

/** What the engine makes of denormals: as inputs (small, and big enough to split over the thread pool), as results, in a convolution. */
const PROBE = `
const T = require(${JSON.stringify(TORCH)});
T.setNumThreads(2);
const n = 1 << 20; // 32 grains of libtorch's parallel elementwise loops: both threads take some
const out = {
  flush: T.engineInfo().flushDenormals,
  input: T.tensor([1e-39, -1e-39]).mul(1).toNumbers(),
  pooledInput: T.full([n], 1e-39).mul(3).abs().max().item(),
  pooledResult: T.full([n], 1e-20).mul(T.full([n], 1e-20)).abs().max().item(),
  conv: T.conv2d(T.ones([1, 16, 32, 32]), T.full([16, 16, 3, 3], 1e-39), null, { padding: 1 }).abs().max().item(),
};
process.stdout.write(JSON.stringify(out));
`;

function probe(env: NodeJS.ProcessEnv): { flush: boolean; input: number[]; pooledInput: number; pooledResult: number; conv: number } {
  return JSON.parse(execFileSync(process.execPath, ['-e', PROBE], { env: { ...process.env, ...env }, encoding: 'utf8' }));
}

test('denormals are flushed to zero on every thread by default, in elementwise ops and convolutions', () => {
  const { TSVISION_DENORMALS: _, ...env } = process.env;
  const r = probe({ ...env, TSVISION_DENORMALS: '' });
  assert.equal(r.flush, true);
  assert.deepEqual(r.input, [0, 0], 'a denormal input reads as zero (DAZ)');
  assert.equal(r.pooledInput, 0, 'on the thread pool too');
  assert.equal(r.pooledResult, 0, 'a denormal result is flushed to zero (FTZ), on the pool too');
  assert.equal(r.conv, 0, 'convolutions read denormal weights as zero');
  // This process too (the test runner's own engine).
  assert.equal(T.engineInfo().flushDenormals, true);
  assert.equal(T.tidy(() => T.tensor([1e-39]).mul(1).item()), 0);
});

test('TSVISION_DENORMALS=keep keeps IEEE denormals, as PyTorch does by default', () => {
  const r = probe({ TSVISION_DENORMALS: 'keep' });
  assert.equal(r.flush, false);
  for (const v of r.input) assert.ok(Math.abs(Math.abs(v) - 1e-39) < 1e-45 && Math.abs(v) < SMALLEST_NORMAL, `${v}`);
  assert.ok(Math.abs(r.pooledInput - 3e-39) < 1e-44, `${r.pooledInput}`);
  assert.ok(r.pooledResult > 0 && r.pooledResult < SMALLEST_NORMAL, `${r.pooledResult}`);
  // 16 channels · 9 taps · 1e-39 at an inner pixel, still denormal.
  assert.ok(Math.abs(r.conv - 144e-39) < 1e-43, `${r.conv}`);
});
