// Mimic learning: the L2 loss and its gradient against PyTorch, the shallow student against an equivalent
// torch.nn model, teacher loading and its checks, and a small end-to-end run where the student learns to
// reproduce the teacher's logits.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as T from '../../src/torch';
import { distillationLoss, mimicLoss, loadTeacher } from '../../src/methods/mimic';
import { runMimic } from '../../src/methods/mimic-run';
import { ShallowNet } from '../../src/models/shallow';
import { train } from '../../src/train/trainer';
import { saveWeights } from '../../src/train/checkpoint';
import { createModel } from '../../src/models/registry';
import { makeLoaders } from '../../src/train/datasets';
import type { Batch } from '../../src/data';
import { assertClose, runTorch } from '../helpers/pytorch';
import { tmpDir } from '../helpers/tmp';

const quiet = (): void => {};
const tmp = (): string => tmpDir('tsv-mimic-');

test('mimicLoss on bfloat16 logits (--bf16) is computed in float32 on their values, as autocast runs mse_loss', () => {
  T.manualSeed(1);
  // Close logits, as a trained student's are to its teacher's: their difference is what bfloat16 loses.
  const s = T.randn([8, 10]).mul(5);
  const t = s.add(T.randn([8, 10]).mul(0.01));
  const [sb, tb] = [s.to('bfloat16'), t.to('bfloat16')];
  const loss = mimicLoss(sb, tb);
  assert.equal(loss.dtype, 'float32');
  const d = sb.to('float64').sub(tb.to('float64'));
  const byHand = d.square().sum(1).mean().item() / 2;
  assert.ok(Math.abs(loss.item() - byHand) <= 1e-6 * byHand, `${loss.item()} vs ${byHand}`);
});

test('mimicLoss is ½‖g − z‖² averaged over the batch: value and gradient equal PyTorch', () => {
  T.manualSeed(0);
  const s = T.randn([6, 10]).requiresGrad_();
  const z = T.randn([6, 10]).mul(5);
  const loss = mimicLoss(s, z);
  loss.backward();
  const r = runTorch('s = I["s"].clone().requires_grad_(); l = 0.5 * ((s - I["z"]) ** 2).sum(1).mean(); l.backward(); O["l"] = l.detach(); O["g"] = s.grad', { s: s.detach(), z });
  assertClose(loss, r.l, 1e-6, 'loss');
  assertClose(s.grad!, r.g, 1e-6, 'gradient');
  // Hand check on one row: ½((1−0)² + (2−4)²) = 2.5.
  assert.equal(mimicLoss(T.tensor([[1, 2]], { dtype: 'float32' }), T.tensor([[0, 4]], { dtype: 'float32' })).item(), 2.5);
  assert.throws(() => mimicLoss(T.randn([4, 10]), T.randn([4, 9])), /student logits \[4,10\] and teacher logits \[4,9\]/);
});

test('ShallowNet (with and without bottleneck) equals the same network in torch.nn: outputs and gradients', () => {
  for (const [label, o, py] of [
    ['conv + hidden', { conv: 6, grid: 7, hidden: 40 }, 'nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.AdaptiveMaxPool2d(7), nn.Flatten(), nn.Linear(294, 40), nn.ReLU(), nn.Linear(40, 10)'],
    ['conv + bottleneck + hidden', { conv: 6, grid: 7, bottleneck: 12, hidden: 40 }, 'nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.AdaptiveMaxPool2d(7), nn.Flatten(), nn.Linear(294, 12, bias=False), nn.Linear(12, 40), nn.ReLU(), nn.Linear(40, 10)'],
    ['MLP on pixels', { conv: 0, grid: 28, hidden: 30 }, 'nn.AdaptiveMaxPool2d(28), nn.Flatten(), nn.Linear(784, 30), nn.ReLU(), nn.Linear(30, 10)'],
  ] as const) {
    T.manualSeed(1);
    const net = new ShallowNet({ ...o, numClasses: 10, inChannels: 1 });
    const x = T.randn([3, 1, 28, 28]);
    const out = net.forward(x);
    out.square().sum().backward();
    const names = net.namedParameters().map(([n]) => n);
    const inputs: Record<string, T.Tensor> = { x };
    for (const [n, p] of net.namedParameters()) inputs[`p.${n}`] = p.detach();
    const r = runTorch(
      [
        'import torch.nn as nn',
        `m = nn.Sequential(${py})`,
        'ps = [p for p in m.parameters()]',
        `names = ${JSON.stringify(names)}`,
        'assert len(ps) == len(names), (len(ps), names)',
        'with torch.no_grad():',
        '    for p, n in zip(ps, names): p.copy_(I["p." + n])',
        'y = m(I["x"]); O["y"] = y.detach(); (y ** 2).sum().backward()',
        'for p, n in zip(ps, names): O["g." + n] = p.grad',
        `O["count"] = torch.tensor(sum(p.numel() for p in ps))`,
      ].join('\n'),
      inputs,
    );
    assertClose(out, r.y, 1e-5, `${label}: output`);
    for (const [n, p] of net.namedParameters()) assertClose(p.grad!, r[`g.${n}`], 1e-5, `${label}: grad ${n}`);
    assert.equal(net.numParameters(), r.count.item(), `${label}: parameter count`);
  }
});

