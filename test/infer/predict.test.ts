// Predictor and `tsvision predict` against an independent computation: Debian's PyTorch decodes the same PNG
// files with PIL, normalizes them as training did, and runs the same networks — torchvision's ResNet-18 (with
// the small-input stem) and the reference ENet (scripts/reference_models.py) — on the same weights. Also: a
// network whose weights make the answer known, the mask and overlay files pixel by pixel, class-name
// fallbacks, and errors that name the file.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { parseCsv } from '../../src/data/label-csv';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import * as T from '../../src/torch';
import { createModel } from '../../src/models/registry';
import { ENet } from '../../src/models/enet';
import { Module } from '../../src/nn';
import { readWeights, saveCheckpoint } from '../../src/train/checkpoint';
import { train } from '../../src/train/trainer';
import { Predictor } from '../../src/infer/predict';
import { restoreNetwork } from '../../src/infer/restore';
import { progressReporter } from '../../src/cli/predict';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD, SCENE_CLASSES } from '../../src/data';
import { runTorch } from '../helpers/pytorch';
import { tmpDir } from '../helpers/tmp';

const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
const dir = tmpDir('tsv-predict-');
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = (name: string): string => path.join(dir, name);

/** Deterministic bytes (a small LCG), so that the images are the same on every run. */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}
/** PNG bytes; one channel as a real 8-bit grey PNG (sharp writes raw single-channel input as sRGB otherwise). */
function png(pixels: Uint8Array, width: number, height: number, channels: 1 | 3 | 4): Promise<Buffer> {
  const img = sharp(Buffer.from(pixels), { raw: { width, height, channels } });
  return (channels === 1 ? img.toColourspace('b-w') : img).png().toBuffer();
}

/** BatchNorm statistics away from (0, 1), so that eval mode really uses them: a few train-mode passes. */
function settleBatchNorm(model: Module & { forward(x: T.Tensor): T.Tensor }, shape: number[]): void {
  T.noGrad(() => T.tidy(() => {
    model.train();
    for (let i = 0; i < 3; i++) model.forward(T.randn(shape).mul(0.8).add(0.3));
    model.eval();
  }));
}

// ---- the files -------------------------------------------------------------------------------------------
const CLASSES = ['cat', 'dog', 'bird', 'fish'];
const SEG_CLASSES = ['background', 'road', 'car'];
const clsCkpt = file('resnet18.safetensors');
const segCkpt = file('enet.safetensors');

T.manualSeed(1);
const resnet = createModel('resnet18', { numClasses: 4, inChannels: 3, smallInput: true });
settleBatchNorm(resnet, [4, 3, 32, 32]);
// An image-folder run at 32×32 RGB: normalized to [-1, 1]; the folder is gone, the names are in the state.
saveCheckpoint(clsCkpt, resnet, null, { epoch: 1, batch: 0, step: 1, config: { model: 'resnet18', modelOptions: {}, data: { kind: 'image-folder', train: file('gone'), test: file('gone'), size: 32, channels: 3 } }, classes: CLASSES });

T.manualSeed(2);
const enet = new ENet({ numClasses: 3, inChannels: 1 });
settleBatchNorm(enet, [2, 1, 32, 32]);
// Random weights favour one class everywhere: centre each class's logits on noise like the test image's, so
// that the answer varies from pixel to pixel.
T.noGrad(() => T.tidy(() => {
  const logits = enet.forward(T.rand([1, 1, 32, 32]).sub(FASHION_MNIST_MEAN).div(FASHION_MNIST_STD));
  const bias = enet.stateDict()['fullconv.bias'];
  bias.copy_(bias.sub(logits.mean([0, 2, 3])));
}));
// A `segment` run on 32×32 scenes: grey, Fashion-MNIST statistics.
saveCheckpoint(segCkpt, enet, null, { epoch: 1, batch: 0, step: 1, config: { model: 'enet', modelOptions: {}, scenes: { size: 32 } }, classes: SEG_CLASSES });

const IMAGES = {
  rgba: file('rgba.png'), // 32×32 RGBA noise: alpha is dropped
  grey: file('grey.png'), // 32×32 grey noise: expanded to RGB
  flat: file('flat.png'), // 24×40 grey 100 everywhere: resized to 32×32, still 100 everywhere
  scene: file('scene.png'), // 60×44 grey noise for ENet: not a multiple of 8, not the trained size
};
const SCENE = { width: 60, height: 44 };
let scenePixels: Uint8Array;
let sceneResized: Uint8Array;

async function writeImages(): Promise<void> {
  fs.writeFileSync(IMAGES.rgba, await png(bytes(32 * 32 * 4, 3), 32, 32, 4));
  fs.writeFileSync(IMAGES.grey, await png(bytes(32 * 32, 4), 32, 32, 1));
  fs.writeFileSync(IMAGES.flat, await png(new Uint8Array(24 * 40).fill(100), 24, 40, 1));
  // Blocks of 4×4 pixels, so that the network's answer varies smoothly enough to be seen in the labels.
  scenePixels = new Uint8Array(SCENE.width * SCENE.height);
  const blocks = bytes(15 * 11, 5);
  for (let y = 0; y < SCENE.height; y++) for (let x = 0; x < SCENE.width; x++) scenePixels[y * SCENE.width + x] = blocks[Math.floor(y / 4) * 15 + Math.floor(x / 4)];
  fs.writeFileSync(IMAGES.scene, await png(scenePixels, SCENE.width, SCENE.height, 1));
  // What training's decoder (sharp, Lanczos-3, fill) makes of it at the trained size; PyTorch takes it from here.
  sceneResized = new Uint8Array(await sharp(IMAGES.scene).greyscale().resize(32, 32, { fit: 'fill' }).raw().toBuffer());
}

