// Filter pruning by L1 norm (ICNet §5): the filters removed are the weakest by L1 norm (ranked by PyTorch),
// the narrowed network — classifier or segmentation network — computes exactly what the original computes
// with those channels silenced and rebuilds from its options, and the end-to-end command prunes, fine-tunes
// and measures (top-1 for a classifier, mIoU for ICNet and ENet). ENet adds PReLU slopes and transposed
// convs to the surgery, DeepLab-V3's ASPP a conv reading the pruned channels inside a concatenation.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as T from '../../src/torch';
import { BatchNorm2d, Conv2d, ConvTranspose2d, Linear, Module, PReLU } from '../../src/nn';
import { createClassifier, createModel, createSegmentationModel } from '../../src/models/registry';
import { makeLoaders } from '../../src/train/datasets';
import { loadWeights } from '../../src/train/checkpoint';
import { mimicLoss } from '../../src/methods/mimic';
import { ENet, ENetBottleneck, UpsamplingBottleneck } from '../../src/models/enet';
import { DeepLabV3 } from '../../src/models/deeplabv3';
import { FilterChain, FilterPrunable, isFilterPrunable, pruneFilters } from '../../src/methods/prune';
import { runFilterPrune } from '../../src/methods/prune-run';
import { summary } from '../../src/metrics/summary';
import { train } from '../../src/train/trainer';
import { trainSegmentation } from '../../src/train/segment';
import { assertClose, runTorch } from '../helpers/pytorch';
import { tmpDir } from '../helpers/tmp';

type Net = FilterPrunable & { forward(x: T.Tensor): T.Tensor };
// Small networks of each prunable kind: classifiers and segmentation networks (ICNet on a ResNet-18
// backbone, PSPNet on bottlenecks, ENet at its own widths, DeepLab-V3 with ASPP rates that reach beyond the
// centre tap of its 2×2 features), each with the input it takes.
const NETS = {
  cnn: { make: (o: Record<string, unknown> = {}) => createModel('cnn', { numClasses: 10, inChannels: 1, smallInput: true, ...o }), input: [2, 1, 28, 28] },
  mobilenet_v1: { make: (o: Record<string, unknown> = {}) => createModel('mobilenet_v1', { numClasses: 10, inChannels: 1, smallInput: true, alpha: 0.25, ...o }), input: [2, 1, 28, 28] },
  icnet: { make: (o: Record<string, unknown> = {}) => createSegmentationModel('icnet', { numClasses: 5, inChannels: 1, backbone: 'resnet18', width: 8, pspChannels: 16, cffChannels: 8, ...o }), input: [2, 1, 64, 64] },
  pspnet: { make: (o: Record<string, unknown> = {}) => createSegmentationModel('pspnet', { numClasses: 5, inChannels: 1, backbone: 'resnet50', width: 4, headChannels: 16, auxChannels: 8, ...o }), input: [2, 1, 32, 32] },
  enet: { make: (o: Record<string, unknown> = {}) => createSegmentationModel('enet', { numClasses: 5, inChannels: 1, ...o }), input: [2, 1, 32, 32] },
  deeplabv3: { make: (o: Record<string, unknown> = {}) => createSegmentationModel('deeplabv3', { numClasses: 5, inChannels: 1, backbone: 'resnet18', width: 8, channels: 16, atrousRates: [1, 2, 3], ...o }), input: [2, 1, 32, 32] },
};
type NetName = keyof typeof NETS;

function build(name: NetName, seed: number, o: Record<string, unknown> = {}): Net {
  T.manualSeed(seed);
  const m = NETS[name].make(o);
  assert.ok(isFilterPrunable(m));
  // Random BN statistics and affine parameters, and PReLU slopes, so that a silenced or misplaced channel
  // shows in the output.
  T.noGrad(() => {
    for (const mod of m.modules()) {
      if (mod instanceof BatchNorm2d) {
        mod.weight!.copy_(T.rand([mod.numFeatures]).add(0.5));
        mod.bias!.copy_(T.randn([mod.numFeatures]).mul(0.2));
        mod.running_mean!.copy_(T.randn([mod.numFeatures]).mul(0.1));
        mod.running_var!.copy_(T.rand([mod.numFeatures]).add(0.5));
      }
      if (mod instanceof PReLU) mod.weight.copy_(T.rand([mod.channels]).mul(0.4).add(0.05));
    }
  });
  return m.eval() as Net;
}

