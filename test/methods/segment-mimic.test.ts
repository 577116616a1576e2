// Mimic learning and distillation for segmentation: the per-pixel losses against PyTorch, the teacher's
// checks, a distilled `segment` run's first loss against the student's and teacher's logits computed
// directly, the `mimic` experiment with a segmentation teacher end to end, and the CLI's flags and refusals.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as T from '../../src/torch';
import { loadSegmentationTeacher, pixelDistillationLoss, pixelMimicLoss } from '../../src/methods/mimic';
import { runSegmentMimic } from '../../src/methods/mimic-run';
import { SegmentConfig, buildSegmentationModel, evaluateSegmentCheckpoint, resolveSegmentConfig, runClassWeights, segmentationData, trainSegmentation } from '../../src/train/segment';
import { forwardAnySize, pixelLoss } from '../../src/models/segmentation';
import { assertClose, runTorch } from '../helpers/pytorch';
import { writeSegmentationFolder } from '../helpers/folders';
import { ConcatDataset, SegmentationFiles, UnlabelledImages } from '../../src/data';
import { PixelLabelledImages } from '../../src/data/pixel-labels';
import { assertRefused, cli } from '../helpers/cli';
import { tmpDir } from '../helpers/tmp';

const quiet = (): void => {};
const tmp = (): string => tmpDir('tsv-segmimic-');
const SCENES = { size: 32, trainCount: 32, testCount: 8, maxItems: 2 };

/** A small trained teacher: DeepLab-V3 at a quarter width, a few steps on 32×32 scenes. */
async function trainTeacher(dir: string, extra: Partial<SegmentConfig> = {}): Promise<string> {
  const r = await trainSegmentation({ model: 'deeplabv3', modelOptions: { width: 8, channels: 16 }, scenes: SCENES, epochs: 1, batchSize: 8, limitBatches: 2, threads: 1, seed: 3, outDir: path.join(dir, 'teacher'), ...extra }, quiet);
  return r.checkpoint;
}

test('pixel mimicry and pixel distillation: value and gradient equal PyTorch, pixel by pixel', () => {
  T.manualSeed(0);
  const s = T.randn([2, 5, 3, 4]).requiresGrad_();
  const z = T.randn([2, 5, 3, 4]).mul(3);
  const l2 = pixelMimicLoss(s, z);
  l2.backward();
  const g2 = s.grad!.clone();
  s.grad!.zero_();
  const kd = pixelDistillationLoss(s, z, 4);
  kd.backward();
  const r = runTorch(
    [
      'import torch.nn.functional as F',
      's = I["s"].clone().requires_grad_(); z = I["z"]',
      'l2 = 0.5 * ((s - z) ** 2).sum(1).mean(); l2.backward(); O["l2"] = l2.detach(); O["g2"] = s.grad.clone(); s.grad = None',
      'T = 4.0; P = s.shape[0] * s.shape[2] * s.shape[3]',
      'kd = F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(z / T, 1), reduction="sum", log_target=True) / P * T * T',
      'kd.backward(); O["kd"] = kd.detach(); O["gkd"] = s.grad',
    ].join('\n'),
    { s: s.detach(), z },
  );
  assertClose(l2, r.l2, 1e-6, 'L2 loss');
  assertClose(g2, r.g2, 1e-6, 'L2 gradient');
  assertClose(kd, r.kd, 1e-5, 'distillation loss');
  assertClose(s.grad!, r.gkd, 1e-5, 'distillation gradient');
  // By hand: one pixel, two classes, ½((1 − 0)² + (2 − 4)²) = 2.5; two such pixels average to it.
  const one = T.tensor([1, 1, 2, 2], { dtype: 'float32' }).view(1, 2, 1, 2);
  const target = T.tensor([0, 0, 4, 4], { dtype: 'float32' }).view(1, 2, 1, 2);
  assert.equal(pixelMimicLoss(one, target).item(), 2.5);
  assert.throws(() => pixelMimicLoss(T.randn([1, 5, 4, 4]), T.randn([1, 5, 4, 2])), /student logits \[1,5,4,4\] and teacher logits \[1,5,4,2\]/);
  assert.throws(() => pixelDistillationLoss(T.randn([4, 5]), T.randn([4, 5]), 2), /\[batch, classes, height, width\]/);
});

