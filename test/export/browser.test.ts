// The browser examples in a real browser: `tsvision export` writes the .onnx file and its model card,
// `tsvision serve` serves them with examples/browser/, and Debian's Chromium (driven by playwright-core) loads
// the page, decodes an uploaded PNG, runs the network in onnxruntime-web's wasm backend and shows the result.
// Checked against tsvision on the same pixels: the page's input tensor, its output, and what it displays;
// also for exports with the processing in the graph (--with-preprocessing), fed bytes.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ChildProcess, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import type { Browser, Page } from 'playwright-core';
import * as T from '../../src/torch';
import { createModel } from '../../src/models/registry';
import { ENet } from '../../src/models/enet';
import { Module } from '../../src/nn';
import { CLI, exportCheckpoint as exported, randomizeBatchNorm, startServer } from '../helpers/deploy';
import { Predictor } from '../../src/infer';
import { decodeRaw } from '../../src/data/decode';
import { PixelPipeline } from '../../src/export';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD, loadFashionMNIST } from '../../src/data';
import { tmpDir } from '../helpers/tmp';

const CHROMIUM = process.env.TSVISION_CHROMIUM ?? '/usr/bin/chromium';
// Set-up installs Chromium, so CI must have it; elsewhere the browser tests are skipped with the reason.
const skip = !fs.existsSync(CHROMIUM) && !process.env.CI ? `no Chromium at ${CHROMIUM} (apt install chromium, or set TSVISION_CHROMIUM)` : false;

const dir = tmpDir('tsv-browser-');
let browser: Browser;
const servers: ChildProcess[] = [];

