// examples/server/: an exported network behind HTTP on onnxruntime-node, as a user runs it
// (`node examples/server/server.js model.onnx`). Its answers are checked against tsvision's own Predictor
// on the same image files: same classes and probabilities, same class map — for ordinary exports and for
// exports with the processing in the graph (--with-preprocessing), which the server feeds raw bytes.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ChildProcess, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import * as T from '../../src/torch';
import { createModel } from '../../src/models/registry';
import { ENet } from '../../src/models/enet';
import { Module } from '../../src/nn';
import { exportCheckpoint, randomizeBatchNorm, startServer } from '../helpers/deploy';
import { Predictor } from '../../src/infer';
import { tmpDir } from '../helpers/tmp';

const SERVER = path.resolve(__dirname, '..', '..', '..', 'examples', 'server', 'server.js');
const dir = tmpDir('tsv-server-');
const servers: ChildProcess[] = [];
after(() => {
  for (const s of servers) s.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

const exported = (name: string, model: Module, config: Record<string, unknown>, args: string[] = []): { ckpt: string; onnx: string } => exportCheckpoint(dir, name, model, config, args);
const start = (onnx: string): Promise<string> => startServer([SERVER, onnx, '--port', '0'], /listening on (http:\/\/\S+\/)/, servers);

const post = (url: string, body: Buffer): Promise<Response> => fetch(url, { method: 'POST', body });

/** Random pixels as an encoded image (PNG, or JPEG for a lossy, photo-like upload). */
async function image(width: number, height: number, channels: 1 | 3, format: 'png' | 'jpeg'): Promise<Buffer> {
  const px = T.tidy(() => T.rand([height, width, channels]).mul(255).floor().to('uint8').toArray() as Uint8Array);
  const img = sharp(Buffer.from(px), { raw: { width, height, channels } });
  return format === 'png' ? img.png().toBuffer() : img.jpeg({ quality: 90 }).toBuffer();
}

test('a classifier: top-5 classes and probabilities are what tsvision predicts for the same file, any size', async () => {
  T.manualSeed(4);
  const { ckpt, onnx } = exported('cnn', createModel('cnn', { numClasses: 10, inChannels: 1, smallInput: true }), { model: 'cnn', modelOptions: {}, data: { kind: 'fashion-mnist' } });
  const base = await start(onnx);
  const card = (await (await fetch(base)).json()) as { model: string; task: string };
  assert.deepEqual([card.model, card.task], ['cnn', 'classify']);
  const predictor = await Predictor.load(ckpt);
  // The network's own size, and an RGB photo of another size and shape: decoded to grey, resized to fill.
  for (const bytes of [await image(28, 28, 1, 'png'), await image(90, 60, 3, 'jpeg')]) {
    const res = await post(`${base}predict`, bytes);
    assert.equal(res.status, 200);
    const { top } = (await res.json()) as { top: { class: string; index: number; probability: number }[] };
    const want = await predictor.classify(bytes, { topK: 5 });
    assert.deepEqual(top.map((t) => [t.class, t.index]), want.map((w) => [w.class, w.index]));
    top.forEach((t, i) => assert.ok(Math.abs(t.probability - want[i].probability) < 1e-5, `${t.class}: ${t.probability} vs ${want[i].probability}`));
  }
  // Clear errors, and the server keeps serving after them.
  const errors: [Promise<Response>, number, RegExp][] = [
    [post(`${base}predict`, Buffer.from('not an image')), 400, /cannot read the image: .*unsupported image format/],
    [post(`${base}predict`, Buffer.alloc(0)), 400, /no body/],
    [post(`${base}predict?mask=png`, await image(28, 28, 1, 'png')), 400, /is a classifier: \?mask=png is for segmentation/],
    [fetch(`${base}predict`), 405, /POST an image/],
    [fetch(`${base}nowhere`), 404, /no \/nowhere here/],
  ];
  for (const [res, status, message] of errors) {
    const r = await res;
    assert.equal(r.status, status);
    assert.match(((await r.json()) as { error: string }).error, message);
  }
  assert.equal((await post(`${base}predict`, await image(28, 28, 1, 'png'))).status, 200);
});

test('a segmentation network: class counts and the mask PNG are tsvision\'s class map', async () => {
  T.manualSeed(5);
  const model = new ENet({ numClasses: 11, inChannels: 3 });
  randomizeBatchNorm(model);
  const { ckpt, onnx } = exported('enet', model, { model: 'enet', folders: { train: 'x', test: 'y', size: [48, 64], channels: 3 } });
  const base = await start(onnx);
  const predictor = await Predictor.load(ckpt);
  const bytes = await image(64, 48, 3, 'png');
  const want = await predictor.segment(bytes);
  const r = (await (await post(`${base}predict`, bytes)).json()) as { width: number; height: number; classes: { index: number; pixels: number }[] };
  assert.deepEqual([r.width, r.height], [64, 48]);
  const counts = new Map(r.classes.map((c) => [c.index, c.pixels]));
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  assert.equal(total, 64 * 48);
  let off = 0;
  want.classPixels.forEach((n, k) => (off += Math.abs(n - (counts.get(k) ?? 0))));
  assert.ok(off <= 0.002 * total, `class counts differ by ${off} pixels: ${JSON.stringify([...counts])} vs ${want.classPixels}`);
  assert.ok(counts.size > 1);
  // The mask: an 8-bit grey PNG whose values are the classes.
  const res = await post(`${base}predict?mask=png`, bytes);
  assert.equal(res.headers.get('content-type'), 'image/png');
  const png = Buffer.from(await res.arrayBuffer());
  const m = await sharp(png).metadata();
  assert.deepEqual([m.width, m.height, m.channels], [64, 48, 1]);
  const data = await sharp(png).extractChannel(0).raw().toBuffer(); // sharp's raw output would expand grey to RGB
  const agree = data.reduce((a, v, i) => a + (v === want.labels[i] ? 1 : 0), 0) / data.length;
  assert.ok(agree >= 0.998, `mask and tsvision agree on ${(100 * agree).toFixed(2)}% of pixels`);
  // Another size: the mask comes back at the upload's own size.
  const big = await post(`${base}predict?mask=png`, await image(100, 75, 3, 'jpeg'));
  const meta = await sharp(Buffer.from(await big.arrayBuffer())).metadata();
  assert.deepEqual([meta.width, meta.height], [100, 75]);
});

test('--with-preprocessing exports: the server feeds sharp\'s raw bytes to the graph, and answers as Predictor does', async () => {
  T.manualSeed(6);
  const cnn = exported('cnn-baked', createModel('cnn', { numClasses: 10, inChannels: 1, smallInput: true }), { model: 'cnn', modelOptions: {}, data: { kind: 'fashion-mnist' } }, ['--with-preprocessing']);
  const base = await start(cnn.onnx);
  const card = (await (await fetch(base)).json()) as { preprocessing: string; input: { layout: string; dtype: string } };
  assert.deepEqual([card.preprocessing, card.input.layout, card.input.dtype], ['in-graph', 'NHWC', 'uint8']);
  const predictor = await Predictor.load(cnn.ckpt);
  for (const bytes of [await image(28, 28, 1, 'png'), await image(90, 60, 3, 'jpeg')]) {
    const { top } = (await (await post(`${base}predict`, bytes)).json()) as { top: { class: string; index: number; probability: number }[] };
    const want = await predictor.classify(bytes, { topK: 5 });
    assert.deepEqual(top.map((t) => t.index), want.map((w) => w.index));
    top.forEach((t, i) => assert.ok(Math.abs(t.probability - want[i].probability) < 1e-5, `${t.class}: ${t.probability} vs ${want[i].probability}`));
  }

  const model = new ENet({ numClasses: 11, inChannels: 3 });
  randomizeBatchNorm(model);
  const enet = exported('enet-baked', model, { model: 'enet', folders: { train: 'x', test: 'y', size: [48, 64], channels: 3 } }, ['--with-preprocessing']);
  const segBase = await start(enet.onnx);
  const bytes = await image(64, 48, 3, 'png');
  const want = await (await Predictor.load(enet.ckpt)).segment(bytes);
  const r = (await (await post(`${segBase}predict`, bytes)).json()) as { width: number; height: number; classes: { index: number; pixels: number }[] };
  assert.deepEqual([r.width, r.height], [64, 48]);
  const counts = new Map(r.classes.map((c) => [c.index, c.pixels]));
  assert.ok(counts.size > 1);
  let off = 0;
  want.classPixels.forEach((n, k) => (off += Math.abs(n - (counts.get(k) ?? 0))));
  assert.ok(off <= 0.002 * 64 * 48, `class counts differ by ${off} pixels`);
  const png = Buffer.from(await (await post(`${segBase}predict?mask=png`, bytes)).arrayBuffer());
  const data = await sharp(png).extractChannel(0).raw().toBuffer();
  const agree = data.reduce((a, v, i) => a + (v === want.labels[i] ? 1 : 0), 0) / data.length;
  assert.ok(agree >= 0.998, `mask and tsvision agree on ${(100 * agree).toFixed(2)}% of pixels`);
});

test('a run trained with --resize crop: the server crops the upright photo\'s centre as Predictor does (card input.resize, EXIF orientation)', async () => {
  T.manualSeed(8);
  const cnn = createModel('cnn', { numClasses: 4, inChannels: 3, smallInput: true });
  randomizeBatchNorm(cnn);
  const { ckpt, onnx } = exported('cnn-crop', cnn, { model: 'cnn', modelOptions: {}, data: { kind: 'image-folder', train: 'gone', testSplit: 0.2, size: 32, channels: 3, resize: 'crop' } });
  const base = await start(onnx);
  const card = (await (await fetch(base)).json()) as { input: { resize: unknown } };
  assert.deepEqual(card.input.resize, { fit: 'center-crop', cropFraction: 0.875 });
  const predictor = await Predictor.load(ckpt);
  const squashing = await Predictor.load(ckpt, { resize: { fit: 'fill', cropFraction: 1 } });
  // Random pixels with a white band along the left edge, which a centre crop leaves out.
  const banded = async (): Promise<sharp.Sharp> => {
    const { data, info } = await sharp(await image(90, 60, 3, 'png')).raw().toBuffer({ resolveWithObject: true });
    for (let y = 0; y < info.height; y++) data.fill(255, y * 90 * 3, (y * 90 + 20) * 3);
    return sharp(data, { raw: { width: 90, height: 60, channels: 3 } });
  };
  // Wide, and stored sideways (EXIF orientation 6: shown 60 wide, 90 high, the band along the top).
  const sideways = await (await banded()).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toBuffer();
  for (const bytes of [await (await banded()).jpeg({ quality: 90 }).toBuffer(), sideways]) {
    const { top } = (await (await post(`${base}predict`, bytes)).json()) as { top: { index: number; probability: number }[] };
    const want = await predictor.classify(bytes, { topK: 4 });
    assert.deepEqual(top.map((t) => t.index), want.map((w) => w.index));
    top.forEach((t, i) => assert.ok(Math.abs(t.probability - want[i].probability) < 1e-5, `class ${t.index}: ${t.probability} vs ${want[i].probability}`));
    // Squashing the whole photo would have given other probabilities.
    const whole = await squashing.classify(bytes, { topK: 4 });
    assert.ok(whole.some((w) => Math.abs(w.probability - want.find((v) => v.index === w.index)!.probability) > 1e-3), 'the crop changes the answer');
  }
});

test('the server refuses to start without its model card, naming the file', () => {
  const onnx = path.join(dir, 'alone.onnx');
  fs.writeFileSync(onnx, 'x');
  const r = spawnSync(process.execPath, [SERVER, onnx], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /alone\.json: no model card beside .*alone\.onnx/);
});
