// int8 quantization (src/export/quantize.ts, `tsvision export --int8`). The quantized files are read back by
// Python's onnx package and recomputed in PyTorch by a small ONNX interpreter written here from the ONNX
// operator specs: the int8 weights and biases from the float file's, the calibration ranges from the same
// calibration batches, and the QDQ graph's output on a test input — against onnxruntime running its integer
// kernels (QLinearConv, QGemm) on the same file.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import * as T from '../../src/torch';
import { createModel } from '../../src/models/registry';
import { foldBatchNorm } from '../../src/nn';
import { toOnnx } from '../../src/export';
import { encodeModel, concatChunks } from '../../src/export/protobuf';
import { CalibrationMethod, HISTOGRAM_BINS, HistogramObserver, activationParams, calibrate, mseSearch, quantizeModel, roundingError, quantizeWeights, roundHalfEven } from '../../src/export/quantize';
import { randomizeBatchNorm } from '../helpers/deploy';
import { ENet } from '../../src/models/enet';
import { TensorProto } from '../../src/export/protobuf';
import { PYTHON, runTorch } from '../helpers/pytorch';
import { tmpDir } from '../helpers/tmp';

const dir = tmpDir('tsv-int8-');
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

test('the arithmetic, by hand: half-even rounding, uint8 ranges that keep 0 exact, symmetric int8 weights per channel', () => {
  assert.deepEqual([2.5, 3.5, -2.5, -3.5, 1.2, -1.7, 0.5].map(roundHalfEven), [2, 4, -2, -4, 1, -2, 0]);
  // [-1, 3]: 255 steps of 4/255; 0 falls on step 63.75 → 64.
  assert.deepEqual(activationParams({ min: -1, max: 3 }), { scale: Math.fround(4 / 255), zeroPoint: 64 });
  // A ReLU output [0.5, 2]: the range is widened to 0, whose code is 0.
  assert.deepEqual(activationParams({ min: 0.5, max: 2 }), { scale: Math.fround(2 / 255), zeroPoint: 0 });
  assert.deepEqual(activationParams({ min: -4, max: -1 }), { scale: Math.fround(4 / 255), zeroPoint: 255 });
  assert.deepEqual(activationParams({ min: 0, max: 0 }), { scale: 1, zeroPoint: 0 });
  assert.throws(() => activationParams({ min: NaN, max: NaN }), /not finite .*NaN/);
  // Two output channels: max |w| 1 and 0.4 → scales 1/127 and 0.4/127; −0.5·127 = −63.5 → −64, 0.2/0.4·127 = 63.5 → 64.
  const { q, scales } = quantizeWeights(Float32Array.of(1, -0.5, 0.2, 0.4), [2, 1, 1, 2], 0);
  assert.deepEqual([...q], [127, -64, 64, 127]);
  assert.deepEqual([...scales], [Math.fround(1 / 127), Math.fround(Math.fround(0.4) / 127)]);
  const whole = quantizeWeights(Float32Array.of(2, -1, 0.5, 0), [2, 2], null);
  assert.deepEqual([...whole.q], [127, -64, 32, 0]); // −63.5 → −64, 31.75 → 32
  assert.deepEqual([...quantizeWeights(new Float32Array(3), [3, 1], 0).scales], [1, 1, 1]); // all-zero channels
  // --reduce-range: ±64, scale max|w| / 64; 0.2578125 · 64 = 16.5 → 16 (even), −0.5 · 64 = −32.
  const reduced = quantizeWeights(Float32Array.of(1, -0.5, 0.2578125), [3], null, 64);
  assert.deepEqual([...reduced.q], [64, -32, 16]);
  assert.deepEqual([...reduced.scales], [1 / 64]);
});

