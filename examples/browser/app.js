// The page's logic: draw or upload → 28×28 grey pixels, normalized as tsvision's Fashion-MNIST training
// (mean 0.286, std 0.353) → onnxruntime-web → the five most likely classes.
/* global ort */
const CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const MEAN = 0.286;
const STD = 0.353;

// The wasm files are served next to ort.min.js; one thread needs no cross-origin isolation headers.
ort.env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
ort.env.wasm.numThreads = 1;

const pad = document.getElementById('pad');
const ctx = pad.getContext('2d');
const status = document.getElementById('status');
const result = document.getElementById('result');
let session = null;

function clear() {
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, pad.width, pad.height);
  result.innerHTML = '';
}

/** The drawing as a [1, 1, 28, 28] float tensor. */
function input() {
  const small = document.createElement('canvas');
  small.width = small.height = 28;
  const s = small.getContext('2d');
  s.drawImage(pad, 0, 0, 28, 28);
  const rgba = s.getImageData(0, 0, 28, 28).data;
  const x = new Float32Array(28 * 28);
  for (let i = 0; i < x.length; i++) x[i] = ((rgba[4 * i] + rgba[4 * i + 1] + rgba[4 * i + 2]) / (3 * 255) - MEAN) / STD;
  return new ort.Tensor('float32', x, [1, 1, 28, 28]);
}

async function classify() {
  if (!session) return;
  const out = await session.run({ [session.inputNames[0]]: input() });
  const logits = Array.from(out[session.outputNames[0]].data);
  const max = Math.max(...logits);
  const exp = logits.map((v) => Math.exp(v - max));
  const sum = exp.reduce((a, b) => a + b, 0);
  const ranked = exp.map((e, i) => [e / sum, i]).sort((a, b) => b[0] - a[0]).slice(0, 5);
  result.innerHTML = ranked.map(([p, i], k) => `<li class="${k ? '' : 'top'}">${CLASSES[i] ?? `class ${i}`}: ${(100 * p).toFixed(1)}%</li>`).join('');
}

let drawing = false;
pad.addEventListener('pointerdown', (e) => { drawing = true; stroke(e); });
pad.addEventListener('pointermove', (e) => drawing && stroke(e));
window.addEventListener('pointerup', () => { if (drawing) { drawing = false; classify(); } });
function stroke(e) {
  const r = pad.getBoundingClientRect();
  ctx.fillStyle = '#fff';
  ctx.beginPath();
  ctx.arc(e.clientX - r.left, e.clientY - r.top, 14, 0, 2 * Math.PI);
  ctx.fill();
}

document.getElementById('clear').addEventListener('click', clear);
document.getElementById('file').addEventListener('change', async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  const img = await createImageBitmap(file);
  clear();
  ctx.filter = `grayscale(1)${document.getElementById('invert').checked ? ' invert(1)' : ''}`;
  // Fit the whole image, centred, as Fashion-MNIST's garments fill their square.
  const k = Math.min(pad.width / img.width, pad.height / img.height);
  ctx.drawImage(img, (pad.width - img.width * k) / 2, (pad.height - img.height * k) / 2, img.width * k, img.height * k);
  ctx.filter = 'none';
  classify();
});

clear();
ort.InferenceSession.create('model.onnx', { executionProviders: ['wasm'] })
  .then((s) => { session = s; status.textContent = `model.onnx loaded (input ${s.inputNames[0]}, output ${s.outputNames[0]}).`; })
  .catch((e) => { status.textContent = `Could not load model.onnx: ${e.message}. Export one first (see README.md).`; });
