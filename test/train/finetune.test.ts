// Fine-tuning: torchvision's ResNet-18 weights (through scripts/pth2safetensors.py) on two new classes with
// the backbone frozen but for BatchNorm, checked bit for bit against the file and through PyTorch's own ResNet-18 on the
// result; a frozen-then-unfrozen run resumed on both sides of the boundary; every classifier's head; the errors.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as T from '../../src/torch';
import { BatchNorm2d, Linear } from '../../src/nn';
import { createClassifier, createModel } from '../../src/models/registry';
import { Classifier } from '../../src/models/common';
import { TrainConfig, train } from '../../src/train/trainer';
import { makeLoaders } from '../../src/train/datasets';
import { loadForFineTuning } from '../../src/train/finetune';
import { saveWeights } from '../../src/train/checkpoint';
import { restoreNetwork } from '../../src/infer/restore';
import { PYTHON, assertClose, runTorch } from '../helpers/pytorch';
import { writeLeftRightFolder } from '../helpers/folders';
import sharp from 'sharp';
import { tmpDir } from '../helpers/tmp';

const SCRIPTS = path.resolve(__dirname, '..', '..', '..', 'scripts');
const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
const tmp = (): string => tmpDir('tsv-finetune-');

async function folders(dir: string, size: number): Promise<Extract<TrainConfig['data'], { kind: 'image-folder' }> & { test: string }> {
  await writeLeftRightFolder(path.join(dir, 'train'), 12);
  await writeLeftRightFolder(path.join(dir, 'test'), 4);
  return { kind: 'image-folder', train: path.join(dir, 'train'), test: path.join(dir, 'test'), size, channels: 3 };
}

/** The state-dict keys of a network's BatchNorm layers (scale, shift, statistics, counter). */
const batchNormKeys = (m: Classifier): Set<string> => new Set(m.namedModules().filter(([, x]) => x instanceof BatchNorm2d).flatMap(([n, x]) => Object.keys(x.stateDict()).map((k) => `${n}.${k}`)));

const equalBits = (a: T.Tensor, b: T.Tensor): boolean => a.dtype === b.dtype && a.shape.join() === b.shape.join() && Buffer.from((a.toArray() as Float32Array).buffer).equals(Buffer.from((b.toArray() as Float32Array).buffer));

