// The segmentation page: upload → the network's input as its model card says → onnxruntime-web → a class per
// pixel, painted over the image in the colours of tsvision's overlays, with each class's share of the pixels.
import { backend, classMap, loadModel, run, toInput } from './tsvision-web.js';

const view = document.getElementById('view');
const status = document.getElementById('status');
const legend = document.getElementById('legend');
const alpha = document.getElementById('alpha');
let model = null;
let last = null; // { image, labels, width, height }

const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

/** The class map as an RGBA canvas at the network's size: class colours, class 0 (background) transparent. */
function labelCanvas({ labels, width, height }, colours) {
  const c = document.createElement('canvas');
  c.width = width;
  c.height = height;
  const g = c.getContext('2d');
  const img = g.createImageData(width, height);
  const palette = colours.map(rgb);
  labels.forEach((k, i) => {
    if (k === 0) return;
    img.data.set([...palette[k], 255], 4 * i);
  });
  g.putImageData(img, 0, 0);
  return c;
}

function draw() {
  if (!last) return;
  const { image } = last;
  // Up to 640 px wide; small images are enlarged so that their pixels stay visible.
  const k = Math.min(640 / image.width, Math.max(1, Math.floor(640 / image.width)));
  view.width = Math.round(image.width * k);
  view.height = Math.round(image.height * k);
  const g = view.getContext('2d');
  g.imageSmoothingEnabled = false;
  g.drawImage(image, 0, 0, view.width, view.height);
  // The class map is at the network's input size: stretched back over the image, nearest neighbour.
  g.globalAlpha = Number(alpha.value);
  g.drawImage(labelCanvas(last, model.card.colours), 0, 0, view.width, view.height);
  g.globalAlpha = 1;
}

async function segment(image, camera = null) {
  const input = toInput(image, model.card);
  const { output, ms } = await run(model, input);
  const map = classMap(output, model.card);
  const previous = last?.image;
  last = { image, ...map };
  draw();
  if (previous !== image && previous instanceof ImageBitmap) previous.close(); // camera frames: free each one
  const counts = new Array(model.card.classes.length).fill(0);
  for (const k of map.labels) counts[k]++;
  const n = map.labels.length;
  legend.innerHTML = model.card.classes
    .map((name, k) => ({ name, k, share: counts[k] / n }))
    .filter((c) => c.share > 0)
    .map((c) => `<li data-class="${c.k}" data-pixels="${counts[c.k]}"><span style="background:${c.k ? model.card.colours[c.k] : 'transparent'}"></span>${c.name}: ${c.share < 0.0005 ? '<0.1' : (100 * c.share).toFixed(1)}%</li>`)
    .join('');
  status.textContent = `${model.card.model}: ${ms.toFixed(1)} ms for ${model.card.input.width}×${model.card.input.height}`;
  // For the console and for tests: the last input, output and class map, exactly as the network saw and gave them.
  window.tsvision = { model, input, output, labels: map.labels, camera };
}

// The camera: each new frame is segmented once the previous one is painted, so the rate shown is what this
// network reaches in this browser on this machine (grab, network, argmax, paint), or the camera's own rate.
const video = document.getElementById('video');
const cameraButton = document.getElementById('camera');
let camera = null; // { stream, frames, fps }

async function startCamera() {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
  video.srcObject = stream;
  await video.play();
  camera = { stream, frames: 0, fps: 0 };
  cameraButton.textContent = 'Stop camera';
  const self = camera;
  let t0 = performance.now();
  while (camera === self) {
    const frame = await createImageBitmap(video);
    await segment(frame, self);
    const t = performance.now();
    self.frames++;
    // An exponential moving average over about ten frames: steady, yet it follows a change of scene.
    self.fps = self.frames === 1 ? 1000 / (t - t0) : 0.9 * self.fps + 0.1 * (1000 / (t - t0));
    t0 = t;
    status.textContent += ` · camera: ${self.fps.toFixed(1)} frames/s (${self.frames} frames)`;
    // The next camera frame (never the same picture twice), where the browser can say when one arrives.
    await new Promise((r) => (video.requestVideoFrameCallback ? video.requestVideoFrameCallback(r) : requestAnimationFrame(r)));
  }
}

function stopCamera() {
  camera?.stream.getTracks().forEach((t) => t.stop());
  camera = null;
  video.srcObject = null;
  cameraButton.textContent = 'Camera';
}

cameraButton.addEventListener('click', () => {
  if (!model) return;
  if (camera) return stopCamera();
  startCamera().catch((err) => {
    stopCamera();
    status.textContent = `Could not start the camera: ${err.message}`;
  });
});

document.getElementById('file').addEventListener('change', async (e) => {
  const file = e.target.files[0];
  if (!file || !model) return;
  stopCamera();
  try {
    await segment(await createImageBitmap(file));
  } catch (err) {
    status.textContent = `Could not segment ${file.name}: ${err.message}`;
  }
});
alpha.addEventListener('input', draw);

// ?model=<path without extension> picks another export than model.onnx/model.json beside the page.
loadModel(new URLSearchParams(location.search).get('model') ?? 'model')
  .then((m) => {
    if (m.card.task !== 'segment') throw new Error(`model.json describes a ${m.card.task} network; this page needs a segmentation network (index.html classifies)`);
    model = m;
    const { input, classes } = m.card;
    status.textContent = `${m.card.model} loaded: ${input.channels === 1 ? 'grey' : 'RGB'} ${input.height}×${input.width} input, ${classes.length} classes (onnxruntime-${backend()}). Upload an image.`;
  })
  .catch((e) => { status.textContent = `Could not load the model: ${e.message}`; });
