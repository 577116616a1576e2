// Batch transforms against independent computations: normalize by hand, flips and crops element by element
// (the offsets recovered by searching the padded input, not by replaying the PRNG), resize against PyTorch.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { BatchContext, BatchData, Rng, compose, normalize, randomCrop, randomHorizontalFlip, randomResizedCrop, resize, resizedCropBox, toFloat } from '../../src/data';
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

test('resizedCropBox: boxes inside the image with area share in scale and aspect in ratio; ten misses fall back to the centre', () => {
  const rng = new Rng(21);
  const [H, W] = [50, 70];
  const shares: number[] = [];
  for (let k = 0; k < 2000; k++) {
    const b = resizedCropBox(rng, H, W, [0.08, 1], [3 / 4, 4 / 3]);
    assert.ok(b.top >= 0 && b.left >= 0 && b.top + b.height <= H && b.left + b.width <= W, `inside: ${JSON.stringify(b)}`);
    const share = (b.height * b.width) / (H * W);
    // Rounding each side to a whole pixel moves the area and the aspect by up to half a pixel per side.
    assert.ok(share >= 0.08 * 0.75 && share <= 1, `area share ${share}`);
    const aspect = b.width / b.height;
    assert.ok(aspect >= (3 / 4) * (1 - 0.5 / b.height) / (1 + 0.5 / b.width) - 1e-9 && aspect <= (4 / 3) * (1 + 0.5 / b.width) / (1 - 0.5 / b.height) + 1e-9, `aspect ${aspect}`);
    shares.push(share);
  }
  const mean = shares.reduce((a, v) => a + v, 0) / shares.length;
  // Uniform shares in [0.08, 1] average 0.54; large boxes that miss the 50×70 frame are redrawn, so fewer large ones.
  assert.ok(mean > 0.4 && mean < 0.56, `mean area share ${mean}`);
  // No box of aspect 3…4 and 90% of the area fits a 10×10 image: the centred 10 wide, round(10 / 3) = 3 high.
  assert.deepEqual(resizedCropBox(new Rng(1), 10, 10, [0.9, 1], [3, 4]), { top: 3, left: 0, height: 3, width: 10 });
  // A tall image with ratio [1, 1] and the whole area: the centred square.
  assert.deepEqual(resizedCropBox(new Rng(1), 30, 10, [1, 1], [1, 1]), { top: 10, left: 0, height: 10, width: 10 });
});

test('randomResizedCrop equals PyTorch\'s antialiased bilinear resize of each drawn box (uint8 and float)', () => {
  const bytes = T.tidy(() => T.rand([1, 3, 37, 53]).mul(255).floor().to('uint8'));
  const floats = batch(3, 2, 29, 41).b;
  const size: [number, number] = [16, 12];
  const u8 = randomResizedCrop(size)({ x: bytes, y: T.arange(1) }, ctx(5)).x;
  const f = randomResizedCrop(size, { scale: [0.3, 0.9] })(floats, ctx(6)).x;
  assert.equal(u8.dtype, 'uint8');
  assert.deepEqual(u8.shape, [1, 3, 16, 12]);
  assert.deepEqual(f.shape, [3, 2, 16, 12]);
  // The boxes the transforms drew, drawn again from the same Rng (resizedCropBox is checked by itself above).
  const b1 = resizedCropBox(Rng.from(5), 37, 53, [0.08, 1], [3 / 4, 4 / 3]);
  const r6 = Rng.from(6);
  const bs = [0, 1, 2].map(() => resizedCropBox(r6, 29, 41, [0.3, 0.9], [3 / 4, 4 / 3]));
  const py = (b: { top: number; left: number; height: number; width: number }): string => `${b.top}:${b.top + b.height}, ${b.left}:${b.left + b.width}`;
  const ref = runTorch(
    `aa = lambda x: F.interpolate(x, size=(16, 12), mode="bilinear", align_corners=False, antialias=True)
O["u8"] = aa(I["b"][:, :, ${py(b1)}].float()).round().clamp(0, 255).to(torch.uint8)
O["f"] = torch.cat([${bs.map((b, i) => `aa(I["x"][${i}:${i + 1}, :, ${py(b)}])`).join(', ')}], 0)`,
    { b: bytes, x: floats.x },
  );
  assert.deepEqual(u8.toNumbers(), ref.u8.toNumbers());
  assertClose(f, ref.f, 1e-5, 'float crops');
  // Distinct boxes per sample, and the same seed draws the same crops.
  assert.equal(new Set(bs.map(py)).size, 3);
  assert.deepEqual(randomResizedCrop(size)({ x: bytes, y: T.arange(1) }, ctx(5)).x.toNumbers(), u8.toNumbers());
  assert.throws(() => randomResizedCrop(8, { scale: [0, 1] }), /scale must satisfy 0 < min <= max <= 1/);
  assert.throws(() => randomResizedCrop(8, { ratio: [2, 1] }), /ratio must satisfy/);
});
