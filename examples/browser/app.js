// The classifier page: draw or upload → the network's input as its model card says (size, grey or RGB,
// normalization) → onnxruntime-web → the five most likely classes.
import { backend, centerCropBox, loadModel, run, toInput, topClasses } from './tsvision-web.js';

const pad = document.getElementById('pad');
const ctx = pad.getContext('2d');
const status = document.getElementById('status');
const result = document.getElementById('result');
const invert = document.getElementById('invert');
let model = null;
// What classify() reads: the pad (drawings, and uploads fitted into it), or an upload as it is, for
// networks trained on their images' centre crops (the card's input.resize), which toInput cuts as training did.
let source = pad;

function clear() {
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, pad.width, pad.height);
  result.innerHTML = '';
}

async function classify() {
  if (!model) return;
  const input = toInput(source, model.card);
  const { output, ms } = await run(model, input);
  const ranked = topClasses(output, model.card, 5);
  result.innerHTML = ranked.map((r, k) => `<li class="${k ? '' : 'top'}" data-class="${r.index}">${r.name}: ${(100 * r.p).toFixed(1)}%</li>`).join('');
  status.textContent = `${model.card.model}: ${ms.toFixed(1)} ms`;
  // For the console and for tests: the last input and output, exactly as the network saw and gave them.
  window.tsvision = { model, input, output };
}

let drawing = false;
pad.addEventListener('pointerdown', (e) => { drawing = true; source = pad; stroke(e); });
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
  // Decoded upright by its EXIF orientation, as training decoded its images.
  const img = await createImageBitmap(file, { imageOrientation: 'from-image' });
  clear();
  const resize = model?.card.input.resize;
  if (resize?.fit === 'center-crop') {
    // The network sees the photo's centre; the pad shows that region.
    const b = centerCropBox(img.height, img.width, pad.height, pad.width, resize.cropFraction);
    ctx.drawImage(img, b.left, b.top, b.width, b.height, 0, 0, pad.width, pad.height);
    source = img;
  } else {
    // Grey networks saw light garments on black (Fashion-MNIST); photos are usually the other way round.
    if (model?.card.input.channels === 1 && invert.checked) ctx.filter = 'invert(1)';
    // Fit the whole image, centred, as Fashion-MNIST's garments fill their square.
    const k = Math.min(pad.width / img.width, pad.height / img.height);
    ctx.drawImage(img, (pad.width - img.width * k) / 2, (pad.height - img.height * k) / 2, img.width * k, img.height * k);
    ctx.filter = 'none';
    source = pad;
  }
  classify();
});

clear();
// ?model=<path without extension> picks another export than model.onnx/model.json beside the page.
loadModel(new URLSearchParams(location.search).get('model') ?? 'model')
  .then((m) => {
    model = m;
    const { input, classes } = m.card;
    status.textContent = `${m.card.model} loaded: ${input.channels === 1 ? 'grey' : 'RGB'} ${input.height}×${input.width} input, ${classes.length} classes (onnxruntime-${backend()}).`;
    if (input.channels !== 1) document.getElementById('invert-label').hidden = true;
  })
  .catch((e) => { status.textContent = `Could not load the model: ${e.message}`; });
