// Colour jitter against torchvision 0.14 (Debian's python3-torchvision): each adjustment at fixed factors on
// random RGB and grey images with ties, grey pixels and saturated values; the composed transform replaying
// the recorded draws (order and factors) through torchvision in the same order; the draws' ranges and their
// reproducibility; bad options; and the training pipelines (masks untouched, the other draws where they were).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import * as T from '../../src/torch';
import {
  BatchContext,
  ColorJitterDraw,
  FASHION_MNIST_MEAN,
  FASHION_MNIST_STD,
  JITTER_KINDS,
  Rng,
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  applyColorJitter,
  JitterAmount,
  checkColorJitter,
  colorJitter,
  describeColorJitter,
  drawColorJitter,
  jitterRange,
} from '../../src/data';
import { segmentationData, PAPER_AUGMENT } from '../../src/train/segment';
import { makeLoaders } from '../../src/train/datasets';
import { train } from '../../src/train/trainer';
import { readCheckpoint } from '../../src/train/checkpoint';
import { relError, runTorch, runTorchWithMeta } from '../helpers/pytorch';
import { tmpDir } from '../helpers/tmp';

const ctx = (seed: number): BatchContext => ({ epoch: 0, index: 0, rng: Rng.from(seed) });

/**
 * n images c×h×w in [0, 1] from a seeded PRNG, with the cases HSV branches on: pixels whose channels tie
 * (max at R and G, at G and B), grey pixels (max = min), exact 0 and 1, and 8-bit values (what toFloat gives).
 */
function images(n: number, c: number, h: number, w: number, seed: number): T.Tensor {
  const r = new Rng(seed);
  const plane = h * w;
  const v = new Float32Array(n * c * plane);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < plane; p++) {
      const at = (ch: number): number => (i * c + ch) * plane + p;
      for (let ch = 0; ch < c; ch++) v[at(ch)] = p % 2 ? Math.round(r.next() * 255) / 255 : r.next();
      if (c !== 3) continue;
      if (p % 5 === 0) v[at(1)] = v[at(0)] = Math.max(v[at(0)], v[at(1)], v[at(2)]); // max at R and G
      if (p % 7 === 0) v[at(2)] = v[at(1)] = Math.max(v[at(1)], v[at(2)]); // G ties B
      if (p % 11 === 0) v[at(1)] = v[at(2)] = v[at(0)]; // grey
      if (p % 13 === 0) v[at(p % 3)] = 1;
      if (p % 17 === 0) v[at((p + 1) % 3)] = 0;
    }
  }
  return T.fromArray(v, [n, c, h, w]);
}

// Factors that reach both clamps (above 1 brightens past white), the identity (1, hue 0) and the hue limits.
const FACTORS = {
  brightness: [0, 0.3, 1, 1.6, 2.5],
  contrast: [0, 0.5, 1, 1.4, 3],
  saturation: [0, 0.2, 1, 1.7, 4],
  hue: [-0.5, -0.31, 0, 0.07, 0.5],
} as const;
const ADJUST = { brightness: adjustBrightness, contrast: adjustContrast, saturation: adjustSaturation, hue: adjustHue } as const;

// Each adjustment and the composed jitter agree with torchvision to 1e-5 (hue included: the HSV round trip
// is torchvision's op for op, so only libtorch's reductions may round differently; measured ≤ 1e-6).
const TOL = 1e-5;