test('mse calibration against PyTorch\'s HistogramObserver: its rounding error and its search path on the same histograms; the whole path searched, never worse than its stop or min/max', () => {
  // Histograms of 2048 bins of four shapes: normal with one far outlier, ReLU'd normal (half its mass in one
  // bin), uniform, and a heavy-tailed cube of normals. PyTorch gets each with the observer's span set to
  // [0, 2048], so that its min and max come back as bin indices and its errors in the same units as ours.
  T.manualSeed(5);
  const n = 200000;
  const histogram = (v: T.Tensor) => T.tidy(() => T.callOp('aten::histc', v, HISTOGRAM_BINS, v.min().item(), v.max().item()) as T.Tensor);
  const samples = T.tidy(() => {
    const g = T.randn([n]);
    const outliers = T.cat([g.narrow(0, 0, n - 1), T.tensor([30], { dtype: 'float32' })]);
    return [outliers, g.relu(), T.rand([n]), g.pow(3)].map((v) => T.keep(histogram(v)));
  });
  const counts = T.stack(samples);
  const hists = samples.map((h) => h.toArray() as Float32Array);
  const ours = hists.map((h) => mseSearch(h, 256));
  const spans = T.tensor(ours, { dtype: 'float64' });
  const r = runTorch(`
from torch.ao.quantization import HistogramObserver
first, err = [], []
for h, (s, e) in zip(I['counts'], I['spans'].long().tolist()):
    o = HistogramObserver(bins=h.numel())
    o.histogram = h.float().clone()
    o.min_val, o.max_val = torch.tensor(0.0), torch.tensor(float(h.numel()))
    lo, hi = o._non_linear_param_search()
    first.append([float(lo), float(hi) - 1])
    err.append([o._compute_quantization_error(int(lo), int(hi) - 1), o._compute_quantization_error(0, h.numel() - 1), o._compute_quantization_error(s, e)])
O['first'] = torch.tensor(first, dtype=torch.float64)
O['err'] = torch.tensor(err, dtype=torch.float64)
`, { counts, spans });
  const first = Array.from(r.first.toArray() as Float64Array);
  const err = Array.from(r.err.toArray() as Float64Array);
  // PyTorch's search, which stops at its first minimum: the same bins.
  assert.deepEqual(hists.flatMap((h) => mseSearch(h, 256, { firstMinimum: true })), first);
  // The rounding error of a span, as PyTorch computes it (in float32): its stop, the full span, our choice.
  hists.forEach((h, k) => {
    const spansOf: [number, number][] = [[first[2 * k], first[2 * k + 1]], [0, HISTOGRAM_BINS - 1], ours[k]];
    spansOf.forEach(([a, b], m) => {
      const [mine, theirs] = [roundingError(h, a, b, 256), err[3 * k + m]];
      assert.ok(Math.abs(mine - theirs) <= 1e-4 * theirs, JSON.stringify({ k, a, b, mine, theirs }));
    });
    // The whole path's least error is at most the first minimum's and the full span's.
    assert.ok(err[3 * k + 2] <= Math.min(err[3 * k], err[3 * k + 1]) * (1 + 1e-5), JSON.stringify({ k, err: err.slice(3 * k, 3 * k + 3) }));
  });
  // One outlier at 30: PyTorch's first move, always taken, clips it to the bulk's end, and the next one costs
  // more, so it stops at a span worse than min/max; the whole path keeps min/max. On the cube of normals the
  // path goes on past PyTorch's stop to a clearly smaller error.
  assert.ok(err[0] > 2 * err[1] && err[2] === err[1] && ours[0][1] === HISTOGRAM_BINS - 1, JSON.stringify({ err, ours }));
  assert.ok(err[11] < 0.9 * err[9], JSON.stringify({ err, ours }));
  // The uniform histogram keeps (nearly) all of its span.
  assert.ok(ours[2][1] - ours[2][0] > 0.98 * HISTOGRAM_BINS, JSON.stringify(ours));
  // Through the observer: the cube again, as values, a range inside the values' span.
  const o = new HistogramObserver();
  const cube = T.tidy(() => T.randn([n]).pow(3).toArray() as Float32Array);
  o.observe('t', cube);
  const mse = o.mseRanges().get('t')!;
  const [lo, hi] = [cube.reduce((a, v) => Math.min(a, v)), cube.reduce((a, v) => Math.max(a, v))];
  assert.ok(mse.min >= lo - 1e-6 && mse.max <= hi + 1e-6 && mse.max - mse.min < 0.9 * (hi - lo) && mse.min < -5 && mse.max > 5, JSON.stringify({ mse, lo, hi }));
  samples.forEach((h) => h.dispose());
  counts.dispose();
  spans.dispose();
});

// An ONNX interpreter in PyTorch for the operators these graphs use, written from the operator specs.
test('percentile calibration, by hand: a histogram that widens as batches arrive, ranges without the tails', () => {
  // 0 … 9999 in two batches; the second widens the span. 99%: 50 values cut at each end.
  const h = new HistogramObserver();
  h.observe('t', Float32Array.from({ length: 5000 }, (_, i) => i));
  h.observe('t', Float32Array.from({ length: 5000 }, (_, i) => 5000 + i));
  const width = 9999 / HISTOGRAM_BINS;
  const r = h.ranges(99).get('t')!;
  assert.ok(Math.abs(r.min - 50) <= 2 * width && Math.abs(r.max - 9950) <= 2 * width, JSON.stringify(r));
  const all = h.ranges(100).get('t')!;
  assert.ok(Math.abs(all.min) <= width && Math.abs(all.max - 9999) <= width, JSON.stringify(all));
  // One outlier among 100,000 values in [0, 1) stretches min/max a thousandfold; the 99.99th percentile does not.
  const o = new HistogramObserver();
  o.observe('t', Float32Array.from({ length: 100000 }, (_, i) => (i === 500 ? 1000 : (i % 1000) / 1000)));
  const p = o.ranges(99.99).get('t')!;
  assert.ok(p.max < 2 && p.min >= 0, JSON.stringify(p));
  // NaN stays visible, so that the quantizer refuses the range.
  const n = new HistogramObserver();
  n.observe('t', Float32Array.of(1, NaN));
  assert.throws(() => activationParams(n.ranges(99.99).get('t')!), /not finite/);
});