test('a teacher must come with its model and must have read the same data', async () => {
  const dir = tmp();
  const t = await train({ model: 'cnn', modelOptions: { widths: [4, 8], hidden: 16 }, epochs: 1, batchSize: 50, limitBatches: 2, threads: 1, outDir: path.join(dir, 't') }, quiet);
  const ctx = { numClasses: 10, inChannels: 1, data: { kind: 'fashion-mnist' as const } };
  const teacher = loadTeacher({ file: t.checkpoint }, ctx);
  assert.equal(teacher.name, 'cnn');
  assert.equal(teacher.model.training, false, 'teacher in eval mode');
  assert.ok(teacher.model.parameters().every((p) => !p.requiresGrad), 'teacher frozen');
  // The run's plain weights carry its record (model, options, data); weights from elsewhere need the model named.
  assert.equal(loadTeacher({ file: t.weights }, ctx).name, 'cnn');
  const bare = path.join(dir, 'bare.safetensors');
  T.saveSafetensors(bare, T.loadSafetensors(t.weights).tensors, { format: "pt" });
  assert.throws(() => loadTeacher({ file: bare }, ctx), /plain weights: name its model/);
  assert.equal(loadTeacher({ file: bare, model: 'cnn', modelOptions: { widths: [4, 8], hidden: 16 } }, ctx).name, 'cnn');
  assert.throws(() => loadTeacher({ file: t.weights }, { ...ctx, data: { kind: 'image-folder', train: 'a', test: 'b', size: 28, channels: 1 } }), /its logits would answer different inputs/);
  assert.throws(() => loadTeacher({ file: t.checkpoint }, { ...ctx, data: { kind: 'image-folder', train: 'a', test: 'b', size: 28, channels: 1 } }), /was trained on .*fashion-mnist.* its logits would answer different inputs/);
  assert.throws(() => loadTeacher({ file: path.join(dir, 'nope.safetensors') }, ctx), /no such file/);
});