test('a distilled segment run: its first step\'s loss is the student\'s logits against the teacher\'s eval-mode logits, + the labels\' weighted term', async () => {
  const dir = tmp();
  try {
    const teacherFile = await trainTeacher(dir);
    for (const spec of [{}, { temperature: 2, labelWeight: 0.5 }]) {
      const settings: Partial<SegmentConfig> = { model: 'enet', batchSize: 8, seed: 4, threads: 1, epochs: 1, limitBatches: 1, scenes: SCENES, outDir: path.join(dir, `student-${Object.keys(spec).length}`), teacher: { file: teacherFile, ...spec } };
      const logs: string[] = [];
      const run = await trainSegmentation(settings, (l) => logs.push(l));
      assert.ok(logs.some((l) => l.includes(spec.temperature ? 'soft targets (temperature 2) at every pixel of deeplabv3' : 'L2 regression on the logits at every pixel of deeplabv3')), logs.join('\n'));
      // The run's first batch, fresh student and teacher, built in the order a run builds them.
      const cfg = resolveSegmentConfig(settings);
      T.manualSeed(cfg.seed);
      const data = await segmentationData(cfg, { train: true });
      const student = buildSegmentationModel(cfg, data, quiet);
      const weight = await runClassWeights(cfg, data);
      const teacher = loadSegmentationTeacher(cfg.teacher!, { classes: data.classes, inChannels: data.inChannels, folders: false });
      assert.equal(teacher.model.training, false);
      assert.ok(teacher.model.parameters().every((p) => !p.requiresGrad), 'the teacher is frozen');
      student.train();
      let expected = 0;
      for await (const b of data.train!.epoch(0)) {
        T.tidy(() => {
          const s = student.forward(b.x);
          const z = T.noGrad(() => teacher.model.forward(b.x));
          const l = spec.temperature ? pixelDistillationLoss(s, z, spec.temperature) : pixelMimicLoss(s, z);
          expected = spec.labelWeight ? l.item() + spec.labelWeight * pixelLoss(s, b.y, { weight }).item() : l.item();
        });
        break;
      }
      assert.ok(Math.abs(run.history[0].trainLoss - expected) <= 1e-5 * Math.abs(expected), `${JSON.stringify(spec)}: run ${run.history[0].trainLoss} vs direct ${expected}`);
      data.dispose();
      weight?.dispose();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a teacher must be a segment run on data normalized alike with the same classes', async () => {
  const dir = tmp();
  try {
    const teacherFile = await trainTeacher(dir);
    const classes = JSON.parse(fs.readFileSync(path.join(dir, 'teacher', 'report.json'), 'utf8')).classes as string[];
    assert.throws(() => loadSegmentationTeacher({ file: teacherFile }, { classes, inChannels: 3, folders: true }), /trained on Fashion-MNIST scenes, the student reads image folders, 3 channels/);
    assert.throws(() => loadSegmentationTeacher({ file: teacherFile }, { classes: classes.slice(0, 5), inChannels: 1, folders: false }), /knows 11 classes .* the student's data 5/);
    assert.throws(() => loadSegmentationTeacher({ file: teacherFile, temperature: 0 }, { classes, inChannels: 1, folders: false }), /temperature must be positive/);
    assert.throws(() => loadSegmentationTeacher({ file: path.join(dir, 'none.safetensors') }, { classes, inChannels: 1, folders: false }), /no such file/);
    // A classifier's checkpoint is not a segmentation teacher.
    const cls = path.join(dir, 'cls');
    const { train } = await import('../../src/train/trainer');
    await train({ model: 'cnn', epochs: 1, limitBatches: 1, batchSize: 16, threads: 1, outDir: cls }, quiet);
    assert.throws(() => loadSegmentationTeacher({ file: path.join(cls, 'checkpoint.safetensors') }, { classes, inChannels: 1, folders: false }), /is not a checkpoint \(or weights\) of `tsvision segment`/);
    // A folder-trained student against a folder-trained teacher of other classes.
    const data = path.join(dir, 'folder');
    await writeSegmentationFolder(data, 6, 32, 32, 1);
    const folderTeacher = await trainSegmentation({ model: 'enet', folders: { train: data, testSplit: 0.34, channels: 3, numClasses: 3 }, augment: null, epochs: 1, batchSize: 2, limitBatches: 1, threads: 1, outDir: path.join(dir, 'ft') }, quiet);
    assert.throws(() => loadSegmentationTeacher({ file: folderTeacher.weights }, { classes: ['a', 'b', 'c', 'd'], inChannels: 3, folders: true }), /knows 3 classes/);
    assert.equal(loadSegmentationTeacher({ file: folderTeacher.weights }, { classes: folderTeacher.classes, inChannels: 3, folders: true }).name, 'enet');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('mimic with a segment teacher: the student comes closer to the teacher\'s logits than before and than the labels\' student; teacher re-scored; a rerun reuses both students', async () => {
  const dir = tmp();
  try {
    const teacherFile = await trainTeacher(dir);
    const out = path.join(dir, 'mimic');
    const student: Partial<SegmentConfig> = { epochs: 3, batchSize: 8, limitBatches: 4, threads: 1 };
    const r = await runSegmentMimic({ teacher: teacherFile, student, outDir: out }, quiet);
    // The teacher's number is its checkpoint's own evaluation on the same test scenes.
    const tEval = await evaluateSegmentCheckpoint(teacherFile);
    assert.ok(Math.abs(r.teacher.testMIoU - tEval.mIoU) < 1e-9, `${r.teacher.testMIoU} vs ${tEval.mIoU}`);
    assert.equal(r.student.name, 'enet');
    assert.ok(r.teacher.ms > 0 && r.student.ms > 0 && r.teacher.multAdds > 0);
    // The mimic student's logits moved toward the teacher's on the test scenes; the labels student's did not have to.
    const cfg = resolveSegmentConfig({ model: 'enet', scenes: SCENES, seed: 3 });
    const data = await segmentationData(cfg, { train: false });
    const teacher = loadSegmentationTeacher({ file: teacherFile }, { classes: data.classes, inChannels: 1, folders: false });
    const fresh = buildSegmentationModel(cfg, data, quiet);
    const trained = buildSegmentationModel({ ...cfg, init: r.mimic.weights }, data, quiet);
    const distance = async (m: typeof fresh): Promise<number> => {
      m.eval();
      let sum = 0;
      for await (const b of data.test.epoch(0)) sum += T.tidy(() => pixelMimicLoss(T.noGrad(() => forwardAnySize(m, b.x)), teacher.logits(b.x)).item());
      return sum;
    };
    const onLabels = buildSegmentationModel({ ...cfg, init: r.labels!.weights }, data, quiet);
    const [before, after, control] = [await distance(fresh), await distance(trained), await distance(onLabels)];
    assert.ok(after < 0.9 * before && after < 0.8 * control, `L2 to the teacher: ${before} before, ${after} after mimicry, ${control} after the labels`);
    data.dispose();
    const md = fs.readFileSync(r.summary, 'utf8');
    assert.match(md, /\| teacher \(deeplabv3\) \|/);
    assert.match(md, /\| student \(enet\) \| 376,806 \|/);
    assert.ok(fs.statSync(r.curves).size > 1000);
    const report = JSON.parse(fs.readFileSync(r.report, 'utf8'));
    assert.equal(report.runs.mimic.testMIoU, r.mimic.testMIoU);
    assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'mimic', 'report.json'), 'utf8')).config.teacher.file, teacherFile);
    // Rerun: both students reused, the same numbers.
    const logs: string[] = [];
    const again = await runSegmentMimic({ teacher: teacherFile, student, outDir: out }, (l) => logs.push(l));
    assert.ok(logs.some((l) => l.startsWith('mimic student: finished earlier')) && logs.some((l) => l.startsWith('student on labels: finished earlier')), logs.join('\n'));
    assert.equal(again.mimic.testMIoU, r.mimic.testMIoU);
    assert.equal(again.labels!.testMIoU, r.labels!.testMIoU);
    await assert.rejects(runSegmentMimic({ teacher: teacherFile, student: { ...student, lr: 0.1 }, outDir: out }, quiet), /holds a mimic student with other settings \(lr\)/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI: segment --teacher and mimic with a segment teacher; their refusals', async () => {
  const dir = tmp();
  try {
    const teacherFile = await trainTeacher(dir);
    const { train } = await import('../../src/train/trainer');
    const classifier = (await train({ model: 'cnn', epochs: 1, limitBatches: 1, batchSize: 16, threads: 1, outDir: path.join(dir, 'cls') }, quiet)).checkpoint;
    const small = ['--size', '32', '--train-scenes', '32', '--test-scenes', '8', '--limit-batches', '1', '--epochs', '1', '--threads', '1', '-b', '8', '--seed', '3'];
    const seg = cli('segment', ...small, '--teacher', teacherFile, '--temperature', '3', '--label-weight', '0.25', '-o', path.join(dir, 'seg'));
    assert.equal(seg.status, 0, seg.stderr);
    assert.match(seg.stderr, /soft targets \(temperature 3\) at every pixel of deeplabv3 .*, \+ 0\.25 × the labels' cross-entropy/);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'seg', 'report.json'), 'utf8')).config.teacher, { file: teacherFile, temperature: 3, labelWeight: 0.25 });
    const mimic = cli('mimic', '-t', teacherFile, '--epochs', '1', '--limit-batches', '1', '--threads', '1', '--no-control', '-o', path.join(dir, 'm'));
    assert.equal(mimic.status, 0, mimic.stderr);
    assert.match(mimic.stdout, /summary: .*SUMMARY\.md/);
    assert.ok(!fs.existsSync(path.join(dir, 'm', 'labels')), '--no-control trains no labels student');
    assertRefused([
      [['segment', '--temperature', '2'], /--temperature sets how a student learns from --teacher: give --teacher too/],
      [['segment', '--teacher', teacherFile, '--resume', teacherFile], /--resume continues a run with its own settings/],
      [['mimic', '-t', teacherFile, '--augment'], /--augment: .* is a segmentation network, whose students read its own data/],
      [['mimic', '-t', teacherFile, '-m', 'cnn'], /a segmentation teacher's student is a segmentation network .*got 'cnn'/],
      [['mimic', '-t', path.join(dir, 'none.safetensors')], /no such file/],
      [['segment', '--unlabelled-scenes', '10'], /--unlabelled-scenes teach only through a teacher's logits/],
      [['segment', '--teacher', teacherFile, '--unlabelled', dir], /--unlabelled images teach only through a teacher's logits, beside your --train-dir/],
      [['mimic', '-t', teacherFile, '--unlabelled', dir], /unlabelled images join a folder run's training images; teacher .* was trained on the scenes/],
      [['mimic', '-t', classifier, '--unlabelled-scenes', '5'], /--unlabelled-scenes is for segmentation teachers/],
    ]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('unlabelled images: decoded as the labelled ones, every pixel ignored; taught by the teacher alone, without NaN from the labels\' term', async () => {
  const dir = tmp();
  try {
    const data = path.join(dir, 'data');
    await writeSegmentationFolder(data, 6, 32, 32, 1);
    const extra = path.join(dir, 'extra');
    await writeSegmentationFolder(extra, 4, 32, 32, 2);
    const unlabelled = path.join(extra, 'images');
    // The same files decode to the same pixels as labelled images; their labels are all "ignore".
    const files = SegmentationFiles.open(extra, { channels: 3 });
    const images = UnlabelledImages.open(unlabelled, { channels: 3 });
    assert.equal(images.length, 4);
    const [a, b] = [await files.get(1), await images.get(1)];
    assert.equal(a.x.ne(b.x).any().item(), 0);
    assert.deepEqual(b.y.shape, [32, 32]);
    assert.equal(b.y.eq(255).all().item(), 1);
    const both = new ConcatDataset(files, images);
    assert.equal(both.length, 8);
    assert.equal((await both.get(5)).x.ne(b.x).any().item(), 0);
    assert.throws(() => both.get(8), /out of range \[0, 8\)/);
    assert.throws(() => UnlabelledImages.open(path.join(dir, 'nothing')), /is not a folder/);
    fs.mkdirSync(path.join(dir, 'empty'));
    assert.throws(() => UnlabelledImages.open(path.join(dir, 'empty')), /no \.png\/\.jpg images/);
    fs.writeFileSync(path.join(dir, 'empty', 'bad.png'), 'not a png');
    await assert.rejects(UnlabelledImages.open(path.join(dir, 'empty')).get(0), /cannot decode .*bad\.png/);

    const folders = { train: data, testSplit: 0.34, channels: 3 as const };
    const teacher = await trainSegmentation({ model: 'enet', folders, augment: null, epochs: 1, batchSize: 2, limitBatches: 2, threads: 1, outDir: path.join(dir, 'teacher') }, quiet);
    await assert.rejects(trainSegmentation({ model: 'enet', folders: { ...folders, unlabelled }, augment: null, epochs: 1, batchSize: 2, threads: 1, outDir: path.join(dir, 'no-teacher') }, quiet), /unlabelled images teach only through a teacher's logits/);
    // A batch of unlabelled images alone: the loss is the teacher's term alone, finite.
    const t = loadSegmentationTeacher({ file: teacher.weights, labelWeight: 1 }, { classes: teacher.classes, inChannels: 3, folders: true });
    const x = T.randn([2, 3, 32, 32]);
    const s = T.randn([2, 3, 32, 32]);
    const z = t.logits(x);
    const ignored = T.full([2, 32, 32], 255, { dtype: 'int64' });
    assert.equal(t.loss(s, z, ignored, null).item(), pixelMimicLoss(s, z).item());
    const labels = T.zeros([2, 32, 32], { dtype: 'int64' });
    assert.ok(Math.abs(t.loss(s, z, labels, null).item() - pixelMimicLoss(s, z).item() - pixelLoss(s, labels).item()) < 1e-5);
    // A distilled run over 4 labelled + 4 unlabelled images: 4 steps of 2, every loss finite.
    const logs: string[] = [];
    const r = await trainSegmentation({ model: 'enet', folders: { ...folders, unlabelled }, augment: null, epochs: 1, batchSize: 2, threads: 1, teacher: { file: teacher.weights, labelWeight: 1 }, outDir: path.join(dir, 'student') }, (l) => logs.push(l));
    assert.ok(logs.some((l) => /4 training images from .* and 4 unlabelled ones from /.test(l)), logs.join('\n'));
    assert.ok(logs.some((l) => l.includes('1 epochs × 4 batches of 2')), logs.join('\n'));
    assert.ok(Number.isFinite(r.history[0].trainLoss));
    // mimic: the distilled student reads them, the control does not.
    const m = await runSegmentMimic({ teacher: teacher.weights, student: { epochs: 1, batchSize: 2, threads: 1, augment: null }, outDir: path.join(dir, 'mimic'), unlabelled }, quiet);
    const cfgOf = (d: string) => JSON.parse(fs.readFileSync(path.join(d, 'report.json'), 'utf8')).config;
    assert.equal(cfgOf(m.mimic.dir).folders.unlabelled, unlabelled);
    assert.equal(cfgOf(m.labels!.dir).folders.unlabelled, undefined);
    const scenesTeacher = await trainTeacher(dir);
    await assert.rejects(runSegmentMimic({ teacher: scenesTeacher, student: {}, outDir: path.join(dir, 'm2'), unlabelled }, quiet), /was trained on the scenes/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('unlabelled scenes: more layouts whose every pixel is ignored, after the labelled ones; only with a teacher', async () => {
  const cfg = resolveSegmentConfig({ scenes: { ...SCENES, trainCount: 12, unlabelled: 20 }, seed: 2, valSplit: 0.25, batchSize: 4 });
  const data = await segmentationData(cfg, { train: true });
  const plain = await segmentationData({ ...cfg, scenes: { ...SCENES, trainCount: 12 } }, { train: true });
  try {
    const train = data.train!.dataset as unknown as PixelLabelledImages;
    const labelled = plain.train!.dataset as unknown as { getBatch(i: T.Tensor): { x: T.Tensor; y: T.Tensor }; length: number };
    assert.equal(labelled.length, 9, 'a quarter of 12 held out');
    assert.equal(train.length, 9 + 20);
    const all = T.arange(0, 9, 1, { dtype: 'int64' });
    const mine = train.getBatch(all);
    const theirs = labelled.getBatch(all);
    assert.equal(mine.x.ne(theirs.x).any().item(), 0, 'the labelled scenes first, as they were');
    assert.equal(mine.y.ne(theirs.y).any().item(), 0);
    const extra = train.getBatch(T.arange(9, 29, 1, { dtype: 'int64' }));
    assert.equal(extra.y.eq(255).all().item(), 1);
    assert.ok(extra.x.gt(0).any().item() === 1, 'garments on the unlabelled canvases');
    assert.match(data.describe, /12 train \(3 of them held out for validation\) \+ 20 unlabelled/);
    assert.equal((await data.trainLabelCounts())[255], 0, 'class weights count the labelled scenes only');
  } finally {
    data.dispose();
    plain.dispose();
  }
  await assert.rejects(trainSegmentation({ scenes: { ...SCENES, unlabelled: 8 }, epochs: 1, limitBatches: 1, threads: 1, outDir: path.join(os.tmpdir(), 'tsv-never') }, quiet), /unlabelled images teach only through a teacher's logits/);
});