/** The dimension of a chain's weight that holds its output filters: 1 in a transposed conv's [in, out, kh, kw]. */
const filterDim = (c: FilterChain): number => (c.conv instanceof ConvTranspose2d ? 1 : 0);

/** PyTorch's ranking: for each chain, the ⌈n/2⌉ filters of largest Σ|w| (keep{i}, ascending). */
function torchKeepHalf(chains: FilterChain[]): Record<string, T.Tensor> {
  const inputs: Record<string, T.Tensor> = {};
  chains.forEach((c, i) => (inputs[`w${i}`] = c.conv.weight.detach()));
  const rank = (c: FilterChain, i: number): string => {
    const d = filterDim(c);
    const others = [0, 1, 2, 3].filter((j) => j !== d).join(', ');
    return `w = I["w${i}"]; k = -(-w.shape[${d}] // 2); O["keep${i}"] = w.abs().sum((${others})).argsort(descending=True)[:k].sort().values`;
  };
  return runTorch(chains.map(rank).join('\n'), inputs);
}

/**
 * Silences in `original` every channel of `chain` outside `keep`: the filters (and their bias) become 0 and
 * so do the affine parameters of the BatchNorms that follow, which then output 0 — as do ReLU and PReLU after
 * them — so nothing downstream sees those channels. (ENet's 5×1 half of an asymmetric conv has no BN: its
 * zero filters alone do it.)
 */
function silence(c: FilterChain, keep: Set<number>): void {
  const drop = T.tensor([...Array(c.conv.outChannels).keys()].filter((j) => !keep.has(j)), { dtype: 'int64' });
  const fill = (p: T.Tensor, dim: number): void => void T.callOp('aten::index_fill_.int_Scalar', p, dim, drop, 0);
  T.noGrad(() => {
    fill(c.conv.weight, filterDim(c));
    if (c.conv.bias) fill(c.conv.bias, 0);
    for (const u of c.uses) if (u instanceof BatchNorm2d) for (const p of [u.weight!, u.bias!]) fill(p, 0);
  });
}

const paramCount = (m: Module): number => m.parameters().reduce((a, p) => a + p.numel(), 0);

for (const name of Object.keys(NETS) as NetName[]) {
  test(`${name}: pruning removes the lowest-L1 filters and equals the original with those channels silenced`, () => {
    const original = build(name, 3);
    const pruned = build(name, 3);
    const chains = original.filterChains();
    // PyTorch ranks the filters: which ⌈n/2⌉ to keep, by the sum of |w| over each filter.
    const ref = torchKeepHalf(chains);
    const layers = pruneFilters(pruned, 0.5);
    assert.deepEqual(layers.map((l) => l.after), chains.map((c) => Math.ceil(c.conv.outChannels / 2)));
    // Silence, in the original, every channel PyTorch would remove: any other choice would change the logits.
    chains.forEach((c, i) => silence(c, new Set(ref[`keep${i}`].toNumbers())));
    const x = T.randn(NETS[name].input);
    assertClose(T.noGrad(() => pruned.forward(x)), T.noGrad(() => original.forward(x)), 1e-5, `${name}: pruned vs silenced original`);
    // The narrower model is rebuilt from its options and takes the pruned weights.
    const rebuilt = NETS[name].make(pruned.channelOptions());
    assert.deepEqual(rebuilt.loadStateDict(pruned.stateDict()), { missing: [], unexpected: [] });
    assertClose(T.noGrad(() => rebuilt.eval().forward(x)), T.noGrad(() => pruned.forward(x)), 0, 'rebuilt');
  });
}

