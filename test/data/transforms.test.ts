// Batch transforms against independent computations: normalize by hand, flips and crops element by element
// (the offsets recovered by searching the padded input, not by replaying the PRNG), resize against PyTorch.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { BatchContext, BatchData, Rng, compose, normalize, randomCrop, randomHorizontalFlip, resize, toFloat } from '../../src/data';
import { assertClose, runTorch } from '../helpers/pytorch';

const ctx = (seed: number): BatchContext => ({ epoch: 0, index: 0, rng: Rng.from(seed) });

/** A batch [n, c, h, w] of distinct float values (from a seeded JS PRNG) and labels 0..n-1. */
function batch(n: number, c: number, h: number, w: number, seed = 1): { data: Float32Array; b: BatchData } {
  const r = new Rng(seed);
  const data = Float32Array.from({ length: n * c * h * w }, (_, i) => i + r.next() * 0.5);
  return { data, b: { x: T.fromArray(data, [n, c, h, w]), y: T.arange(n) } };
}

test('toFloat divides uint8 by 255; float input passes through', () => {
  const bytes = Uint8Array.from([0, 1, 127, 128, 254, 255]);
  const out = toFloat()({ x: T.fromArray(bytes, [1, 1, 2, 3]), y: T.arange(1) }, ctx(0));
  assert.equal(out.x.dtype, 'float32');
  const got = out.x.toNumbers();
  bytes.forEach((v, i) => assert.ok(Math.abs(got[i] - v / 255) < 1e-7));
  const f = T.ones([1, 1, 1, 1]);
  assert.equal(toFloat()({ x: f, y: T.arange(1) }, ctx(0)).x, f);
});

test('normalize matches (x - mean[c]) / std[c] computed by hand', () => {
  const [n, c, h, w] = [3, 2, 4, 5];
  const { data, b } = batch(n, c, h, w);
  const mean = [0.25, -1.5];
  const std = [0.5, 2];
  const got = normalize(mean, std)(b, ctx(0)).x.toNumbers();
  for (let i = 0; i < data.length; i++) {
    const ch = Math.floor(i / (h * w)) % c;
    const want = (data[i] - mean[ch]) / std[ch];
    assert.ok(Math.abs(got[i] - want) <= 1e-5 * Math.max(1, Math.abs(want)), `element ${i}: ${got[i]} vs ${want}`);
  }
  // One mean/std for all channels.
  const one = normalize([2], [4])(b, ctx(0)).x.toNumbers();
  one.forEach((v, i) => assert.ok(Math.abs(v - (data[i] - 2) / 4) < 1e-4));
  assert.throws(() => normalize([0, 0, 0], [1, 1, 1])(b, ctx(0)), /3 means for 2 channels/);
  assert.throws(() => normalize([0], [0]), /positive/);
  assert.throws(() => normalize([0], [1])({ x: T.zeros([1, 1, 1, 1], { dtype: 'uint8' }), y: T.arange(1) }, ctx(0)), /toFloat/);
});

test('randomHorizontalFlip mirrors whole samples, independently, element by element', () => {
  const [n, c, h, w] = [64, 2, 3, 5];
  const { data, b } = batch(n, c, h, w);
  const got = randomHorizontalFlip(0.5)(b, ctx(3)).x.toNumbers();
  const at = (a: ArrayLike<number>, s: number, ch: number, r: number, q: number): number => a[((s * c + ch) * h + r) * w + q];
  let flipped = 0;
  for (let s = 0; s < n; s++) {
    const same = [...Array(c * h * w).keys()].every((k) => got[s * c * h * w + k] === data[s * c * h * w + k]);
    let mirrored = true;
    for (let ch = 0; ch < c; ch++) for (let r = 0; r < h; r++) for (let q = 0; q < w; q++) mirrored &&= at(got, s, ch, r, q) === at(data, s, ch, r, w - 1 - q);
    assert.ok(same !== mirrored, `sample ${s} is either unchanged or mirrored`);
    if (mirrored) flipped++;
  }
  assert.ok(flipped > 10 && flipped < 54, `about half flipped (${flipped} of ${n})`);
  assert.deepEqual(randomHorizontalFlip(0)(b, ctx(3)).x.toNumbers(), Array.from(data));
  assert.deepEqual(randomHorizontalFlip(1)(b, ctx(3)).x.toNumbers(), T.tidy(() => b.x.flip(3)).toNumbers());
  // Same Rng seed, same flips.
  assert.deepEqual(randomHorizontalFlip(0.5)(b, ctx(3)).x.toNumbers(), got);
});

