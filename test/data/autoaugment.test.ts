// TrivialAugment and random erasing against torchvision 0.14 (Debian's python3-torchvision): each of the
// fourteen operations at several strengths on RGB and grey uint8 images, pixel for pixel against its
// _apply_op; the draws' distribution; erasing boxes by hand.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { Rng } from '../../src/data';
import { TRIVIAL_AUGMENT_OPS, TrivialAugmentOp, applyTrivialAugmentOp, drawTrivialAugment, erasingBox, randomErasing, trivialAugment } from '../../src/data/autoaugment';
import { runTorch } from '../helpers/pytorch';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Augmentation, makeLoaders } from '../../src/train/datasets';
import { writeLeftRightFolder } from '../helpers/folders';
import { tmpDir } from '../helpers/tmp';

const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

const ctx = (seed: number) => ({ epoch: 0, index: 0, rng: Rng.from(seed) });

/** torchvision's op names for ours. */
const TV: Record<TrivialAugmentOp, string> = {
  identity: 'Identity', shearX: 'ShearX', shearY: 'ShearY', translateX: 'TranslateX', translateY: 'TranslateY', rotate: 'Rotate',
  brightness: 'Brightness', color: 'Color', contrast: 'Contrast', sharpness: 'Sharpness', posterize: 'Posterize', solarize: 'Solarize',
  autoContrast: 'AutoContrast', equalize: 'Equalize',
};

/** Strengths from the wide space's ends, middles and negatives (float32 values, as torchvision's linspace gives). */
const STRENGTHS: Record<TrivialAugmentOp, number[]> = {
  identity: [0], autoContrast: [0], equalize: [0],
  shearX: [0.33, -0.99, 0.0330000035], shearY: [0.66, -0.1], translateX: [32, -5.3333335, 12.8], translateY: [-32, 7.4666667],
  rotate: [45, -135, 4.5], brightness: [0.5, -0.99, -0.3], color: [0.99, -0.5], contrast: [0.66, -0.99], sharpness: [0.99, -0.99, 0.3],
  posterize: [8, 5, 2], solarize: [255, 127.5, 8.5, 0],
};

test('every TrivialAugment operation equals torchvision\'s _apply_op on uint8 images, RGB and grey, pixel for pixel', () => {
  // Photo-like images (smooth, with a narrow range for autocontrast and equalize to act on) and noise.
  T.manualSeed(7);
  const rgb = T.tidy(() => T.rand([4, 3, 23, 29]).mul(60).add(T.linspace(80, 150, 29).view(1, 1, 1, 29)).floor().to('uint8'));
  const grey = T.tidy(() => T.rand([3, 1, 16, 20]).mul(255).floor().to('uint8'));
  const cases = TRIVIAL_AUGMENT_OPS.flatMap((op) => STRENGTHS[op].flatMap((m) => (['rgb', 'grey'] as const).map((img) => ({ op, m, img }))));
  const ref = runTorch(
    `from torchvision.transforms.autoaugment import _apply_op
from torchvision.transforms import InterpolationMode
cases = [${cases.map((c) => `("${TV[c.op]}", ${c.m}, "${c.img}")`).join(', ')}]
for i, (name, m, img) in enumerate(cases):
    O[f"c{i}"] = _apply_op(I[img], name, float(m), interpolation=InterpolationMode.NEAREST, fill=None)`,
    { rgb, grey },
  );
  const mismatches: string[] = [];
  cases.forEach((c, i) => {
    const got = T.tidy(() => applyTrivialAugmentOp(c.img === 'rgb' ? rgb : grey, c.op, c.m).toArray() as Uint8Array);
    const want = ref[`c${i}`].toArray() as Uint8Array;
    let differ = 0;
    got.forEach((v, k) => (differ += v === want[k] ? 0 : 1));
    if (differ) mismatches.push(`${c.op} ${c.m} ${c.img}: ${differ} of ${got.length} pixels`);
  });
  assert.deepEqual(mismatches, []);
  // The images change where they should (the comparison can tell): each op but identity moves some pixel.
  for (const op of TRIVIAL_AUGMENT_OPS.filter((o) => o !== 'identity')) {
    // Posterize at 8 bits and solarize above 255 are the identity; their other strengths are not.
    const m = op === 'posterize' ? 2 : op === 'solarize' ? 127.5 : STRENGTHS[op][0];
    const moved = T.tidy(() => applyTrivialAugmentOp(rgb, op, m).ne(rgb).sum().item());
    assert.ok(moved > 0, `${op} ${m} changes the image`);
  }
  assert.throws(() => applyTrivialAugmentOp(rgb.to('float32'), 'rotate', 10), /must be uint8/);
});