test('cnn at keep 0.5: parameters and mult-adds by hand', () => {
  const m = build('cnn', 1);
  pruneFilters(m, 0.5);
  const s = summary(m, [1, 1, 28, 28]);
  // convs 1→16→16 (28×28), 16→32→32 (14×14), no bias; BN 2 per channel; FC 32·49 → 128 → 10.
  const convs = [1 * 16 * 9, 16 * 16 * 9, 16 * 32 * 9, 32 * 32 * 9];
  const bn = 2 * (16 + 16 + 32 + 32);
  assert.equal(s.totalParams, convs.reduce((a, b) => a + b) + bn + (32 * 49 * 128 + 128) + (128 * 10 + 10));
  assert.equal(s.totalMultAdds, (convs[0] + convs[1]) * 28 * 28 + (convs[2] + convs[3]) * 14 * 14 + 32 * 49 * 128 + 128 * 10);
});

test('ENet at keep 0.5: every bottleneck kind narrows inside, outputs stay whole; parameters by hand', () => {
  const m = build('enet', 1) as unknown as ENet;
  const names = m.filterChains().map((c) => c.name);
  // 2 inner chains per bottleneck, 3 in the asymmetric ones (5×1 → 1×5 too): 27 bottlenecks, 4 asymmetric.
  assert.equal(names.length, 2 * 27 + 4);
  for (const n of ['bottleneck1_0.project.0', 'bottleneck1_0.conv.0', 'stage2.1.conv.0', 'stage2.2.conv.0', 'stage2.2.conv.1', 'bottleneck4_0.upsample', 'stage5.0.project.0']) assert.ok(names.includes(n), n);
  const regular = m.stage1.at(0) as ENetBottleneck; // 64 channels, 16 inside
  const asymmetric = m.stage2.at(2) as ENetBottleneck; // 128 channels, 32 inside, 5×1 then 1×5
  const up = m.bottleneck5_0; // 64 → 16 channels, 16 inside, ReLU (no parameters)
  // Parameters of one bottleneck at inner width k, counted by hand (1×1 convs without bias, main convs with).
  const regularParams = (c: number, k: number): number => c * k + 2 * k + k + (k * k * 9 + k) + 2 * k + k + k * c + 2 * c + c;
  const asymmetricParams = (c: number, k: number): number => c * k + 2 * k + k + k * k * 5 + (k * k * 5 + k) + 2 * k + k + k * c + 2 * c + c;
  const upParams = (i: number, o: number, k: number): number => i * o + 2 * o + i * k + 2 * k + (k * k * 9 + k) + 2 * k + k * o + 2 * o;
  assert.deepEqual([paramCount(regular), paramCount(asymmetric), paramCount(up)], [regularParams(64, 16), asymmetricParams(128, 32), upParams(64, 16, 16)]);
  const before = paramCount(m);
  pruneFilters(m, 0.5);
  assert.deepEqual([paramCount(regular), paramCount(asymmetric), paramCount(up)], [regularParams(64, 8), asymmetricParams(128, 16), upParams(64, 16, 8)]);
  assert.deepEqual([(regular.conv.at(2) as PReLU).weight.shape, (regular.act as PReLU).weight.shape], [[8], [64]], 'inner slopes narrow, output slopes stay');
  assert.deepEqual(up.upsample.weight.shape, [8, 8, 3, 3]);
  assert.ok(paramCount(m) < 0.5 * before, `${before} → ${paramCount(m)}`);
  assert.ok(m.stage4.at(0) instanceof ENetBottleneck && up instanceof UpsamplingBottleneck);
});

test('DeepLab-V3: a pruned ASPP branch narrows the projection\'s inputs at its place in the concatenation', () => {
  const original = build('deeplabv3', 2) as unknown as DeepLabV3;
  const pruned = build('deeplabv3', 2) as unknown as DeepLabV3;
  const aspp = original.filterChains().filter((c) => c.name.startsWith('aspp.'));
  assert.deepEqual(aspp.map((c) => c.name), ['aspp.convs.0.0', 'aspp.convs.1.0', 'aspp.convs.2.0', 'aspp.convs.3.0', 'aspp.convs.4.1', 'aspp.project.0']);
  // PyTorch picks each branch's kept filters and, from them, the projection's input columns (branch i's
  // channels start at 16·i in the original concatenation); the projection's own filters are pruned too.
  const inputs: Record<string, T.Tensor> = { p: (original.aspp.project.at(0) as Conv2d).weight.detach() };
  aspp.slice(0, 5).forEach((c, i) => (inputs[`w${i}`] = c.conv.weight.detach()));
  const ref = runTorch(`
top = lambda w: w.abs().sum((1, 2, 3)).argsort(descending=True)[:8].sort().values
cols = torch.cat([top(I[f"w{i}"]) + 16 * i for i in range(5)])
O["p"] = I["p"][top(I["p"])][:, cols]`, inputs);
  pruneFilters(pruned, 0.5);
  const project = pruned.aspp.project.at(0) as Conv2d;
  assert.equal(project.inChannels, 5 * 8);
  assertClose(project.weight.detach(), ref.p, 0, 'projection columns');
});