/** One Python process for every reference value. */
function reference(): Record<string, T.Tensor> {
  return runTorch(`
import numpy as np
from PIL import Image
import torchvision
import reference_models as R
def weights(path):
    t, _ = st.load(path)
    return {k[6:]: v for k, v in t.items() if k.startswith('model.')}
def load(m, path):
    missing, unexpected = m.load_state_dict(weights(path), strict=False)
    assert not unexpected and all(k.endswith('num_batches_tracked') for k in missing), (missing, unexpected)
    return m.eval()
def pil(path, mode):
    a = torch.from_numpy(np.array(Image.open(path).convert(mode), dtype=np.uint8).copy()).float() / 255
    return a.permute(2, 0, 1)[None] if a.dim() == 3 else a[None, None]

net = torchvision.models.resnet18(num_classes=4)
net.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
net.maxpool = torch.nn.Identity()
load(net, ${JSON.stringify(clsCkpt)})
with torch.no_grad():
    for name, path in [('rgba', ${JSON.stringify(IMAGES.rgba)}), ('grey', ${JSON.stringify(IMAGES.grey)})]:
        O[name] = F.softmax(net((pil(path, 'RGB') - 0.5) / 0.5), 1)[0]
    O['flat'] = F.softmax(net((torch.full((1, 3, 32, 32), 100 / 255) - 0.5) / 0.5), 1)[0]

seg = load(R.ENet(num_classes=3, in_channels=1), ${JSON.stringify(segCkpt)})
norm = lambda x: (x - ${FASHION_MNIST_MEAN}) / ${FASHION_MNIST_STD}
def labels(logits):
    top2 = logits.topk(2, 1).values
    return logits.argmax(1)[0].to(torch.uint8), (top2[:, 0] - top2[:, 1])[0]
with torch.no_grad():
    x = norm(pil(${JSON.stringify(IMAGES.scene)}, 'L'))
    h, w = x.shape[-2:]
    # native: padded at the bottom and right to ENet's multiple of 8 with 0 (the mean), logits cropped
    O['native'], O['native_gap'] = labels(seg(F.pad(x, (0, (8 - w % 8) % 8, 0, (8 - h % 8) % 8)))[:, :, :h, :w])
    # trained size: the resized image through the network, logits upsampled bilinearly to the image
    small = norm(I['resized'].float()[None, None] / 255)
    O['trained'], O['trained_gap'] = labels(F.interpolate(seg(small), size=(h, w), mode='bilinear', align_corners=False))
    # multi-scale at native size: the 48×32 crop at scales 0.5 and 1, mirrored too; softmax of the logits
    # resized back, averaged (DeepLab's evaluation)
    c = x[:, :, :32, :48]
    acc = 0
    for s in (0.5, 1):
        xs = c if s == 1 else F.interpolate(c, scale_factor=s, mode='bilinear', align_corners=False)
        for f in (False, True):
            l = seg(xs.flip(3) if f else xs)
            l = l.flip(3) if f else l
            acc = acc + F.softmax(F.interpolate(l, size=(32, 48), mode='bilinear', align_corners=False), 1)
    O['multi'], O['multi_gap'] = labels(acc / 4)
    # sliding windows (PSPNet's evaluation, hszhao/semseg's scale_process) over the whole 60×44 scene at its own
    # size: 24×32 windows every 16×22 (2/3 of a window, rounded up), 3 × 3 of them, the last flush with the edge,
    # each window's softmax averaged with its mirror's, divided by the windows covering each pixel
    acc, count = torch.zeros(1, 3, h, w), torch.zeros(h, w)
    for top in (0, 16, h - 24):
        for left in (0, 22, w - 32):
            c = x[:, :, top:top + 24, left:left + 32]
            acc[:, :, top:top + 24, left:left + 32] += (F.softmax(seg(c), 1) + F.softmax(seg(c.flip(3)), 1).flip(3)) / 2
            count[top:top + 24, left:left + 32] += 1
    O['slide'], O['slide_gap'] = labels(acc / count)
    # PIL's own Lanczos resize of the same image, to see that sharp's is the same filter
    O['pil_resized'] = torch.from_numpy(np.array(Image.open(${JSON.stringify(IMAGES.scene)}).resize((32, 32), Image.LANCZOS), dtype=np.uint8).copy())
`, { resized: T.fromArray(sceneResized, [32, 32]) });
}

let ref: Record<string, T.Tensor>;
const ready = (async () => {
  await writeImages();
  ref = reference();
})();