test('torchvision ResNet-18 weights fine-tuned on two classes: ImageNet stem, a fresh head, the frozen layers bit for bit, BatchNorm trained; PyTorch agrees on the result', async () => {
  const dir = tmp();
  const pth = path.join(dir, 'resnet18.pth');
  const source = path.join(dir, 'resnet18.safetensors');
  // BatchNorm statistics far from a fresh network's, so that any update of them (training mode) shows.
  runTorch(`
import torchvision
torch.manual_seed(1)
m = torchvision.models.resnet18(num_classes=10)
for b in m.modules():
    if isinstance(b, torch.nn.BatchNorm2d):
        b.running_mean.uniform_(-0.2, 0.2); b.running_var.uniform_(0.5, 2.0); b.num_batches_tracked.fill_(1000)
        torch.nn.init.uniform_(b.weight, 0.5, 1.5); torch.nn.init.uniform_(b.bias, -0.2, 0.2)
torch.save(m.state_dict(), ${JSON.stringify(pth)})
`);
  const conv = spawnSync(PYTHON, [path.join(SCRIPTS, 'pth2safetensors.py'), pth, source], { encoding: 'utf8' });
  assert.equal(conv.status, 0, conv.stderr);
  // ImageNet's statistics, as torchvision's weights saw their inputs.
  const data = { ...(await folders(dir, 32)), normalize: 'imagenet' as const };
  const lines: string[] = [];
  const r = await train(
    { model: 'resnet18', modelOptions: { smallInput: false }, data, init: source, freezeEpochs: 2, epochs: 2, batchSize: 8, lr: 0.05, outDir: path.join(dir, 'run'), threads: 1 },
    (l) => lines.push(l),
  );
  assert.ok(lines.some((l) => l.includes('its head `fc` (10 classes) starts afresh for these 2 classes')), lines.join('\n'));
  // fc: 2·512 + 2 = 1,026; BatchNorm scale and shift: 2 · (64 + 4·64 + 5·128 + 5·256 + 5·512) = 9,600.
  assert.ok(lines.some((l) => l.includes('backbone frozen for 2 of 2 epochs: only the head `fc` and the BatchNorm layers train (10,626 parameters)')), lines.join('\n'));

  const before = T.loadSafetensors(source).tensors;
  const after = T.loadSafetensors(r.weights).tensors;
  const norms = batchNormKeys(createClassifier('resnet18', { smallInput: false }, { numClasses: 2, inChannels: 3 }));
  for (const [k, t] of Object.entries(before)) {
    if (k.startsWith('fc.')) continue;
    // The BatchNorm layers train on (fastai's train_bn); every other tensor is the file's, bit for bit.
    assert.equal(equalBits(after[k], t), !norms.has(k), `${k} ${norms.has(k) ? 'kept still, though BatchNorm trains' : 'moved though frozen'}`);
  }
  assert.deepEqual(after['fc.weight'].shape, [2, 512]);
  // The head trained: it is no longer what a fresh network of the run's seed starts with.
  T.manualSeed(0);
  const fresh = createClassifier('resnet18', { smallInput: false }, { numClasses: 2, inChannels: 3 }) as Classifier & { fc: Linear };
  assert.ok(!equalBits(fresh.fc.weight, after['fc.weight']), 'the head did not train');

  // The weights file's record rebuilds the ImageNet stem; PyTorch's ResNet-18 on the same file and images
  // gives the same logits (a 3×3 small-input stem has the same shapes and would not).
  const x = (await makeLoaders(data, { batchSize: 8, seed: 0, augment: false }).test.epoch(0).next()).value!.x;
  const net = restoreNetwork(r.weights);
  assert.deepEqual(net.normalization, { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }, 'predict and export normalize as training did');
  // The loader's input, by hand from the file's pixels: (p / 255 − mean) / std per channel.
  const first = path.join(data.test, 'left', '0.png');
  const small = { ...data, size: 16 };
  const x16 = (await makeLoaders(small, { batchSize: 8, seed: 0, augment: false }).test.epoch(0).next()).value!.x;
  const px = await sharp(first).raw().toBuffer();
  const byHand = T.tensor(Array.from(px, (v, i) => (v / 255 - [0.485, 0.456, 0.406][i % 3]) / [0.229, 0.224, 0.225][i % 3]), { dtype: 'float32' }).reshape(16, 16, 3).permute(2, 0, 1);
  assertClose(x16.select(0, 0), byHand, 1e-6, 'ImageNet-normalized pixels');
  const ours = T.noGrad(() => net.model.forward(x));
  const ref = runTorch(`
import torchvision
m = torchvision.models.resnet18(num_classes=2)
m.load_state_dict(st.load(${JSON.stringify(r.weights)})[0])
m.eval()
with torch.no_grad():
    O['logits'] = m(I['x'])
`, { x });
  assertClose(ours, ref.logits, 1e-4, 'fine-tuned ResNet-18 logits, tsvision vs PyTorch');
});

