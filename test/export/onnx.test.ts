// ONNX export against independent executors: every tsvision network is exported, then run by
// onnxruntime-node (and one by onnxruntime-web's wasm backend) at the traced batch size and another one, and
// compared with tsvision's own eval-mode output; every file also passes the ONNX checker (Debian's
// python3-onnx, full check with shape inference). Batch-norm statistics, affine parameters and PReLU slopes
// are randomized first, so that no layer is an identity that could hide a wrong mapping.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import * as T from '../../src/torch';
import * as nn from '../../src/nn';
import { DeepLabV3, ENet, ICNet, PSPNet, createModel } from '../../src/models';
import { ExportableModule, exportOnnx, onnxBytes } from '../../src/export';
import { tmpDir } from '../helpers/tmp';

const dir = tmpDir('tsv-onnx-');
after(() => fs.rmSync(dir, { recursive: true, force: true }));
/** Every file exported here, for the checker. */
const exported: string[] = [];

function randomize(model: nn.Module): void {
  T.noGrad(() => {
    for (const m of model.modules()) {
      if (m instanceof nn.BatchNorm2d) {
        m.running_mean?.copy_(T.randn([m.numFeatures]).mul(0.2));
        m.running_var?.copy_(T.rand([m.numFeatures]).add(0.5));
        m.weight?.copy_(T.rand([m.numFeatures]).add(0.5));
        m.bias?.copy_(T.randn([m.numFeatures]).mul(0.1));
      }
      if (m instanceof nn.PReLU) m.weight.copy_(T.rand(m.weight.shape).mul(0.4));
    }
  });
}

async function run(session: ort.InferenceSession, x: T.Tensor): Promise<ort.Tensor> {
  const out = await session.run({ input: new ort.Tensor('float32', x.toArray() as Float32Array, x.shape) });
  return out.output;
}

/** Max |a − b| and max |b| (the output scale). */
function diff(got: ArrayLike<number>, want: T.Tensor): { max: number; scale: number } {
  const w = want.toArray() as Float32Array;
  assert.equal(got.length, w.length);
  let max = 0;
  let scale = 0;
  for (let i = 0; i < w.length; i++) {
    max = Math.max(max, Math.abs(got[i] - w[i]));
    scale = Math.max(scale, Math.abs(w[i]));
  }
  return { max, scale };
}

/** Exports, then checks onnxruntime-node against tsvision at the traced batch size and at otherBatch. */
async function roundTrip(name: string, model: ExportableModule, shape: number[], otherBatch: number): Promise<string> {
  T.manualSeed(7);
  randomize(model);
  model.eval();
  const file = path.join(dir, `${name}.onnx`);
  const r = exportOnnx(model, file, { inputShape: shape });
  exported.push(file);
  assert.deepEqual(r.inputs[0].shape, ['batch', ...shape.slice(1)]);
  assert.equal(r.outputs[0].shape[0], 'batch');
  const session = await ort.InferenceSession.create(file);
  try {
    for (const n of [shape[0], otherBatch]) {
      const x = T.randn([n, ...shape.slice(1)]);
      const want = T.noGrad(() => model.forward(x) as T.Tensor);
      const got = await run(session, x);
      assert.deepEqual(got.dims, want.shape, `${name}: output shape at batch ${n}`);
      const d = diff(got.data as Float32Array, want);
      assert.ok(d.scale > 0, `${name}: all-zero output proves nothing`);
      assert.ok(d.max <= 1e-4 * d.scale, `${name} batch ${n}: max |onnxruntime − tsvision| = ${d.max} at output scale ${d.scale}`);
    }
  } finally {
    await session.release();
  }
  return file;
}

test('classification models: onnxruntime-node matches tsvision, dynamic batch', async () => {
  await roundTrip('cnn', createModel('cnn', { numClasses: 10, inChannels: 1 }), [1, 1, 28, 28], 3);
  await roundTrip('shallow', createModel('shallow', { numClasses: 10, inChannels: 1, hidden: 64 }), [2, 1, 28, 28], 1);
  await roundTrip('resnet_small', createModel('resnet_small', { numClasses: 10, inChannels: 1 }), [1, 1, 28, 28], 2);
  await roundTrip('resnet18', createModel('resnet18', { numClasses: 10, inChannels: 3, smallInput: true, width: 8 }), [1, 3, 32, 32], 2);
  await roundTrip('resnet50', createModel('resnet50', { numClasses: 10, inChannels: 3, width: 8 }), [1, 3, 64, 64], 2);
  await roundTrip('se_resnet50', createModel('se_resnet50', { numClasses: 10, inChannels: 3, smallInput: true, width: 8 }), [1, 3, 32, 32], 2);
  await roundTrip('mobilenet_v1', createModel('mobilenet_v1', { numClasses: 10, inChannels: 3, alpha: 0.25, smallInput: true }), [1, 3, 32, 32], 2);
  await roundTrip('xception', createModel('xception', { numClasses: 10, inChannels: 1, middleRepeats: 1, smallInput: true }), [1, 1, 28, 28], 2);
});

