// The segmentation page: upload → the network's input as its model card says → onnxruntime-web → a class per
// pixel, painted over the image in the colours of tsvision's overlays, with each class's share of the pixels.
import { argmaxClasses, loadModel, run, toInput } from './tsvision-web.js';

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

async function segment(image) {
  const input = toInput(image, model.card);
  const { output, ms } = await run(model, input);
  const map = argmaxClasses(output);
  last = { image, ...map };
  draw();
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
  window.tsvision = { model, input, output, labels: map.labels };
}

document.getElementById('file').addEventListener('change', async (e) => {
  const file = e.target.files[0];
  if (!file || !model) return;
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
    status.textContent = `${m.card.model} loaded: ${input.channels === 1 ? 'grey' : 'RGB'} ${input.height}×${input.width} input, ${classes.length} classes. Upload an image.`;
  })
  .catch((e) => { status.textContent = `Could not load the model: ${e.message}`; });
