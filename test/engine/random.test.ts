// Seeded random streams: forkRng draws from a seed and leaves the caller's stream where it was.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';

const draw = (n: number): number[] => T.tidy(() => Array.from(T.randn([n]).toArray() as Float32Array));

test('forkRng: the seed\'s values inside, the caller\'s stream untouched outside, even after an error', () => {
  T.manualSeed(7);
  const seeded = draw(5);
  T.manualSeed(123);
  const plain = draw(12);

  T.manualSeed(123);
  const head = draw(4);
  assert.deepEqual(T.forkRng(7, () => draw(5)), seeded);
  const tail = draw(8);
  assert.deepEqual([...head, ...tail], plain);

  T.manualSeed(123);
  draw(4);
  assert.throws(() => T.forkRng(7, () => { draw(3); throw new Error('inside'); }), /inside/);
  assert.deepEqual(draw(8), tail);
});