test('each adjustment matches torchvision.transforms.functional at fixed factors, RGB and grey', () => {
  const x = { rgb: images(5, 3, 8, 9, 1), grey: images(5, 1, 8, 9, 2) };
  const inputs: Record<string, T.Tensor> = { rgb: x.rgb, grey: x.grey };
  for (const k of JITTER_KINDS) inputs[k] = T.fromArray(Float64Array.from(FACTORS[k]));
  const want = runTorch(
    `
import torchvision.transforms.functional as TF
for kind in ['brightness', 'contrast', 'saturation', 'hue']:
    f = I[kind].tolist()
    for c in ['rgb', 'grey']:
        O[kind + '_' + c] = torch.stack([getattr(TF, 'adjust_' + kind)(I[c][i], f[i]) for i in range(len(f))])
`,
    inputs,
  );
  for (const k of JITTER_KINDS) {
    for (const c of ['rgb', 'grey'] as const) {
      const got = ADJUST[k](x[c], FACTORS[k]);
      const e = relError(got, want[`${k}_${c}`]);
      assert.ok(e <= TOL, `${k} on ${c}: error ${e.toExponential(2)} > ${TOL}`);
      // One factor for the whole batch is the same as that factor per image.
      const one = ADJUST[k](x[c], FACTORS[k][3]);
      assert.ok(relError(one.narrow(0, 3, 1), got.narrow(0, 3, 1)) === 0, `${k} on ${c}: scalar factor`);
    }
    // torchvision leaves grey images alone for saturation and hue, and so do we.
    if (k === 'saturation' || k === 'hue') assert.equal(relError(ADJUST[k](x.grey, FACTORS[k]), x.grey), 0);
  }
  // Results stay in [0, 1] (the clamps), and the strong factors really reach them.
  const bright = adjustBrightness(x.rgb, 2.5);
  assert.equal(bright.max().item(), 1);
  assert.ok(adjustContrast(x.rgb, 3).min().item() === 0);
});

/** Recorded draws as tensors for Python: order [N, 4] and factors [N, 4] (NaN: off). */
function drawTensors(draws: readonly ColorJitterDraw[]): Record<string, T.Tensor> {
  const order = Int32Array.from(draws.flatMap((d) => d.order));
  const factors = Float64Array.from(draws.flatMap((d) => JITTER_KINDS.map((k) => d[k] ?? NaN)));
  return { order: T.fromArray(order, [draws.length, 4]).to('int64'), factors: T.fromArray(factors, [draws.length, 4]) };
}

// Each case k: images rgb<k>, grey<k>, their draws order<k>, factors<k>; torchvision in each image's order.
const REPLAY = `
import math
import torchvision.transforms.functional as TF
fns = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
for name in [k for k in I if k.startswith('rgb') or k.startswith('grey')]:
    case = name.lstrip('rgbey')
    out = []
    for i in range(I[name].shape[0]):
        img = I[name][i]
        for j in I['order' + case][i].tolist():
            f = I['factors' + case][i][j].item()
            if not math.isnan(f):
                img = fns[j](img, f)
        out.append(img)
    O[name] = torch.stack(out)
`;

test('the composed jitter applies each image\'s recorded order and factors as torchvision does', () => {
  // Everything off but one, two on, all on and strong; several orders in one batch (the grouped path).
  const cases = [{ brightness: 0.8, contrast: 0.8, saturation: 0.8, hue: 0.4 }, { brightness: 0.5, hue: 0.2 }, { saturation: 1.5 }];
  const n = 24;
  const inputs: Record<string, T.Tensor> = {};
  const got: Record<string, T.Tensor> = {};
  cases.forEach((opts, i) => {
    const x = { rgb: images(n, 3, 6, 7, 3 + i), grey: images(n, 1, 6, 7, 4 + i) };
    const o = checkColorJitter(opts);
    const rng = Rng.from(11 + i);
    const draws = Array.from({ length: n }, () => drawColorJitter(rng, o));
    assert.ok(new Set(draws.map((d) => d.order.join())).size > 5);
    const t = drawTensors(draws);
    Object.assign(inputs, { [`rgb${i}`]: x.rgb, [`grey${i}`]: x.grey, [`order${i}`]: t.order, [`factors${i}`]: t.factors });
    for (const c of ['rgb', 'grey'] as const) {
      got[`${c}${i}`] = applyColorJitter(x[c], draws);
      // The transform draws exactly these from the batch's Rng, image by image.
      const viaTransform = colorJitter(opts)({ x: x[c], y: T.arange(n) }, ctx(11 + i));
      assert.equal(relError(viaTransform.x, got[`${c}${i}`]), 0, 'colorJitter = applyColorJitter of the draws from ctx.rng');
    }
  });
  // A batch of one (the per-sample path of segmentation folders) runs every step on the whole batch.
  const one = images(1, 3, 5, 5, 9);
  const d = drawColorJitter(Rng.from(2), checkColorJitter({ brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 }));
  const t1 = drawTensors([d]);
  Object.assign(inputs, { rgb3: one, grey3: images(1, 1, 5, 5, 9), order3: t1.order, factors3: t1.factors });
  got.rgb3 = applyColorJitter(one, [d]);
  got.grey3 = applyColorJitter(inputs.grey3, [d]);
  const want = runTorch(REPLAY, inputs);
  for (const k of Object.keys(got)) {
    const e = relError(got[k], want[k]);
    assert.ok(e <= TOL, `case ${k}: error ${e.toExponential(2)} > ${TOL}`);
  }
});