const INTERPRETER = String.raw`
import onnx, numpy as np
from onnx import numpy_helper, helper
def attrs(n): return {a.name: helper.get_attribute_value(a) for a in n.attribute}
def per_axis(t, ref, axis):
    if t.ndim == 0: return t
    shape = [1] * ref.ndim; shape[axis] = -1
    return t.reshape(shape)
def spatial(x, pads, value=0.0):
    return F.pad(x, [pads[1], pads[3], pads[0], pads[2]], value=value) if any(pads) else x
def run(path, x, keep=()):
    g = onnx.load(path).graph
    env = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in g.initializer}
    env[g.input[0].name] = x
    seen = {}
    for n in g.node:
        a, i, op = attrs(n), [env[k] if k else None for k in n.input], n.op_type
        if op == 'QuantizeLinear':
            s, z = per_axis(i[1], i[0], a.get('axis', 1)), per_axis(i[2], i[0], a.get('axis', 1))
            lo, hi = (0, 255) if z.dtype == torch.uint8 else (-128, 127)
            y = torch.clamp(torch.round(i[0] / s) + z.to(torch.float32), lo, hi).to(z.dtype)
        elif op == 'DequantizeLinear':
            s, z = per_axis(i[1], i[0], a.get('axis', 1)), per_axis(i[2], i[0], a.get('axis', 1))
            y = ((i[0].to(torch.float64) - z.to(torch.float64)) * s.to(torch.float64)).to(torch.float32)
        elif op == 'Conv':
            pads = a.get('pads', [0, 0, 0, 0])
            y = F.conv2d(spatial(i[0], pads), i[1], i[2] if len(i) > 2 else None, a.get('strides', [1, 1]), 0, a.get('dilations', [1, 1]), a.get('group', 1))
        elif op == 'Relu': y = F.relu(i[0])
        elif op == 'Clip': y = torch.clamp(i[0], float(i[1]), float(i[2]))
        elif op == 'MaxPool':
            y = F.max_pool2d(spatial(i[0], a.get('pads', [0, 0, 0, 0]), float('-inf')), a['kernel_shape'], a.get('strides', [1, 1]), 0, a.get('dilations', [1, 1]), bool(a.get('ceil_mode', 0)))
        elif op == 'AveragePool':
            pads = a.get('pads', [0, 0, 0, 0])
            y = F.avg_pool2d(i[0], a['kernel_shape'], a.get('strides', [1, 1]), [pads[0], pads[1]], bool(a.get('ceil_mode', 0)), bool(a.get('count_include_pad', 0)))
        elif op == 'GlobalAveragePool': y = i[0].mean((2, 3), keepdim=True)
        elif op == 'Reshape':
            shape = [int(d) if int(d) != 0 else i[0].shape[k] for k, d in enumerate(i[1].tolist())]
            y = i[0].reshape(shape)
        elif op == 'Flatten': y = i[0].flatten(a.get('axis', 1))
        elif op == 'Gemm':
            y = i[0] @ (i[1].T if a.get('transB', 0) else i[1])
            if len(i) > 2: y = y + i[2]
        elif op == 'Add': y = i[0] + i[1]
        else: raise RuntimeError('interpreter: no ' + op)
        env[n.output[0]] = y
        if n.output[0] in keep: seen[n.output[0]] = y
    return env[g.output[0].name], seen
`;

