// A Node HTTP server for a network exported by `tsvision export`: onnxruntime-node runs the .onnx file and
// sharp decodes uploads exactly as tsvision's training and `predict` decode them (alpha dropped, grey or sRGB,
// resized to fill the trained size with lanczos3), normalized as the model card says — or, for an export
// made with --with-preprocessing (card: preprocessing 'in-graph'), fed to the graph as sharp's raw bytes,
// which normalizes them itself and returns probabilities or a class map. It needs neither libtorch nor
// tsvision's addon: onnxruntime-node and sharp are all it loads.
//
//   node examples/server/server.js model.onnx [--port 8080] [--host 127.0.0.1]
//
//   GET  /            the model card (JSON)
//   POST /predict     body: an image (PNG, JPEG, WebP, …) →
//                       classifiers: { top: [{ class, index, probability }, …5], ms }
//                       segmentation: { width, height, classes: [{ class, index, pixels, share }], ms }
//   POST /predict?mask=png   segmentation: the class map as an 8-bit grey PNG at the image's own size
//                            (value = class id, the training masks' convention; resized by nearest neighbour)
import * as fs from 'node:fs';
import * as http from 'node:http';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { classMap, inGraph, topClasses } from '../browser/postprocess.js';

const require = createRequire(import.meta.url);
const ort = require('onnxruntime-node');
const sharp = require('sharp');

/** Largest upload accepted: a 20 MB photo is already far more than any network here reads. */
const MAX_BYTES = 20 * 1024 * 1024;

/** Loads model.onnx and its card (model.json beside it); the errors say what is missing. */
export async function loadModel(onnxFile) {
  if (!fs.existsSync(onnxFile)) throw new Error(`${onnxFile}: no such file`);
  const cardFile = `${onnxFile.replace(/\.onnx$/i, '')}.json`;
  if (!fs.existsSync(cardFile)) throw new Error(`${cardFile}: no model card beside ${onnxFile}; export with \`tsvision export <checkpoint> -o ${onnxFile}\``);
  const card = JSON.parse(fs.readFileSync(cardFile, 'utf8'));
  if (card.format !== 'tsvision-model-card') throw new Error(`${cardFile}: not a tsvision model card`);
  if (!(card.version <= 2)) throw new Error(`${cardFile}: model card version ${card.version}; this server reads versions 1 and 2`);
  const session = await ort.InferenceSession.create(onnxFile, { graphOptimizationLevel: 'all' });
  return { card, session };
}

/**
 * The region of an imageHeight × imageWidth image that a 'center-crop' card resizes to height × width: the
 * largest centred rectangle of the input's shape, cropFraction of it per side (tsvision's centerCropBox).
 */
export function centerCropBox(imageHeight, imageWidth, height, width, cropFraction) {
  const scale = Math.min(imageHeight / height, imageWidth / width) * cropFraction;
  const h = Math.max(1, Math.min(imageHeight, Math.round(height * scale)));
  const w = Math.max(1, Math.min(imageWidth, Math.round(width * scale)));
  return { top: Math.floor((imageHeight - h) / 2), left: Math.floor((imageWidth - w) / 2), height: h, width: w };
}

/** Image bytes → the network's input as training made it, and the image's own (upright) size. */
export async function toInput(bytes, card) {
  const { channels, height, width } = card.input;
  const meta = await sharp(bytes, { failOn: 'error' }).metadata();
  // EXIF orientations 5–8 turn the image a quarter: its upright size swaps width and height.
  const [w0, h0] = (meta.orientation ?? 1) >= 5 ? [meta.height, meta.width] : [meta.width, meta.height];
  let img = sharp(bytes, { failOn: 'error' }).rotate().removeAlpha();
  img = channels === 1 ? img.greyscale() : img.toColourspace('srgb');
  // As the run evaluated: the whole image squashed ('fill', and cards from before `resize`), or its centre.
  const resize = card.input.resize ?? { fit: 'fill' };
  if (resize.fit === 'center-crop') img = img.extract(centerCropBox(h0, w0, height, width, resize.cropFraction));
  const { data } = await img.resize(width, height, { fit: 'fill', kernel: 'lanczos3' }).raw().toBuffer({ resolveWithObject: true });
  // In-graph preprocessing: the graph takes these interleaved bytes (NHWC) as they are.
  if (inGraph(card)) return { input: new ort.Tensor('uint8', new Uint8Array(data.buffer, data.byteOffset, data.length), [1, height, width, channels]), width: w0, height: h0 };
  // Interleaved bytes → planar, normalized floats: (pixel / 255 − mean) / std per channel.
  const { mean, std } = card.normalization;
  const n = width * height;
  const x = new Float32Array(channels * n);
  for (let c = 0; c < channels; c++) for (let i = 0; i < n; i++) x[c * n + i] = (data[i * channels + c] / 255 - mean[c]) / std[c];
  return { input: new ort.Tensor('float32', x, [1, channels, height, width]), width: w0, height: h0 };
}