test('draws lie in torchvision\'s ranges, orders are uniform permutations, and the seed reproduces them', () => {
  const o = checkColorJitter({ brightness: 0.4, contrast: 1.5, saturation: 0.2, hue: 0.5 });
  const ranges = { brightness: [0.6, 1.4], contrast: [0, 2.5], saturation: [0.8, 1.2], hue: [-0.5, 0.5] } as const;
  const rng = Rng.from(5);
  const draws = Array.from({ length: 4000 }, () => drawColorJitter(rng, o));
  for (const k of JITTER_KINDS) {
    const v = draws.map((d) => d[k] as number);
    const [lo, hi] = ranges[k];
    assert.ok(v.every((f) => f >= lo && f < hi), `${k} outside [${lo}, ${hi})`);
    // Uniform over the whole range: both ends reached within 1% of it, the mean near the middle.
    assert.ok(Math.min(...v) < lo + 0.01 * (hi - lo) && Math.max(...v) > hi - 0.01 * (hi - lo), `${k} does not span its range`);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    assert.ok(Math.abs(mean - (lo + hi) / 2) < 0.03 * (hi - lo), `${k} mean ${mean}`);
  }
  assert.ok(draws.every((d) => [...d.order].sort().join() === '0,1,2,3'), 'orders are permutations of 0..3');
  assert.equal(new Set(draws.map((d) => d.order.join())).size, 24, 'all 24 orders occur');
  for (let pos = 0; pos < 4; pos++) {
    const first = draws.filter((d) => d.order[pos] === 0).length / draws.length;
    assert.ok(Math.abs(first - 0.25) < 0.03, `brightness at position ${pos}: ${first}`);
  }
  // The same seed, the same draws; another seed, others.
  const again = Rng.from(5);
  assert.deepEqual(Array.from({ length: 4000 }, () => drawColorJitter(again, o)), draws);
  const other = Rng.from(6);
  assert.notDeepEqual(Array.from({ length: 10 }, () => drawColorJitter(other, o)), draws.slice(0, 10));
  // Adjustments that are off draw nothing: brightness alone takes the order's 3 numbers and its own 1.
  const lone = Rng.from(1);
  const d = drawColorJitter(lone, checkColorJitter({ brightness: 0.4 }));
  assert.deepEqual([d.contrast, d.saturation, d.hue], [null, null, null]);
  const ref = Rng.from(1);
  for (let i = 0; i < 4; i++) ref.next();
  assert.equal(lone.next(), ref.next());
  // The transform: reproducible from the batch's Rng; all options 0: the batch itself, nothing drawn.
  const x = images(4, 3, 5, 5, 7);
  const jitter = colorJitter({ brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 });
  assert.equal(relError(jitter({ x, y: T.arange(4) }, ctx(3)).x, jitter({ x, y: T.arange(4) }, ctx(3)).x), 0);
  assert.ok(relError(jitter({ x, y: T.arange(4) }, ctx(3)).x, jitter({ x, y: T.arange(4) }, ctx(4)).x) > 1e-3);
  const c = ctx(3);
  const b = { x, y: T.arange(4) };
  assert.equal(colorJitter({})(b, c), b);
  assert.equal(c.rng.next(), Rng.from(3).next());
});

