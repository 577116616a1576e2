// `tsvision export --with-preprocessing`: the graph takes decoded image bytes (uint8 NHWC, as sharp's raw
// output lays them out) and returns class probabilities or a class map. Checked as a deployment uses it: real
// images (Fashion-MNIST test garments and scenes, crops of the browser example's screenshots as PNG and JPEG)
// decoded by sharp to raw bytes at the trained size, run by onnxruntime-node (and onnxruntime-web), against
// tsvision's own Predictor on the same files. Each comparison also shows that it tells a wrong mean or a
// planar (NCHW) byte order apart, so that it cannot pass by insensitivity.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import * as ort from 'onnxruntime-node';
import * as T from '../../src/torch';
import * as nn from '../../src/nn';
import { createModel } from '../../src/models/registry';
import { ENet } from '../../src/models/enet';
import { DeepLabV3 } from '../../src/models/deeplabv3';
import { FashionScenes, loadFashionMNIST } from '../../src/data';
import { Predictor } from '../../src/infer';
import { restoreNetwork } from '../../src/infer/restore';
import { ModelCard, PixelPipeline, cardPath, classMapDifferences, modelCard, onnxBytes } from '../../src/export';
import { exportCheckpoint, randomizeBatchNorm } from '../helpers/deploy';
import { tmpDir } from '../helpers/tmp';

const dir = tmpDir('tsv-preprocess-');
after(() => fs.rmSync(dir, { recursive: true, force: true }));
/** Every file exported here, for the checker. */
const exported: string[] = [];
const SCREENSHOT = path.resolve(__dirname, '..', '..', '..', 'examples', 'browser', 'screenshot-segment.png');

function exportBaked(name: string, model: nn.Module, config: Record<string, unknown>, flags: string[] = []): { ckpt: string; onnx: string; card: ModelCard } {
  const { ckpt, onnx } = exportCheckpoint(dir, name, model, config, ['--with-preprocessing', ...flags]);
  exported.push(onnx);
  return { ckpt, onnx, card: JSON.parse(fs.readFileSync(cardPath(onnx), 'utf8')) as ModelCard };
}

/** As a server decodes an upload for such a graph: alpha dropped, grey or sRGB, resized to fill, raw bytes. */
async function decode(file: string, card: ModelCard): Promise<Buffer> {
  const { channels, height, width } = card.input;
  const img = sharp(file, { failOn: 'error' }).removeAlpha();
  return (channels === 1 ? img.greyscale() : img.toColourspace('srgb')).resize(width, height, { fit: 'fill', kernel: 'lanczos3' }).raw().toBuffer();
}

/** The images' bytes as one batch [N, H, W, C] through the graph. */
async function runPixels(onnx: string, card: ModelCard, images: readonly Buffer[]): Promise<Record<string, ort.Tensor>> {
  const { channels, height, width } = card.input;
  const session = await ort.InferenceSession.create(onnx);
  try {
    const out = await session.run({ [card.input.name]: new ort.Tensor('uint8', Uint8Array.from(Buffer.concat(images)), [images.length, height, width, channels]) });
    return out;
  } finally {
    await session.release();
  }
}

/** HWC bytes rearranged to CHW: what a reader that forgot the card's NHWC layout would feed. */
function planar(hwc: Buffer, channels: number): Buffer {
  const n = hwc.length / channels;
  const out = Buffer.alloc(hwc.length);
  for (let c = 0; c < channels; c++) for (let i = 0; i < n; i++) out[c * n + i] = hwc[i * channels + c];
  return out;
}

/** Crops of the browser example's screenshot (a photo-like scene and page text), written as PNG or JPEG. */
async function crops(name: string, boxes: [number, number, number, number, 'png' | 'jpeg'][]): Promise<string[]> {
  return Promise.all(
    boxes.map(async ([left, top, width, height, format], i) => {
      const file = path.join(dir, `${name}-${i}.${format}`);
      const img = sharp(SCREENSHOT).extract({ left, top, width, height });
      await (format === 'png' ? img.png() : img.jpeg({ quality: 85 })).toFile(file);
      return file;
    }),
  );
}