before(async () => {
  if (skip) return;
  const { chromium } = await import('playwright-core');
  // A fake camera (Chromium's test pattern), granted without a prompt, for the segmentation page's camera mode.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'] });
});
after(async () => {
  await browser?.close();
  for (const s of servers) s.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

const exportCheckpoint = (name: string, model: Module, config: Record<string, unknown>): string => exported(dir, name, model, config).onnx;
const serve = (onnx: string): Promise<string> => startServer([CLI, 'serve', onnx, '--port', '0'], /open (http:\/\/\S+)/, servers);

/** Opens the page, waits for the model to load, uploads `png` and waits for the result. */
async function openAndUpload(url: string, png: string, before?: (page: Page) => Promise<void>): Promise<Page> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForFunction(`/loaded|Could not/.test(document.getElementById('status').textContent)`, null, { timeout: 60_000 });
  assert.match((await page.textContent('#status')) ?? '', /loaded/, `errors: ${errors.join('; ')}`);
  // tsvision serve's COOP/COEP headers isolate the page, so onnxruntime-web may run wasm threads.
  assert.equal(await page.evaluate('crossOriginIsolated'), true);
  const threads = Math.min(4, (await page.evaluate('navigator.hardwareConcurrency')) as number);
  assert.match((await page.textContent('#status')) ?? '', new RegExp(`\\(onnxruntime-wasm, ${threads} threads?\\)`));
  await before?.(page);
  await page.setInputFiles('#file', png);
  await page.waitForFunction(`'tsvision' in window`, null, { timeout: 60_000 });
  assert.deepEqual(errors, []);
  return page;
}

/** What the page fed the network and got back, as the page's own `window.tsvision` holds them. */
async function pageTensors(page: Page): Promise<{ input: Float32Array; inputDims: number[]; output: Float32Array; outputDims: number[]; labels?: Uint8Array }> {
  const r = await page.evaluate(() => {
    const t = (globalThis as unknown as { tsvision: { input: { data: Float32Array; dims: number[] }; output: { data: Float32Array; dims: number[] }; labels?: Uint8Array } }).tsvision;
    return { input: Array.from(t.input.data), inputDims: [...t.input.dims], output: Array.from(t.output.data), outputDims: [...t.output.dims], labels: t.labels && Array.from(t.labels) };
  });
  return { ...r, input: Float32Array.from(r.input), output: Float32Array.from(r.output), labels: r.labels && Uint8Array.from(r.labels) };
}

/** tsvision's output on the page's input, and the largest difference from the page's output. */
function againstTsvision(model: Module & { forward(x: T.Tensor): T.Tensor }, input: Float32Array, dims: number[], output: Float32Array): { max: number; scale: number; want: Float32Array } {
  const want = T.tidy(() => T.noGrad(() => model.eval().forward(T.fromArray(input, dims)).contiguous().toArray() as Float32Array));
  let max = 0;
  let scale = 0;
  want.forEach((v, i) => {
    max = Math.max(max, Math.abs(v - output[i]));
    scale = Math.max(scale, Math.abs(v));
  });
  return { max, scale, want };
}

/** Fashion-MNIST test image `index` as a PNG file, and its pixels. */
async function garmentPng(index: number): Promise<{ pixels: Buffer; png: string }> {
  const testSet = loadFashionMNIST({ split: 'test' });
  const pixels = Buffer.from(T.tidy(() => testSet.images.narrow(0, index, 1).contiguous().toArray() as Uint8Array));
  testSet.dispose();
  const png = path.join(dir, `garment-${index}.png`);
  await sharp(pixels, { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(png);
  return { pixels, png };
}

test('classifier page: an uploaded Fashion-MNIST image, classified in Chromium as tsvision classifies the same input', { skip }, async () => {
  T.manualSeed(1);
  const model = createModel('cnn', { numClasses: 10, inChannels: 1, smallInput: true });
  const url = await serve(exportCheckpoint('cnn', model, { model: 'cnn', modelOptions: {}, data: { kind: 'fashion-mnist' } }));
  const { pixels, png } = await garmentPng(0);

  // Fashion-MNIST garments are light on black already: no inversion.
  const page = await openAndUpload(url, png, (p) => p.uncheck('#invert'));
  const { input, inputDims, output } = await pageTensors(page);
  assert.deepEqual(inputDims, [1, 1, 28, 28]);
  // The page draws the upload onto its 280×280 pad and reads it back at 28×28, so its pixels come back
  // through two resamplings: near the original, normalized with the card's Fashion-MNIST statistics.
  const back = Array.from(input, (v) => (v * FASHION_MNIST_STD + FASHION_MNIST_MEAN) * 255);
  const meanDiff = back.reduce((a, v, i) => a + Math.abs(v - pixels[i]), 0) / back.length;
  assert.ok(meanDiff < 6, `page pixels differ from the image by ${meanDiff.toFixed(2)} levels on average`);
  const wrongStats = Array.from(input, (v) => (v * 0.5 + 0.5) * 255).reduce((a, v, i) => a + Math.abs(v - pixels[i]), 0) / back.length;
  assert.ok(wrongStats > 3 * meanDiff, 'the normalization check must tell other statistics apart');

  const d = againstTsvision(model as Module & { forward(x: T.Tensor): T.Tensor }, input, inputDims, output);
  assert.ok(d.max <= 1e-4 * d.scale, `onnxruntime-web in Chromium vs tsvision: max diff ${d.max} at scale ${d.scale}`);
  // The list shown: the five classes tsvision ranks first, with their softmax probabilities.
  const shown = await page.$$eval('#result li', (li) => li.map((l) => [Number(l.getAttribute('data-class')), l.textContent ?? '']));
  const probs = T.tidy(() => T.softmax(T.fromArray(d.want, [1, 10]), 1).toArray() as Float32Array);
  const ranked = Array.from(probs, (p, i) => [p, i]).sort((a, b) => b[0] - a[0]).slice(0, 5);
  assert.deepEqual(shown.map((s) => s[0]), ranked.map((r) => r[1]));
  shown.forEach(([k, text], i) => assert.equal(text, `${FASHION_MNIST_CLASSES[k as number]}: ${(100 * ranked[i][0]).toFixed(1)}%`));

  // Drawing with the pointer classifies the drawing: the input now holds the stroke.
  await page.click('#clear');
  const box = (await page.locator('#pad').boundingBox())!;
  await page.mouse.move(box.x + 140, box.y + 40);
  await page.mouse.down();
  await page.mouse.move(box.x + 140, box.y + 240, { steps: 10 });
  await page.mouse.up();
  await page.waitForFunction((prev) => (globalThis as unknown as { tsvision: { input: { data: Float32Array } } }).tsvision.input.data[14 * 28 + 14] !== prev, input[14 * 28 + 14]);
  const drawn = await pageTensors(page);
  // Pixel levels along row 14: the 28-px-wide stroke down the middle of the 280-px pad covers columns 13–14.
  const row = Array.from({ length: 28 }, (_, x) => (drawn.input[14 * 28 + x] * FASHION_MNIST_STD + FASHION_MNIST_MEAN) * 255);
  assert.ok(row[13] > 230 && row[14] > 230, `the stroke runs through the centre, white: ${row.map(Math.round)}`);
  assert.ok(row.every((v, x) => x >= 12 && x <= 15 || Math.abs(v) < 1), `away from the stroke the pad stays black: ${row.map(Math.round)}`);
  assert.equal(await page.locator('#result li').count(), 5);
  await page.close();
});

test('classifier page with an int8 export (--int8): onnxruntime-web runs the integer graph as onnxruntime-node does', { skip }, async () => {
  T.manualSeed(2);
  const model = createModel('cnn', { numClasses: 10, inChannels: 1, smallInput: true });
  // onnxruntime-web's wasm kernels sum exactly; onnxruntime-node's, on an x86 CPU without VNNI, clip 8-bit
  // weights' 16-bit sums (test/export/int8.test.ts): there both agree on 7-bit weights only.
  const reduceRange = T.engineInfo().int8 === 'saturating' ? ['--reduce-range'] : [];
  const { onnx } = exported(dir, 'cnn-int8', model, { model: 'cnn', modelOptions: {}, data: { kind: 'fashion-mnist' } }, ['--int8', '--calibration-images', '64', '--eval-images', '0', ...reduceRange]);
  const url = await serve(onnx);
  const { png } = await garmentPng(1);
  const page = await openAndUpload(url, png, (p) => p.uncheck('#invert'));
  const { input, inputDims, output } = await pageTensors(page);
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(onnx);
  const node = (await session.run({ input: new ort.Tensor('float32', input, inputDims) })).output.data as Float32Array;
  await session.release();
  const scale = node.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const max = node.reduce((m, v, i) => Math.max(m, Math.abs(v - output[i])), 0);
  assert.ok(max <= 1e-4 * scale, `onnxruntime-web vs onnxruntime-node on the int8 file: max diff ${max} at scale ${scale}`);
  // Not the float network's output: the page really ran the quantized graph.
  const float = againstTsvision(model as Module & { forward(x: T.Tensor): T.Tensor }, input, inputDims, output);
  assert.ok(float.max > 1e-4 * float.scale, `the int8 output equals the float network's (max diff ${float.max})`);
  await page.close();
});

for (const [name, channels, size] of [
  ['grey 64×64 scenes', 1, [64, 64]],
  ['RGB 48×64 folders', 3, [48, 64]],
] as const) {
  test(`segmentation page (${name}): the class map Chromium computes is tsvision's`, { skip }, async () => {
    T.manualSeed(2);
    const model = new ENet({ numClasses: 11, inChannels: channels });
    randomizeBatchNorm(model); // so that the page's normalization matters to the output
    const config = channels === 1 ? { model: 'enet', scenes: { size: 64 } } : { model: 'enet', folders: { train: 'x', test: 'y', size, channels: 3 } };
    const onnx = exportCheckpoint(`enet${channels}`, model, config);
    const card = JSON.parse(fs.readFileSync(onnx.replace(/\.onnx$/, '.json'), 'utf8')) as { input: { height: number; width: number }; normalization: { mean: number[]; std: number[] } };
    assert.deepEqual([card.input.height, card.input.width], size);
    const url = await serve(onnx);

    // An image at the network's own size: the page's canvas then holds its pixels exactly.
    const [h, w] = size;
    const rng = T.tidy(() => T.rand([h, w, channels]).mul(255).floor().to('uint8').toArray() as Uint8Array);
    const png = path.join(dir, `image${channels}.png`);
    await sharp(Buffer.from(rng), { raw: { width: w, height: h, channels } }).png().toFile(png);
    const page = await openAndUpload(url, png);
    const { input, inputDims, output, outputDims, labels } = await pageTensors(page);
    assert.deepEqual(inputDims, [1, channels, h, w]);
    assert.deepEqual(outputDims, [1, 11, h, w]);
    // The input, exactly: the pixels, planar, normalized with the card's statistics.
    const { mean, std } = card.normalization;
    let worst = 0;
    for (let c = 0; c < channels; c++)
      for (let i = 0; i < h * w; i++) worst = Math.max(worst, Math.abs(input[c * h * w + i] - (rng[i * channels + c] / 255 - mean[c]) / std[c]));
    assert.ok(worst < 1e-5, `page input differs from the normalized pixels by ${worst}`);

    const d = againstTsvision(model, input, inputDims, output);
    assert.ok(d.max <= 1e-4 * d.scale, `onnxruntime-web in Chromium vs tsvision: max diff ${d.max} at scale ${d.scale}`);
    // The class map against tsvision's own predict path on the same file (decode, normalize, network, argmax).
    const predictor = await Predictor.load(onnx.replace(/\.onnx$/, '.safetensors'));
    const mine = await predictor.segment(png);
    const agree = labels!.reduce((a, l, i) => a + (l === mine.labels[i] ? 1 : 0), 0) / labels!.length;
    assert.ok(agree >= 0.999, `page and tsvision agree on ${(100 * agree).toFixed(2)}% of pixels`);
    // The legend: each class present with its pixel count.
    const legend = await page.$$eval('#legend li', (li) => li.map((l) => [Number(l.getAttribute('data-class')), Number(l.getAttribute('data-pixels'))]));
    const counts = new Map<number, number>();
    labels!.forEach((l) => counts.set(l, (counts.get(l) ?? 0) + 1));
    assert.deepEqual(new Map(legend as [number, number][]), counts);
    assert.ok(counts.size > 1, 'a random network still labels more than one class');
    await page.close();
  });
}

test('pages with the processing in the graph (--with-preprocessing): the image\'s bytes in, tsvision\'s answers out', { skip }, async () => {
  // Classifier page: the pad's pixels go in as bytes; the list shows the graph's probabilities, which are
  // tsvision's on those bytes.
  T.manualSeed(4);
  const cnn = createModel('cnn', { numClasses: 10, inChannels: 1, smallInput: true });
  const baked = exported(dir, 'cnn-baked', cnn, { model: 'cnn', modelOptions: {}, data: { kind: 'fashion-mnist' } }, ['--with-preprocessing']);
  const testSet = loadFashionMNIST({ split: 'test' });
  const pixels = Buffer.from(T.tidy(() => testSet.images.narrow(0, 0, 1).contiguous().toArray() as Uint8Array));
  testSet.dispose();
  const garment = path.join(dir, 'garment-baked.png');
  await sharp(pixels, { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(garment);
  let page = await openAndUpload(await serve(baked.onnx), garment, (p) => p.uncheck('#invert'));
  let t = await pageTensors(page);
  assert.deepEqual([t.inputDims, t.outputDims], [[1, 28, 28, 1], [1, 10]]);
  assert.ok(t.input.every((v) => Number.isInteger(v) && v >= 0 && v <= 255), 'bytes, not normalized floats');
  const meanDiff = t.input.reduce((a, v, i) => a + Math.abs(v - pixels[i]), 0) / t.input.length;
  assert.ok(meanDiff < 6, `page pixels differ from the image by ${meanDiff.toFixed(2)} levels on average`);
  const probs = T.tidy(() => {
    const x = T.fromArray(Uint8Array.from(t.input), [1, 28, 28, 1]);
    return T.noGrad(() => new PixelPipeline(cnn, { task: 'classify', normalization: { mean: [FASHION_MNIST_MEAN], std: [FASHION_MNIST_STD] } }).eval().forward(x)).probabilities.toArray() as Float32Array;
  });
  assert.ok(probs.every((p, i) => Math.abs(p - t.output[i]) < 1e-5), `page ${Array.from(t.output)} vs tsvision ${Array.from(probs)}`);
  const shown = await page.$$eval('#result li', (li) => li.map((l) => Number(l.getAttribute('data-class'))));
  assert.deepEqual(shown, Array.from(probs, (p, i) => [p, i]).sort((a, b) => b[0] - a[0]).slice(0, 5).map((r) => r[1]));
  await page.close();

  // Segmentation page: RGBA ImageData → RGB bytes, exactly the image's; the class map is Predictor's.
  T.manualSeed(5);
  const enet = new ENet({ numClasses: 11, inChannels: 3 });
  randomizeBatchNorm(enet);
  const seg = exported(dir, 'enet-baked', enet, { model: 'enet', folders: { train: 'x', test: 'y', size: [48, 64], channels: 3 } }, ['--with-preprocessing']);
  const rgb = T.tidy(() => T.rand([48, 64, 3]).mul(255).floor().to('uint8').toArray() as Uint8Array);
  const png = path.join(dir, 'image-baked.png');
  await sharp(Buffer.from(rgb), { raw: { width: 64, height: 48, channels: 3 } }).png().toFile(png);
  page = await openAndUpload(await serve(seg.onnx), png);
  t = await pageTensors(page);
  assert.deepEqual([t.inputDims, t.outputDims], [[1, 48, 64, 3], [1, 48, 64]]);
  assert.deepEqual(Array.from(t.input), Array.from(rgb));
  assert.deepEqual(Array.from(t.labels!), Array.from(t.output));
  const mine = await (await Predictor.load(seg.ckpt)).segment(png);
  const agree = t.labels!.reduce((a, l, i) => a + (l === mine.labels[i] ? 1 : 0), 0) / t.labels!.length;
  assert.ok(agree >= 0.999, `page and tsvision agree on ${(100 * agree).toFixed(2)}% of pixels`);
  const legend = await page.$$eval('#legend li', (li) => li.map((l) => [Number(l.getAttribute('data-class')), Number(l.getAttribute('data-pixels'))]));
  const counts = new Map<number, number>();
  t.labels!.forEach((l) => counts.set(l, (counts.get(l) ?? 0) + 1));
  assert.deepEqual(new Map(legend as [number, number][]), counts);
  await page.close();
});

test('classifier page for a run trained with --resize crop: an uploaded photo\'s centre goes in, as Predictor crops it', { skip }, async () => {
  T.manualSeed(9);
  const cnn = createModel('cnn', { numClasses: 4, inChannels: 3, smallInput: true });
  const baked = exported(dir, 'cnn-crop', cnn, { model: 'cnn', modelOptions: {}, data: { kind: 'image-folder', train: 'gone', testSplit: 0.2, size: 32, channels: 3, resize: 'crop' } }, ['--with-preprocessing']);
  // A smooth 90×60 photo (resamplers agree on it) with a white band along the left edge, outside the centre.
  const w = 90;
  const px = Buffer.alloc(60 * w * 3);
  for (let y = 0; y < 60; y++) for (let x = 0; x < w; x++) px.set(x < 20 ? [255, 255, 255] : [2 * x, 3 * y, 120], (y * w + x) * 3);
  const photo = path.join(dir, 'photo.png');
  await sharp(px, { raw: { width: w, height: 60, channels: 3 } }).png().toFile(photo);
  const page = await openAndUpload(await serve(baked.onnx), photo);
  const t = await pageTensors(page);
  assert.deepEqual(t.inputDims, [1, 32, 32, 3]);
  const decoded = async (fit: 'center-crop' | 'fill'): Promise<Buffer> => (await decodeRaw(photo, { channels: 3, size: [32, 32], fit, cropFraction: 0.875 })).data;
  const diff = (b: Buffer): number => t.input.reduce((a, v, i) => a + Math.abs(v - b[i]), 0) / t.input.length;
  const [crop, squash] = [diff(await decoded('center-crop')), diff(await decoded('fill'))];
  assert.ok(crop < 3, `the page's input is the centre crop: ${crop.toFixed(2)} levels from sharp's on average`);
  assert.ok(squash > 10 * crop, `not the whole photo squashed (${squash.toFixed(2)} levels off)`);
  // The answer shown is the graph's on those bytes.
  const shown = await page.$$eval('#result li', (li) => li.map((l) => Number(l.getAttribute('data-class'))));
  assert.deepEqual(shown, Array.from(t.output, (p, i) => [p, i]).sort((a, b) => b[0] - a[0]).map((r) => r[1]));
  await page.close();
});

test('segmentation page, camera: frames are segmented back to back with the rate shown, until stopped', { skip }, async (t) => {
  T.manualSeed(3);
  const url = await serve(exportCheckpoint('enet-camera', new ENet({ numClasses: 11, inChannels: 3 }), { model: 'enet', folders: { train: 'x', test: 'y', size: [64, 64], channels: 3 } }));
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForFunction(`/loaded/.test(document.getElementById('status').textContent)`, null, { timeout: 60_000 });
  await page.click('#camera');
  const frames = `((window.tsvision && window.tsvision.camera) ? window.tsvision.camera.frames : 0)`;
  await page.waitForFunction(`${frames} >= 5`, null, { timeout: 60_000 });
  assert.equal(await page.textContent('#camera'), 'Stop camera');
  const shown = (await page.textContent('#status')) ?? '';
  const m = /enet: [\d.]+ ms for 64×64 · camera: ([\d.]+) frames\/s \((\d+) frames\)/.exec(shown);
  assert.ok(m && Number(m[1]) > 0 && Number(m[2]) >= 4, shown);
  t.diagnostic(shown);
  // Each frame is the camera's picture (640×480, Chromium's moving test pattern) resized to the network's input.
  const dims = await page.evaluate(`[...window.tsvision.input.dims, window.tsvision.labels.length]`);
  assert.deepEqual(dims, [1, 3, 64, 64, 64 * 64]);
  const first = await page.evaluate(`Array.from(window.tsvision.input.data.slice(0, 4096))`) as number[];
  await page.waitForFunction(`${frames} >= 10`, null, { timeout: 60_000 });
  const later = await page.evaluate(`Array.from(window.tsvision.input.data.slice(0, 4096))`) as number[];
  assert.ok(first.some((v, i) => v !== later[i]), 'the test pattern moves, so later frames differ');
  // Stopped: no more frames, the camera released.
  await page.click('#camera');
  const stoppedAt = (await page.evaluate(frames)) as number;
  await new Promise((r) => setTimeout(r, 1500));
  assert.ok(((await page.evaluate(frames)) as number) <= stoppedAt + 1, 'frames keep coming after stop');
  assert.equal(await page.textContent('#camera'), 'Camera');
  assert.equal(await page.evaluate(`document.getElementById('video').srcObject`), null);
  assert.deepEqual(errors, []);
  await page.close();
});

test('serve: clear errors for a missing model, a missing card and a bad port', () => {
  const onnx = path.join(dir, 'lonely.onnx');
  fs.writeFileSync(onnx, 'x');
  const cases: [string[], RegExp][] = [
    [['serve', path.join(dir, 'missing.onnx')], /missing\.onnx: no such file/],
    [['serve', onnx], /lonely\.json: no model card beside .*lonely\.onnx; export again/],
    [['serve', onnx, '--port', 'x'], /--port/],
  ];
  for (const [args, message] of cases) {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stdout}`);
    assert.match(r.stderr, message);
  }
});