test('ENet (max-pool indices, max-unpool, PReLU, channel padding, transposed convs)', async () => {
  await roundTrip('enet', new ENet({ numClasses: 5, inChannels: 1 }), [1, 1, 32, 32], 2);
});

test('segmentation nets: DeepLab-V3, PSPNet, ICNet (dilation, adaptive pooling 1/2/3/6, bilinear resize)', async () => {
  const backbone = { backbone: 'resnet18' as const, width: 8, inChannels: 3, numClasses: 4 };
  // 33×33: the resize to the image is not an integer ratio.
  await roundTrip('deeplabv3', new DeepLabV3({ ...backbone, channels: 16, atrousRates: [1, 2, 3] }), [1, 3, 33, 33], 2);
  await roundTrip('pspnet', new PSPNet({ ...backbone, headChannels: 16, auxChannels: 8 }), [1, 3, 40, 40], 2);
  await roundTrip('icnet', new ICNet({ ...backbone, pspChannels: 16, cffChannels: 16, sub1Channels: [8, 8, 16] }), [1, 3, 48, 48], 2);
});

/** The less common mappings in one network: asymmetric, grouped, 'same'-padded and reflect-padded convs, ... */
class Zoo extends nn.Module {
  asym = new nn.Conv2d(3, 6, [3, 1], { padding: [1, 0], stride: [2, 1] });
  grouped = new nn.Conv2d(6, 6, 3, { groups: 3, padding: 2, dilation: 2 });
  same = new nn.Conv2d(6, 4, 4, { padding: 'same' });
  reflect = new nn.Conv2d(4, 4, 3, { padding: 1, paddingMode: 'reflect' });
  up = new nn.ConvTranspose2d(4, 4, 3, { stride: 2, padding: 1, outputPadding: 1 });
  prelu = new nn.PReLU(1);
  fc = new nn.Linear(5, 3);
  forward(x: T.Tensor): T.Tensor {
    let y = this.reflect.forward(this.same.forward(this.grouped.forward(this.asym.forward(x))));
    y = T.relu6(this.prelu.forward(this.up.forward(y)));
    const a = T.avgPool2d(y, 3, { stride: 2, padding: 1, ceilMode: true, countIncludePad: false });
    const b = T.adaptiveAvgPool2d(y, [5, 3]); // from 32×28: uneven, overlapping bins
    const c = T.adaptiveMaxPool2d(y, 3);
    const d = T.interpolate(a, { size: [5, 3], mode: 'bilinear', alignCorners: true });
    const e = T.interpolate(c, { scaleFactor: 2, mode: 'nearest' });
    const f = T.leakyRelu(b.sub(d).div(2).add(1, 0.5), 0.1).mul(T.interpolate(e, { size: [5, 3], mode: 'bilinear' }).sigmoid());
    const g = f.narrow(1, 1, 2).slice(3, 0, 3).permute(0, 1, 3, 2); // [N, 2, 3, 5]
    const h = T.softmax(this.fc.forward(g), -1).add(T.logSoftmax(g.mean([2], { keepdim: true }).flatten(2).tanh(), 2).mean(2, { keepdim: true }).unsqueeze(-1));
    // An output length of 1: ATen still maps by (i + ½)·in/out − ½ (ONNX's half_pixel, not pytorch_half_pixel).
    const k = T.interpolate(a, { size: [1, 4], mode: 'bilinear' }).flatten(1);
    return T.cat([h.reshape(h.size(0), -1), T.pad(g, [1, 0, 0, 2], 0.5).flatten(1).clamp(-1, 2), k], 1);
  }
}

test('the less common mappings (padding modes, groups, ceil mode, uneven adaptive bins, resize modes, ...)', async () => {
  await roundTrip('zoo', new Zoo(), [2, 3, 32, 14], 3);
});

test('onnxruntime-web (wasm backend, as in a browser) runs the exported ENet like tsvision', async () => {
  // Loaded here, not at the top: its wasm runtime starts only when this test runs.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const web = require('onnxruntime-web') as typeof import('onnxruntime-web');
  web.env.wasm.numThreads = 1;
  const model = new ENet({ numClasses: 3, inChannels: 1 });
  T.manualSeed(11);
  randomize(model);
  const bytes = onnxBytes(model, { inputShape: [1, 1, 16, 24] });
  const session = await web.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
  const x = T.randn([2, 1, 16, 24]);
  const out = await session.run({ input: new web.Tensor('float32', x.toArray() as Float32Array, x.shape) });
  const want = T.noGrad(() => model.eval().forward(x));
  assert.deepEqual(out.output.dims, want.shape);
  const d = diff(out.output.data as Float32Array, want);
  assert.ok(d.max <= 1e-4 * d.scale && d.scale > 0, `onnxruntime-web: max diff ${d.max} at scale ${d.scale}`);
  await session.release();
});