test('surgery primitives: a flattened channel keeps its columns; transposed convs and PReLU narrow; grouped convs refuse; bad rates are errors', () => {
  const fc = new Linear(6, 1, { bias: false });
  T.noGrad(() => fc.weight.copy_(T.arange(0, 6, 1, { dtype: 'float32' }).view(1, 6)));
  fc.keepInputs(T.tensor([1], { dtype: 'int64' }), 3);
  assert.deepEqual(fc.weight.toNumbers(), [3, 4, 5]);
  assert.equal(fc.inFeatures, 3);
  const dw = new Conv2d(8, 8, 3, { groups: 8 });
  dw.keepInputs(T.tensor([0, 5], { dtype: 'int64' }));
  assert.deepEqual([dw.inChannels, dw.outChannels, dw.groups, ...dw.weight.shape], [2, 2, 2, 2, 1, 3, 3]);
  assert.throws(() => new Conv2d(8, 8, 3, { groups: 2 }).keepOutputs(T.tensor([0], { dtype: 'int64' })), /only ungrouped or depthwise/);
  // A transposed conv's weight is [in, out, kh, kw]: outputs are dim 1 (and the bias), inputs dim 0.
  const up = new ConvTranspose2d(3, 4, 1);
  T.noGrad(() => up.weight.copy_(T.arange(0, 12, 1, { dtype: 'float32' }).view(3, 4, 1, 1)));
  up.keepOutputs(T.tensor([1, 3], { dtype: 'int64' }));
  up.keepInputs(T.tensor([2], { dtype: 'int64' }));
  assert.deepEqual([up.inChannels, up.outChannels, up.bias!.shape[0], ...up.weight.toNumbers()], [1, 2, 2, 9, 11]);
  assert.throws(() => new ConvTranspose2d(4, 4, 3, { groups: 2 }).keepInputs(T.tensor([0], { dtype: 'int64' })), /only ungrouped/);
  // PReLU: per-channel slopes narrow; one shared slope serves any width.
  const prelu = new PReLU(4);
  T.noGrad(() => prelu.weight.copy_(T.tensor([0.1, 0.2, 0.3, 0.4])));
  prelu.keepChannels(T.tensor([0, 2], { dtype: 'int64' }));
  assert.deepEqual([prelu.channels, ...prelu.weight.toNumbers().map((v) => Math.round(v * 10))], [2, 1, 3]);
  const shared = new PReLU();
  shared.keepChannels(T.tensor([0, 2], { dtype: 'int64' }));
  assert.equal(shared.weight.numel(), 1);
  assert.throws(() => pruneFilters(build('cnn', 0), 0), /keep rate must be in \(0, 1\]/);
});

test('end to end: prune a trained cnn, fine-tune, and report size, speed and accuracy', async () => {
  const dir = tmpDir('tsv-fprune-');
  const t = await train({ model: 'cnn', modelOptions: { widths: [8, 16], hidden: 32 }, epochs: 1, batchSize: 64, limitBatches: 30, threads: 1, outDir: path.join(dir, 'base') }, () => {});
  const r = await runFilterPrune({ checkpoint: t.checkpoint, outDir: path.join(dir, 'prune'), keepRate: 0.5, finetuneEpochs: 1, recipe: { limitBatches: 20, threads: 1 } }, () => {});
  assert.deepEqual(r.layers.map((l) => [l.before, l.after]), [[8, 4], [8, 4], [16, 8], [16, 8]]);
  assert.ok(r.finetuned.parameters < 0.55 * r.original.parameters);
  assert.ok(r.finetuned.multAdds < 0.3 * r.original.multAdds, 'about a quarter of the conv mult-adds');
  assert.ok(r.original.ms > 0 && r.finetuned.ms > 0);
  assert.ok(r.finetuned.score > 0.5, `fine-tuned top-1 ${r.finetuned.score}`);
  assert.equal(r.original.score, t.final!.testTop1, 'the original evaluates as its run did');
  assert.equal(r.metric, 'test top-1');
  assert.match(fs.readFileSync(r.summary, 'utf8'), /\| pruned \+ fine-tuned \| /);
});

