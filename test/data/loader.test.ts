// The DataLoader: coverage and order of each epoch, determinism, dropLast, resume, prefetching, and the
// ownership rule that keeps a prefetched batch alive through the caller's scopes.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { Batch, DataLoader, Dataset, Sample, TensorDataset, compose, disposeBatch, randomCrop, randomHorizontalFlip } from '../../src/data';

const identity = (b: { x: T.Tensor; y: T.Tensor }): { x: T.Tensor; y: T.Tensor } => b;

/** n images [1, 3, 3] whose every pixel is the sample's own index, labelled with the index too. */
function indexDataset(n: number): TensorDataset {
  return T.tidy(() => {
    const idx = T.arange(n);
    const images = idx.to('float32').view(n, 1, 1, 1).expand(n, 1, 3, 3).contiguous();
    return new TensorDataset(images, idx);
  });
}

/** Collects (y values, batch sizes, index fields) of an epoch, checking x still matches y. */
async function collect(loader: DataLoader, epoch: number, startBatch = 0): Promise<{ ys: number[]; sizes: number[]; indices: number[] }> {
  const ys: number[] = [];
  const sizes: number[] = [];
  const indices: number[] = [];
  for await (const b of loader.epoch(epoch, { startBatch })) {
    const y = b.y.toNumbers();
    assert.deepEqual(T.tidy(() => b.x.select(1, 0).select(1, 0).select(1, 0)).toNumbers(), y, 'x rows follow their labels');
    ys.push(...y);
    sizes.push(y.length);
    indices.push(b.index);
    disposeBatch(b);
  }
  return { ys, sizes, indices };
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

test('every index appears exactly once per epoch; batch sizes and indices', async () => {
  const ds = indexDataset(1000);
  const loader = new DataLoader(ds, { batchSize: 64, shuffle: true, seed: 7, transform: identity });
  assert.equal(loader.length, 16);
  for (const e of [0, 1]) {
    const { ys, sizes, indices } = await collect(loader, e);
    assert.deepEqual([...ys].sort((a, b) => a - b), range(1000));
    assert.deepEqual(sizes, [...new Array<number>(15).fill(64), 1000 - 15 * 64]);
    assert.deepEqual(indices, range(16));
    assert.notDeepEqual(ys, range(1000), 'shuffled');
    // The loader's advertised order is the order it yields.
    assert.deepEqual(ys, Array.from(loader.order(e)));
  }
  ds.dispose();
});

test('same seed and epoch give the same order; another epoch or seed gives another', async () => {
  const ds = indexDataset(500);
  const a = new DataLoader(ds, { batchSize: 50, shuffle: true, seed: 3, transform: identity });
  const b = new DataLoader(ds, { batchSize: 50, shuffle: true, seed: 3, transform: identity });
  const c = new DataLoader(ds, { batchSize: 50, shuffle: true, seed: 4, transform: identity });
  const a0 = (await collect(a, 0)).ys;
  // Epoch 5 first, then 0: the order of epoch 0 must not depend on what ran before.
  const b5 = (await collect(b, 5)).ys;
  assert.deepEqual((await collect(b, 0)).ys, a0);
  assert.notDeepEqual(b5, a0);
  assert.notDeepEqual((await collect(a, 1)).ys, a0);
  assert.notDeepEqual((await collect(c, 0)).ys, a0);
  // Shuffling uses its own PRNG, not libtorch's generator: reseeding libtorch changes nothing.
  T.manualSeed(123);
  const before = (await collect(a, 2)).ys;
  T.manualSeed(456);
  assert.deepEqual((await collect(a, 2)).ys, before);
  // No shuffle: dataset order.
  const plain = new DataLoader(ds, { batchSize: 64, transform: identity });
  assert.deepEqual((await collect(plain, 0)).ys, range(500));
  ds.dispose();
});

test('dropLast drops only the short final batch', async () => {
  const ds = indexDataset(1000);
  const loader = new DataLoader(ds, { batchSize: 64, shuffle: true, seed: 1, dropLast: true, transform: identity });
  assert.equal(loader.length, 15);
  const { ys, sizes } = await collect(loader, 0);
  assert.deepEqual(sizes, new Array<number>(15).fill(64));
  assert.equal(new Set(ys).size, 960);
  assert.deepEqual(ys, Array.from(loader.order(0).subarray(0, 960)));
  // An exact multiple loses nothing.
  const exact = new DataLoader(ds, { batchSize: 100, dropLast: true, transform: identity });
  assert.equal((await collect(exact, 0)).ys.length, 1000);
  ds.dispose();
});

test('startBatch resumes: the batches equal the tail of a full epoch, random transforms included', async () => {
  const ds = indexDataset(300);
  // Make the pixels distinct so crops and flips show up in x.
  const varied = T.tidy(() => new TensorDataset(T.arange(300 * 9).to('float32').view(300, 1, 3, 3), ds.labels));
  const transform = compose(randomCrop(3, 1), randomHorizontalFlip(0.5));
  const loader = new DataLoader(varied, { batchSize: 32, shuffle: true, seed: 11, transform });
  const full: Batch[] = [];
  for await (const b of loader.epoch(4)) full.push(b);
  const resumed: Batch[] = [];
  for await (const b of loader.epoch(4, { startBatch: 6 })) resumed.push(b);
  assert.equal(resumed.length, full.length - 6);
  resumed.forEach((r, k) => {
    const f = full[k + 6];
    assert.equal(r.index, f.index);
    assert.deepEqual(r.y.toNumbers(), f.y.toNumbers());
    assert.deepEqual(r.x.toNumbers(), f.x.toNumbers());
  });
  // startBatch = length yields nothing; beyond it is an error.
  assert.equal((await collect(new DataLoader(ds, { batchSize: 32, transform: identity }), 0, 10)).ys.length, 0);
  await assert.rejects(async () => {
    for await (const b of loader.epoch(0, { startBatch: 11 })) disposeBatch(b);
  }, /startBatch/);
  for (const b of [...full, ...resumed]) disposeBatch(b);
  varied.dispose();
  ds.dispose();
});

/** An async dataset that records which indices were requested, and when. */
class SlowDataset implements Dataset<Sample> {
  readonly requested: number[] = [];
  constructor(
    readonly length: number,
    private readonly delayMs = 2,
    private readonly failAt = -1,
  ) {}
  get(i: number): Promise<Sample> {
    this.requested.push(i);
    return new Promise((resolve, reject) =>
      setTimeout(() => {
        if (i === this.failAt) return reject(new Error(`cannot read sample ${i}`));
        // Created in a timer callback, i.e. possibly inside the consumer's open scope: keep() per the contract.
        resolve({ x: T.full([1, 2, 2], i).keep(), y: i });
      }, this.delayMs),
    );
  }
}

test('generic datasets: batches equal the TensorDataset fast path; skipped batches are never requested', async () => {
  const ds = indexDataset(100);
  const viaGet: Dataset<Sample> = { length: ds.length, get: (i) => ds.get(i) };
  const fast = await collect(new DataLoader(ds, { batchSize: 16, shuffle: true, seed: 5, transform: identity }), 2);
  const slow = await collect(new DataLoader(viaGet, { batchSize: 16, shuffle: true, seed: 5, transform: identity }), 2);
  assert.deepEqual(slow, fast);

  const sd = new SlowDataset(100, 0);
  const loader = new DataLoader(sd, { batchSize: 10, shuffle: true, seed: 9, transform: identity });
  await collect(loader, 0, 4);
  assert.deepEqual(sd.requested, Array.from(loader.order(0).subarray(40)));
  ds.dispose();
});

test('prefetch: batch k+1 is requested before batch k is handed over', async () => {
  const sd = new SlowDataset(40, 2);
  const loader = new DataLoader(sd, { batchSize: 8, transform: identity });
  for await (const b of loader.epoch(0)) {
    const wanted = Math.min(40, (b.index + 2) * 8);
    assert.equal(sd.requested.length, wanted, `at batch ${b.index}`);
    disposeBatch(b);
  }
  const lazy = new SlowDataset(40, 2);
  for await (const b of new DataLoader(lazy, { batchSize: 8, prefetch: 0, transform: identity }).epoch(0)) {
    assert.equal(lazy.requested.length, (b.index + 1) * 8, 'prefetch 0 prepares on demand');
    disposeBatch(b);
  }
});

test("a caller's scopes around the step do not free the batch being prefetched", async () => {
  const sd = new SlowDataset(64, 3);
  const loader = new DataLoader(sd, { batchSize: 8, shuffle: true, seed: 2, transform: (b) => ({ x: b.x.mul(2), y: b.y }) });
  const ys: number[] = [];
  for await (const b of loader.epoch(0)) {
    // The step: a scope that stays open across an await, during which the next batch's samples arrive and
    // the batch is assembled. Closing it must not free that batch.
    const s = T.scope();
    try {
      const loss = b.x.sum();
      await new Promise((r) => setTimeout(r, 10));
      assert.ok(loss.item() >= 0);
    } finally {
      s.dispose();
    }
    T.tidy(() => b.x.add(1).sum());
    assert.equal(b.x.isDisposed, false);
    const y = b.y.toNumbers();
    assert.deepEqual(T.tidy(() => b.x.select(1, 0).select(1, 0).select(1, 0)).toNumbers(), y.map((v) => 2 * v));
    ys.push(...y);
    disposeBatch(b);
  }
  assert.deepEqual([...ys].sort((a, c) => a - c), range(64));
  assert.equal(T.scopeDepth(), 0);

  // The fast path under a tidy per step, and the whole loop inside an outer scope.
  const ds = indexDataset(50);
  const outer = T.scope();
  const kept: Batch[] = [];
  for await (const b of new DataLoader(ds, { batchSize: 8, transform: (x) => ({ x: x.x.add(0), y: x.y }) }).epoch(0)) {
    T.tidy(() => b.x.mul(3).sum());
    kept.push(b);
  }
  outer.dispose();
  assert.ok(kept.every((b) => !b.x.isDisposed && !b.y.isDisposed), 'batches belong to the caller, not to open scopes');
  kept.forEach(disposeBatch);
  ds.dispose();
});

test('leaving an epoch early frees the prefetched batch; dataset errors reach the consumer', async () => {
  const made: T.Tensor[] = [];
  const sd = new SlowDataset(80, 1);
  const loader = new DataLoader(sd, { batchSize: 8, prefetch: 2, transform: (b) => { const x = b.x.add(0); made.push(x); return { x, y: b.y }; } });
  for await (const b of loader.epoch(0)) {
    disposeBatch(b);
    if (b.index === 2) break;
  }
  await new Promise((r) => setTimeout(r, 30));
  assert.ok(made.length >= 4, `prefetched beyond the break (${made.length} made)`);
  assert.ok(made.every((x) => x.isDisposed), 'nothing prepared is left alive');

  // The failure happens in a prefetch while the consumer is busy; it surfaces at that batch, not as a crash.
  const failing = new DataLoader(new SlowDataset(40, 1, 21), { batchSize: 8, transform: identity });
  const seen: number[] = [];
  await assert.rejects(async () => {
    for await (const b of failing.epoch(0)) {
      await new Promise((r) => setTimeout(r, 20));
      seen.push(b.index);
      disposeBatch(b);
    }
  }, /cannot read sample 21/);
  assert.deepEqual(seen, [0, 1]);
});

test('default transform: uint8 images become float32 in [0, 1]', async () => {
  const ds = T.tidy(() => new TensorDataset(T.fromArray(Uint8Array.from([0, 51, 255, 102]), [4, 1, 1, 1]), T.arange(4)));
  const loader = new DataLoader(ds, { batchSize: 4 });
  for await (const b of loader.epoch(0)) {
    assert.equal(b.x.dtype, 'float32');
    assert.deepEqual(b.x.shape, [4, 1, 1, 1]);
    const got = b.x.toNumbers();
    [0, 51, 255, 102].forEach((v, i) => assert.ok(Math.abs(got[i] - v / 255) < 1e-7));
    disposeBatch(b);
  }
  ds.dispose();
});
