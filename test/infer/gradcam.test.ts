// Grad-CAM against PyTorch computing it on the same weights and inputs with its own hooks and autograd
// (the CNN and MobileNet v1 of scripts/reference_models.py), and `tsvision explain`.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import * as T from '../../src/torch';
import { SimpleCNN } from '../../src/models/cnn';
import { MobileNetV1 } from '../../src/models/mobilenet';
import { ENet } from '../../src/models/enet';
import { gradCam } from '../../src/infer/gradcam';
import { saveCheckpoint } from '../../src/train/checkpoint';
import { runTorch } from '../helpers/pytorch';
import { tmpDir } from '../helpers/tmp';

const GRAD_CAM = `
import reference_models as R
def randomized(m):
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.2, 0.2)
    return m.eval()
# Grad-CAM by hand: a forward hook keeps the layer's last output, autograd gives the class score's gradient.
def grad_cam(m, x, layer, classes=None):
    kept = {}
    dict(m.named_modules())[layer].register_forward_hook(lambda mod, i, o: kept.__setitem__('a', o))
    logits = m(x)
    c = logits.argmax(1) if classes is None else classes
    a = kept['a']
    g, = torch.autograd.grad(logits.gather(1, c.view(-1, 1)).sum(), a)
    cam = F.relu((g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
    up = F.interpolate(cam, size=x.shape[2:], mode='bilinear', align_corners=False)[:, 0]
    lo, hi = up.amin((1, 2), keepdim=True), up.amax((1, 2), keepdim=True)
    return ((up - lo) / (hi - lo).clamp_min(1e-12)).detach(), c
torch.manual_seed(11)
cnn, mobile = randomized(R.SimpleCNN(1, (8, 16), 32, 10)), randomized(R.MobileNetV1(num_classes=10))
for k, v in cnn.state_dict().items(): O['cnn.' + k] = v.clone()
for k, v in mobile.state_dict().items(): O['mobile.' + k] = v.clone()
x1, x2 = torch.randn(2, 1, 28, 28), torch.randn(2, 3, 64, 64)
O['x1'], O['x2'] = x1, x2
O['cnn_top'], O['cnn_top_c'] = grad_cam(cnn, x1, 'features.5')
O['cnn_f4'], _ = grad_cam(cnn, x1, 'features.4', torch.tensor([3, 7]))
O['mobile_top'], O['mobile_top_c'] = grad_cam(mobile, x2, 'features.13.pointwise.2')
`;

const ref = runTorch(GRAD_CAM);
const load = (m: { loadStateDict(sd: Record<string, T.Tensor>): unknown }, prefix: string) =>
  m.loadStateDict(Object.fromEntries(Object.entries(ref).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v])));
const maxDiff = (a: T.Tensor, b: T.Tensor) => T.tidy(() => a.sub(b).abs().max().item());

test('Grad-CAM of a CNN: the default layer is its last feature map before the head\'s pooling; heatmaps as PyTorch\'s', () => {
  const cnn = new SimpleCNN({ widths: [8, 16], hidden: 32, numClasses: 10, inChannels: 1 });
  load(cnn, 'cnn.');
  cnn.train();
  const r = gradCam(cnn, ref.x1);
  assert.equal(r.layer, 'features.5');
  assert.deepEqual(r.classIndex, Array.from(ref.cnn_top_c.toArray() as BigInt64Array, Number));
  assert.deepEqual(r.heatmap.shape, [2, 28, 28]);
  assert.ok(maxDiff(r.heatmap, ref.cnn_top) < 1e-4, String(maxDiff(r.heatmap, ref.cnn_top)));
  // In [0, 1], each sample reaching both ends; the model's mode is given back and no gradient accumulated.
  assert.equal(T.tidy(() => r.heatmap.min().item()), 0);
  assert.equal(T.tidy(() => r.heatmap.max().item()), 1);
  assert.equal(cnn.training, true);
  assert.ok(cnn.parameters().every((p) => p.grad === null));
  const sum = r.probability.reduce((a, p) => a + p, 0);
  assert.ok(sum > 0 && sum <= 2);
  // A named (non-leaf) layer and given classes.
  const f4 = gradCam(cnn, ref.x1, { layer: 'features.4', classIndex: [3, 7] });
  assert.equal(f4.layer, 'features.4');
  assert.ok(maxDiff(f4.heatmap, ref.cnn_f4) < 1e-4, String(maxDiff(f4.heatmap, ref.cnn_f4)));
  // The comparison can fail: another layer's map is another map.
  assert.ok(maxDiff(f4.heatmap, ref.cnn_top) > 0.05);
  assert.throws(() => gradCam(cnn, ref.x1, { layer: 'features.9' }), /no module 'features\.9' \(its last leaf modules: .*classifier\.3/);
  assert.throws(() => gradCam(cnn, ref.x1, { classIndex: [3] }), /classIndex must give 2 class\(es\) in \[0, 10\), got \[3\]/);
});

test('Grad-CAM of MobileNet v1: the last pointwise ReLU (2×2 at 64 px), as PyTorch\'s', () => {
  const m = new MobileNetV1({ numClasses: 10, smallInput: false });
  load(m, 'mobile.');
  const r = gradCam(m, ref.x2);
  assert.equal(r.layer, 'features.13.pointwise.2');
  assert.deepEqual(r.classIndex, Array.from(ref.mobile_top_c.toArray() as BigInt64Array, Number));
  assert.ok(maxDiff(r.heatmap, ref.mobile_top) < 1e-4, String(maxDiff(r.heatmap, ref.mobile_top)));
});

test('heatmapPng, by hand: the jet colour blended in by alpha × the map', async () => {
  // A grey 100 image under the map [[0, 1], [0.5, 0.25]], alpha 0.5. Jet(v) = clamp(1.5 − |4v − (3, 2, 1)|)·255.
  const image = T.full([3, 2, 2], 100, { dtype: 'uint8' });
  const png = await (await import('../../src/report/overlay')).heatmapPng(image, T.tensor([[0, 1], [0.5, 0.25]], { dtype: 'float32' }), { alpha: 0.5 });
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height, info.channels], [2, 2, 3]);
  const blend = (v: number) => [3, 2, 1].map((c) => Math.round(100 * (1 - 0.5 * v) + 255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - c))) * 0.5 * v));
  assert.deepEqual([...data], [0, 1, 0.5, 0.25].flatMap(blend));
  assert.deepEqual(blend(1), [114, 50, 50]); // v = 1: dark red (127.5, 0, 0) half over 100
});

