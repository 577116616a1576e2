// `tsvision export` as a user meets it: a checkpoint names its model, options and trained input; the number
// of classes and input channels come from the weights; the command checks the file with onnxruntime-node.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as T from '../../src/torch';
import { createModel } from '../../src/models/registry';
import { ICNet } from '../../src/models/icnet';
import { saveCheckpoint } from '../../src/train/checkpoint';
import { SCENE_CLASSES } from '../../src/data';
import { CHECK_INPUTS, cardPath, checkNeedsMore, checkVerdict } from '../../src/export';
import { ENet } from '../../src/models/enet';
import { randomizeBatchNorm } from '../helpers/deploy';
import { tmpDir } from '../helpers/tmp';

const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
const dir = tmpDir('tsv-onnx-cli-');
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a classification checkpoint: model, 7 classes and RGB 32×32 input come from the checkpoint', () => {
  const modelOptions = { alpha: 0.25 };
  const model = createModel('mobilenet_v1', { ...modelOptions, numClasses: 7, inChannels: 3, smallInput: true });
  const ckpt = path.join(dir, 'mobilenet.safetensors');
  const data = { kind: 'image-folder', train: 'x', test: 'y', size: 32, channels: 3 };
  saveCheckpoint(ckpt, model, null, { epoch: 1, batch: 0, step: 10, config: { model: 'mobilenet_v1', modelOptions, data } });
  const out = path.join(dir, 'mobilenet.onnx');
  const r = run('export', ckpt, '-o', out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /mobilenet_v1, [\d.]+ MB, \d+ nodes/);
  assert.match(r.stdout, /input {2}input float \[batch, 3, 32, 32\]/);
  assert.match(r.stdout, /output output float \[batch, 7\]/);
  assert.match(r.stdout, /onnxruntime-node vs tsvision on a random input 2×3×32×32 \(seed 0\): max \|difference\| \d/);
  assert.ok(fs.statSync(out).size > 0);
  // The model card beside the file and inside it (metadata_props, read back by the onnx package).
  const card = JSON.parse(fs.readFileSync(path.join(dir, 'mobilenet.json'), 'utf8'));
  assert.deepEqual(card, {
    format: 'tsvision-model-card',
    version: 1,
    model: 'mobilenet_v1',
    task: 'classify',
    input: { name: 'input', layout: 'NCHW', channels: 3, height: 32, width: 32, batch: 'dynamic', resize: { fit: 'fill' } },
    output: { name: 'output' },
    normalization: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }, // image folders train on [-1, 1]
    classes: Array.from({ length: 7 }, (_, i) => `class ${i}`),
  });
  assert.match(r.stdout, /mobilenet\.json: model card \(classify, 7 classes, input 3×32×32, normalization mean 0\.5\/0\.5\/0\.5 std 0\.5\/0\.5\/0\.5\)/);
  const py = spawnSync('/usr/bin/python3', ['-c', 'import onnx, sys; m = onnx.load(sys.argv[1]); print(dict((p.key, p.value) for p in m.metadata_props)["tsvision.card"])', out], { encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  assert.deepEqual(JSON.parse(py.stdout), card);
});

test('a segmentation checkpoint (ICNet) and plain weights with --model, --input and --fixed-batch', () => {
  const modelOptions = { backbone: 'resnet18', width: 8, pspChannels: 16, cffChannels: 16, sub1Channels: [8, 8, 16] };
  T.manualSeed(0);
  const model = new ICNet({ ...(modelOptions as object), numClasses: 11, inChannels: 1 });
  const ckpt = path.join(dir, 'icnet.safetensors');
  saveCheckpoint(ckpt, model, null, { epoch: 1, batch: 0, step: 10, config: { model: 'icnet', modelOptions, scenes: { size: 48 } } });
  const r = run('export', ckpt, '-o', path.join(dir, 'icnet.onnx'));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /output output float \[batch, 11, 48, 48\]/);
  // Segmentation cards name the scenes' classes and carry the overlay colours, background first.
  const card = JSON.parse(fs.readFileSync(path.join(dir, 'icnet.json'), 'utf8'));
  assert.equal(card.task, 'segment');
  assert.deepEqual(card.classes, [...SCENE_CLASSES]);
  assert.deepEqual(card.colours.slice(0, 3), ['#000000', '#1f77b4', '#ff7f0e']);
  assert.deepEqual([card.input.channels, card.input.height, card.input.width], [1, 48, 48]);

  const weights = path.join(dir, 'cnn-weights.safetensors');
  T.saveSafetensors(weights, createModel('cnn', { numClasses: 4, inChannels: 1, smallInput: true }).stateDict());
  const p = run('export', weights, '-o', path.join(dir, 'cnn.onnx'), '--model', 'cnn', '--input', '3x1x20x20', '--fixed-batch');
  assert.equal(p.status, 0, p.stderr);
  assert.match(p.stdout, /input {2}input float \[3, 1, 20, 20\]/);
  assert.match(p.stdout, /output output float \[3, 4\]/);
});