test('TrivialAugment draws: every operation about equally often, strengths from its steps, both signs; the batch transform applies each image\'s draw', () => {
  const rng = new Rng(5);
  const counts = new Map<string, number>();
  const signs = new Set<number>();
  for (let i = 0; i < 14_000; i++) {
    const d = drawTrivialAugment(rng);
    counts.set(d.op, (counts.get(d.op) ?? 0) + 1);
    if (d.op === 'rotate') {
      signs.add(Math.sign(d.magnitude));
      // 31 steps of 4.5 degrees from 0 to 135.
      assert.ok(Math.abs(Math.abs(d.magnitude) / 4.5 - Math.round(Math.abs(d.magnitude) / 4.5)) < 1e-5, `rotate ${d.magnitude}`);
    }
    if (d.op === 'posterize') assert.ok([2, 3, 4, 5, 6, 7, 8].includes(d.magnitude));
    if (d.op === 'equalize') assert.equal(d.magnitude, 0);
  }
  assert.equal(counts.size, 14);
  for (const [op, n] of counts) assert.ok(n > 850 && n < 1150, `${op}: ${n} of 14000`);
  assert.deepEqual([...signs].sort(), [-1, 0, 1].filter((s) => signs.has(s)));
  assert.ok(signs.has(-1) && signs.has(1));

  const x = T.tidy(() => T.rand([6, 3, 12, 12]).mul(255).floor().to('uint8'));
  const out = trivialAugment()({ x, y: T.arange(6) }, ctx(9)).x;
  const replay = Rng.from(9);
  for (let i = 0; i < 6; i++) {
    const d = drawTrivialAugment(replay);
    const want = T.tidy(() => applyTrivialAugmentOp(x.narrow(0, i, 1), d.op, d.magnitude).toNumbers());
    assert.deepEqual(T.tidy(() => out.narrow(0, i, 1).toNumbers()), want, `image ${i}: ${d.op} ${d.magnitude}`);
  }
  assert.throws(() => trivialAugment()({ x: x.to('float32'), y: T.arange(6) }, ctx(1)), /before toFloat/);
});