test('tsvision explain: a heatmap PNG per image at the image\'s own size, the class it chose or --class, and clear errors', async () => {
  const dir = tmpDir('tsv-explain-');
  const run = (...args: string[]) => spawnSync(process.execPath, [path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js'), ...args], { encoding: 'utf8' });
  const t = run('train', '--epochs', '1', '--limit-batches', '3', '-b', '32', '-o', path.join(dir, 'run'));
  assert.equal(t.status, 0, t.stderr);
  const ckpt = path.join(dir, 'run', 'checkpoint.safetensors');
  // Two 56×40 grey images (not the network's 28×28): a bright block on black, at two places.
  for (const [name, left] of [['a', 4], ['b', 20]] as const) {
    const px = Buffer.alloc(56 * 40);
    for (let y = 10; y < 40; y++) for (let x = left; x < left + 14; x++) px[y * 40 + x] = 230;
    await sharp(px, { raw: { width: 40, height: 56, channels: 1 } }).png().toFile(path.join(dir, `${name}.png`));
  }
  const out = path.join(dir, 'heat');
  const r = run('explain', ckpt, path.join(dir, 'a.png'), path.join(dir, 'b.png'), '-o', out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /a\.png: .+ [\d.]+% \(Grad-CAM of features\.5.*\) → .*a\.gradcam\.png/);
  for (const n of ['a', 'b']) {
    const m = await sharp(path.join(out, `${n}.gradcam.png`)).metadata();
    assert.deepEqual([m.width, m.height, m.channels], [40, 56, 3]);
  }
  const j = run('explain', ckpt, path.join(dir, 'a.png'), '--class', 'Sandal', '--layer', 'features.4', '--json', '-o', out);
  assert.equal(j.status, 0, j.stderr);
  const [e] = JSON.parse(j.stdout) as { class: string; classIndex: number; layer: string; probability: number }[];
  assert.deepEqual([e.class, e.classIndex, e.layer], ['Sandal', 5, 'features.4']);
  assert.ok(e.probability > 0 && e.probability < 1);
  assert.match(run('explain', ckpt, path.join(dir, 'a.png'), '--class', 'Hat', '-o', out).stderr, /--class: 'Hat' is neither a class name \(T-shirt\/top, .*\) nor an index below 10/);
  assert.match(run('explain', ckpt, path.join(dir, 'a.png'), '--layer', 'nope', '-o', out).stderr, /no module 'nope'/);
  assert.match(run('explain', ckpt, path.join(dir, 'missing.png'), '-o', out).stderr, /missing\.png: no such file/);
  // A file that does not decode is skipped and named; the others' heatmaps are written; exit code 1.
  fs.writeFileSync(path.join(dir, 'broken.png'), 'not a png');
  const out2 = path.join(dir, 'heat2');
  const k = run('explain', ckpt, path.join(dir, 'broken.png'), path.join(dir, 'b.png'), '-o', out2);
  assert.equal(k.status, 1, k.stderr);
  assert.match(k.stderr, /skipped .*broken\.png: .*\n.*1 of 2 images could not be read or decoded/);
  assert.deepEqual(fs.readdirSync(out2), ['b.gradcam.png']);
});

test('Seg-Grad-CAM of ENet: the region predicted as the class scores it; default layer and class, heatmaps and probabilities as PyTorch\'s; explain on a segment checkpoint', async () => {
  const seg = runTorch(`
import reference_models as R
torch.manual_seed(6)
m = R.random_bn_statistics(R.ENet(num_classes=4).eval())
for k, v in m.state_dict().items(): O['sd.' + k] = v.clone()
x = torch.randn(2, 3, 32, 48)
O['x'] = x
# By hand (Vinogradova et al. 2020): the class's logits summed over the pixels predicted as it.
def seg_grad_cam(layer, classes=None):
    kept = {}
    h = dict(m.named_modules())[layer].register_forward_hook(lambda mod, i, o: kept.__setitem__('a', o))
    logits = m(x); h.remove()
    pred = logits.argmax(1)
    if classes is None:
        cs = []
        for i in range(x.shape[0]):
            rest = torch.bincount(pred[i].flatten(), minlength=4)[1:]
            cs.append(int(rest.argmax()) + 1 if rest.max() > 0 else 0)
        classes = torch.tensor(cs)
    mask = (pred == classes.view(-1, 1, 1)).float()
    mask = torch.where(mask.sum((1, 2), keepdim=True) == 0, torch.ones_like(mask), mask)
    picked = lambda t: t.gather(1, classes.view(-1, 1, 1, 1).expand(-1, 1, *t.shape[2:]))[:, 0]
    a = kept['a']
    g, = torch.autograd.grad((picked(logits) * mask).sum(), a)
    cam = F.relu((g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
    up = F.interpolate(cam, size=x.shape[2:], mode='bilinear', align_corners=False)[:, 0]
    lo, hi = up.amin((1, 2), keepdim=True), up.amax((1, 2), keepdim=True)
    p = (picked(F.softmax(logits, 1)) * mask).sum((1, 2)) / mask.sum((1, 2))
    return ((up - lo) / (hi - lo).clamp_min(1e-12)).detach(), classes, p.detach()
O['top'], O['top_c'], O['top_p'] = seg_grad_cam('stage5.0.act')
O['s3'], _, O['s3_p'] = seg_grad_cam('stage3.7', torch.tensor([2, 2]))
`);
  const enet = new ENet({ numClasses: 4, inChannels: 3 });
  enet.loadStateDict(Object.fromEntries(Object.entries(seg).filter(([k]) => k.startsWith('sd.')).map(([k, v]) => [k.slice(3), v])));
  const r = gradCam(enet, seg.x);
  // The last map below the input's resolution that is not the logits: the decoder's last bottleneck.
  assert.equal(r.layer, 'stage5.0.act');
  assert.deepEqual(r.classIndex, Array.from(seg.top_c.toArray() as BigInt64Array, Number));
  assert.ok(maxDiff(r.heatmap, seg.top) < 1e-4, `heatmap differs by ${maxDiff(r.heatmap, seg.top)}`);
  r.probability.forEach((p, i) => assert.ok(Math.abs(p - seg.top_p.toNumbers()[i]) < 1e-5));
  const s3 = gradCam(enet, seg.x, { layer: 'stage3.7', classIndex: 2 });
  assert.ok(maxDiff(s3.heatmap, seg.s3) < 1e-4, `stage3.7 heatmap differs by ${maxDiff(s3.heatmap, seg.s3)}`);
  s3.probability.forEach((p, i) => assert.ok(Math.abs(p - seg.s3_p.toNumbers()[i]) < 1e-5));

  // tsvision explain on a segment checkpoint: the region's heatmap at the image's own size.
  const dir = tmpDir('tsv-explain-seg-');
  const ckpt = path.join(dir, 'enet.safetensors');
  saveCheckpoint(ckpt, enet, null, { epoch: 1, batch: 0, step: 1, config: { model: 'enet', modelOptions: {}, scenes: { size: 32 }, folders: { train: 'a', test: 'b', size: [32, 48], channels: 3 } }, classes: ['ground', 'road', 'car', 'tree'] });
  await sharp(Buffer.from(T.tidy(() => T.rand([50, 70, 3]).mul(255).floor().to('uint8').toArray() as Uint8Array)), { raw: { width: 70, height: 50, channels: 3 } }).png().toFile(path.join(dir, 'street.png'));
  const e = spawnSync(process.execPath, [path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js'), 'explain', ckpt, path.join(dir, 'street.png'), '--class', 'car', '-o', dir], { encoding: 'utf8' });
  assert.equal(e.status, 0, e.stderr);
  assert.match(e.stdout, /street\.png: car region, mean probability [\d.]+% \(Grad-CAM of stage5\.0\.act\) → .*street\.gradcam\.png/);
  const png = await sharp(path.join(dir, 'street.gradcam.png')).metadata();
  assert.deepEqual([png.width, png.height], [70, 50]);
  fs.rmSync(dir, { recursive: true, force: true });
});