const PY_CHECKS = String.raw`
fg = onnx.load(FLOAT).graph
qg = onnx.load(INT8).graph
qinit = {t.name: numpy_helper.to_array(t) for t in qg.initializer}
# 1. Weights and biases, from the float file's: per channel (Conv) or per tensor (Gemm), symmetric, half-even.
w_bad = b_bad = layers = 0
scale_err = 0.0
for n in fg.node:
    if n.op_type not in ('Conv', 'Gemm') or (n.name + '_weight_quantized') not in qinit: continue
    layers += 1
    w = {t.name: numpy_helper.to_array(t) for t in fg.initializer}[n.input[1]].astype(np.float64)
    flat = w.reshape(w.shape[0], -1) if n.op_type == 'Conv' else w.reshape(1, -1)
    s = (np.abs(flat).max(1) / QMAX).astype(np.float32)
    s[s == 0] = 1
    scale_err = max(scale_err, float(np.abs(qinit[n.name + '_weight_scale'].reshape(-1) - s).max() / s.max()))
    q = np.clip(np.rint(flat / s.astype(np.float64)[:, None]), -QMAX, QMAX).astype(np.int8).reshape(w.shape)
    w_bad += int((q != qinit[n.name + '_weight_quantized']).sum())
    if len(n.input) > 2 and (n.name + '_bias_quantized') in qinit:
        sx = qinit[n.input[0] + '_scale'].astype(np.float64)
        bs = (sx * s.astype(np.float64)).astype(np.float32)
        b = {t.name: numpy_helper.to_array(t) for t in fg.initializer}[n.input[2]].astype(np.float64)
        qb = np.rint(b / bs.astype(np.float64)).astype(np.int32)
        b_bad += int((qb != qinit[n.name + '_bias_quantized']).sum()) + int((qinit[n.name + '_bias_scale'] != np.broadcast_to(bs, b.shape)).sum())
# 2. Calibration: min/max of each quantized tensor over the same batches, through the float graph.
names = [n.input[0] for n in qg.node if n.op_type == 'QuantizeLinear']
lo = {k: float('inf') for k in names}; hi = {k: float('-inf') for k in names}
for b in I['calibration']:
    _, seen = run(FLOAT, b, names)
    seen[fg.input[0].name] = b
    for k in names:
        lo[k] = min(lo[k], float(seen[k].min())); hi[k] = max(hi[k], float(seen[k].max()))
act_err = 0.0; zp_off = 0
for k in names:
    l, h = min(0.0, lo[k]), max(0.0, hi[k])
    s = np.float32((h - l) / 255) or np.float32(1)
    z = int(np.clip(np.rint(-l / float(s)), 0, 255))
    act_err = max(act_err, abs(float(qinit[k + '_scale']) - float(s)) / float(s))
    zp_off = max(zp_off, abs(int(qinit[k + '_zero_point']) - z))
# 3. The QDQ graph, simulated, against onnxruntime's integer kernels; and the float graph against onnxruntime's.
sim, _ = run(INT8, I['x'])
ref, _ = run(FLOAT, I['x'])
scale = float(ref.abs().max())
O['stats'] = torch.tensor([layers, w_bad, b_bad, scale_err, len(names), act_err, zp_off,
    float((sim - I['ort_int8']).abs().max()) / scale, float((ref - I['ort_float']).abs().max()) / scale,
    float((sim - ref).abs().max()) / scale, float((sim - I['ort_int8']).abs().mean()) / scale], dtype=torch.float64)
`;

/** The model with random BatchNorm statistics, folded, exported in float and quantized on `calibration` ([batches, N, C, H, W]). */
async function quantizeNet(name: string, model: ReturnType<typeof createModel>, shape: number[], calibration: T.Tensor, o: { weightsOnly?: boolean; reduceRange?: boolean; method?: CalibrationMethod } = {}): Promise<{ floatFile: string; int8File: string }> {
  randomizeBatchNorm(model);
  T.tidy(() => foldBatchNorm(model, T.zeros(shape)));
  const float = toOnnx(model, { inputShape: shape }).model;
  const feeds = Array.from({ length: calibration.size(0) }, (_, k) => {
    const b = T.tidy(() => calibration.select(0, k).contiguous().toArray() as Float32Array);
    return { input: new ort.Tensor('float32', b, calibration.shape.slice(1)) };
  });
  const { model: q } = quantizeModel(float, o.weightsOnly ? null : await calibrate(ort, float, feeds, { method: o.method }), { reduceRange: o.reduceRange });
  const [floatFile, int8File] = [path.join(dir, `${name}.onnx`), path.join(dir, `${name}.int8.onnx`)];
  fs.writeFileSync(floatFile, concatChunks(encodeModel(float)));
  fs.writeFileSync(int8File, concatChunks(encodeModel(q)));
  return { floatFile, int8File };
}

const outputs = async (file: string, x: T.Tensor): Promise<T.Tensor> => {
  const s = await ort.InferenceSession.create(file);
  const out = (await s.run({ input: new ort.Tensor('float32', x.toArray() as Float32Array, x.shape) })).output;
  await s.release();
  return T.fromArray(out.data as Float32Array, [...out.dims]);
};

const NETS = [
  ['cnn', () => createModel('cnn', { numClasses: 10, inChannels: 1, smallInput: true }), [1, 1, 28, 28]],
  ['mobilenet_v1', () => createModel('mobilenet_v1', { alpha: 0.5, numClasses: 7, inChannels: 3, smallInput: true }), [1, 3, 32, 32]],
] as const;

// x86 CPUs without VNNI sum uint8 × int8 products in 16-bit pairs (VPMADDUBSW), which saturate with 8-bit
// weights: there onnxruntime's kernels depart from the operator spec, and only 7-bit weights are exact.
const exactKernels = T.engineInfo().int8 === 'vnni';