/** Predictor's probability of every class (index order) for each image. */
async function predictorProbabilities(predictor: Predictor, files: string[], k: number): Promise<number[][]> {
  const answers = await predictor.classifyMany(files, { topK: k });
  return answers.map((a) => {
    const p = new Array<number>(k).fill(NaN);
    for (const s of a) p[s.index] = s.probability;
    return p;
  });
}

const maxDiff = (got: ArrayLike<number>, want: number[][]): number => want.flat().reduce((m, w, i) => Math.max(m, Math.abs(w - got[i])), 0);

test('a grey classifier on Fashion-MNIST test garments: the graph\'s probabilities are Predictor\'s within 1e-5', async () => {
  T.manualSeed(21);
  const { ckpt, onnx, card } = exportBaked('cnn', createModel('cnn', { numClasses: 10, inChannels: 1, smallInput: true }), { model: 'cnn', modelOptions: {}, data: { kind: 'fashion-mnist' } });
  // The card says what the graph takes and gives; the normalization it records is applied inside.
  assert.equal(card.version, 2);
  assert.equal(card.preprocessing, 'in-graph');
  assert.deepEqual(card.input, { name: 'pixels', layout: 'NHWC', dtype: 'uint8', channels: 1, height: 28, width: 28, batch: 'dynamic', resize: { fit: 'fill' } });
  assert.deepEqual(card.output, { name: 'probabilities', dtype: 'float32' });
  assert.equal(card.logits, undefined);
  assert.deepEqual(card.normalization, { mean: [0.286], std: [0.353] });

  const testSet = loadFashionMNIST({ split: 'test' });
  const garments = T.tidy(() => testSet.images.narrow(0, 0, 6).contiguous().toArray() as Uint8Array);
  testSet.dispose();
  const files = await Promise.all(
    Array.from({ length: 6 }, async (_, i) => {
      const file = path.join(dir, `garment-${i}.png`);
      await sharp(Buffer.from(garments.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(file);
      return file;
    }),
  );
  // And an RGB JPEG of another size: decoded to grey and resized to 28×28 by sharp, in both paths.
  files.push(...(await crops('grey-cnn', [[40, 300, 90, 60, 'jpeg']])));
  const pixels = await Promise.all(files.map((f) => decode(f, card)));
  const out = await runPixels(onnx, card, pixels);
  assert.deepEqual(Object.keys(out), ['probabilities']);
  const probs = out.probabilities;
  assert.equal(probs.type, 'float32');
  assert.deepEqual(probs.dims, [files.length, 10]);

  const want = await predictorProbabilities(await Predictor.load(ckpt), files, 10);
  const d = maxDiff(probs.data as Float32Array, want);
  assert.ok(d <= 1e-5, `onnxruntime vs Predictor: max |Δp| ${d}`);
  // The same comparison against Predictor with another mean fails: the tolerance sees normalization errors.
  const wrongMean = await predictorProbabilities(await Predictor.load(ckpt, { normalization: { mean: [0.386], std: [0.353] } }), files, 10);
  assert.ok(maxDiff(probs.data as Float32Array, wrongMean) > 100 * 1e-5, 'a mean off by 0.1 must show');
});

test('an RGB classifier on screenshot crops (PNG and JPEG): probabilities within 1e-5, logits kept, NHWC order matters', async () => {
  T.manualSeed(22);
  const model = createModel('resnet18', { numClasses: 7, inChannels: 3, width: 8, smallInput: true });
  randomizeBatchNorm(model);
  const data = { kind: 'image-folder', train: 'x', test: 'y', size: 32, channels: 3 };
  const { ckpt, onnx, card } = exportBaked('resnet18', model, { model: 'resnet18', modelOptions: { width: 8 }, data }, ['--keep-logits']);
  assert.deepEqual(card.input, { name: 'pixels', layout: 'NHWC', dtype: 'uint8', channels: 3, height: 32, width: 32, batch: 'dynamic', resize: { fit: 'fill' } });
  assert.deepEqual(card.logits, { name: 'logits' });
  // At the trained size (no resize) and larger (sharp's lanczos3 to 32×32).
  const files = await crops('rgb-cnn', [[160, 250, 32, 32, 'png'], [400, 600, 32, 32, 'png'], [180, 420, 32, 32, 'jpeg'], [50, 150, 160, 120, 'jpeg'], [380, 520, 75, 140, 'png']]);
  const pixels = await Promise.all(files.map((f) => decode(f, card)));
  const out = await runPixels(onnx, card, pixels);
  assert.deepEqual(Object.keys(out).sort(), ['logits', 'probabilities']);
  const want = await predictorProbabilities(await Predictor.load(ckpt), files, 7);
  const d = maxDiff(out.probabilities.data as Float32Array, want);
  assert.ok(d <= 1e-5, `onnxruntime vs Predictor: max |Δp| ${d}`);
  // The logits output is the network's, as tsvision computes it on the same bytes.
  const { model: net, normalization } = restoreNetwork(ckpt);
  const logits = T.tidy(() => {
    const x = T.fromArray(Uint8Array.from(Buffer.concat(pixels)), [files.length, 32, 32, 3]);
    return Array.from(T.noGrad(() => new PixelPipeline(net, { task: 'classify', normalization, keepLogits: true }).eval().forward(x)).logits.toArray() as Float32Array);
  });
  const scale = logits.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const dl = logits.reduce((m, v, i) => Math.max(m, Math.abs(v - (out.logits.data as Float32Array)[i])), 0);
  assert.ok(scale > 0 && dl <= 1e-4 * scale, `logits: max diff ${dl} at scale ${scale}`);
  // Bytes in planar order (NCHW) give other answers, far beyond the tolerance.
  const swapped = await runPixels(onnx, card, pixels.map((p) => planar(p, 3)));
  assert.ok(maxDiff(swapped.probabilities.data as Float32Array, want) > 100 * 1e-5, 'planar bytes must show');
  // (And the images themselves give different answers: the network is not blind to its input.)
  assert.ok(maxDiff(want[0], want.slice(1, 2)) > 100 * 1e-5, 'two images, two answers');
});

/**
 * The graph's class map against Predictor's labels for the same files: equal, except at ties of tsvision's own
 * logits (two executors' rounding may order classes whose logits differ by ~1e-6 of their scale either way).
 * `unpooled`: a network with max-unpooling (ENet) may also differ beyond a tie of the logits at a few pixels,
 * up to 0.05% of them: a near-tie inside a max-pooling window on a flat area of the image, broken the other
 * way by one runtime's rounding, moves a value elsewhere (README, Deploying with ONNX; seen on an AVX2 CPU).
 */
async function checkClassMaps(ckpt: string, onnx: string, card: ModelCard, files: string[], unpooled = false): Promise<{ differ: number; total: number; labels: Uint8Array[] }> {
  const { channels, height, width } = card.input;
  const pixels = await Promise.all(files.map((f) => decode(f, card)));
  const out = await runPixels(onnx, card, pixels);
  const classes = out[card.output.name];
  assert.equal(classes.type, 'uint8');
  assert.deepEqual(classes.dims, [files.length, height, width]);
  const want = await (await Predictor.load(ckpt)).segmentMany(files);
  const wantLabels = new Uint8Array(want.flatMap((p) => Array.from(p.labels)));
  const { model, normalization } = restoreNetwork(ckpt);
  const logits = T.tidy(() => {
    const x = T.fromArray(Uint8Array.from(Buffer.concat(pixels)), [files.length, height, width, channels]);
    return T.noGrad(() => new PixelPipeline(model, { task: 'segment', normalization, keepLogits: true }).eval().forward(x)).logits.toArray() as Float32Array;
  });
  const k = card.classes.length;
  const scale = logits.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const d = classMapDifferences(classes.data as Uint8Array, wantLabels, logits, k, height * width, 1e-5 * scale);
  assert.ok(d.unexplained <= (unpooled ? 0.0005 * wantLabels.length : 0), `${d.unexplained} pixels differ from Predictor without a tie`);
  assert.ok(d.differ <= 0.001 * wantLabels.length, `${d.differ} ties`);
  const got = classes.data as Uint8Array;
  return { differ: d.differ, total: wantLabels.length, labels: files.map((_, i) => got.slice(i * height * width, (i + 1) * height * width)) };
}

test('segmentation, grey Fashion-MNIST scenes (DeepLab-V3 64×64): the class map is Predictor\'s', async (t) => {
  T.manualSeed(23);
  const modelOptions = { backbone: 'resnet18' as const, width: 8, channels: 16, atrousRates: [1, 2, 3] };
  const model = new DeepLabV3({ ...modelOptions, numClasses: 11, inChannels: 1 });
  randomizeBatchNorm(model);
  const { ckpt, onnx, card } = exportBaked('deeplab-scenes', model, { model: 'deeplabv3', modelOptions, scenes: { size: 64 } });
  assert.deepEqual(card.output, { name: 'classes', dtype: 'uint8' });
  assert.equal(card.colours?.length, 11);
  const scenes = new FashionScenes({ split: 'test', count: 4, size: 64 });
  const bytes = T.tidy(() => scenes.images.contiguous().toArray() as Uint8Array);
  scenes.dispose();
  const files = await Promise.all(
    Array.from({ length: 4 }, async (_, i) => {
      const file = path.join(dir, `scene-${i}.png`);
      await sharp(Buffer.from(bytes.subarray(i * 4096, (i + 1) * 4096)), { raw: { width: 64, height: 64, channels: 1 } }).png().toFile(file);
      return file;
    }),
  );
  const r = await checkClassMaps(ckpt, onnx, card, files);
  t.diagnostic(`${r.differ} of ${r.total} pixels differ (ties)`);
  assert.ok(new Set(r.labels.flatMap((l) => Array.from(l))).size > 1, 'a random network still labels more than one class');
  // Predictor with another mean disagrees on many pixels: the class-map comparison sees normalization errors.
  const wrong = await (await Predictor.load(ckpt, { normalization: { mean: [0.6], std: [0.25] } })).segmentMany(files);
  const off = wrong.reduce((a, p, i) => a + p.labels.reduce((b, l, j) => b + (l === r.labels[i][j] ? 0 : 1), 0), 0);
  assert.ok(off > 0.01 * r.total, `only ${off} pixels change with another mean`);
});

test('segmentation, RGB crops (ENet 48×64, logits kept): the class map is Predictor\'s, in onnxruntime-web too', async (t) => {
  T.manualSeed(24);
  const model = new ENet({ numClasses: 11, inChannels: 3 });
  randomizeBatchNorm(model);
  const { ckpt, onnx, card } = exportBaked('enet-rgb', model, { model: 'enet', folders: { train: 'x', test: 'y', size: [48, 64], channels: 3 } }, ['--keep-logits']);
  assert.deepEqual(card.input, { name: 'pixels', layout: 'NHWC', dtype: 'uint8', channels: 3, height: 48, width: 64, batch: 'dynamic', resize: { fit: 'fill' } });
  const files = await crops('seg-rgb', [[150, 220, 64, 48, 'png'], [370, 600, 64, 48, 'png'], [400, 700, 64, 48, 'png']]);
  const r = await checkClassMaps(ckpt, onnx, card, files, true);
  t.diagnostic(`${r.differ} of ${r.total} pixels differ (ties)`);
  // NCHW bytes give another class map.
  const pixels = await Promise.all(files.map((f) => decode(f, card)));
  const swapped = (await runPixels(onnx, card, pixels.map((p) => planar(p, 3)))).classes.data as Uint8Array;
  const off = r.labels.reduce((a, l, i) => a + l.reduce((b, v, j) => b + (v === swapped[i * l.length + j] ? 0 : 1), 0), 0);
  assert.ok(off > 0.01 * r.total, `only ${off} pixels change with planar bytes`);

  // onnxruntime-web's wasm backend (as in a browser) takes the uint8 input and gives the same class map.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const web = require('onnxruntime-web') as typeof import('onnxruntime-web');
  web.env.wasm.numThreads = 1;
  const session = await web.InferenceSession.create(fs.readFileSync(onnx), { executionProviders: ['wasm'] });
  const out = await session.run({ pixels: new web.Tensor('uint8', Uint8Array.from(pixels[0]), [1, 48, 64, 3]) });
  await session.release();
  assert.equal(out.classes.type, 'uint8');
  const same = (out.classes.data as Uint8Array).reduce((a, v, i) => a + (v === r.labels[0][i] ? 1 : 0), 0);
  assert.ok(same >= 0.999 * 48 * 64, `onnxruntime-web agrees on ${same} of ${48 * 64} pixels`);
});

test('beyond 256 classes the class map is int64, and the card says so', async () => {
  T.manualSeed(25);
  const net = new ENet({ numClasses: 300, inChannels: 1 });
  const normalization = { mean: [0.5], std: [0.25] };
  const pipeline = new PixelPipeline(net, { task: 'segment', normalization });
  const session = await ort.InferenceSession.create(onnxBytes(pipeline, { inputShape: [1, 16, 16, 1], inputDtype: 'uint8', outputNames: pipeline.outputNames, inputName: 'pixels' }));
  const x = T.randint(0, 256, [2, 16, 16, 1], { dtype: 'uint8' });
  const out = await session.run({ pixels: new ort.Tensor('uint8', x.toArray() as Uint8Array, x.shape) });
  await session.release();
  assert.equal(out.classes.type, 'int64');
  const want = T.noGrad(() => pipeline.eval().forward(x)).classes;
  assert.equal(want.dtype, 'int64');
  const w = want.toArray() as BigInt64Array;
  const agree = (out.classes.data as BigInt64Array).reduce((a, v, i) => a + (v === w[i] ? 1 : 0), 0);
  assert.ok(agree >= 0.99 * w.length, `${agree} of ${w.length}`);
  const card = modelCard({ name: 'enet', segmentation: true, normalization, classes: Array.from({ length: 300 }, (_, i) => `c${i}`) }, [1, 1, 16, 16], { input: 'pixels', output: 'classes', inGraph: {} });
  assert.deepEqual(card.output, { name: 'classes', dtype: 'int64' });
});

test('the ArgMax and Cast mappings on their own: dims, keepdim, whole tensor, dtypes', async () => {
  class Heads extends nn.Module {
    forward(x: T.Tensor): T.Tensor[] {
      return [x.argmax(1, true), x.argmax(-1), x.argmax(), x.argmax(2).to('int32'), x.mul(3).to('int64'), x.to('uint8')];
    }
  }
  const x = T.rand([2, 5, 4]).mul(200);
  const session = await ort.InferenceSession.create(onnxBytes(new Heads(), { inputShape: [2, 5, 4], fixedBatch: true, example: x }));
  const out = await session.run({ input: new ort.Tensor('float32', x.toArray() as Float32Array, x.shape) });
  await session.release();
  const want = new Heads().forward(x);
  want.forEach((w, i) => {
    const got = out[`output_${i}`];
    assert.deepEqual(got.dims, w.shape, `output ${i}`);
    assert.equal(got.type, w.dtype === 'int64' ? 'int64' : w.dtype, `output ${i}`);
    assert.deepEqual(Array.from(got.data as ArrayLike<number | bigint>, Number), Array.from(w.toArray() as ArrayLike<number | bigint>, Number), `output ${i}`);
  });
  // An argmax over a symbolic batch cannot be exported; with a fixed batch it can (above).
  assert.throws(() => onnxBytes(new Heads(), { inputShape: [2, 5, 4] }), /argmax over the whole tensor mixes the batch/);
});

test('every file passes the ONNX checker (full check), and carries its card', (t) => {
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import onnx'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    t.skip('python3-onnx is not installed (Debian package; scripts/setup.sh installs it)');
    return;
  }
  assert.ok(exported.length >= 4, 'the export tests ran first');
  const code = [
    'import sys, json, onnx',
    'for f in sys.argv[1:]:',
    '    m = onnx.load(f)',
    '    onnx.checker.check_model(m, full_check=True)',
    '    assert m.opset_import[0].version == 17, m.opset_import',
    '    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8, m.graph.input[0]',
    '    card = json.loads(dict((p.key, p.value) for p in m.metadata_props)["tsvision.card"])',
    '    assert card == json.load(open(f[:-5] + ".json")), f',
    'print(len(sys.argv) - 1, "ok")',
  ].join('\n');
  const r = spawnSync('/usr/bin/python3', ['-c', code, ...exported], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^${exported.length} ok`));
});