test('bad options and inputs are refused, naming the value', () => {
  assert.throws(() => colorJitter({ brightness: -0.1 }), /brightness must be a finite number ≥ 0, got -0.1/);
  assert.throws(() => colorJitter({ contrast: NaN }), /contrast .*got NaN/);
  assert.throws(() => colorJitter({ saturation: Infinity }), /saturation .*got Infinity/);
  assert.throws(() => colorJitter({ hue: 0.6 }), /hue must be at most 0.5.*got 0.6/);
  assert.throws(() => colorJitter({ hue: -0.1 }), /hue .*got -0.1/);
  assert.deepEqual(checkColorJitter({ hue: 0.5 }), { brightness: 0, contrast: 0, saturation: 0, hue: 0.5 });
  const j = colorJitter({ brightness: 0.4 });
  assert.throws(() => j({ x: T.zeros([1, 3, 2, 2], { dtype: 'uint8' }), y: T.arange(1) }, ctx(0)), /uint8; put toFloat\(\) before it/);
  assert.throws(() => j({ x: T.zeros([1, 2, 2, 2]), y: T.arange(1) }, ctx(0)), /1 or 3 channels, got 2/);
  assert.throws(() => adjustHue(T.zeros([1, 3, 2, 2]), 0.7), /\[-0.5, 0.5\], got 0.7/);
  assert.throws(() => adjustBrightness(T.zeros([2, 3, 2, 2]), [1]), /1 factors for 2 images/);
});

const unnormalize = (x: T.Tensor): T.Tensor => x.mul(FASHION_MNIST_STD).add(FASHION_MNIST_MEAN);

test('classification: the jitter runs on [0, 1] pixels after the crops and flips, which stay where they were', async () => {
  const first = async (colorJitter: { brightness: number } | null): Promise<T.Tensor> => {
    const { train } = makeLoaders({ kind: 'fashion-mnist' }, { batchSize: 64, seed: 3, augment: true, colorJitter });
    for await (const b of train.epoch(0)) return unnormalize(b.x);
    throw new Error('no batch');
  };
  const plain = await first(null);
  const jittered = await first({ brightness: 0.4 });
  T.tidy(() => {
    // Brightness keeps black black and everything else not: the same zeros, so the same crops and flips.
    assert.equal(jittered.abs().lt(1e-4).ne(plain.abs().lt(1e-4)).sum().item(), 0, 'crop or flip moved');
    // Factors per image in [0.6, 1.4], different between images; pixels clamped to [0, 1] before normalizing.
    const ratio = jittered.flatten(1).sum(1).div(plain.flatten(1).sum(1)).toNumbers();
    assert.ok(ratio.every((r) => r > 0.6 - 1e-3 && r < 1.4 + 1e-3), `ratios ${ratio.slice(0, 5)}`);
    assert.ok(Math.max(...ratio) - Math.min(...ratio) > 0.3, 'one factor per image');
    assert.ok(jittered.max().item() <= 1 + 1e-5 && jittered.min().item() >= -1e-5);
  });
});

test('segmentation: the jitter changes images only; masks and the geometric augmentation stay where they were', async () => {
  const scenes = { size: 48, trainCount: 24, testCount: 4, maxItems: 2 };
  const batch = async (colorJitter: { brightness: number; contrast: number } | null, augment: typeof PAPER_AUGMENT | null): Promise<{ x: T.Tensor; y: T.Tensor }> => {
    const data = await segmentationData({ scenes, seed: 4, batchSize: 8, augment, colorJitter }, { train: true });
    for await (const b of data.train!.epoch(0)) return { x: unnormalize(b.x), y: b.y };
    throw new Error('no batch');
  };
  for (const augment of [null, { ...PAPER_AUGMENT, rotate: 10, blur: 0.5 }]) {
    const plain = await batch(null, augment);
    const jittered = await batch({ brightness: 0.5, contrast: 0.5 }, augment);
    T.tidy(() => {
      assert.equal(jittered.y.ne(plain.y).sum().item(), 0, `masks changed (augment ${augment !== null})`);
      assert.ok(jittered.x.sub(plain.x).abs().max().item() > 0.05, 'images jittered');
      // Jittered in [0, 1], before normalizing: the black canvas stays near black (jittered after normalizing,
      // the clamp would lift it to the mean, 0.29).
      assert.ok(jittered.x.max().item() <= 1 + 1e-5 && jittered.x.min().item() >= -1e-5, 'pixels in [0, 1]');
      assert.ok(jittered.x.min().item() < 0.05, `black canvas at ${jittered.x.min().item()}`);
    });
  }
});

