// Temperature scaling: the fitted T against PyTorch's L-BFGS on the same logits; the folded head computes
// logits / T; `tsvision calibrate` on a run's validation split writes weights whose probabilities (through
// Predictor) are the trained network's softmax(z / T), with the same answers; its refusals.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as T from '../../src/torch';
import { fitTemperature } from '../../src/metrics/calibration';
import { scaledHead } from '../../src/methods/calibrate';
import { createModel } from '../../src/models/registry';
import { readWeights } from '../../src/train/checkpoint';
import { Predictor } from '../../src/infer/predict';
import { train } from '../../src/train/trainer';
import { trainSegmentation } from '../../src/train/segment';
import { restoreNetwork } from '../../src/infer/restore';
import { runTorch } from '../helpers/pytorch';
import { writeLeftRightFolder } from '../helpers/folders';
import { tmpDir } from '../helpers/tmp';

const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
const tmp = (): string => tmpDir('tsv-calibrate-');
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

test('fitTemperature: the T of least NLL, as PyTorch\'s L-BFGS finds it on the same logits', () => {
  T.manualSeed(21);
  // Labels drawn from softmax(z / 2.5) (Gumbel-max): a network overconfident by a factor of about 2.5.
  const z = T.randn([600, 6]).mul(4);
  const gumbel = T.rand([600, 6]).clamp(1e-12, 1).log().neg().log().neg();
  const y = z.div(2.5).add(gumbel).argmax(1);
  const t = fitTemperature(z, y);
  const ref = runTorch(`
z, y = I['z'].double(), I['y']
lt = torch.zeros(1, dtype=torch.float64, requires_grad=True)
opt = torch.optim.LBFGS([lt], lr=1, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn='strong_wolfe')
def closure():
    opt.zero_grad()
    l = F.cross_entropy(z / lt.exp(), y)
    l.backward()
    return l
opt.step(closure)
O['t'] = lt.exp().detach()
`, { z, y });
  const want = ref.t.item();
  assert.ok(Math.abs(t / want - 1) < 1e-4, `tsvision ${t}, PyTorch ${want}`);
  assert.ok(t > 2 && t < 3.1, `about the 2.5 the labels were drawn with: ${t}`);
  assert.throws(() => fitTemperature(z, y.narrow(0, 0, 10)), /logits \[N, K\] and labels \[N\]/);
});

test('scaledHead: the calibrated network computes the trained network\'s logits / T', () => {
  T.manualSeed(2);
  const model = createModel('cnn', { widths: [4, 8], hidden: 16, inChannels: 1 });
  model.eval();
  const x = T.randn([3, 1, 28, 28]);
  const z = Array.from(T.noGrad(() => model.forward(x)).toArray() as Float32Array);
  const calibrated = createModel('cnn', { widths: [4, 8], hidden: 16, inChannels: 1 });
  calibrated.loadStateDict(scaledHead(model.stateDict(), model.head, 1.7));
  calibrated.eval();
  const zc = Array.from(T.noGrad(() => calibrated.forward(x)).toArray() as Float32Array);
  zc.forEach((v, i) => assert.ok(Math.abs(v - z[i] / 1.7) < 1e-5, `${v} vs ${z[i] / 1.7}`));
  assert.throws(() => scaledHead(model.stateDict(), 'nothing', 2), /no 'nothing.weight'/);
  assert.throws(() => scaledHead(model.stateDict(), model.head, 0), /positive number/);
});