test('fixed batch: every dimension is a number, and another batch size is refused', async () => {
  const model = createModel('cnn', { numClasses: 10, inChannels: 1 });
  const file = path.join(dir, 'fixed.onnx');
  const r = exportOnnx(model, file, { inputShape: [2, 1, 28, 28], fixedBatch: true });
  exported.push(file);
  assert.deepEqual(r.inputs[0].shape, [2, 1, 28, 28]);
  assert.deepEqual(r.outputs[0].shape, [2, 10]);
  const session = await ort.InferenceSession.create(file);
  await assert.rejects(run(session, T.randn([3, 1, 28, 28])), /dimension|shape|Got/i);
  await session.release();
});

test('export leaves the model, the engine and memory as it found them', () => {
  const model = createModel('mobilenet_v1', { numClasses: 10, inChannels: 3, alpha: 0.25 });
  model.train();
  const before = T.liveTensors();
  onnxBytes(model, { inputShape: [1, 3, 32, 32] });
  assert.equal(T.liveTensors(), before, 'tensors leaked by the trace');
  assert.ok(model.modules().every((m) => m.training), 'training flags restored');
  assert.ok(model.modules().every((m) => !Object.prototype.hasOwnProperty.call(m, 'forward')), 'forward wrappers removed');
  assert.equal(nn.Conv2d.prepackForInference, true);
  // No tracer left behind: a second export traces afresh.
  assert.ok(onnxBytes(model, { inputShape: [1, 3, 32, 32] }).length > 0);
});

class PixelShuffleNet extends nn.Module {
  body = new nn.Sequential(new nn.Conv2d(1, 4, 3, { padding: 1 }), new Shuffle());
  forward(x: T.Tensor): T.Tensor {
    return this.body.forward(x);
  }
}
class Shuffle extends nn.Module {
  forward(x: T.Tensor): T.Tensor {
    return T.callOp('aten::pixel_shuffle', x, 2) as T.Tensor;
  }
}

test('an unsupported op fails with its ATen name and the module path; nothing is written', () => {
  const file = path.join(dir, 'unsupported.onnx');
  assert.throws(() => exportOnnx(new PixelShuffleNet(), file, { inputShape: [1, 1, 8, 8] }), (e: Error) => {
    assert.match(e.message, /aten::pixel_shuffle/);
    assert.match(e.message, /module 'body\.1' \(Shuffle\)/);
    return true;
  });
  assert.equal(fs.existsSync(file), false);
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('unsupported')), []);
});

test('a bad output path fails clearly, before tracing', () => {
  const model = createModel('cnn', { numClasses: 10, inChannels: 1 });
  const plainFile = path.join(dir, 'not-a-dir');
  fs.writeFileSync(plainFile, 'x');
  assert.throws(() => exportOnnx(model, path.join(plainFile, 'model.onnx'), { inputShape: [1, 1, 28, 28] }), /cannot write .*not-a-dir is not a directory/);
  assert.throws(() => exportOnnx(model, dir, { inputShape: [1, 1, 28, 28] }), /is a directory; give a file name/);
});

test('a batch-mixing reshape is refused in a dynamic-batch export and works with a fixed batch', async () => {
  class Merge extends nn.Module {
    forward(x: T.Tensor): T.Tensor {
      return x.reshape(-1).relu();
    }
  }
  assert.throws(() => onnxBytes(new Merge(), { inputShape: [2, 3, 4, 4] }), /reshapes the batch dimension.*fixed batch/);
  const session = await ort.InferenceSession.create(onnxBytes(new Merge(), { inputShape: [2, 3, 4, 4], fixedBatch: true }));
  const x = T.randn([2, 3, 4, 4]);
  const d = diff((await run(session, x)).data as Float32Array, x.reshape(-1).relu());
  assert.ok(d.max === 0 && d.scale > 0);
});

test('every exported file passes the ONNX checker (full check, shape inference)', (t) => {
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import onnx'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    t.skip('python3-onnx is not installed (Debian package; scripts/setup.sh installs it)');
    return;
  }
  assert.ok(exported.length >= 10, 'the export tests ran first');
  const code = [
    'import sys, onnx',
    'for f in sys.argv[1:]:',
    '    m = onnx.load(f)',
    '    onnx.checker.check_model(m, full_check=True)',
    '    assert m.opset_import[0].version == 17, m.opset_import',
    'print(len(sys.argv) - 1, "ok")',
  ].join('\n');
  const r = spawnSync('/usr/bin/python3', ['-c', code, ...exported], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^${exported.length} ok`));
});