/** One image through the network: the JSON answer, or the mask PNG. */
export async function predict(model, bytes, { mask = false } = {}) {
  const { card, session } = model;
  const { input, width, height } = await toInput(bytes, card);
  const t0 = performance.now();
  const output = (await session.run({ [card.input.name]: input }))[card.output.name];
  const ms = performance.now() - t0;
  if (card.task === 'classify') {
    if (mask) throw new HttpError(400, `${card.model} is a classifier: ?mask=png is for segmentation networks`);
    return { json: { top: topClasses(output, card, 5).map((r) => ({ class: r.name, index: r.index, probability: r.p })), ms } };
  }
  const map = classMap(output, card);
  if (mask) {
    if (card.classes.length > 256) throw new HttpError(400, `${card.classes.length} classes do not fit an 8-bit PNG mask`);
    const png = await sharp(Buffer.from(map.labels), { raw: { width: map.width, height: map.height, channels: 1 } })
      .resize(width, height, { fit: 'fill', kernel: 'nearest' })
      .toColourspace('b-w') // one grey channel, as the training masks (sharp would write RGB otherwise)
      .png()
      .toBuffer();
    return { png };
  }
  const counts = new Array(card.classes.length).fill(0);
  for (const k of map.labels) counts[k]++;
  const classes = counts.map((pixels, index) => ({ class: card.classes[index], index, pixels, share: pixels / map.labels.length })).filter((c) => c.pixels > 0);
  return { json: { width: map.width, height: map.height, classes, ms } };
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BYTES) {
        reject(new HttpError(413, `the image is larger than ${MAX_BYTES / 1024 / 1024} MB`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function createServer(model) {
  return http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const send = (status, body, type = 'application/json') => {
      res.writeHead(status, { 'Content-Type': type });
      res.end(type === 'application/json' ? `${JSON.stringify(body)}\n` : body);
    };
    try {
      if (url.pathname === '/' && req.method === 'GET') return send(200, model.card);
      if (url.pathname !== '/predict') throw new HttpError(404, `no ${url.pathname} here: GET / or POST /predict`);
      if (req.method !== 'POST') throw new HttpError(405, 'POST an image to /predict');
      const body = await readBody(req);
      if (body.length === 0) throw new HttpError(400, 'the request has no body: POST the image bytes');
      const r = await predict(model, body, { mask: url.searchParams.get('mask') === 'png' }).catch((e) => {
        // sharp names what it could not read ("unsupported image format", "VipsJpeg: premature end …").
        throw e instanceof HttpError ? e : new HttpError(400, `cannot read the image: ${e.message}`);
      });
      return r.png ? send(200, r.png, 'image/png') : send(200, r.json);
    } catch (e) {
      send(e.status ?? 500, { error: e.message });
    }
  });
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args.splice(i, 2)[1] : dflt;
  };
  const port = Number(opt('port', '8080'));
  const host = opt('host', '127.0.0.1');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be 0–65535, got ${port}`);
  if (args.length !== 1) throw new Error('usage: node examples/server/server.js model.onnx [--port 8080] [--host 127.0.0.1]');
  const model = await loadModel(args[0]);
  const server = createServer(model);
  server.listen(port, host, () => {
    const { card } = model;
    console.log(`${args[0]}: ${card.model} (${card.task}, ${card.input.channels === 1 ? 'grey' : 'RGB'} ${card.input.height}×${card.input.width}, ${card.classes.length} classes)`);
    console.log(`listening on http://${host}:${server.address().port}/  (POST an image to /predict)`);
  });
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error(`server: ${e.message}`);
    process.exit(1);
  });
}