test('end to end: prune a trained ICNet, fine-tune it with its own recipe, and report size, speed and mIoU', async () => {
  const dir = tmpDir('tsv-fprune-seg-');
  const scenes = { size: 32, trainCount: 96, testCount: 32, maxItems: 2 };
  const t = await trainSegmentation({ model: 'icnet', modelOptions: { width: 8, pspChannels: 16, cffChannels: 8 }, epochs: 1, batchSize: 16, threads: 1, scenes, outDir: path.join(dir, 'base') }, () => {});
  const r = await runFilterPrune({ checkpoint: t.checkpoint, outDir: path.join(dir, 'prune'), keepRate: 0.5, finetuneEpochs: 1, recipe: { threads: 1 } }, () => {});
  assert.equal(r.metric, 'test mIoU');
  assert.equal(r.original.score, t.final!.testMIoU, 'the original evaluates as its run did');
  assert.ok(r.finetuned.parameters < r.original.parameters && r.finetuned.multAdds < 0.6 * r.original.multAdds, `${r.original.multAdds} → ${r.finetuned.multAdds}`);
  assert.ok(r.layers.length > 5 && r.layers.every((l) => l.after === Math.ceil(l.before / 2)));
  const ft = JSON.parse(fs.readFileSync(path.join(r.finetune.dir, 'report.json'), 'utf8'));
  assert.equal(ft.config.init, path.join(dir, 'prune', 'pruned.safetensors'));
  assert.equal(ft.config.lr, 0.001, 'a tenth of the run\'s learning rate');
  assert.match(fs.readFileSync(r.summary, 'utf8'), /\| model \| parameters \| mult-adds \| ms \/ batch \| images\/s \| test mIoU \|/);
  // A rerun reuses the finished fine-tuning (to re-measure latency, say); another keep rate leaves the folder alone.
  const logs: string[] = [];
  const again = await runFilterPrune({ checkpoint: t.checkpoint, outDir: path.join(dir, 'prune'), keepRate: 0.5, finetuneEpochs: 1, recipe: { threads: 1 } }, (l) => logs.push(l));
  assert.ok(logs.some((l) => l.startsWith('fine-tuning: finished earlier')), logs.join('\n'));
  assert.equal(again.finetuned.score, r.finetuned.score);
  const pruned = fs.readFileSync(path.join(dir, 'prune', 'pruned.safetensors'));
  await assert.rejects(runFilterPrune({ checkpoint: t.checkpoint, outDir: path.join(dir, 'prune'), keepRate: 0.25 }, () => {}), /holds the pruning of .* at keep rate 0.5; choose another --out/);
  assert.ok(fs.readFileSync(path.join(dir, 'prune', 'pruned.safetensors')).equals(pruned), 'pruned weights untouched');
});

test('end to end: prune a trained ENet, fine-tune it with its own recipe, and report size, speed and mIoU', async () => {
  const dir = tmpDir('tsv-fprune-enet-');
  const scenes = { size: 32, trainCount: 96, testCount: 32, maxItems: 2 };
  const t = await trainSegmentation({ model: 'enet', epochs: 1, batchSize: 16, threads: 1, scenes, outDir: path.join(dir, 'base') }, () => {});
  const r = await runFilterPrune({ checkpoint: t.checkpoint, outDir: path.join(dir, 'prune'), keepRate: 0.5, finetuneEpochs: 1, recipe: { threads: 1 } }, () => {});
  assert.equal(r.metric, 'test mIoU');
  assert.equal(r.original.score, t.final!.testMIoU, 'the original evaluates as its run did');
  assert.equal(r.layers.length, 2 * 27 + 4);
  assert.ok(r.layers.every((l) => l.after === Math.ceil(l.before / 2)));
  assert.ok(r.finetuned.parameters < 0.6 * r.original.parameters, `${r.original.parameters} → ${r.finetuned.parameters}`);
  assert.ok(r.finetuned.multAdds < r.original.multAdds && r.finetuned.ms > 0);
  assert.ok(r.finetuned.score >= 0 && r.finetuned.score <= 1);
  const ft = JSON.parse(fs.readFileSync(path.join(r.finetune.dir, 'report.json'), 'utf8'));
  assert.equal(ft.config.init, path.join(dir, 'prune', 'pruned.safetensors'));
  assert.deepEqual(ft.config.modelOptions.filterWidths, Object.fromEntries(r.layers.map((l) => [l.name, l.after])), 'the fine-tuned ENet is rebuilt at the pruned widths');
  assert.match(fs.readFileSync(r.summary, 'utf8'), /\| pruned \+ fine-tuned \| /);
});

