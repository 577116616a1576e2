// Filter pruning by L1 norm (ICNet §5): the filters removed are the weakest by L1 norm (ranked by PyTorch),
// the narrowed network — classifier or segmentation network — computes exactly what the original computes
// with those channels silenced and rebuilds from its options, and the end-to-end command prunes, fine-tunes
// and measures (top-1 for a classifier, mIoU for ICNet).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as T from '../../src/torch';
import { BatchNorm2d, Conv2d, Linear } from '../../src/nn';
import { createModel, createSegmentationModel } from '../../src/models/registry';
import { FilterPrunable, isFilterPrunable, pruneFilters } from '../../src/methods/prune';
import { runFilterPrune } from '../../src/methods/prune-run';
import { summary } from '../../src/metrics/summary';
import { train } from '../../src/train/trainer';
import { trainSegmentation } from '../../src/train/segment';
import { assertClose, runTorch } from '../helpers/pytorch';

type Net = FilterPrunable & { forward(x: T.Tensor): T.Tensor };
// Small networks of each prunable kind: classifiers and segmentation networks (ICNet on a ResNet-18
// backbone, PSPNet on bottlenecks), each with the input it takes.
const NETS = {
  cnn: { make: (o: Record<string, unknown> = {}) => createModel('cnn', { numClasses: 10, inChannels: 1, smallInput: true, ...o }), input: [2, 1, 28, 28] },
  mobilenet_v1: { make: (o: Record<string, unknown> = {}) => createModel('mobilenet_v1', { numClasses: 10, inChannels: 1, smallInput: true, alpha: 0.25, ...o }), input: [2, 1, 28, 28] },
  icnet: { make: (o: Record<string, unknown> = {}) => createSegmentationModel('icnet', { numClasses: 5, inChannels: 1, backbone: 'resnet18', width: 8, pspChannels: 16, cffChannels: 8, ...o }), input: [2, 1, 64, 64] },
  pspnet: { make: (o: Record<string, unknown> = {}) => createSegmentationModel('pspnet', { numClasses: 5, inChannels: 1, backbone: 'resnet50', width: 4, headChannels: 16, auxChannels: 8, ...o }), input: [2, 1, 32, 32] },
};
type NetName = keyof typeof NETS;

function build(name: NetName, seed: number, o: Record<string, unknown> = {}): Net {
  T.manualSeed(seed);
  const m = NETS[name].make(o);
  assert.ok(isFilterPrunable(m));
  // Random BN statistics and affine parameters, so that a silenced or misplaced channel shows in the output.
  T.noGrad(() => {
    for (const mod of m.modules()) {
      if (mod instanceof BatchNorm2d) {
        mod.weight!.copy_(T.rand([mod.numFeatures]).add(0.5));
        mod.bias!.copy_(T.randn([mod.numFeatures]).mul(0.2));
        mod.running_mean!.copy_(T.randn([mod.numFeatures]).mul(0.1));
        mod.running_var!.copy_(T.rand([mod.numFeatures]).add(0.5));
      }
    }
  });
  return m.eval() as Net;
}

for (const name of Object.keys(NETS) as NetName[]) {
  test(`${name}: pruning removes the lowest-L1 filters and equals the original with those channels silenced`, () => {
    const original = build(name, 3);
    const pruned = build(name, 3);
    const chains = original.filterChains();
    const inputs: Record<string, T.Tensor> = {};
    chains.forEach((c, i) => (inputs[`w${i}`] = c.conv.weight.detach()));
    // PyTorch ranks the filters: which ⌈n/2⌉ to keep, by the sum of |w| over each filter.
    const ref = runTorch(chains.map((c, i) => `w = I["w${i}"]; k = -(-w.shape[0] // 2); O["keep${i}"] = w.abs().sum((1, 2, 3)).argsort(descending=True)[:k].sort().values`).join('\n'), inputs);
    const layers = pruneFilters(pruned, 0.5);
    assert.deepEqual(layers.map((l) => l.after), chains.map((c) => Math.ceil(c.conv.outChannels / 2)));
    // Silence, in the original, every channel pruning removed: the BatchNorms that follow those channels
    // output 0, so ReLU gives 0 and nothing downstream sees them.
    T.noGrad(() => {
      chains.forEach((c, i) => {
        const keep = new Set(ref[`keep${i}`].toNumbers());
        const drop = T.tensor([...Array(c.conv.outChannels).keys()].filter((j) => !keep.has(j)), { dtype: 'int64' });
        for (const u of c.uses) if (u instanceof BatchNorm2d) for (const p of [u.weight!, u.bias!]) T.callOp('aten::index_fill_.int_Scalar', p, 0, drop, 0);
      });
    });
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

test('surgery primitives: a flattened channel keeps its columns; grouped convs refuse; bad rates are errors', () => {
  const fc = new Linear(6, 1, { bias: false });
  T.noGrad(() => fc.weight.copy_(T.arange(0, 6, 1, { dtype: 'float32' }).view(1, 6)));
  fc.keepInputs(T.tensor([1], { dtype: 'int64' }), 3);
  assert.deepEqual(fc.weight.toNumbers(), [3, 4, 5]);
  assert.equal(fc.inFeatures, 3);
  const dw = new Conv2d(8, 8, 3, { groups: 8 });
  dw.keepInputs(T.tensor([0, 5], { dtype: 'int64' }));
  assert.deepEqual([dw.inChannels, dw.outChannels, dw.groups, ...dw.weight.shape], [2, 2, 2, 2, 1, 3, 3]);
  assert.throws(() => new Conv2d(8, 8, 3, { groups: 2 }).keepOutputs(T.tensor([0], { dtype: 'int64' })), /only ungrouped or depthwise/);
  assert.throws(() => pruneFilters(build('cnn', 0), 0), /keep rate must be in \(0, 1\]/);
});

test('end to end: prune a trained cnn, fine-tune, and report size, speed and accuracy', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsv-fprune-'));
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
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsv-fprune-seg-'));
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
  assert.ok(logs.some((l) => l.startsWith('continuing the fine-tuning')), logs.join('\n'));
  assert.equal(again.finetuned.score, r.finetuned.score);
  const pruned = fs.readFileSync(path.join(dir, 'prune', 'pruned.safetensors'));
  await assert.rejects(runFilterPrune({ checkpoint: t.checkpoint, outDir: path.join(dir, 'prune'), keepRate: 0.25 }, () => {}), /holds the pruning of .* at keep rate 0.5; choose another --out/);
  assert.ok(fs.readFileSync(path.join(dir, 'prune', 'pruned.safetensors')).equals(pruned), 'pruned weights untouched');
});