test('the check: seeded inputs give the same lines every run; a first input that differs at a near-tie is settled by two more', () => {
  // A random-BatchNorm ENet: its max pooling can pick another winner than onnxruntime's where two values
  // tie to within float rounding. On this machine the input of seed 473 is such a case (7e-3 of 0.2).
  T.manualSeed(5);
  const model = new ENet({ numClasses: 11, inChannels: 3 });
  randomizeBatchNorm(model);
  const ckpt = path.join(dir, 'enet.safetensors');
  saveCheckpoint(ckpt, model, null, { epoch: 1, batch: 0, step: 1, config: { model: 'enet', folders: { train: 'x', test: 'y', size: [48, 64], channels: 3 } } });
  const checkLines = (seed: number) => {
    const r = run('export', ckpt, '-o', path.join(dir, 'enet.onnx'), '--check-seed', String(seed));
    return { status: r.status, lines: r.stdout.split('\n').filter((l) => /vs tsvision|near-tie/.test(l)), stderr: r.stderr };
  };
  const [a, b] = [checkLines(473), checkLines(473)];
  assert.deepEqual(a.lines, b.lines);
  // The verdict, recomputed from the printed differences.
  const agreed = a.lines.flatMap((l) => {
    const m = /\(seed (\d+)\): max \|difference\| (\S+) \(outputs up to (\S+)\)/.exec(l);
    return m ? [Number(m[2]) <= 1e-4 * Number(m[3])] : [];
  });
  const seeds = a.lines.flatMap((l) => /\(seed (\d+)\)/.exec(l)?.[1] ?? []).map(Number);
  assert.deepEqual(seeds, agreed[0] ? [473] : [473, 474, 475]);
  assert.equal(a.status, agreed.filter((x) => !x).length <= (agreed.length > 1 ? 1 : 0) ? 0 : 1, a.stderr);
  assert.equal(a.lines.some((l) => /near-tie/.test(l)), !agreed[0] && a.status === 0);
  if (agreed[0]) console.log('# seed 473 is no near-tie on this machine: only the repeatability and the verdict were checked');
});

test('the check\'s rule: one input if it agrees, else three; one that differs among three is a near-tie, two are an error', () => {
  assert.equal(CHECK_INPUTS, 3);
  assert.equal(checkNeedsMore([]), true);
  assert.equal(checkNeedsMore([true]), false);
  assert.equal(checkNeedsMore([false]), true);
  assert.equal(checkNeedsMore([false, true]), true);
  assert.equal(checkNeedsMore([false, true, true]), false);
  assert.equal(checkVerdict([true]), 'agree');
  assert.equal(checkVerdict([false, true, true]), 'near-tie');
  assert.equal(checkVerdict([false, false, true]), 'differ');
  assert.equal(checkVerdict([false, true, false]), 'differ');
  assert.equal(checkVerdict([false]), 'differ');
  assert.throws(() => checkVerdict([]), /no input was checked/);
});

test('piped into head, the command stops quietly when the reader has gone (no EPIPE trace)', () => {
  const weights = path.join(dir, 'pipe.safetensors');
  T.saveSafetensors(weights, createModel('cnn', { numClasses: 4, inChannels: 1, smallInput: true }).stateDict());
  // The export prints its first line, then more after the check's session starts: head has left by then.
  const r = spawnSync('bash', ['-c', `set -o pipefail; "${process.execPath}" "${CLI}" export "${weights}" -o "${path.join(dir, 'pipe.onnx')}" --model cnn --input 1x1x20x20 | head -1`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /pipe\.onnx: cnn/);
  assert.doesNotMatch(r.stderr, /EPIPE|Unhandled/);
});

test('the card never replaces the ONNX file: model.onnx → model.json, model.json → model.json.json', () => {
  assert.equal(cardPath('out/model.onnx'), 'out/model.json');
  assert.equal(cardPath('net.ONNX'), 'net.json');
  assert.equal(cardPath('model'), 'model.json');
  assert.equal(cardPath('model.json'), 'model.json.json');
});

test('clear one-line errors: plain weights without --model, a missing file, an unwritable output, a stray --keep-logits', () => {
  const weights = path.join(dir, 'plain.safetensors');
  T.saveSafetensors(weights, createModel('cnn', { numClasses: 10, inChannels: 1 }).stateDict());
  const cases: [string[], RegExp][] = [
    [['export', weights, '-o', path.join(dir, 'a.onnx')], /holds plain weights: name the model with --model/],
    [['export', weights, '-o', path.join(dir, 'a.onnx'), '--model', 'cnn'], /give the input shape with --input/],
    [['export', path.join(dir, 'missing.safetensors'), '-o', path.join(dir, 'a.onnx')], /no such file/],
    [['export', weights, '-o', path.join(weights, 'a.onnx'), '--model', 'cnn', '--input', '1x1x28x28'], /cannot write .* is not a directory/],
    [['export', weights, '-o', path.join(dir, 'a.onnx'), '--model', 'cnn', '--input', '1x1x28x28', '--keep-logits'], /--keep-logits goes with --with-preprocessing/],
  ];
  for (const [args, message] of cases) {
    const r = run(...args);
    assert.equal(r.status, 1, args.join(' '));
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/);
  }
});