test('end to end: the student learns to reproduce the teacher\'s logits, and the control trains on labels', async () => {
  const dir = tmp();
  const t = await train({ model: 'cnn', modelOptions: { widths: [8, 16], hidden: 32 }, epochs: 1, batchSize: 64, limitBatches: 30, threads: 1, outDir: path.join(dir, 'teacher') }, quiet);
  const student = { conv: 8, hidden: 64 };
  const logs: string[] = [];
  const r = await runMimic({ base: { modelOptions: student, epochs: 2, batchSize: 64, limitBatches: 30, threads: 1 }, teacher: t.checkpoint, outDir: path.join(dir, 'mimic') }, (l) => logs.push(l));
  assert.ok(r.labels, 'control ran');
  assert.ok(fs.existsSync(r.summary) && fs.existsSync(r.curves) && fs.existsSync(r.report));
  // The L2 distance to the teacher's logits on held-out images: far smaller for the mimic student than for
  // an untrained one, and smaller than for the student trained on labels.
  const batches = makeLoaders({ kind: 'fashion-mnist' }, { batchSize: 500, seed: 0, augment: false }).test.epoch(0);
  const first = (await batches.next()).value as Batch;
  await batches.return(undefined);
  const imgs = first.x;
  const teacher = loadTeacher({ file: t.checkpoint }, { numClasses: 10, inChannels: 1, data: { kind: 'fashion-mnist' } });
  const z = teacher.logits(imgs);
  const distance = (weights: string | null): number =>
    T.tidy(() => {
      T.manualSeed(0);
      const m = new ShallowNet({ ...student, numClasses: 10, inChannels: 1 });
      if (weights) m.loadStateDict(T.loadSafetensors(weights).tensors);
      m.eval();
      return T.noGrad(() => mimicLoss(m.forward(imgs), z).item());
    });
  const [untrained, mimic, labels] = [distance(null), distance(r.mimic.weights), distance(r.labels!.weights)];
  assert.ok(mimic < 0.25 * untrained, `mimic student's L2 to the teacher ${mimic} vs untrained ${untrained}`);
  assert.ok(mimic < labels, `mimic student's L2 ${mimic} vs the label-trained student's ${labels}`);
  assert.ok(r.mimic.testTop1 > 0.3, `mimic student test top-1 ${r.mimic.testTop1}`);
  // A rerun reuses both finished runs.
  const again = await runMimic({ base: { modelOptions: student, epochs: 2, batchSize: 64, limitBatches: 30, threads: 1 }, teacher: t.checkpoint, outDir: path.join(dir, 'mimic') }, (l) => logs.push(l));
  assert.ok(again.mimic.reused && again.labels!.reused);
  assert.equal(again.mimic.testTop1, r.mimic.testTop1);
  // Distilled at temperature 4 beside it: its own folder, the control reused, the summary naming the targets.
  const kd = await runMimic({ base: { modelOptions: student, epochs: 2, batchSize: 64, limitBatches: 30, threads: 1 }, teacher: t.checkpoint, outDir: path.join(dir, 'mimic'), temperature: 4 }, (l) => logs.push(l));
  assert.ok(kd.mimic.dir.endsWith('distil-T4') && !kd.mimic.reused && kd.labels!.reused);
  assert.match(fs.readFileSync(kd.summary, 'utf8'), /the teacher's soft targets, T = 4/);
  assert.ok(distance(kd.mimic.weights) < distance(null), 'the distilled student moved toward the teacher');
});

test('a teacher trained with a validation split reads the same images: it loads; one trained on other folders does not', () => {
  const dir = tmp();
  const file = path.join(dir, 'teacher.safetensors');
  const folders = { kind: 'image-folder' as const, train: '/data/train', test: '/data/test', size: 32, channels: 3 as const };
  const teacher = createModel('cnn', { numClasses: 3, inChannels: 3, smallInput: true });
  saveWeights(file, teacher, { config: { model: 'cnn', modelOptions: {}, data: { ...folders, valSplit: 0.1 } } });
  const t = loadTeacher({ file }, { numClasses: 3, inChannels: 3, data: folders });
  assert.equal(t.name, 'cnn');
  assert.throws(() => loadTeacher({ file }, { numClasses: 3, inChannels: 3, data: { ...folders, train: '/other/train' } }), /was trained on .*the student reads/);
});

test('distillation loss: T² · KL(softmax(t/T) ‖ softmax(s/T)) and its gradient as PyTorch\'s; at large T, the L2 of zero-mean logits over N', () => {
  T.manualSeed(8);
  const s = T.randn([5, 7]).requiresGrad_();
  const t = T.randn([5, 7]);
  const loss = distillationLoss(s, t, 3);
  loss.backward();
  const ref = runTorch(`
s = I['s'].clone().requires_grad_()
loss = F.kl_div(F.log_softmax(s / 3, 1), F.softmax(I['t'] / 3, 1), reduction='batchmean') * 9
loss.backward()
O['loss'], O['grad'] = loss.detach(), s.grad
`, { s: s.detach(), t });
  assertClose(loss, ref.loss, 1e-5, 'distillation loss');
  assertClose(s.grad!, ref.grad, 1e-5, 'its gradient');
  // Hinton et al. §2.1: with zero-mean logits, T²·KL → (1/N)·½‖z_s − z_t‖² as T grows (relative error about
  // |z| / T; float64, since T² multiplies a divergence of order 1/T²).
  const [zs, zt] = T.tidy(() => [s.detach(), t].map((z) => T.keep(z.to('float64').sub(z.to('float64').mean(1, { keepdim: true })))));
  const high = distillationLoss(zs, zt, 1e4).item();
  const l2 = mimicLoss(zs, zt).item() / 7;
  assert.ok(Math.abs(high / l2 - 1) < 1e-3, `${high} vs ${l2}`);
  assert.throws(() => distillationLoss(zs, zt, 0), /temperature must be positive/);
});