/** Labels equal the reference's except where its two best logits are within 1e-4 (a float-rounding tie). */
function assertLabels(got: Uint8Array, want: T.Tensor, gap: T.Tensor, what: string): void {
  const w = want.flatten().toNumbers();
  const g = gap.flatten().toNumbers();
  assert.equal(got.length, w.length, `${what}: size`);
  const bad = w.flatMap((v, i) => (v !== got[i] && !(g[i] < 1e-4) ? [i] : []));
  assert.equal(bad.length, 0, `${what}: ${bad.length} pixels differ from PyTorch, first at ${bad[0]}`);
  assert.ok(new Set(w).size > 1, `${what}: the reference should find more than one class`);
}

// ---- classification --------------------------------------------------------------------------------------
test('classify: probabilities equal torchvision ResNet-18 on PIL-decoded pixels (RGBA, grey→RGB, resized)', async () => {
  await ready;
  const p = await Predictor.load(clsCkpt);
  assert.equal(p.name, 'resnet18');
  assert.deepEqual(p.size, [32, 32]);
  assert.deepEqual(p.normalization, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  assert.deepEqual(p.classes, CLASSES);
  for (const name of ['rgba', 'grey', 'flat'] as const) {
    const top = await p.classify(IMAGES[name], { topK: 4 });
    const want = ref[name].toNumbers();
    assert.equal(top.length, 4);
    for (let i = 1; i < 4; i++) assert.ok(top[i - 1].probability >= top[i].probability, `${name}: sorted`);
    for (const c of top) {
      assert.equal(c.class, CLASSES[c.index]);
      assert.ok(Math.abs(c.probability - want[c.index]) < 1e-5, `${name}: p(${c.class}) ${c.probability} vs PyTorch ${want[c.index]}`);
    }
  }
  // Bytes instead of a path, and topK clipped to the classes there are.
  const fromBytes = await p.classify(fs.readFileSync(IMAGES.rgba), { topK: 9 });
  assert.equal(fromBytes.length, 4);
  assert.ok(Math.abs(fromBytes[0].probability - Math.max(...ref.rgba.toNumbers())) < 1e-5);
});

test('classify --flip: the probabilities are the mean of the image\'s and its mirror image\'s', async () => {
  await ready;
  const p = await Predictor.load(clsCkpt);
  // At the trained size, so that mirroring commutes with the (absent) resize.
  const px = Buffer.from(Array.from({ length: 32 * 32 * 3 }, (_, i) => (i * 37 + (i >> 5) * 11) % 256));
  const image = await sharp(px, { raw: { width: 32, height: 32, channels: 3 } }).png().toBuffer();
  const mirror = await sharp(image).flop().png().toBuffer();
  const byClass = (top: { index: number; probability: number }[]) => top.reduce((a, c) => ((a[c.index] = c.probability), a), new Array<number>(top.length).fill(0));
  const [plain, flipped, both] = [await p.classify(image, { topK: 4 }), await p.classify(mirror, { topK: 4 }), await p.classify(image, { topK: 4, flip: true })];
  const want = byClass(plain).map((x, i) => (x + byClass(flipped)[i]) / 2);
  byClass(both).forEach((x, i) => assert.ok(Math.abs(x - want[i]) < 1e-6, `class ${i}: ${x} vs ${want[i]}`));
  assert.ok(byClass(plain).some((x, i) => Math.abs(x - want[i]) > 1e-4), 'the mirror image changes the answer, so the test tells');
});

test('the plain weights a run writes carry its record: they restore alone, as its checkpoint does', async () => {
  await ready;
  const r = await train({ model: 'cnn', modelOptions: { widths: [4, 8], hidden: 16 }, epochs: 1, batchSize: 50, limitBatches: 2, threads: 1, outDir: file('run') }, () => {});
  const { run: record, checkpoint } = readWeights(r.weights);
  assert.equal(checkpoint, null, 'plain weights, not a checkpoint');
  assert.equal((record?.config as { model: string }).model, 'cnn');
  const fromWeights = await Predictor.load(r.weights);
  const fromCheckpoint = await Predictor.load(r.checkpoint);
  assert.deepEqual(fromWeights.classes, fromCheckpoint.classes);
  assert.equal(fromWeights.classes[0], 'T-shirt/top');
  assert.deepEqual(fromWeights.size, [28, 28]);
  assert.deepEqual(await fromWeights.classify(IMAGES.grey), await fromCheckpoint.classify(IMAGES.grey));
  // Weights from elsewhere (no record) still need their model named.
  const bare = file('bare.safetensors');
  T.saveSafetensors(bare, T.loadSafetensors(r.weights).tensors, { format: 'pt' });
  await assert.rejects(Predictor.load(bare), /holds plain weights: name the model with --model/);
});

test('a network whose weights make the answer known: plain weights, --size, softmax of the last bias', async () => {
  // Every weight zero but the classifier's bias log(1, 2, 3, 4): any image gets p = (0.1, 0.2, 0.3, 0.4).
  const cnn = createModel('cnn', { numClasses: 4, inChannels: 1, smallInput: true });
  const sd = cnn.stateDict();
  const biasKey = Object.keys(sd).filter((k) => k.endsWith('bias') && sd[k].shape.join() === '4').pop()!;
  const weights = Object.fromEntries(Object.entries(sd).map(([k, t]) => [k, k === biasKey ? T.fromArray(Float32Array.from([1, 2, 3, 4].map(Math.log))) : T.zerosLike(t)]));
  const plain = file('known.safetensors');
  T.saveSafetensors(plain, weights);
  await ready;
  const p = await Predictor.load(plain, { model: 'cnn', size: [28, 28] });
  assert.deepEqual(p.classes, ['class 0', 'class 1', 'class 2', 'class 3']);
  const top = await p.classify(IMAGES.rgba, { topK: 2 }); // RGB → grey for the 1-channel network
  assert.deepEqual(top.map((c) => c.index), [3, 2]);
  assert.ok(Math.abs(top[0].probability - 0.4) < 1e-6 && Math.abs(top[1].probability - 0.3) < 1e-6, JSON.stringify(top));

  const r = run('predict', plain, IMAGES.grey, '-m', 'cnn', '--size', '28x28', '--top', '1');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), `${IMAGES.grey}: class 3 40.0%`);
});