for (const [name, build, shape] of NETS) {
  for (const reduceRange of [false, true]) {
    const variant = reduceRange ? `${name}, 7-bit weights (--reduce-range)` : name;
    test(`${variant}: PyTorch recomputes the int8 weights, biases and calibration ranges, and the QDQ graph's output matches onnxruntime's integer kernels${reduceRange ? ' on any x86 CPU' : ' (where the CPU has VNNI)'}`, async () => {
      T.manualSeed(11);
      const calibration = T.randn([4, 8, ...shape.slice(1)]);
      const x = T.randn([6, ...shape.slice(1)]);
      const { floatFile, int8File } = await quantizeNet(`${name}${reduceRange ? '-7bit' : ''}`, build(), [...shape], calibration, { reduceRange });
      const r = runTorch(`${INTERPRETER}\nFLOAT, INT8, QMAX = ${JSON.stringify(floatFile)}, ${JSON.stringify(int8File)}, ${reduceRange ? 64 : 127}\n${PY_CHECKS}`, { x, calibration, ort_int8: await outputs(int8File, x), ort_float: await outputs(floatFile, x) });
      const [layers, wBad, bBad, scaleErr, activations, actErr, zpOff, simVsOrt, floatVsOrt, int8VsFloat, meanSimVsOrt] = Array.from(r.stats.toArray() as Float64Array);
      const detail = JSON.stringify({ layers, wBad, bBad, scaleErr, activations, actErr, zpOff, simVsOrt, floatVsOrt, int8VsFloat, meanSimVsOrt });
      console.log(`# ${variant}: ${detail}`);
      assert.ok(layers >= (name === 'cnn' ? 6 : 14), detail);
      assert.equal(wBad, 0, detail);
      assert.equal(bBad, 0, detail);
      assert.ok(scaleErr < 1e-6, detail);
      assert.ok(activations >= layers, detail);
      assert.ok(actErr < 1e-4 && zpOff <= 1, detail);
      assert.ok(floatVsOrt < 1e-4, detail);
      assert.ok(int8VsFloat < 0.1, detail);
      if (!reduceRange && !exactKernels) {
        console.log(`# ${variant}: onnxruntime's kernels on this CPU (no VNNI) may saturate: the spec check needs --reduce-range here`);
        return;
      }
      // onnxruntime requantizes in integers; a value on a rounding boundary may land one step away, so the
      // two int8 results agree to a fraction of the quantization error itself.
      assert.ok(simVsOrt < 0.25 * int8VsFloat + 1e-3 && meanSimVsOrt < 2e-3, detail);
    });
  }

  test(`${name}, weights only: the same int8 weights, float biases and activations; onnxruntime computes the dequantized network in float`, async () => {
    T.manualSeed(11);
    const calibration = T.randn([1, 2, ...shape.slice(1)]);
    const x = T.randn([6, ...shape.slice(1)]);
    const { floatFile, int8File } = await quantizeNet(`${name}-weights`, build(), [...shape], calibration, { weightsOnly: true });
    const r = runTorch(`${INTERPRETER}\nFLOAT, INT8, QMAX = ${JSON.stringify(floatFile)}, ${JSON.stringify(int8File)}, 127\n${PY_CHECKS}`, { x, calibration, ort_int8: await outputs(int8File, x), ort_float: await outputs(floatFile, x) });
    const [layers, wBad, , scaleErr, activations, , , simVsOrt, floatVsOrt, int8VsFloat] = Array.from(r.stats.toArray() as Float64Array);
    const detail = JSON.stringify({ layers, wBad, scaleErr, activations, simVsOrt, floatVsOrt, int8VsFloat });
    assert.ok(layers >= (name === 'cnn' ? 6 : 14), detail);
    assert.equal(wBad, 0, detail);
    assert.ok(scaleErr < 1e-6, detail);
    assert.equal(activations, 0, detail);
    assert.ok(simVsOrt < 1e-4 && floatVsOrt < 1e-4, detail);
    assert.ok(int8VsFloat > 1e-4 && int8VsFloat < 0.05, detail);
  });
}