test('segmentation folders (decoded and augmented image by image): masks and geometry untouched by the jitter', async () => {
  const root = tmpDir('tsv-jitter-seg-');
  fs.mkdirSync(path.join(root, 'images'));
  fs.mkdirSync(path.join(root, 'masks'));
  const r = new Rng(8);
  for (let i = 0; i < 4; i++) {
    const [h, w] = [20 + 2 * i, 24];
    const img = Buffer.from(Array.from({ length: h * w * 3 }, () => Math.floor(r.next() * 256)));
    const mask = Buffer.from(Array.from({ length: h * w }, (_, p) => (p % w < w / 2 ? 0 : 1)));
    await sharp(img, { raw: { width: w, height: h, channels: 3 } }).png().toFile(path.join(root, 'images', `im${i}.png`));
    await sharp(mask, { raw: { width: w, height: h, channels: 1 } }).png().toFile(path.join(root, 'masks', `im${i}.png`));
  }
  const batch = async (colorJitter: { brightness: number; contrast: number; saturation: number; hue: number } | null): Promise<{ x: T.Tensor; y: T.Tensor }> => {
    const cfg = { scenes: { size: 48, trainCount: 2, testCount: 2, maxItems: 1 }, seed: 2, batchSize: 4, colorJitter, augment: { ...PAPER_AUGMENT, crop: [16, 16] as [number, number] } };
    const data = await segmentationData({ ...cfg, folders: { train: root, test: root, channels: 3, numClasses: 2 } }, { train: true });
    for await (const b of data.train!.epoch(0)) return b;
    throw new Error('no batch');
  };
  const plain = await batch(null);
  const jittered = await batch({ brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 });
  T.tidy(() => {
    assert.deepEqual(jittered.y.shape, [4, 16, 16]);
    assert.equal(jittered.y.ne(plain.y).sum().item(), 0, 'masks changed');
    assert.ok(jittered.x.sub(plain.x).abs().max().item() > 0.05, 'images jittered');
  });
});

test('train records the colour jitter in its checkpoint, report.json and log line', async () => {
  const out = tmpDir('tsv-jitter-');
  const lines: string[] = [];
  const cj = { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 };
  await train({ model: 'cnn', modelOptions: { widths: [4, 8], hidden: 16 }, epochs: 1, batchSize: 32, limitBatches: 2, colorJitter: cj, outDir: out, threads: 1 }, (l) => lines.push(l));
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as { config: { colorJitter: unknown } };
  assert.deepEqual(report.config.colorJitter, cj);
  assert.deepEqual((readCheckpoint(path.join(out, 'checkpoint.safetensors')).state.config as { colorJitter: unknown }).colorJitter, cj);
  assert.ok(lines.some((l) => l.includes('colour jitter (brightness 0.4, contrast 0.4, saturation 0.4, hue 0.1)')), lines.join('\n'));
});

