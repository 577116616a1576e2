// A tsvision export in the browser: the .onnx file and its model card (the .json that `tsvision export`
// writes beside it), run by onnxruntime-web's wasm backend. The card says how training fed the network —
// input size, grey or RGB, normalization — and names the classes, so one page serves any exported network.
// An export made with --with-preprocessing normalizes in the graph: the page then feeds the pixels as bytes.
/* global ort */
import { inGraph } from './postprocess.js';
export { argmaxClasses, classMap, topClasses, topK } from './postprocess.js';

// The wasm files are served next to ort.min.js. Threads need SharedArrayBuffer, which browsers give only to
// cross-origin isolated pages (COOP/COEP headers, as `tsvision serve` sends); elsewhere one thread.
ort.env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;

/** Loads `<base>.json` (the card) and `<base>.onnx`. */
export async function loadModel(base) {
  const res = await fetch(`${base}.json`);
  if (!res.ok) throw new Error(`${base}.json: HTTP ${res.status}; export one with \`tsvision export <checkpoint> -o ${base}.onnx\``);
  const card = await res.json();
  if (card.format !== 'tsvision-model-card') throw new Error(`${base}.json is not a tsvision model card`);
  if (!(card.version <= 2)) throw new Error(`${base}.json: model card version ${card.version}; this page reads versions 1 and 2`);
  const session = await ort.InferenceSession.create(`${base}.onnx`, { executionProviders: ['wasm'] });
  return { card, session };
}

// sRGB ↔ linear light: grey is the luminance of linear light, re-encoded, as sharp's greyscale() computes it
// in training (for grey pixels, R = G = B, it is exactly that value).
const toLinear = (v) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
const toSrgb = (y) => (y <= 0.0031308 ? y * 12.92 : 1.055 * y ** (1 / 2.4) - 0.055);
const LINEAR = Float32Array.from({ length: 256 }, (_, i) => toLinear(i / 255));
const grey = (r, g, b) => Math.round(255 * toSrgb(0.2126 * LINEAR[r] + 0.7152 * LINEAR[g] + 0.0722 * LINEAR[b]));

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

/**
 * An image (canvas, <img>, ImageBitmap; browsers draw it upright by its EXIF orientation, as training decoded
 * it) brought to the card's input size as the run evaluated — stretched whole ('fill') or its centre cropped
 * ('center-crop') —, then normalized: (pixel / 255 − mean) / std per channel. Returns a [1, C, H, W] tensor,
 * or for in-graph preprocessing the bytes as the graph takes them: uint8 [1, H, W, C].
 */
export function toInput(source, card) {
  const { width, height, channels } = card.input;
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const g = canvas.getContext('2d', { willReadFrequently: true });
  g.imageSmoothingQuality = 'high';
  const resize = card.input.resize ?? { fit: 'fill' };
  const [w0, h0] = [source.naturalWidth ?? source.width, source.naturalHeight ?? source.height];
  if (resize.fit === 'center-crop') {
    const box = centerCropBox(h0, w0, height, width, resize.cropFraction);
    g.drawImage(source, box.left, box.top, box.width, box.height, 0, 0, width, height);
  } else g.drawImage(source, 0, 0, width, height);
  const rgba = g.getImageData(0, 0, width, height).data;
  const n = width * height;
  if (inGraph(card)) {
    // ImageData rows are RGBA: alpha dropped (or grey taken) here, all else in the graph.
    const px = new Uint8Array(channels * n);
    for (let i = 0; i < n; i++) {
      const [r, gr, b] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]];
      if (channels === 1) px[i] = grey(r, gr, b);
      else px.set([r, gr, b], 3 * i);
    }
    return new ort.Tensor('uint8', px, [1, height, width, channels]);
  }
  const { mean, std } = card.normalization;
  const x = new Float32Array(channels * n);
  for (let i = 0; i < n; i++) {
    const [r, gr, b] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]];
    if (channels === 1) x[i] = (grey(r, gr, b) / 255 - mean[0]) / std[0];
    else [r, gr, b].forEach((v, k) => (x[k * n + i] = (v / 255 - mean[k]) / std[k]));
  }
  return new ort.Tensor('float32', x, [1, channels, height, width]);
}

/** What runs the network, for status lines: 'wasm, 2 threads'. */
export const backend = () => `wasm, ${ort.env.wasm.numThreads} thread${ort.env.wasm.numThreads === 1 ? '' : 's'}`;

/** Runs the network on one input; returns the output tensor and the milliseconds the run took. */
export async function run(model, input) {
  const t = performance.now();
  const out = await model.session.run({ [model.card.input.name]: input });
  return { output: out[model.card.output.name], ms: performance.now() - t };
}