test('frozen for the first epoch, then every layer: resumed inside either phase, the run ends bit for bit as an uninterrupted one', async () => {
  const dir = tmp();
  const opts = { widths: [8, 16] as [number, number], hidden: 16 };
  T.manualSeed(5);
  const source = path.join(dir, 'source.safetensors');
  T.saveSafetensors(source, createModel('cnn', { ...opts, numClasses: 10, inChannels: 3 }).stateDict());
  const data = await folders(dir, 16);
  const cfg = (out: string): Partial<TrainConfig> => ({ model: 'cnn', modelOptions: opts, data, init: source, freezeEpochs: 1, epochs: 2, batchSize: 8, lr: 0.05, outDir: path.join(dir, out), threads: 1 });
  const quiet = (): void => {};
  const whole = await train(cfg('whole'), quiet);
  const final = T.loadSafetensors(whole.weights).tensors;
  // 24 training images: 3 steps an epoch. Stop inside the frozen epoch, then inside the unfrozen one.
  for (const stop of [2, 4]) {
    const out = `stop${stop}`;
    const first = await train({ ...cfg(out), stopAfterSteps: stop }, quiet);
    assert.equal(first.status, 'interrupted');
    if (stop === 2) {
      // Mid-way through the frozen epoch the convolutions and the hidden layer are the file's; BatchNorm trains.
      const mid = T.loadSafetensors(first.checkpoint).tensors;
      const src = T.loadSafetensors(source).tensors;
      const norms = batchNormKeys(createModel('cnn', { ...opts, numClasses: 2, inChannels: 3 }));
      for (const k of Object.keys(src).filter((k) => !k.startsWith('classifier.3.'))) assert.equal(equalBits(mid[`model.${k}`], src[k]), !norms.has(k), `${k} in the frozen epoch`);
    }
    const resumed = await train({ resume: first.checkpoint, outDir: path.join(dir, out) }, quiet);
    const got = T.loadSafetensors(resumed.weights).tensors;
    for (const [k, t] of Object.entries(final)) assert.ok(equalBits(got[k], t), `resumed at step ${stop}: ${k} differs`);
  }
  // The second epoch trained the backbone.
  assert.ok(!equalBits(final['features.0.0.weight'], T.loadSafetensors(source).tensors['features.0.0.weight']), 'the unfrozen epoch left the backbone as it was');
});

test('--backbone-lr: one plain SGD step moves every layer but the head by that fraction of the full-rate step', async () => {
  const dir = tmp();
  const opts = { widths: [8, 16] as [number, number], hidden: 16, dropout: 0 };
  T.manualSeed(9);
  const source = path.join(dir, 'source.safetensors');
  T.saveSafetensors(source, createModel('cnn', { ...opts, numClasses: 10, inChannels: 3 }).stateDict());
  const data = await folders(dir, 16);
  // One step over all 24 images, no momentum, decay or schedule: the update is −rate · gradient, and the
  // gradient is the same in both runs (same start, same fresh head, same batch).
  const run = async (out: string, backboneLr?: number) => {
    const lines: string[] = [];
    const r = await train({ model: 'cnn', modelOptions: opts, data, init: source, epochs: 1, batchSize: 24, lr: 0.1, momentum: 0, weightDecay: 0, schedule: 'none', outDir: path.join(dir, out), threads: 1, ...(backboneLr === undefined ? {} : { backboneLr }) }, (l) => lines.push(l));
    return { weights: T.loadSafetensors(r.weights).tensors, lines };
  };
  const [scaled, full] = [await run('scaled', 0.25), await run('full')];
  assert.ok(scaled.lines.some((l) => l.includes('learning rates: 0.025 for the backbone (0.25 × --lr), 0.1 for the head `classifier.3`')), scaled.lines.join('\n'));
  const start = T.loadSafetensors(source).tensors;
  for (const [k, w] of Object.entries(full.weights)) {
    if (w.dtype !== 'float32') continue;
    if (k.startsWith('classifier.3.')) {
      assert.ok(equalBits(scaled.weights[k], w), `the head ${k} steps at the full rate`);
      continue;
    }
    if (k.includes('running_')) continue; // statistics: the same forward pass in both runs, not a step
    const [dScaled, dFull] = [scaled.weights[k].sub(start[k]), w.sub(start[k])];
    const off = dScaled.sub(dFull.mul(0.25)).abs().max().item();
    assert.ok(off < 1e-6, `${k}: the step is not a quarter of the full one (off by ${off})`);
    if (k === 'features.0.0.weight') assert.ok(dFull.abs().max().item() > 1e-4, 'the full-rate step moves the first convolution');
  }
});