test('ranges: numbers and [lo, hi] pairs give torchvision 0.14 ColorJitter\'s ranges; what it refuses is refused; draws stay inside', () => {
  // Each case: the four arguments as given to both; torchvision's attributes (None where off) come back as
  // [lo, hi] or [NaN, NaN], or the case is marked refused.
  const cases: { brightness: JitterAmount; contrast: JitterAmount; saturation: JitterAmount; hue: JitterAmount }[] = [
    { brightness: 0.4, contrast: [0.2, 1.7], saturation: [1, 1], hue: [-0.1, 0.3] },
    { brightness: [0, 2.5], contrast: 1.5, saturation: [0.5, 0.5], hue: [0, 0] },
    { brightness: [1, 1], contrast: 0, saturation: [0.3, 4], hue: 0.5 },
    { brightness: [1.2, 0.8], contrast: 0, saturation: 0, hue: 0 }, // lo > hi
    { brightness: [-0.1, 1], contrast: 0, saturation: 0, hue: 0 }, // below 0
    { brightness: 0, contrast: 0, saturation: 0, hue: [-0.6, 0.2] }, // hue beyond -0.5
  ];
  const py = (v: JitterAmount): string => (typeof v === 'number' ? String(v) : `(${v[0]}, ${v[1]})`);
  const { tensors, metadata } = runTorchWithMeta(`
import torchvision.transforms as TV
cases = [${cases.map((c) => `(${JITTER_KINDS.map((k) => py(c[k])).join(', ')})`).join(', ')}]
for i, c in enumerate(cases):
    try:
        j = TV.ColorJitter(*c)
    except (ValueError, TypeError) as e:
        META[f'refused{i}'] = str(e)
        continue
    r = [getattr(j, k) for k in ('brightness', 'contrast', 'saturation', 'hue')]
    O[f'case{i}'] = torch.tensor([[float('nan'), float('nan')] if v is None else [float(v[0]), float(v[1])] for v in r], dtype=torch.float64)
`);
  cases.forEach((c, i) => {
    if (metadata[`refused${i}`] !== undefined) {
      assert.throws(() => checkColorJitter(c), /as a range must be \[lo, hi\]/, `case ${i}: torchvision refused (${metadata[`refused${i}`]})`);
      return;
    }
    const want = Array.from(tensors[`case${i}`].toArray() as Float64Array);
    const o = checkColorJitter(c);
    JITTER_KINDS.forEach((k, j) => {
      const r = jitterRange(k, o[k]);
      const [lo, hi] = [want[2 * j], want[2 * j + 1]];
      if (Number.isNaN(lo)) assert.equal(r, null, `case ${i} ${k}: torchvision has it off`);
      else {
        assert.ok(r, `case ${i} ${k}: torchvision has [${lo}, ${hi}]`);
        assert.ok(Math.abs(r[0] - lo) < 1e-12 && Math.abs(r[1] - hi) < 1e-12, `case ${i} ${k}: [${r}] vs [${lo}, ${hi}]`);
      }
    });
  });
  assert.equal(Object.keys(metadata).filter((k) => k.startsWith('refused')).length, 3, 'torchvision refuses the three bad cases');
  // Draws from a range stay inside it and span it.
  const rng = Rng.from(9);
  const o = checkColorJitter({ contrast: [0.2, 1.7], hue: [-0.1, 0.3] });
  const draws = Array.from({ length: 2000 }, () => drawColorJitter(rng, o));
  for (const [k, lo, hi] of [['contrast', 0.2, 1.7], ['hue', -0.1, 0.3]] as const) {
    const v = draws.map((d) => d[k] as number);
    assert.ok(v.every((f) => f >= lo && f < hi) && Math.min(...v) < lo + 0.01 && Math.max(...v) > hi - 0.01, `${k} within and across [${lo}, ${hi})`);
  }
  assert.ok(draws.every((d) => d.brightness === null && d.saturation === null));
  // [1, 1] (and [0, 0] for hue) is off: nothing drawn, the batch passes through.
  const b = { x: images(2, 3, 4, 4, 1), y: T.arange(2) };
  assert.equal(colorJitter({ brightness: [1, 1], hue: [0, 0] })(b, ctx(0)), b);
  assert.equal(describeColorJitter({ brightness: 0.4, contrast: [0.2, 1.7], saturation: [1, 1] }), 'brightness 0.4, contrast 0.2:1.7');
});