test('percentile calibration (99.9) against PyTorch: each range within a few histogram bins of the exact quantiles of the same batches, and an outlier no longer sets it', async () => {
  T.manualSeed(12);
  const [name, build, shape] = NETS[0];
  const calibration = T.randn([4, 8, ...shape.slice(1)]);
  // A few bright pixels: min/max calibration would stretch the input's 256 steps to reach them.
  T.noGrad(() => calibration.view(-1).narrow(0, 0, 3).fill_(40));
  const { floatFile, int8File } = await quantizeNet(`${name}-percentile`, build(), [...shape], calibration, { method: { method: 'percentile', percentile: 99.9 } });
  const r = runTorch(`${INTERPRETER}
fg = onnx.load(${JSON.stringify(floatFile)}).graph
qg = onnx.load(${JSON.stringify(int8File)}).graph
qinit = {t.name: numpy_helper.to_array(t) for t in qg.initializer}
names = [n.input[0] for n in qg.node if n.op_type == 'QuantizeLinear']
vals = {k: [] for k in names}
for b in I['calibration']:
    _, seen = run(${JSON.stringify(floatFile)}, b, names)
    seen[fg.input[0].name] = b
    for k in names: vals[k].append(seen[k].flatten().double())
worst = 0.0
for k in names:
    v = torch.cat(vals[k])
    q = (100 - 99.9) / 200
    lo, hi = (float(t) for t in torch.quantile(v, torch.tensor([q, 1 - q], dtype=torch.float64)))
    l, h = min(0.0, lo), max(0.0, hi)
    s, z = float(qinit[k + '_scale']), int(qinit[k + '_zero_point'])
    fl, fh = -z * s, (255 - z) * s                      # the file's range, to within s / 2 (the zero point's rounding)
    width = float(v.max() - v.min()) / ${HISTOGRAM_BINS}
    worst = max(worst, max(abs(fl - l), abs(fh - h)) / (2 * width + s))
x = fg.input[0].name
O['stats'] = torch.tensor([len(names), worst, float((255 - int(qinit[x + '_zero_point'])) * float(qinit[x + '_scale'])), float(torch.cat(vals[x]).max())], dtype=torch.float64)
`, { calibration });
  const [count, worst, inputHigh, inputMax] = Array.from(r.stats.toArray() as Float64Array);
  const detail = JSON.stringify({ count, worst, inputHigh, inputMax });
  assert.ok(count >= 6, detail);
  assert.ok(worst <= 1, detail);
  assert.ok(inputMax === 40 && inputHigh < 5, detail);
});

