// Image folders with `--resize crop` (torchvision's ImageNet recipe, aspect ratio kept): evaluation, validation
// and Predictor see the centre 87.5% of each image, decoded on its own and compared pixel for pixel; training
// with --augment sees random resized crops of the images at their own shape; the CLI trains, evaluates and
// exports such a run, and the model card tells deployments to crop.
import { test, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import * as T from '../../src/torch';
import { DataLoader, ImageFolder, SampleSubset, disposeBatch } from '../../src/data';
import { decodeRaw } from '../../src/data/decode';
import { CENTER_CROP_FRACTION, makeLoaders } from '../../src/train/datasets';
import { createModel, createSegmentationModel } from '../../src/models/registry';
import { readWeights, saveCheckpoint } from '../../src/train/checkpoint';
import { Predictor } from '../../src/infer';
import { tmpDir } from '../helpers/tmp';

const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
const dir = tmpDir('tsv-resizecrop-');
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** root/<a|b>/<i>.png: n wide 24×48 RGB images of random pixels, class b brighter. */
async function wideFolder(root: string, n: number): Promise<void> {
  for (const cls of ['a', 'b']) {
    fs.mkdirSync(path.join(root, cls), { recursive: true });
    for (let i = 0; i < n; i++) {
      const px = T.tidy(() => T.rand([24, 48, 3]).mul(cls === 'a' ? 120 : 255).floor().to('uint8').toArray() as Uint8Array);
      await sharp(Buffer.from(px), { raw: { width: 48, height: 24, channels: 3 } }).png().toFile(path.join(root, cls, `${i}.png`));
    }
  }
}

/** All images of an epoch, as one tensor (kept). */
async function all(loader: DataLoader): Promise<T.Tensor> {
  const xs: T.Tensor[] = [];
  for await (const b of loader.epoch(0)) {
    xs.push(b.x);
    b.y.dispose();
  }
  return T.keep(T.tidy(() => T.cat(xs, 0)));
}

test('evaluation and validation images are the centre crop, training with --augment random resized crops of the images at their own shape', async () => {
  const root = path.join(dir, 'loaders');
  await wideFolder(root, 6);
  const spec = { kind: 'image-folder' as const, train: root, testSplit: 0.25, valSplit: 0.25, size: 16, channels: 3 as const, resize: 'crop' as const };
  const l = makeLoaders(spec, { batchSize: 4, seed: 1, augment: true });
  // The test images by hand: each file's centre 87.5% (decodeRaw's box, checked in test/data/decode), as [-1, 1].
  const test = l.test.dataset as SampleSubset;
  const folder = test.dataset as ImageFolder;
  const want = await Promise.all(Array.from(test.indices, async (i) => {
    const img = await decodeRaw(folder.samples[i].path, { channels: 3, size: [16, 16], fit: 'center-crop', cropFraction: CENTER_CROP_FRACTION });
    return T.keep(T.tidy(() => T.fromArray(img.data, [16, 16, 3]).permute(2, 0, 1).to('float32').div(127.5).sub(1)));
  }));
  const got = await all(l.test);
  assert.deepEqual(got.shape, [4, 3, 16, 16]);
  T.tidy(() => assert.ok(got.sub(T.stack(want)).abs().max().item() < 1e-6, 'test batch = centre crops'));
  // Not the squashed image: that would be another picture.
  const squashed = await decodeRaw(folder.samples[test.indices[0]].path, { channels: 3, size: [16, 16] });
  T.tidy(() => assert.ok(T.fromArray(squashed.data, [16, 16, 3]).permute(2, 0, 1).to('float32').div(127.5).sub(1).sub(want[0]).abs().max().item() > 0.1));
  // Validation decodes as the test set does; training decodes keep the aspect ratio (24×48 stays: the
  // smallest crop, 8% of the area, would need a shorter side of ceil(16 / √0.08) = 57).
  assert.equal(((l.val!.dataset as SampleSubset).dataset as ImageFolder).fit, 'center-crop');
  const train = (l.train.dataset as SampleSubset).dataset as ImageFolder;
  assert.deepEqual([train.fit, train.size], ['shorter-side', [57, 57]]);
  assert.deepEqual(((await train.get(0)).x as T.Tensor).shape, [3, 24, 48]);
  const epoch = (await all(l.train));
  assert.deepEqual(epoch.shape, [l.train.dataset.length, 3, 16, 16]);
  // Without --augment, training sees the evaluation's centre crops.
  const plain = makeLoaders(spec, { batchSize: 4, seed: 1, augment: false });
  assert.equal(((plain.train.dataset as SampleSubset).dataset as ImageFolder).fit, 'center-crop');
  for (const t of [got, epoch, ...want]) t.dispose();
});

test('tsvision train --resize crop --augment: eval re-scores the run, Predictor classifies the centre crop, the card says center-crop', async () => {
  const root = path.join(dir, 'cli');
  await wideFolder(root, 8);
  const out = path.join(dir, 'run');
  const args = ['--train-dir', root, '--image-size', '16', '--resize', 'crop', '--crop-scale', '0.3', '--augment', '--epochs', '2', '-b', '4', '--opt', 'widths=4,8', '--opt', 'hidden=8', '--threads', '1'];
  const t = spawnSync(process.execPath, [CLI, 'train', ...args, '-o', out], { encoding: 'utf8' });
  assert.equal(t.status, 0, t.stderr);
  const top1 = /test accuracy: top-1 ([\d.]+)%/.exec(t.stdout)?.[1];
  assert.ok(top1, t.stdout);
  const e = spawnSync(process.execPath, [CLI, 'eval', '-c', path.join(out, 'model.safetensors')], { encoding: 'utf8' });
  assert.equal(e.status, 0, e.stderr);
  assert.match(e.stdout, new RegExp(`top-1 ${top1.replace('.', '\\.')}%`));
  // Predictor restores the fit from the run's record: its probabilities are the network's on the test loader's centre crops.
  const p = await Predictor.load(path.join(out, 'model.safetensors'), { optimize: false });
  assert.deepEqual(p.resize, { fit: 'center-crop', cropFraction: CENTER_CROP_FRACTION });
  const l = makeLoaders({ kind: 'image-folder', train: root, testSplit: 0.2, size: 16, channels: 3, resize: 'crop' }, { batchSize: 8, seed: 0, augment: false });
  const test = l.test.dataset as SampleSubset;
  const files = Array.from(test.indices, (i) => (test.dataset as ImageFolder).samples[i].path);
  const net = createModel('cnn', { numClasses: 2, inChannels: 3, smallInput: true, widths: [4, 8], hidden: 8 });
  net.loadStateDict(readWeights(path.join(out, 'model.safetensors')).weights);
  net.eval();
  const batch = (await l.test.epoch(0).next()).value!;
  const want = T.tidy(() => T.noGrad(() => T.softmax(net.forward(batch.x), 1).toNumbers()));
  disposeBatch(batch);
  const got = await p.classifyMany(files, { topK: 2 });
  got.forEach((scores, i) => {
    for (const s of scores) assert.ok(Math.abs(s.probability - want[i * 2 + s.index]) < 1e-6, `${files[i]} class ${s.index}: ${s.probability} vs ${want[i * 2 + s.index]}`);
  });
  // explain lays the heatmap over what the network saw: of the 24×48 image, the centre 21×21 (0.875 of 24),
  // rows 1…21 and columns 13…33 by hand.
  const ex = await p.explain(files[0]);
  const own = await decodeRaw(files[0], { channels: 3 });
  assert.deepEqual([ex.image.shape, ex.heatmap.shape], [[3, 21, 21], [21, 21]]);
  const region = T.tidy(() => T.fromArray(own.data, [24, 48, 3]).narrow(0, 1, 21).narrow(1, 13, 21).permute(2, 0, 1).contiguous().toArray() as Uint8Array);
  assert.deepEqual(Array.from(ex.image.toArray() as Uint8Array), Array.from(region));
  ex.image.dispose();
  ex.heatmap.dispose();
  // Export: the card tells readers to crop as evaluation did.
  const onnx = path.join(dir, 'model.onnx');
  const x = spawnSync(process.execPath, [CLI, 'export', path.join(out, 'model.safetensors'), '-o', onnx], { encoding: 'utf8' });
  assert.equal(x.status, 0, x.stderr);
  const card = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')) as { input: { resize: unknown } };
  assert.deepEqual(card.input.resize, { fit: 'center-crop', cropFraction: CENTER_CROP_FRACTION });
  for (const [bad, message] of [
    [['--train-dir', root, '--crop-scale', '0.3'], /--crop-scale sizes the random crops of --resize crop/],
    [['--resize', 'crop'], /--resize applies to image folders/],
    [['--train-dir', root, '--resize', 'crop', '--crop-scale', '0'], /--crop-scale must be a share of the area in \(0, 1\]/],
    [['--train-dir', root, '--resize', 'tile'], /Allowed choices are squash, crop/],
  ] as const) {
    const r = spawnSync(process.execPath, [CLI, 'train', ...bad, '--epochs', '1'], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, message);
  }
});

test('a run recorded without --resize still squashes; a segmentation predictor refuses a centre crop (its class map covers the whole image)', async () => {
  const cnn = createModel('cnn', { numClasses: 2, inChannels: 3, smallInput: true, widths: [4, 8], hidden: 8 });
  const ckpt = path.join(dir, 'cnn.safetensors');
  saveCheckpoint(ckpt, cnn, null, { epoch: 1, batch: 0, step: 1, config: { model: 'cnn', modelOptions: { widths: [4, 8], hidden: 8 }, data: { kind: 'image-folder', train: 'gone', test: 'gone', size: 16, channels: 3 } } });
  assert.deepEqual((await Predictor.load(ckpt)).resize, { fit: 'fill', cropFraction: 1 });
  // predict --resize crop overrides the record: the probabilities of a Predictor that crops.
  const photo = path.join(dir, 'wide.png');
  await sharp(Buffer.from(T.tidy(() => T.rand([20, 50, 3]).mul(255).floor().to('uint8').toArray() as Uint8Array)), { raw: { width: 50, height: 20, channels: 3 } }).png().toFile(photo);
  const cropping = await (await Predictor.load(ckpt, { resize: { fit: 'center-crop', cropFraction: CENTER_CROP_FRACTION } })).classify(photo, { topK: 2 });
  const squashing = await (await Predictor.load(ckpt)).classify(photo, { topK: 2 });
  const r = spawnSync(process.execPath, [CLI, 'predict', ckpt, photo, '--resize', 'crop', '--json', '--top', '2'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const top = (JSON.parse(r.stdout) as { results: { top: { index: number; probability: number }[] }[] }).results[0].top;
  assert.deepEqual(top.map((t) => t.index), cropping.map((c) => c.index));
  top.forEach((t, i) => assert.ok(Math.abs(t.probability - cropping[i].probability) < 1e-6));
  assert.ok(Math.abs(cropping[0].probability - squashing.find((q) => q.index === cropping[0].index)!.probability) > 1e-6, 'cropping changes the answer');
  const enet = createSegmentationModel('enet', { numClasses: 3, inChannels: 3 });
  const seg = path.join(dir, 'enet.safetensors');
  saveCheckpoint(seg, enet, null, { epoch: 1, batch: 0, step: 1, config: { model: 'enet', modelOptions: {}, scenes: { size: 32 }, folders: { train: 'a', test: 'b', size: [32, 32], channels: 3 } } });
  await assert.rejects(Predictor.load(seg, { resize: { fit: 'center-crop', cropFraction: 0.875 } }), /enet is a segmentation network: its class map covers the whole image/);
  const bad = spawnSync(process.execPath, [CLI, 'predict', seg, photo, '--resize', 'crop'], { encoding: 'utf8' });
  assert.match(bad.stderr, /enet is a segmentation network: its class map covers the whole image/);
});