test('random erasing: boxes inside the image of area share and ratio in range, zero in every channel, nothing else touched', () => {
  const [n, c, h, w] = [200, 3, 20, 24];
  const x = T.tidy(() => T.rand([n, c, h, w]).add(1)); // never 0, so erased pixels are the zeros
  const out = randomErasing({ p: 0.5 })({ x, y: T.arange(n) }, ctx(3)).x;
  const zero = T.tidy(() => out.eq(0).to('uint8').toArray() as Uint8Array);
  const same = T.tidy(() => out.eq(x).to('uint8').toArray() as Uint8Array);
  let erased = 0;
  for (let i = 0; i < n; i++) {
    // The zero pixels of channel 0: a rectangle, the same in every channel; all others unchanged.
    const at = (k: number, r: number, q: number): number => ((i * c + k) * h + r) * w + q;
    const rows: number[] = [];
    const cols: number[] = [];
    for (let r = 0; r < h; r++) for (let q = 0; q < w; q++) if (zero[at(0, r, q)]) (rows.push(r), cols.push(q));
    for (let k = 0; k < c; k++) for (let r = 0; r < h; r++) for (let q = 0; q < w; q++) assert.equal(zero[at(k, r, q)] + same[at(k, r, q)], 1, `image ${i}: each pixel erased or unchanged`);
    if (rows.length === 0) continue;
    erased++;
    const [bh, bw] = [Math.max(...rows) - Math.min(...rows) + 1, Math.max(...cols) - Math.min(...cols) + 1];
    assert.equal(rows.length, bh * bw, `image ${i}: a filled rectangle`);
    for (let k = 1; k < c; k++) for (let j = 0; j < rows.length; j++) assert.equal(zero[at(k, rows[j], cols[j])], 1);
    assert.ok(bh < h && bw < w);
    // Rounding each side moves the area and the ratio by up to half a pixel per side.
    const share = (bh * bw) / (h * w);
    assert.ok(share >= 0.02 * 0.5 && share <= 0.33 * 1.25, `image ${i}: area share ${share}`);
    assert.ok(bh / bw >= 0.3 * 0.6 && bh / bw <= 3.3 / 0.6, `image ${i}: ratio ${bh / bw}`);
  }
  assert.ok(erased > 70 && erased < 130, `about half erased: ${erased} of ${n}`);
  // A box that cannot fit (90% of a 4×4 image with ratio 1 needs 4×4, not strictly inside) is never drawn.
  assert.equal(erasingBox(new Rng(1), 4, 4, [0.9, 0.95], [1, 1]), null);
  assert.deepEqual(randomErasing({ p: 0 })({ x, y: T.arange(n) }, ctx(3)).x, x);
  assert.throws(() => randomErasing({ p: 2 }), /p must lie in \[0, 1\]/);
});

test('training loaders: erasing after normalize on its own random stream (the crops and flips stay), TrivialAugment before toFloat; the CLI records both', async () => {
  const root = tmpDir('tsv-autoaug-');
  await writeLeftRightFolder(path.join(root, 'data'), 6);
  const spec = { kind: 'image-folder' as const, train: path.join(root, 'data'), testSplit: 0.25, size: 16, channels: 3 as const };
  const first = async (o: Partial<Augmentation>): Promise<T.Tensor> => {
    const l = makeLoaders(spec, { batchSize: 8, seed: 4, augment: true, ...o });
    const b = (await l.train.epoch(0).next()).value!;
    b.y.dispose();
    return b.x;
  };
  const [plain, erased, trivial] = [await first({}), await first({ randomErase: 1 }), await first({ trivialAugment: true })];
  // Every image: the plain batch's pixels, but for one box of exact zeros (the normalized mean colour).
  const [a, e] = [plain.toArray() as Float32Array, erased.toArray() as Float32Array];
  let zeros = 0;
  e.forEach((v, i) => (v === a[i] ? 0 : (assert.equal(v, 0, `pixel ${i}: erased to 0 or unchanged`), zeros++)));
  assert.ok(zeros > 0);
  assert.notDeepEqual(trivial.toNumbers(), plain.toNumbers());
  for (const t of [plain, erased, trivial]) t.dispose();

  const out = path.join(root, 'run');
  const r = spawnSync(process.execPath, [CLI, 'train', '--train-dir', spec.train, '--image-size', '16', '--augment', '--trivial-augment', '--random-erase', '0.25', '--epochs', '1', '-b', '4', '--opt', 'widths=4,8', '--opt', 'hidden=8', '--threads', '1', '-o', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /with random crops and flips and TrivialAugment and random erasing \(p 0\.25\)/);
  const cfg = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')).config as { trivialAugment: boolean; randomErase: number };
  assert.deepEqual([cfg.trivialAugment, cfg.randomErase], [true, 0.25]);
  const bad = spawnSync(process.execPath, [CLI, 'train', '--random-erase', '0'], { encoding: 'utf8' });
  assert.match(bad.stderr, /--random-erase must be a probability in \(0, 1\]/);
  fs.rmSync(root, { recursive: true, force: true });
});