test('onnxruntime runs the quantized layers on integer kernels: QLinearConv and QGemm in its optimized graph, no float Conv or Gemm left', async () => {
  for (const [name, build, shape] of NETS) {
    T.manualSeed(13);
    const { int8File } = await quantizeNet(`${name}-kernels`, build(), [...shape], T.randn([1, 4, ...shape.slice(1)]));
    const optimized = path.join(dir, `${name}.optimized.onnx`);
    await (await ort.InferenceSession.create(int8File, { optimizedModelFilePath: optimized, graphOptimizationLevel: 'all', logSeverityLevel: 3 })).release();
    const r = spawnSync(PYTHON, ['-c', 'import onnx, sys, collections, json; print(json.dumps(collections.Counter(n.op_type for n in onnx.load(sys.argv[1]).graph.node)))', optimized], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const ops = JSON.parse(r.stdout) as Record<string, number>;
    const convs = name === 'cnn' ? 4 : 27;
    assert.equal(ops.QLinearConv, convs, `${name}: ${r.stdout}`);
    assert.equal(ops.QGemm, name === 'cnn' ? 2 : 1, `${name}: ${r.stdout}`);
    for (const float of ['Conv', 'Gemm', 'FusedConv', 'FusedGemm', 'DequantizeLinear']) assert.equal(ops[float] ?? 0, 0, `${name}: ${float} left: ${r.stdout}`);
  }
});

test('export --int8 on a briefly trained Fashion-MNIST CNN: a 4× smaller file that scores as the float network on the test images', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  // 120 batches: after 40 (75% top-1) so many test images sat near a tie between two classes that on an
  // AVX-512 VNNI host the 7-bit weights of --reduce-range changed the class of 4.3% of them (the same run gave
  // 99.3% agreement on all three variants after 120, 78% top-1).
  const t = run('train', '--epochs', '1', '--limit-batches', '120', '--batch-size', '64', '--threads', '1', '-o', path.join(dir, 'run'));
  assert.equal(t.status, 0, t.stderr);
  const ckpt = path.join(dir, 'run', 'checkpoint.safetensors');
  const float = run('export', ckpt, '-o', path.join(dir, 'cnn.onnx'));
  assert.equal(float.status, 0, float.stderr);
  for (const extra of [[], ['--with-preprocessing', '--calibration', 'percentile', '--percentile', '99.99'], ['--fixed-batch', '--reduce-range', '--calibration', 'mse']]) {
    const reduceRange = extra.includes('--reduce-range');
    const calibration = extra.includes('percentile') ? { method: 'percentile', percentile: 99.99 } : { method: extra.includes('mse') ? 'mse' : 'minmax' };
    const out = path.join(dir, `cnn${extra.join('')}.int8.onnx`);
    const r = run('export', ckpt, '-o', out, '--int8', '--calibration-images', '256', '--eval-images', '1000', ...extra);
    assert.equal(r.status, 0, r.stderr);
    // The float graph is checked as plain exports are, before it is quantized.
    assert.match(r.stdout, /float graph \(before int8\): onnxruntime-node vs tsvision on (a random input|random pixels) [\d×]+ \(seed 0\): .*max \|difference\|/);
    const m = /int8: (\d+) layers with int8 weights( in ±64 \(--reduce-range\))? \(([\d.]+) MB of float32 → ([\d.]+) MB\), (\d+) activations quantized to uint8, calibrated on (\d+) training images \((min\/max|99\.99 percentile|least squared error)\)/.exec(r.stdout);
    assert.ok(m && !!m[2] === reduceRange && m[7] === { minmax: 'min/max', percentile: '99.99 percentile', mse: 'least squared error' }[calibration.method], r.stdout);
    assert.deepEqual([Number(m[1]), Number(m[6])], [6, 256]);
    assert.ok(Number(m[4]) < 0.27 * Number(m[3]), r.stdout);
    const s = /on 1000 test images: top-1 ([\d.]+)% vs ([\d.]+)%, the same class on ([\d.]+)% of images/.exec(r.stdout);
    assert.ok(s, r.stdout);
    const [int8, fl, same] = s.slice(1).map(Number);
    assert.ok(fl > 60 && Math.abs(int8 - fl) <= 1.5 && same >= 97, r.stdout);
    // On a CPU without VNNI the score comes with a note on the clipping there, unless --reduce-range avoided it.
    assert.equal(/this CPU has no VNNI/.test(r.stdout), !reduceRange && T.engineInfo().int8 === 'saturating', r.stdout);
    assert.ok(fs.statSync(out).size < 0.3 * fs.statSync(path.join(dir, 'cnn.onnx')).size);
    // The card, beside the file and inside it, says how the layers compute.
    const card = JSON.parse(fs.readFileSync(out.replace(/\.onnx$/, '.json'), 'utf8')) as { quantization?: unknown };
    assert.deepEqual(card.quantization, { scheme: 'int8-qdq', calibrationImages: 256, calibration, reduceRange });
    const py = spawnSync(PYTHON, ['-c', 'import onnx, sys; m = onnx.load(sys.argv[1]); print(dict((p.key, p.value) for p in m.metadata_props)["tsvision.card"])', out], { encoding: 'utf8' });
    assert.equal(py.status, 0, py.stderr);
    assert.deepEqual(JSON.parse(py.stdout), card);
  }
  // Calibration needs the training images a checkpoint names.
  const weights = path.join(dir, 'plain.safetensors');
  T.saveSafetensors(weights, createModel('cnn', { numClasses: 10, inChannels: 1, smallInput: true }).stateDict());
  const plain = run('export', weights, '-o', path.join(dir, 'plain.onnx'), '--model', 'cnn', '--input', '1x1x28x28', '--int8');
  assert.equal(plain.status, 1);
  assert.match(plain.stderr, /--int8 calibrates on the training images a checkpoint names; .* holds plain weights/);
  assert.ok(!fs.existsSync(path.join(dir, 'plain.onnx')));
  // Weights only needs no images: plain weights export, unscored, with the card saying so.
  const w = run('export', weights, '-o', path.join(dir, 'plain.onnx'), '--model', 'cnn', '--input', '1x1x28x28', '--int8', '--weights-only');
  assert.equal(w.status, 0, w.stderr);
  assert.match(w.stdout, /int8: 6 layers with int8 weights .*float32 arithmetic \(weights only\)/);
  assert.match(w.stdout, /not scored: plain weights name no test images/);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'plain.json'), 'utf8')).quantization, { scheme: 'int8-weights' });
  const stray = run('export', weights, '-o', path.join(dir, 'stray.onnx'), '--model', 'cnn', '--input', '1x1x28x28', '--weights-only');
  assert.equal(stray.status, 1);
  assert.match(stray.stderr, /--weights-only goes with --int8/);
  const pointless = run('export', weights, '-o', path.join(dir, 'stray.onnx'), '--model', 'cnn', '--input', '1x1x28x28', '--int8', '--weights-only', '--reduce-range');
  assert.equal(pointless.status, 1);
  assert.match(pointless.stderr, /--reduce-range goes with --int8 \(integer kernels\); --weights-only computes in float32/);
  for (const [args, message] of [
    [['--int8', '--calibration', 'entropy'], /--calibration: 'minmax', 'percentile' or 'mse', got 'entropy'/],
    [['--int8', '--percentile', '99.9'], /--percentile goes with --calibration percentile/],
    [['--int8', '--weights-only', '--calibration', 'percentile'], /--calibration and --percentile go with --int8 \(not --weights-only/],
    [['--int8', '--calibration', 'percentile', '--percentile', '101'], /--percentile must be a number >= 50 and <= 100, got '101'/],
  ] as const) {
    const bad = run('export', weights, '-o', path.join(dir, 'stray.onnx'), '--model', 'cnn', '--input', '1x1x28x28', ...args);
    assert.equal(bad.status, 1, args.join(' '));
    assert.match(bad.stderr, message);
  }
});