test('every classifier names its head: the Linear layer whose output is the logits', () => {
  const cases: [Parameters<typeof createModel>[0], Record<string, unknown>][] = [
    ['cnn', { widths: [4, 8], hidden: 8 }], ['resnet_small', {}], ['resnet18', { width: 8 }], ['mobilenet_v1', { alpha: 0.25 }], ['xception', { middleRepeats: 1 }], ['shallow', { hidden: 16 }],
  ];
  for (const [name, options] of cases) {
    T.tidy(() => {
      const m = createClassifier(name, options, { numClasses: 7, inChannels: 3 });
      const head = m.namedModules().find(([n]) => n === m.head)?.[1];
      assert.ok(head instanceof Linear && head.outFeatures === 7, `${name}: ${m.head} is not a 7-output Linear`);
      // With the head's weights zero, the logits are its bias, whatever the image.
      T.noGrad(() => {
        head.weight.zero_();
        head.bias!.copy_(T.arange(0, 7, 1, { dtype: 'float32' }));
      });
      const logits = T.noGrad(() => m.eval().forward(T.randn([2, 3, 32, 32])));
      assertClose(logits, T.arange(0, 7, 1, { dtype: 'float32' }).expand(2, 7), 0, `${name} logits`);
    });
  }
});

test('weights that do not fit but for the head, and a frozen backbone without weights, are refused by name', async () => {
  const dir = tmp();
  const file = path.join(dir, 'other.safetensors');
  T.saveSafetensors(file, createModel('cnn', { widths: [8, 16], hidden: 16, numClasses: 10, inChannels: 3 }).stateDict());
  const narrower = createModel('cnn', { widths: [4, 16], hidden: 16, numClasses: 2, inChannels: 3 });
  assert.throws(() => loadForFineTuning(file, narrower), (e: Error) => e.message.startsWith(`weights ${file} do not fit the model`) && /features\.0\.\S*weight: shape \[8,3,3,3\] in the file, \[4,3,3,3\]/.test(e.message));
  // The same head shape: an ordinary load, nothing replaced — unless the file's run record names other classes.
  const same = createModel('cnn', { widths: [8, 16], hidden: 16, numClasses: 10, inChannels: 3 });
  assert.equal(loadForFineTuning(file, same), null);
  const named = path.join(dir, 'named.safetensors');
  const digits = Array.from({ length: 10 }, (_, i) => `digit ${i}`);
  saveWeights(named, createModel('cnn', { widths: [8, 16], hidden: 16, numClasses: 10, inChannels: 3 }), { config: {}, classes: digits });
  assert.equal(loadForFineTuning(named, same, digits), null);
  const before = same.classifier.at(3) as Linear;
  const kept = T.noGrad(() => before.weight.clone());
  assert.deepEqual(loadForFineTuning(named, same, digits.map((d) => d.replace('digit', 'letter'))), { fileClasses: 10, names: digits });
  assert.ok(equalBits(before.weight, kept), 'a head for other classes stays as initialized');
  const data = await folders(dir, 16);
  await assert.rejects(train({ model: 'cnn', data, freezeEpochs: 1, epochs: 1, outDir: path.join(dir, 'run') }, () => {}), /freezing the backbone keeps the weights training starts from: give them \(--init\)/);
  const cli = spawnSync(process.execPath, [CLI, 'train', '--freeze-epochs', '2', '--epochs', '1'], { encoding: 'utf8' });
  assert.notEqual(cli.status, 0);
  assert.match(cli.stderr, /--freeze-epochs keeps the weights --init loads frozen: give --init too/);
  const lr = spawnSync(process.execPath, [CLI, 'train', '--backbone-lr', '0.1', '--epochs', '1'], { encoding: 'utf8' });
  assert.notEqual(lr.status, 0);
  assert.match(lr.stderr, /--backbone-lr sets the rate of the weights --init loads: give --init too/);
});