test('randomCrop cuts each sample from its zero-padded self at an in-range offset', () => {
  const [n, c, h, w] = [40, 2, 6, 7];
  const pad = 2;
  const [ch, cw] = [5, 6];
  const { data, b } = batch(n, c, h, w);
  const out = randomCrop([ch, cw], pad)(b, ctx(8)).x;
  assert.deepEqual(out.shape, [n, c, ch, cw]);
  const got = out.toNumbers();
  // The padded input by hand.
  const padded = (s: number, k: number, r: number, q: number): number => {
    const rr = r - pad;
    const qq = q - pad;
    return rr < 0 || rr >= h || qq < 0 || qq >= w ? 0 : data[((s * c + k) * h + rr) * w + qq];
  };
  const offsets = new Set<string>();
  for (let s = 0; s < n; s++) {
    const matches: string[] = [];
    for (let oy = 0; oy <= h + 2 * pad - ch; oy++) {
      for (let ox = 0; ox <= w + 2 * pad - cw; ox++) {
        let ok = true;
        for (let k = 0; k < c && ok; k++) for (let r = 0; r < ch && ok; r++) for (let q = 0; q < cw && ok; q++) ok = got[((s * c + k) * ch + r) * cw + q] === padded(s, k, oy + r, ox + q);
        if (ok) matches.push(`${oy},${ox}`);
      }
    }
    assert.equal(matches.length, 1, `sample ${s} is exactly one window of its padded image`);
    offsets.add(matches[0]);
  }
  assert.ok(offsets.size > 10, `offsets vary per sample (${offsets.size} distinct)`);
  // No padding and full size: identity. Too large: a clear error.
  assert.deepEqual(randomCrop([h, w])(b, ctx(1)).x.toNumbers(), Array.from(data));
  assert.throws(() => randomCrop(20, 1)(b, ctx(1)), /larger than the padded image/);
});

test('resize matches PyTorch bilinear interpolation (float and uint8)', () => {
  const { b } = batch(2, 3, 7, 9);
  const bytes = T.tidy(() => T.fromArray(Uint8Array.from({ length: 2 * 1 * 5 * 6 }, (_, i) => (i * 37) % 256), [2, 1, 5, 6]));
  const up = resize([11, 13])(b, ctx(0)).x;
  const down = resize(4)(b, ctx(0)).x;
  const u8 = resize([8, 3])({ x: bytes, y: T.arange(2) }, ctx(0)).x;
  assert.equal(u8.dtype, 'uint8');
  const ref = runTorch(
    `O["up"] = F.interpolate(I["x"], size=(11, 13), mode="bilinear", align_corners=False)
O["down"] = F.interpolate(I["x"], size=(4, 4), mode="bilinear", align_corners=False)
O["u8"] = F.interpolate(I["b"].float(), size=(8, 3), mode="bilinear", align_corners=False).round().clamp(0, 255).to(torch.uint8)`,
    { x: b.x, b: bytes },
  );
  assertClose(up, ref.up, 1e-5, 'upsample');
  assertClose(down, ref.down, 1e-5, 'downsample');
  assert.deepEqual(u8.toNumbers(), ref.u8.toNumbers());
});

test('compose applies in order and is reproducible from the Rng seed', () => {
  const { b } = batch(16, 1, 8, 8);
  const t = compose(randomCrop(8, 2), randomHorizontalFlip(), normalize([1], [2]));
  const a1 = t(b, ctx(5)).x.toNumbers();
  assert.deepEqual(t(b, ctx(5)).x.toNumbers(), a1);
  assert.notDeepEqual(t(b, ctx(6)).x.toNumbers(), a1);
  // Order matters: normalize then pad differs from pad then normalize (the zero padding is normalized too).
  const swapped = compose(normalize([1], [2]), randomCrop(8, 2), randomHorizontalFlip());
  assert.notDeepEqual(swapped(b, ctx(5)).x.toNumbers(), a1);
});