test('class names: recorded, else the data\'s own (Fashion-MNIST, scenes), else numbers; normalization as trained', () => {
  const cnn = createModel('cnn', { numClasses: 10, inChannels: 1, smallInput: true });
  const fm = file('fm.safetensors');
  saveCheckpoint(fm, cnn, null, { epoch: 1, batch: 0, step: 1, config: { model: 'cnn', modelOptions: {}, data: { kind: 'fashion-mnist' } } });
  const r = restoreNetwork(fm);
  assert.deepEqual(r.classes, FASHION_MNIST_CLASSES);
  assert.deepEqual(r.normalization, { mean: [FASHION_MNIST_MEAN], std: [FASHION_MNIST_STD] });
  assert.deepEqual(r.inputShape, [1, 1, 28, 28]);

  const e = new ENet({ numClasses: 11, inChannels: 1 });
  const scenes = file('scenes.safetensors');
  saveCheckpoint(scenes, e, null, { epoch: 1, batch: 0, step: 1, config: { model: 'enet', modelOptions: {}, scenes: { size: 64 } } });
  const s = restoreNetwork(scenes);
  assert.equal(s.segmentation, true);
  assert.deepEqual(s.classes, SCENE_CLASSES);
  assert.deepEqual(s.inputShape, [1, 1, 64, 64]);

  // A segmentation run on RGB folders: ImageNet's statistics; classes recorded.
  const rgb = new ENet({ numClasses: 3, inChannels: 3 });
  const folders = file('folders.safetensors');
  saveCheckpoint(folders, rgb, null, { epoch: 1, batch: 0, step: 1, config: { model: 'enet', modelOptions: {}, scenes: { size: 64 }, folders: { train: 'a', test: 'b', size: [48, 64], channels: 3 } }, classes: ['x', 'y', 'z'] });
  const f = restoreNetwork(folders);
  assert.deepEqual(f.normalization, { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
  assert.deepEqual(f.inputShape, [1, 3, 48, 64]);
  assert.deepEqual(f.classes, ['x', 'y', 'z']);
});

test('restoreNetwork builds a checkpoint\'s network once; plain weights first need two probe builds', () => {
  // Building a network draws its initial weights from the global generator, so the next random numbers say how
  // many networks of that shape a restore built: a checkpoint records its classes and channels (one build),
  // plain weights do not (two probes, then the network).
  const next = (fn: () => void): number[] => {
    T.manualSeed(7);
    fn();
    return T.rand([4]).toNumbers();
  };
  const build = (numClasses: number, inChannels: number) => () => createModel('resnet18', { numClasses, inChannels, smallInput: true });
  const once = next(build(4, 3));
  const thrice = next(() => [build(3, 5), build(5, 3), build(4, 3)].forEach((b) => b()));
  assert.notDeepEqual(once, thrice);
  const plain = file('resnet18-plain.safetensors');
  T.saveSafetensors(plain, resnet.stateDict());
  assert.deepEqual(next(() => restoreNetwork(clsCkpt)), once, 'checkpoint: one build');
  assert.deepEqual(next(() => restoreNetwork(plain, { model: 'resnet18' })), thrice, 'plain weights: probes, then the network');
  // Both give the same network: same sizes, same outputs.
  const [a, b] = [restoreNetwork(clsCkpt), restoreNetwork(plain, { model: 'resnet18' })];
  assert.deepEqual([a.numClasses, a.inChannels, b.numClasses, b.inChannels], [4, 3, 4, 3]);
  T.tidy(() => T.noGrad(() => {
    const x = T.randn([2, 3, 32, 32]);
    assert.ok(a.model.forward(x).sub(b.model.forward(x)).abs().max().toNumbers()[0] <= 1e-6);
  }));
  // A record that does not fit its weights (classes renamed and one added) falls back to the probes: the
  // weights' own 4 classes, the names then numbered as for any count mismatch.
  const odd = file('odd-classes.safetensors');
  saveCheckpoint(odd, resnet, null, { epoch: 1, batch: 0, step: 1, config: { model: 'resnet18', modelOptions: {}, data: { kind: 'image-folder', train: file('gone'), test: file('gone'), size: 32, channels: 3 } }, classes: [...CLASSES, 'extra'] });
  const r = restoreNetwork(odd);
  assert.equal(r.numClasses, 4);
  assert.deepEqual(r.classes, ['class 0', 'class 1', 'class 2', 'class 3']);
});

// ---- segmentation ----------------------------------------------------------------------------------------
test('segment: labels equal the reference ENet at native size (padded) and at the trained size (upsampled)', async () => {
  await ready;
  // The resize before the network is sharp's, as in training; PIL's Lanczos resize of the same file agrees.
  const pilResized = ref.pil_resized.toNumbers();
  const diffs = Array.from(sceneResized, (v, i) => Math.abs(v - pilResized[i]));
  // sharp (libvips) and PIL implement Lanczos-3 differently: on these 4×4 blocks they differ by 0.5 grey
  // levels on average, at most 16 at the sharpest edges.
  const mean = diffs.reduce((a, b) => a + b) / diffs.length;
  assert.ok(mean < 1 && Math.max(...diffs) <= 24, `sharp vs PIL resize: mean |difference| ${mean}, max ${Math.max(...diffs)}`);

  const p = await Predictor.load(segCkpt);
  assert.deepEqual(p.size, [32, 32]);
  assert.equal(p.channels, 1);
  const native = await p.segment(IMAGES.scene, { native: true });
  assert.equal(native.width, SCENE.width);
  assert.equal(native.height, SCENE.height);
  assert.deepEqual(native.classes, SEG_CLASSES);
  assertLabels(native.labels, ref.native, ref.native_gap, 'native');
  assert.deepEqual(native.classPixels, [0, 1, 2].map((c) => native.labels.filter((l) => l === c).length));

  const trained = await p.segment(IMAGES.scene);
  assert.equal(trained.labels.length, SCENE.width * SCENE.height);
  assertLabels(trained.labels, ref.trained, ref.trained_gap, 'trained size');

  // Scales and mirroring (--scales 0.5,1 --flip) on the top-left 48×32 of the scene, at its own size.
  const crop = await sharp(IMAGES.scene).extract({ left: 0, top: 0, width: 48, height: 32 }).png().toBuffer();
  const multi = await p.segment(crop, { native: true, scales: [0.5, 1], flip: true });
  assertLabels(multi.labels, ref.multi, ref.multi_gap, 'multi-scale'); // gaps of probabilities here

  // Sliding windows (--slide 24x32 --flip): at the image's own size even without `native`, as they exist to cover
  // images larger than the network's input.
  const slid = await p.segment(IMAGES.scene, { crop: [24, 32], flip: true });
  assert.deepEqual([slid.width, slid.height], [SCENE.width, SCENE.height]);
  assertLabels(slid.labels, ref.slide, ref.slide_gap, 'sliding windows');
});

test('precision bfloat16 (predict --bf16): probabilities within bfloat16\'s rounding of PyTorch\'s, labels equal but for near ties', async () => {
  await ready;
  const cls = await Predictor.load(clsCkpt, { precision: 'bfloat16' });
  assert.equal(cls.precision, 'bfloat16');
  for (const name of ['rgba', 'grey', 'flat'] as const) {
    const want = ref[name].toNumbers();
    for (const c of await cls.classify(IMAGES[name], { topK: 4 })) {
      assert.ok(Math.abs(c.probability - want[c.index]) < 2e-2, `${name}: p(${c.class}) ${c.probability} vs PyTorch's float32 ${want[c.index]}`);
    }
  }
  const seg = await Predictor.load(segCkpt, { precision: 'bfloat16' });
  const native = await seg.segment(IMAGES.scene, { native: true });
  // Logits carry ~2⁻⁸ relative error: a pixel may change class only where its two best logits are that close.
  const w = ref.native.flatten().toNumbers();
  const g = ref.native_gap.flatten().toNumbers();
  const scale = T.tidy(() => ref.native_gap.max().item());
  const changed = w.flatMap((v, i) => (v !== native.labels[i] ? [i] : []));
  assert.ok(changed.every((i) => g[i] < 0.05 * scale), `pixels that changed class had a clear winner: ${changed.filter((i) => g[i] >= 0.05 * scale).length}`);
  assert.ok(changed.length <= 0.02 * w.length, `${changed.length} of ${w.length} pixels changed class`);
  await assert.rejects(Predictor.load(segCkpt, { optimize: false, precision: 'bfloat16' }), /precision 'bfloat16' is part of the optimization for inference/);
});

test('batches: classifyMany and segmentMany answer as one image at a time, in the images\' order, mixed sizes included', async () => {
  await ready;
  const cls = await Predictor.load(clsCkpt);
  const inputs = [IMAGES.rgba, IMAGES.grey, IMAGES.flat, fs.readFileSync(IMAGES.rgba), IMAGES.grey];
  const one = await Promise.all(inputs.map((i) => cls.classify(i, { topK: 4 })));
  // The three different images get clearly different probabilities, so that a mixed-up order would show.
  const probs = one.map((top) => [0, 1, 2, 3].map((k) => top.find((c) => c.index === k)!.probability));
  for (const [i, j] of [[0, 1], [0, 2], [1, 2]]) assert.ok(probs[i].some((p, k) => Math.abs(p - probs[j][k]) > 1e-3), `images ${i} and ${j} should differ`);
  for (const batchSize of [1, 2, 8]) {
    const many = await cls.classifyMany(inputs, { topK: 4, batchSize });
    many.forEach((top, i) => top.forEach((c, k) => {
      assert.equal(c.index, one[i][k].index, `batch ${batchSize}, image ${i}`);
      assert.ok(Math.abs(c.probability - one[i][k].probability) < 1e-5, `batch ${batchSize}, image ${i}: ${c.probability} vs ${one[i][k].probability}`);
    }));
  }
  // Two different images of each of two sizes (60×44 and 48×32) and one at the trained size, so that natively
  // the equal sizes share a forward pass (batch 5: two pairs and one alone; batch 2: mostly alone) and a swap
  // inside a pair shows in the labels.
  const crop = await sharp(IMAGES.scene).extract({ left: 0, top: 0, width: 48, height: 32 }).png().toBuffer();
  const crop2 = await sharp(IMAGES.scene).extract({ left: 12, top: 12, width: 48, height: 32 }).png().toBuffer();
  const scene2 = await sharp(IMAGES.scene).flop().png().toBuffer();
  const square = await sharp(IMAGES.scene).extract({ left: 4, top: 4, width: 32, height: 32 }).png().toBuffer();
  const seg = await Predictor.load(segCkpt);
  const images = [IMAGES.scene, crop, scene2, crop2, square];
  const ownPixels = await Promise.all(images.map((i) => sharp(i).greyscale().raw().toBuffer()));
  for (const o of [{ native: false }, { native: true }, { native: true, scales: [0.5, 1], flip: true }, { crop: [24, 32] as [number, number], stride: [12, 16] as [number, number] }]) {
    const single = await Promise.all(images.map((i) => seg.segment(i, o)));
    for (const [i, j] of [[0, 2], [1, 3]]) assert.ok(!Buffer.from(single[i].labels).equals(Buffer.from(single[j].labels)), `${JSON.stringify(o)}: images ${i} and ${j} should differ`);
    for (const batchSize of [2, 5]) {
      const batched = await seg.segmentMany(images, { ...o, batchSize, keepImage: true });
      batched.forEach((b, i) => {
        const what = `${JSON.stringify(o)}, batch ${batchSize}, image ${i}`;
        assert.deepEqual([b.width, b.height], [single[i].width, single[i].height], what);
        assert.ok(Buffer.from(b.labels).equals(Buffer.from(single[i].labels)), `${what}: labels`);
        assert.deepEqual(b.classPixels, single[i].classPixels, what);
        // The kept image is the file at its own size, whether it was the network's decode or a second one.
        assert.deepEqual([b.image!.width, b.image!.height, b.image!.channels], [b.width, b.height, 1], what);
        assert.ok(Buffer.from(b.image!.pixels).equals(ownPixels[i]), `${what}: the kept pixels`);
      });
    }
  }
  await assert.rejects(cls.classifyMany(inputs, { batchSize: 0 }), /batch size must be a positive integer, got 0/);
  const r = run('predict', clsCkpt, IMAGES.grey, '--batch-size', '0');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--batch-size must be an integer >= 1, got '0'/);
});

test('predict -o: the mask decodes to the labels; the overlay is the image with class colours at its size', async () => {
  await ready;
  const out = file('out');
  const r = run('predict', segCkpt, IMAGES.scene, '-o', out, '--json');
  assert.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { model: string; task: string; classes: string[]; results: { file: string; width: number; height: number; classPixels: number[]; mask: string; overlay: string }[] };
  assert.equal(doc.model, 'enet');
  assert.equal(doc.task, 'segmentation');
  assert.deepEqual(doc.classes, SEG_CLASSES);
  const [res] = doc.results;
  assert.equal(res.mask, path.join(out, 'scene.mask.png'));
  const want = (await (await Predictor.load(segCkpt)).segment(IMAGES.scene)).labels;
  assert.ok(new Set(want).size === 3, 'every class appears, so that every colour is checked');
  assert.deepEqual(res.classPixels, [0, 1, 2].map((c) => want.filter((l) => l === c).length));

  // An 8-bit grey PNG, read back as training reads masks (greyscale, raw).
  assert.equal((await sharp(res.mask).metadata()).channels, 1);
  const mask = await sharp(res.mask).greyscale().raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([mask.info.width, mask.info.height, mask.info.channels], [SCENE.width, SCENE.height, 1]);
  assert.ok(Buffer.from(want).equals(mask.data), 'mask pixels are the labels');

  const meta = await sharp(res.overlay).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', SCENE.width, SCENE.height]);
  // Background pixels are the grey image itself; class k pixels 0.4 · grey + 0.6 · its colour (tab10).
  const colours = [null, [0x1f, 0x77, 0xb4], [0xff, 0x7f, 0x0e]];
  const overlay = await sharp(res.overlay).removeAlpha().raw().toBuffer();
  for (let i = 0; i < want.length; i++) {
    const g = scenePixels[i];
    const c = colours[want[i]];
    const expect = c ? c.map((v) => Math.round(0.4 * g + 0.6 * v)) : [g, g, g];
    const got = [...overlay.subarray(3 * i, 3 * i + 3)];
    assert.ok(got.every((v, k) => Math.abs(v - expect[k]) <= 1), `overlay pixel ${i}: ${got} vs ${expect}`);
  }
  assert.equal(fs.readdirSync(out).filter((f) => f.endsWith('.tmp')).length, 0, 'no temp files left');
});

// ---- the command line ------------------------------------------------------------------------------------
test('progress: a line redrawn on a terminal (from 21 images), plain lines elsewhere (from 51), at most 4 and 1/5 per second', () => {
  const capture = (isTTY: boolean) => {
    const out: string[] = [];
    return { stream: { isTTY, write: (s: string) => out.push(s) }, out };
  };
  let t = 0;
  const clock = () => t;
  assert.equal(progressReporter(20, capture(true).stream, clock), null);
  assert.equal(progressReporter(50, capture(false).stream, clock), null);

  const tty = capture(true);
  const p = progressReporter(21, tty.stream, clock)!;
  for (const done of [8, 16, 21]) {
    t += 200; // 8 at 0.2 s (too soon after the start to redraw), 16 at 0.4 s, all 21 at 0.6 s
    p.update(done);
  }
  p.end();
  assert.deepEqual(tty.out, ['\r[16/21] 40.0 images/s\x1b[K', '\r[21/21] 35.0 images/s\x1b[K\n']);

  t = 0;
  const pipe = capture(false);
  const q = progressReporter(60, pipe.stream, clock)!;
  for (const done of [20, 40, 60]) {
    t += 3000; // 20 at 3 s (too soon), 40 at 6 s, 60 at 9 s
    q.update(done);
  }
  q.end();
  assert.deepEqual(pipe.out, ['[40/60] 6.7 images/s\n', '[60/60] 6.7 images/s\n']);

  // Cut short by an error: the redrawn line gets its newline, so that the error starts a line of its own.
  t = 0;
  const cut = capture(true);
  const c = progressReporter(30, cut.stream, clock)!;
  t += 1000;
  c.update(10);
  c.end();
  assert.deepEqual(cut.out, ['\r[10/30] 10.0 images/s\x1b[K', '\n']);
});

test('predict on a folder: every image in it, lines or JSON; progress on stderr for many images', async () => {
  await ready;
  const folder = file('many');
  fs.mkdirSync(folder);
  const N = 55; // above the 50 from which a pipe gets progress lines
  for (let i = 0; i < N; i++) fs.copyFileSync(i % 2 ? IMAGES.rgba : IMAGES.grey, path.join(folder, `img${String(i).padStart(2, '0')}.png`));
  fs.writeFileSync(path.join(folder, 'notes.txt'), 'not an image');
  const r = run('predict', clsCkpt, folder, '--top', '2', '--json', '--batch-size', '16');
  assert.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { task: string; results: { file: string; top: { class: string; index: number; probability: number }[] }[] };
  assert.equal(doc.task, 'classification');
  assert.equal(doc.results.length, N);
  // Every image in order, across batches of 16 (the last one short): odd ones the RGBA image, even ones the grey.
  const best = (t: T.Tensor): number => t.toNumbers().indexOf(Math.max(...t.toNumbers()));
  doc.results.forEach((res, i) => {
    assert.equal(res.file, path.join(folder, `img${String(i).padStart(2, '0')}.png`));
    assert.equal(res.top.length, 2);
    const want = i % 2 ? ref.rgba : ref.grey;
    assert.equal(res.top[0].index, best(want), `image ${i}`);
    assert.ok(Math.abs(res.top[0].probability - want.toNumbers()[best(want)]) < 1e-5, `image ${i}`);
  });
  assert.notEqual(best(ref.rgba), best(ref.grey), 'the two images should get different classes');
  assert.equal(doc.results[1].top[0].class, CLASSES[best(ref.rgba)]);
  // Not a terminal: plain lines, no control codes; the last says all were done.
  assert.match(r.stderr, new RegExp(`^\\[${N}/${N}\\] [\\d.]+ images/s$`, 'm'));
  assert.doesNotMatch(r.stderr, /[\r\x1b]/);

  const lines = run('predict', clsCkpt, IMAGES.rgba, IMAGES.grey);
  assert.equal(lines.status, 0, lines.stderr);
  const out = lines.stdout.trim().split('\n');
  assert.equal(out.length, 2);
  assert.match(out[0], new RegExp(`^${IMAGES.rgba.replace(/[.]/g, '\\.')}: (\\w+ \\d+\\.\\d%, ){3}\\w+ \\d+\\.\\d%$`));
  assert.equal(lines.stderr, '', 'no progress line for two images');

  // --csv: the same answers as the JSON, a row per image, read back by the label-CSV parser; a name with a
  // comma is quoted.
  const odd = path.join(folder, 'a, "quoted" name.png');
  fs.copyFileSync(IMAGES.rgba, odd);
  const csvFile = file('answers.csv');
  const c = run('predict', clsCkpt, folder, '--csv', csvFile, '--min-confidence', '0.5');
  assert.equal(c.status, 0, c.stderr);
  const rows = parseCsv(fs.readFileSync(csvFile, 'utf8'));
  assert.deepEqual(rows[0], ['file', 'class', 'probability', 'unsure']);
  assert.equal(rows.length, N + 2);
  const byFile = new Map(doc.results.map((res) => [res.file, res.top[0]]));
  for (const [f, cls, prob, unsure] of rows.slice(1)) {
    const want = byFile.get(f) ?? byFile.get(path.join(folder, 'img01.png'))!; // the odd name is the RGBA image
    assert.equal(cls, want.class, f);
    assert.ok(Math.abs(Number(prob) - want.probability) < 1e-6, f);
    assert.equal(unsure, String(want.probability < 0.5));
  }
  assert.ok(rows.some((r) => r[0] === odd), 'the quoted file name reads back whole');
  fs.rmSync(odd);
  assert.match(run('predict', segCkpt, IMAGES.scene, '--csv', csvFile).stderr, /--csv lists classifier answers/);
});

test('clear errors naming the file: missing, corrupt, an empty folder, a folder passed to the library', async () => {
  await ready;
  const corrupt = file('corrupt.png');
  fs.writeFileSync(corrupt, fs.readFileSync(IMAGES.rgba).subarray(0, 200)); // a PNG cut short
  const empty = file('empty');
  fs.mkdirSync(empty);
  const cases: [string[], RegExp][] = [
    [['predict', clsCkpt, file('missing.png')], /missing\.png: no such file/],
    [['predict', clsCkpt, corrupt], /skipped .*corrupt\.png: .*\n.*1 of 1 image could not be read or decoded/],
    [['predict', segCkpt, corrupt, '-o', file('o2')], /skipped .*corrupt\.png: /],
    [['predict', clsCkpt, empty], /empty: a folder with no \.png\/\.jpg\/\.jpeg images/],
    [['predict', clsCkpt, IMAGES.rgba, '-o', file('o3')], /--out writes segmentation masks; resnet18 is a classifier/],
    [['predict', file('known-not.safetensors'), IMAGES.rgba], /known-not\.safetensors: no such file/],
    [['predict', clsCkpt, IMAGES.rgba, '--mean', '0.5'], /give --mean and --std together/],
  ];
  for (const [args, message] of cases) {
    const r = run(...args);
    assert.equal(r.status, 1, args.join(' '));
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/);
  }
  // A corrupt file among good ones (in the middle of a batch): the others are answered, in order and as
  // each is alone; the bad one is named, listed in --json's `failed`, and the exit code says so.
  const mixed = file('mixed');
  fs.mkdirSync(mixed);
  for (const [name, from] of [['a.png', IMAGES.rgba], ['b.png', corrupt], ['c.png', IMAGES.flat], ['d.png', IMAGES.grey]]) fs.copyFileSync(from, path.join(mixed, name));
  const m = run('predict', clsCkpt, mixed, '--batch-size', '4', '--json');
  assert.equal(m.status, 1, m.stderr);
  assert.match(m.stderr, /skipped .*b\.png: .*\n.*1 of 4 images could not be read or decoded \(listed above\); the others were answered/);
  const doc = JSON.parse(m.stdout) as { results: { file: string; top: { class: string; probability: number }[] }[]; failed: { file: string; error: string }[] };
  assert.deepEqual(doc.results.map((r) => path.basename(r.file)), ['a.png', 'c.png', 'd.png']);
  assert.deepEqual(doc.failed.map((f) => path.basename(f.file)), ['b.png']);
  // (Within float rounding: a batch of three sums its convolutions in another order than a batch of one.)
  const alone = JSON.parse(run('predict', clsCkpt, path.join(mixed, 'c.png'), '--json').stdout) as typeof doc;
  assert.deepEqual(doc.results[1].top.map((t) => t.class), alone.results[0].top.map((t) => t.class));
  doc.results[1].top.forEach((t, i) => assert.ok(Math.abs(t.probability - alone.results[0].top[i].probability) < 1e-6));
  const p = await Predictor.load(clsCkpt);
  await assert.rejects(p.classify(file('nope.png')), /nope\.png: no such file/);
  await assert.rejects(p.classify(dir), /is a folder, not an image/);
  await assert.rejects(p.classify({ name: 'upload-7', bytes: Buffer.from('not a picture') }), /cannot decode upload-7/);
  await assert.rejects(p.segment(IMAGES.rgba), /resnet18 is a classifier: use classify\(\)/);
});

test('memory: predictions leave no tensors behind', async () => {
  await ready;
  const cls = await Predictor.load(clsCkpt);
  const seg = await Predictor.load(segCkpt);
  const calls = async (): Promise<void> => {
    for (let i = 0; i < 3; i++) {
      await cls.classify(IMAGES.flat);
      await seg.segment(IMAGES.scene, { native: i % 2 === 0 });
    }
  };
  // Earlier tests' networks are garbage: collected first, so their tensors do not leave during the count.
  const settled = async (): Promise<number> => {
    for (let k = 0; k < 3; k++) {
      global.gc?.();
      await new Promise((r) => setImmediate(r));
    }
    return T.liveTensors();
  };
  // Once first: each layout keeps its convolutions' prepacked weights (a cache made on first use).
  await calls();
  const before = await settled();
  await calls();
  assert.equal(await settled(), before);
});