test('export --int8 of a segmentation checkpoint (ENet on scenes): calibrated on training scenes, scored by mIoU and pixel agreement, plain and with the class map in the graph', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  // Briefly trained (random weights tie everywhere: 92% of pixels agreed on one, against 99.5% after 2 epochs).
  const t = run('segment', '--epochs', '2', '--train-scenes', '256', '--test-scenes', '24', '--size', '48', '--threads', '1', '-o', path.join(dir, 'enet-run'));
  assert.equal(t.status, 0, t.stderr);
  const ckpt = path.join(dir, 'enet-run', 'checkpoint.safetensors');
  for (const extra of [[], ['--with-preprocessing']]) {
    const r = run('export', ckpt, '-o', path.join(dir, `enet${extra.length ? '-pixels' : ''}.int8.onnx`), '--int8', '--calibration-images', '32', '--eval-images', '24', ...extra);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /int8: \d+ layers with int8 weights .* calibrated on 32 training images/);
    const s = /on 24 test images: mIoU ([\d.]+)% vs ([\d.]+)%, the same class on ([\d.]+)% of pixels/.exec(r.stdout);
    assert.ok(s, r.stdout);
    assert.ok(Math.abs(Number(s[1]) - Number(s[2])) <= 1 && Number(s[3]) >= 97, r.stdout);
  }
});

test('ENet, weights only: its transposed convolutions\' weights become int8 too, each weight within half a step of the float one, and onnxruntime\'s output stays within the quantization error', async () => {
  T.manualSeed(15);
  const model = new ENet({ numClasses: 5, inChannels: 3 });
  randomizeBatchNorm(model);
  const shape = [1, 3, 32, 32];
  T.tidy(() => foldBatchNorm(model, T.zeros(shape)));
  const float = toOnnx(model, { inputShape: shape }).model;
  const { model: q, report } = quantizeModel(float, null);
  const floatInit = new Map(float.graph.initializers.map((t) => [t.name, t]));
  const qInit = new Map(q.graph.initializers.map((t) => [t.name, t]));
  const values = (name: string, init: Map<string, TensorProto>): Float32Array | Int8Array => {
    const t = init.get(name)!;
    const b = t.raw.buffer.slice(t.raw.byteOffset, t.raw.byteOffset + t.raw.byteLength);
    return t.dataType === 'int8' ? new Int8Array(b) : new Float32Array(b);
  };
  let [transposed, checked] = [0, 0];
  for (const n of float.graph.nodes) {
    if (!['Conv', 'ConvTranspose', 'Gemm'].includes(n.opType) || !qInit.has(`${n.name}_weight_quantized`)) continue;
    if (n.opType === 'ConvTranspose') transposed++;
    const w = values(n.inputs[1], floatInit);
    const iq = values(`${n.name}_weight_quantized`, qInit);
    const scales = values(`${n.name}_weight_scale`, qInit);
    const dims = floatInit.get(n.inputs[1])!.dims;
    // The channel of element i along the layer's output axis (0 for Conv, 1 for ConvTranspose).
    const axis = n.opType === 'ConvTranspose' ? 1 : 0;
    const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
    const maxAbs = new Float64Array(scales.length);
    w.forEach((v, i) => (maxAbs[Math.floor(i / inner) % dims[axis]] = Math.max(maxAbs[Math.floor(i / inner) % dims[axis]], Math.abs(v))));
    w.forEach((v, i) => {
      const c = Math.floor(i / inner) % dims[axis];
      assert.ok(Math.abs(scales[c] - maxAbs[c] / 127) <= 1e-6 * maxAbs[c] + 1e-12, `${n.name}: scale of channel ${c}`);
      assert.ok(Math.abs(iq[i] * scales[c] - v) <= scales[c] / 2 + 1e-7, `${n.name}[${i}]: ${iq[i]} × ${scales[c]} against ${v}`);
    });
    checked++;
  }
  assert.ok(transposed >= 3 && checked === report.layers, `${transposed} transposed of ${checked} checked, ${report.layers} quantized`);
  const [floatFile, weightsFile] = [path.join(dir, 'enet-w.onnx'), path.join(dir, 'enet-w.int8.onnx')];
  fs.writeFileSync(floatFile, concatChunks(encodeModel(float)));
  fs.writeFileSync(weightsFile, concatChunks(encodeModel(q)));
  const x = T.randn([2, ...shape.slice(1)]);
  const [a, b] = [await outputs(floatFile, x), await outputs(weightsFile, x)];
  const rel = T.tidy(() => a.sub(b).abs().max().item() / a.abs().max().item());
  assert.ok(rel > 0 && rel < 0.1, `weights-only ENet against float: ${rel}`);
  assert.ok(fs.statSync(weightsFile).size < 0.4 * fs.statSync(floatFile).size);
});