test('tsvision calibrate: fitted on the run\'s validation split; the written weights answer softmax(z / T), same classes; refusals', async () => {
  const dir = tmp();
  const run = path.join(dir, 'run');
  const t = cli('train', '--opt', 'widths=4,8', '--opt', 'hidden=16', '--epochs', '1', '--limit-batches', '30', '--val-split', '0.1', '--threads', '1', '-o', run);
  assert.equal(t.status, 0, t.stderr);
  const weights = path.join(run, 'model.safetensors');
  const c = cli('calibrate', weights, '--threads', '1');
  assert.equal(c.status, 0, c.stderr);
  const m = /^temperature ([\d.]+) .*fitted on 6000 images: the run's validation split \(0\.1 of the training images, seed 0\)/m.exec(c.stdout);
  assert.ok(m, c.stdout);
  const held = /held-out: NLL ([\d.]+) → ([\d.]+)/.exec(c.stdout)!;
  assert.ok(Number(held[2]) <= Number(held[1]), c.stdout);
  const top1 = /top-1 ([\d.]+%) → ([\d.]+%)/.exec(c.stdout)!;
  assert.equal(top1[1], top1[2], 'the answers do not change');
  const out = path.join(run, 'calibrated.safetensors');
  const { run: record } = readWeights(out);
  const temperature = record!.temperature!;
  assert.equal(temperature.toFixed(4), m[1]);
  assert.ok(fs.existsSync(path.join(run, 'calibrated.reliability.png')));

  // An image through Predictor: the calibrated probabilities are softmax(log p / T) of the trained ones.
  const img = path.join(dir, 'img.png');
  const sharp = (await import('sharp')).default;
  await sharp(Buffer.from(Array.from({ length: 28 * 28 }, (_, i) => (i * 37) % 256)), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(img);
  const [before, after] = await Promise.all([weights, out].map(async (f) => (await Predictor.load(f)).classify(img, { topK: 10 })));
  const p = Array.from({ length: 10 }, (_, i) => before.find((s) => s.index === i)!.probability);
  const want = Array.from(T.softmax(T.tensor(p.map(Math.log)).div(temperature), 0).toArray() as Float32Array);
  for (const s of after) assert.ok(Math.abs(s.probability - want[s.index]) < 1e-5, `class ${s.index}: ${s.probability} vs ${want[s.index]}`);
  assert.equal(after[0].index, before[0].index);
  // predict --min-confidence: an answer below the threshold is marked unsure, one above is not.
  for (const threshold of [Math.min(0.9999, after[0].probability + 0.01), Math.max(0, after[0].probability - 0.01)]) {
    const unsure = after[0].probability < threshold;
    const p = cli('predict', out, img, '--json', '--min-confidence', String(threshold));
    assert.equal(p.status, 0, p.stderr);
    assert.equal((JSON.parse(p.stdout) as { results: { unsure: boolean }[] }).results[0].unsure, unsure, `threshold ${threshold}`);
  }

  // Exported, its model card says the probabilities are calibrated, and by which T.
  const e = cli('export', out, '-o', path.join(dir, 'cal.onnx'));
  assert.equal(e.status, 0, e.stderr);
  assert.equal((JSON.parse(fs.readFileSync(path.join(dir, 'cal.json'), 'utf8')) as { temperature: number }).temperature, temperature);

  assert.match(cli('calibrate', out).stderr, /is calibrated already \(T = /);
  assert.match(cli('calibrate', weights, '-o', weights).stderr, /is the input itself/);
  assert.match(cli('calibrate', weights, '--images', dir).stderr, /--images goes with runs trained on image folders/);
  // A run without a validation split: nothing held out to fit on.
  const folder = path.join(dir, 'folder');
  await writeLeftRightFolder(path.join(folder, 'train'), 6);
  await writeLeftRightFolder(path.join(folder, 'held'), 3, 2);
  const r = await train({ model: 'cnn', modelOptions: { widths: [4, 8], hidden: 8, dropout: 0 }, data: { kind: 'image-folder', train: path.join(folder, 'train'), testSplit: 0.2, size: 16 }, epochs: 1, batchSize: 8, outDir: path.join(folder, 'run'), threads: 1 }, () => {});
  assert.match(cli('calibrate', r.weights).stderr, /held out no validation images: train with --val-split/);
  // A folder of held-out images instead.
  const f = cli('calibrate', r.weights, '--images', path.join(folder, 'held'), '-o', path.join(folder, 'cal.safetensors'));
  assert.equal(f.status, 0, f.stderr);
  assert.match(f.stdout, new RegExp(`fitted on 5 images: ${path.join(folder, 'held').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
});

test('tsvision calibrate on a segment run: T fitted on its validation scenes\' pixels, folded into the last layer (logits / T at every pixel), labels unchanged', async () => {
  const dir = tmp();
  const scenes = { size: 32, trainCount: 40, testCount: 8, maxItems: 2 };
  const run = await trainSegmentation({ model: 'enet', scenes, epochs: 1, batchSize: 8, seed: 5, threads: 1, valSplit: 0.2, outDir: path.join(dir, 'run') }, () => {});
  const weights = path.join(dir, 'run', 'model.safetensors');
  const c = cli('calibrate', weights, '--threads', '1');
  assert.equal(c.status, 0, c.stderr);
  // 8 held-out scenes of 32 × 32, every pixel labelled: all 8,192 of them (under the million-pixel cap).
  assert.match(c.stdout, /fitted on 8,192 pixels of 8 images: the run's validation split \(0\.2, seed 5\)/);
  // One epoch on 32 scenes leaves ENet near chance: T runs to the search's end, and the command says so.
  const t = Number(/^temperature ([\d.]+)/.exec(c.stdout)![1]);
  if (t >= 19.98) assert.match(c.stderr, /warning: T reached the search's upper end \(20\)/);
  else assert.doesNotMatch(c.stderr, /warning/);
  const miou = /mIoU ([\d.]+%) → ([\d.]+%)/.exec(c.stdout)!;
  assert.equal(miou[1], miou[2], 'the labels do not change');
  const out = path.join(dir, 'run', 'calibrated.safetensors');
  const temperature = readWeights(out).run!.temperature!;
  const [trained, calibrated] = [weights, out].map((f) => restoreNetwork(f));
  const x = T.randn([2, 1, 32, 32]);
  const [z, zc] = [trained, calibrated].map((n) => Array.from(T.noGrad(() => n.model.forward(x)).toArray() as Float32Array));
  zc.forEach((v, i) => assert.ok(Math.abs(v - z[i] / temperature) < 1e-4 * (1 + Math.abs(z[i])), `pixel logit ${i}: ${v} vs ${z[i] / temperature}`));
  assert.match(cli('calibrate', run.checkpoint, '--images', dir).stderr, /--images takes classifier folders/);
  const noVal = await trainSegmentation({ model: 'enet', scenes: { ...scenes, trainCount: 8 }, epochs: 1, batchSize: 8, seed: 5, threads: 1, outDir: path.join(dir, 'noval') }, () => {});
  assert.match(cli('calibrate', noVal.checkpoint).stderr, /held out no validation images: train with segment --val-split/);
});