test('--distil: the pruned network fine-tunes on the original\'s logits (classifiers by mimicry, segmentation networks at every pixel) and ends closer to them than on labels', async () => {
  const dir = tmpDir('tsv-fprune-distil-');
  try {
    const t = await train({ model: 'cnn', modelOptions: { widths: [8, 16], hidden: 32 }, epochs: 1, batchSize: 64, limitBatches: 30, threads: 1, outDir: path.join(dir, 'base') }, () => {});
    const run = (distil: boolean) => runFilterPrune({ checkpoint: t.checkpoint, outDir: path.join(dir, distil ? 'distil' : 'labels'), keepRate: 0.5, finetuneEpochs: 1, recipe: { limitBatches: 20, threads: 1 }, distil }, () => {});
    const [labels, distilled] = [await run(false), await run(true)];
    const cfg = JSON.parse(fs.readFileSync(path.join(distilled.finetune.dir, 'report.json'), 'utf8')).config;
    assert.deepEqual(cfg.method, { kind: 'mimic', teacher: t.checkpoint });
    assert.equal(distilled.finetune.distil, true);
    assert.match(fs.readFileSync(distilled.summary, 'utf8'), /on the original network's logits \(mimic learning, L2\)/);
    // Distance to the original's logits on test images: the distilled copy's below the labels-tuned one's.
    const loaders = makeLoaders({ kind: 'fashion-mnist' }, { batchSize: 500, seed: 0, augment: false });
    const load = (file: string, options: Record<string, unknown>) => {
      const m = createClassifier('cnn', { widths: [8, 16], hidden: 32, ...options }, loaders);
      loadWeights(file, m);
      m.eval();
      return m;
    };
    const original = load(t.weights, {});
    const options = JSON.parse(fs.readFileSync(labels.report, 'utf8')).modelOptions;
    const distance = async (file: string): Promise<number> => {
      const m = load(file, options);
      for await (const b of loaders.test.epoch(0)) return T.tidy(() => T.noGrad(() => mimicLoss(m.forward(b.x), original.forward(b.x)).item()));
      return NaN;
    };
    const [dl, dd] = [await distance(labels.finetune.weights), await distance(distilled.finetune.weights)];
    assert.ok(dd < dl, `L2 to the original's logits: ${dd} distilled vs ${dl} on labels`);
    // A segmentation network's fine-tuning names the checkpoint as its per-pixel teacher.
    const scenes = { size: 32, trainCount: 32, testCount: 8, maxItems: 2 };
    const s = await trainSegmentation({ model: 'enet', epochs: 1, batchSize: 16, threads: 1, limitBatches: 1, scenes, outDir: path.join(dir, 'seg') }, () => {});
    const logs: string[] = [];
    const r = await runFilterPrune({ checkpoint: s.checkpoint, outDir: path.join(dir, 'seg-distil'), keepRate: 0.5, finetuneEpochs: 1, recipe: { threads: 1, limitBatches: 1 }, distil: true }, (l) => logs.push(l));
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(r.finetune.dir, 'report.json'), 'utf8')).config.teacher, { file: s.checkpoint });
    assert.ok(logs.some((l) => l.startsWith(`mimic learning: L2 regression on the logits at every pixel of enet from ${s.checkpoint}`)), logs.join('\n'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
