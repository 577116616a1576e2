// The mimic-learning experiment of Ba & Caruana (2014): the same shallow student trained two ways — on the
// deep teacher's logits (L2, src/methods/mimic.ts) and, as the control, on the labels — with one recipe, so
// the difference is the targets alone. Writes both runs, the teacher's numbers and a comparison. For a
// segmentation teacher the students are segmentation networks taught at every pixel (runSegmentMimic).
import * as path from 'node:path';
import { DEFAULT_CONFIG, TrainConfig, Logger, evaluate } from '../train/trainer';
import { DataSpec, imageSize, makeLoaders, withoutTransferSet } from '../train/datasets';
import { summary } from '../metrics/summary';
import { Module } from '../nn';
import { ModelName, createClassifier } from '../models/registry';
import { Fidelity, fidelity, loadSegmentationTeacher, loadTeacher } from './mimic';
import { PhaseResult, isLead, leadLog, leadWrites, meanAcrossRanks, meet, pct, plotPhases, runPhase, runSegmentPhase, writeJsonAtomic } from './phases';
import { writeFileAtomic } from '../util/fs';
import * as dist from '../distributed';
import { randn } from '../torch';
import { loadWeights, readRunRecord } from '../train/checkpoint';
import { DEFAULT_SEGMENT_CONFIG, SegmentConfig, SegmentEpoch, SegmentResult, evaluateSegmentation, isSegmentConfig, resolveSegmentConfig, segmentationData } from '../train/segment';
import type { SegmentationModelName } from '../models/registry';
import { measureLatency } from '../metrics/speed';
import { Series, savePlotsPng } from '../report/plot';

export const MIMIC_DEFAULTS = {
  /** `npm start` writes this teacher. */
  teacher: 'runs/fashion-mnist-cnn/checkpoint.safetensors',
  student: 'shallow' as ModelName,
  epochs: 4,
  /** L2 on logits has larger gradients than cross-entropy; Adam at 1e-3 trains both targets stably. */
  optimizer: 'adam' as const,
  lr: 1e-3,
  weightDecay: 0,
  control: true,
};

export interface MimicConfig {
  /** Student and recipe: model (default 'shallow'), modelOptions, data, epochs, optimizer, lr, ... */
  base: Partial<TrainConfig>;
  teacher?: string;
  /** For a teacher given as plain weights: its registered model and options. */
  teacherModel?: ModelName;
  teacherOptions?: Record<string, unknown>;
  outDir: string;
  /** Also train the student on the labels (the paper's comparison). */
  control?: boolean;
  /** Distil the teacher's soft targets at this temperature (Hinton et al. 2015) instead of its logits by L2. */
  temperature?: number;
  /**
   * The mimic student's transfer set beyond the labelled images (DataSpec.unlabelled): `rest`, the training
   * images that `data.labelled` leaves without labels; `dir`, a folder of more images. The control never
   * sees them: it learns from the labels it has.
   */
  unlabelled?: { rest?: boolean; dir?: string };
  /** Also this weight × the labels' cross-entropy in the student by mimicry's loss (Hinton et al.'s pairing). */
  labelWeight?: number;
}

export interface ModelFacts {
  name: string;
  parameters: number;
  multAdds: number;
  testTop1: number;
}

export interface MimicResult {
  teacher: ModelFacts;
  student: { parameters: number; multAdds: number };
  mimic: PhaseResult;
  labels: PhaseResult | null;
  /** Each student's agreement with the teacher and L2 to its logits on the test images. */
  fidelity: { mimic: Fidelity; labels: Fidelity | null };
  report: string;
  summary: string;
  curves: string;
}

export async function runMimic(c: MimicConfig, log: Logger = (l) => console.log(l)): Promise<MimicResult> {
  log = leadLog(log);
  const teacherFile = c.teacher ?? MIMIC_DEFAULTS.teacher;
  const base: Partial<TrainConfig> = {
    model: MIMIC_DEFAULTS.student,
    epochs: MIMIC_DEFAULTS.epochs,
    optimizer: MIMIC_DEFAULTS.optimizer,
    lr: MIMIC_DEFAULTS.lr,
    weightDecay: MIMIC_DEFAULTS.weightDecay,
    ...c.base,
    init: '',
    method: null,
  };
  const data = base.data ?? { kind: 'fashion-mnist' as const };
  const transfer = c.unlabelled?.rest || c.unlabelled?.dir ? c.unlabelled : undefined;
  if (transfer?.rest && !data.labelled) throw new Error('the transfer set of the rest is the training images left without labels: give the number labelled (--labelled n) too');
  const loaders = makeLoaders(withoutTransferSet(data), { batchSize: 500, seed: 0, augment: false });
  const teacher = loadTeacher({ file: teacherFile, model: c.teacherModel, modelOptions: c.teacherOptions }, { numClasses: loaders.numClasses, inChannels: loaders.inChannels, data });
  const size = imageSize(data);
  const input = [1, loaders.inChannels, size, size];
  const facts = (m: Module): { parameters: number; multAdds: number } => {
    const s = summary(m, input);
    return { parameters: s.totalParams, multAdds: s.totalMultAdds };
  };
  log(`teacher ${teacher.name} from ${teacherFile}: evaluating on the test set`);
  // Under launch each rank scores its share of the test images (here and for the students' fidelity).
  const tEval = await evaluate(teacher.model, dist.evalShare(loaders.test), base.limitBatches ?? 0);
  const teacherFacts: ModelFacts = { name: teacher.name, ...facts(teacher.model), testTop1: meanAcrossRanks(tEval.top1, tEval.count) };

  // How the student learned, in each place the run names it: the paper's L2 mimicry, or distillation at T.
  const T = c.temperature;
  const words = T
    ? { phase: `distil-T${T}`, target: `the teacher's soft targets, T = ${T}`, curve: `distilled (soft targets, T = ${T})`, method: `knowledge distillation (Hinton et al. 2015), temperature ${T}`, title: 'Knowledge distillation', short: 'distilled', student: 'distilled' }
    : { phase: 'mimic', target: "the teacher's logits, L2", curve: 'mimic (teacher logits, L2)', method: 'mimic learning (Ba & Caruana 2014)', title: 'Mimic learning', short: 'mimic', student: 'by mimicry' };
  const w = c.labelWeight ?? 0;
  const method = { kind: 'mimic' as const, teacher: teacherFile, ...(c.teacherModel ? { teacherModel: c.teacherModel, teacherOptions: c.teacherOptions ?? {} } : {}), ...(T ? { temperature: T } : {}), ...(w ? { labelWeight: w } : {}) };
  // Its own folder, so that the L2 student, a distilled one, either with a transfer set, and their shared
  // control can sit side by side.
  const mimic = await runPhase(c.outDir, words.phase + (w ? `+labels${w}` : '') + (transfer ? '-transfer' : ''), { ...base, data: { ...data, ...(transfer ? { unlabelled: transfer } : {}) }, method }, log);
  // With a transfer set an epoch of the student by mimicry is many times the control's: the control trains
  // as many optimizer steps instead (more passes over its fewer images), so neither has had more updates.
  const steps = transfer && { mimic: stepsPerEpoch(base, { ...data, unlabelled: transfer }), labels: stepsPerEpoch(base, data) };
  const controlEpochs = steps ? Math.ceil((base.epochs! * steps.mimic) / steps.labels) : base.epochs!;
  const labels = (c.control ?? MIMIC_DEFAULTS.control) ? await runPhase(c.outDir, 'labels', { ...base, epochs: controlEpochs }, log) : null;

  const student = facts(createClassifier(base.model!, base.modelOptions ?? {}, loaders));
  // How closely each student follows the teacher on the test images: what mimicry aims at, beside accuracy.
  const follows = async (phase: PhaseResult): Promise<Fidelity> => {
    const m = createClassifier(base.model!, base.modelOptions ?? {}, loaders);
    loadWeights(phase.weights, m);
    const f = await fidelity(m, teacher.model, dist.evalShare(loaders.test), base.limitBatches ?? 0);
    const [same, l2, images] = dist.sumAcrossRanks([f.agreement * f.images, f.l2 * f.images, f.images]);
    return { agreement: same / Math.max(1, images), l2: l2 / Math.max(1, images), images };
  };
  const mimicFidelity = await follows(mimic);
  const labelsFidelity = labels && (await follows(labels));
  const [curves, report, md] = ['curves.png', 'report.json', 'SUMMARY.md'].map((f) => path.join(c.outDir, f));
  await leadWrites(async () => {
    await plotPhases(curves, `${base.model} student: mimic vs labels (teacher ${teacher.name} ${pct(teacherFacts.testTop1)})`, [
      { name: `student, ${words.curve}${w ? ` + ${w} × labels` : ''}`, start: 0, phase: mimic, ...(steps ? { stepsPerEpoch: steps.mimic } : {}) },
      ...(labels ? [{ name: 'student, labels (cross-entropy)', start: 0, phase: labels, ...(steps ? { stepsPerEpoch: steps.labels } : {}) }] : []),
    ]);
    writeJsonAtomic(report, { method: words.method, teacher: { file: teacherFile, ...teacherFacts }, student: { model: base.model, options: base.modelOptions ?? {}, ...student }, recipe: base, phases: { mimic, labels }, fidelity: { mimic: mimicFidelity, labels: labelsFidelity } });
    const row = (label: string, f: { parameters: number; multAdds: number }, top1: number, fid: Fidelity | null, note: string): string =>
      `| ${label} | ${f.parameters.toLocaleString('en-US')} | ${(f.multAdds / 1e6).toFixed(2)}M | ${pct(top1)} | ${fid ? pct(fid.agreement) : '—'} | ${fid ? fid.l2.toFixed(3) : '—'} | ${note} |`;
    const labelled = data.labelled ? ` (${data.labelled.toLocaleString('en-US')} labelled training images)` : '';
    const unlabelled = [transfer?.rest ? 'the training images without labels' : '', transfer?.dir ? `the images of ${transfer.dir}` : ''].filter(Boolean).join(' and ');
    writeFileAtomic(
      md,
      [
        `# ${words.title}: ${base.model} student of ${teacher.name}`,
        '',
        transfer
          ? `Recipe for both students: ${base.optimizer} lr ${base.lr}, batch ${base.batchSize ?? 128}, seed ${base.seed ?? 0}, the same number of optimizer steps: ${base.epochs} epochs over the student by mimicry's images, ${controlEpochs} over the control's labelled ones.`
          : `Recipe for both students: ${base.epochs} epochs, ${base.optimizer} lr ${base.lr}, batch ${base.batchSize ?? 128}, seed ${base.seed ?? 0}.`,
        '',
        '| model | parameters | mult-adds | test top-1 | agrees with the teacher | ½‖g − z‖² to its logits | trained on |',
        '|---|---:|---:|---:|---:|---:|---|',
        row(`teacher (${teacher.name})`, teacherFacts, teacherFacts.testTop1, null, `labels${teacher.labelled ? ` (${teacher.labelled.toLocaleString('en-US')} labelled training images)` : ''}`),
        row(`student (${base.model})`, student, mimic.testTop1, mimicFidelity, `${words.target}${w ? ` + ${w} × labels` : ''}${unlabelled ? `, + ${unlabelled} (transfer set)` : ''} (${mimic.dir})`),
        labels ? row(`student (${base.model})`, student, labels.testTop1, labelsFidelity, `labels, cross-entropy${labelled} (${labels.dir})`) : '',
        '',
        labels ? `${words.short} − labels: ${(100 * (mimic.testTop1 - labels.testTop1)).toFixed(2)} points of top-1 (one seed).` : '',
        `Agreement: the share of the test images where the student's top class is the teacher's; ½‖g − z‖²: the distance between their logits that mimicry minimizes, averaged over the test images${base.limitBatches ? ` (the first ${base.limitBatches} batches)` : ''}.`,
        '',
        '![test top-1 per epoch](curves.png)',
        '',
      ].filter((l, i, a) => l !== '' || a[i - 1] !== '').join('\n'),
    );
  });
  log(`test top-1: teacher ${pct(teacherFacts.testTop1)} · student ${words.student} ${pct(mimic.testTop1)}${labels ? ` · student on labels ${pct(labels.testTop1)}` : ''}`);
  return { teacher: teacherFacts, student, mimic, labels, fidelity: { mimic: mimicFidelity, labels: labelsFidelity }, report, summary: md, curves };
}

/** Optimizer steps in an epoch of a run with this recipe over `spec`'s training images, as a run counts them (limitBatches caps them). */
export function stepsPerEpoch(base: Partial<TrainConfig>, spec: DataSpec): number {
  const n = makeLoaders(spec, { batchSize: base.batchSize ?? DEFAULT_CONFIG.batchSize, seed: 0, augment: false }).train.length;
  return base.limitBatches ? Math.min(base.limitBatches, n) : n;
}

// ---- Segmentation: a real-time student of a large network ---------------------------------------------------

export const SEGMENT_MIMIC_DEFAULTS = {
  /** The real-time network of the four; any segmentation network can be the student. */
  student: 'enet' as SegmentationModelName,
};

export interface SegmentMimicConfig {
  /** A `tsvision segment` checkpoint (or its weights): its network teaches, and its data is the students'. */
  teacher: string;
  /**
   * The students' run: model (default enet) and its options, and what differs from that model's paper recipe
   * (epochs, lr, batchSize, seed, threads, limitBatches, accumulate, precision, ...). The data — scenes or
   * folders, augmentation — is the teacher's run's, so that both are scored on the same test images.
   */
  student: Partial<SegmentConfig>;
  outDir: string;
  /** Also train the student on the labels with its paper's loss (the comparison). */
  control?: boolean;
  /** Soft targets at this temperature instead of the logits' L2. */
  temperature?: number;
  /** Also this weight × the labels' cross-entropy in the distilled student's loss. */
  labelWeight?: number;
  /**
   * A folder of images without masks added to the distilled student's training images (not the control's),
   * taught by the teacher alone; the teacher must have trained on folders.
   */
  unlabelled?: string;
  /** For a teacher trained on the scenes: this many more scenes without labels, likewise. */
  unlabelledScenes?: number;
}

export interface SegmentModelFacts {
  name: string;
  parameters: number;
  multAdds: number;
  /** CPU milliseconds per image at the training size (batch 1; teacher and student in turns, medians). */
  ms: number;
  testMIoU: number;
}

export interface SegmentStudentRun {
  dir: string;
  testMIoU: number;
  testPixelAccuracy: number;
  /** Test mIoU after each epoch. */
  curve: number[];
  weights: string;
}

export interface SegmentMimicResult {
  teacher: SegmentModelFacts;
  student: Omit<SegmentModelFacts, 'testMIoU'>;
  mimic: SegmentStudentRun;
  labels: SegmentStudentRun | null;
  report: string;
  summary: string;
  curves: string;
}

/** Whether a file holds a `tsvision segment` run's network (its run record names scenes). */
export function isSegmentationRun(file: string): boolean {
  return isSegmentConfig(readRunRecord(file).run?.config);
}

/**
 * Mimic learning for segmentation: a student network (ENet by default) trained on a larger network's logits
 * at every pixel, and the same student trained on the labels with its paper's loss, on the teacher's data;
 * both scored, with the teacher, on the same test images, beside their sizes and CPU latency.
 */
export async function runSegmentMimic(c: SegmentMimicConfig, log: Logger = (l) => console.log(l)): Promise<SegmentMimicResult> {
  log = leadLog(log);
  const { run } = readRunRecord(c.teacher);
  if (!isSegmentConfig(run?.config)) throw new Error(`teacher ${c.teacher} is not a checkpoint (or weights) of \`tsvision segment\``);
  const t: SegmentConfig = { ...DEFAULT_SEGMENT_CONFIG, ...run.config };
  const studentModel = c.student.model ?? SEGMENT_MIMIC_DEFAULTS.student;
  // The teacher's data, as its run read it: scenes of the same seed (their layouts) or the same folders.
  // (Not the teacher's own transfer set, if it was distilled itself: the control trains on labels alone.)
  const folders = t.folders && Object.fromEntries(Object.entries(t.folders).filter(([k]) => k !== 'unlabelled')) as SegmentConfig['folders'];
  const { unlabelled: _, ...scenes } = t.scenes;
  const data: Partial<SegmentConfig> = { scenes, folders, augment: t.augment, colorJitter: t.colorJitter, seed: t.seed, ...(t.valSplit ? { valSplit: t.valSplit } : {}) };
  const base = (dir: string): SegmentConfig => resolveSegmentConfig({ ...data, ...c.student, model: studentModel, outDir: path.join(c.outDir, dir) });
  const T = c.temperature;
  const words = T
    ? { phase: `distil-T${T}`, target: `the teacher's soft targets at every pixel, T = ${T}`, title: 'Knowledge distillation', short: 'distilled', curve: `student, distilled (T = ${T})` }
    : { phase: 'mimic', target: "the teacher's logits at every pixel, L2", title: 'Mimic learning', short: 'mimic', curve: 'student, mimic (teacher logits, L2)' };
  const teacherSpec = { file: c.teacher, ...(T ? { temperature: T } : {}), ...(c.labelWeight ? { labelWeight: c.labelWeight } : {}) };
  const withLabels = (c.labelWeight ? ` + ${c.labelWeight} × labels` : '') + (c.unlabelled ? `, + the unlabelled images of ${c.unlabelled}` : c.unlabelledScenes ? `, + ${c.unlabelledScenes} unlabelled scenes` : '');

  if (c.unlabelled && !t.folders) throw new Error(`unlabelled images join a folder run's training images; teacher ${c.teacher} was trained on the scenes`);
  const student = base(words.phase);
  if (c.unlabelledScenes && t.folders) throw new Error(`unlabelled scenes join a scenes run's training scenes; teacher ${c.teacher} was trained on folders (give a folder of unlabelled images)`);
  const transfer = c.unlabelled ? { folders: { ...student.folders!, unlabelled: c.unlabelled } } : c.unlabelledScenes ? { scenes: { ...student.scenes, unlabelled: c.unlabelledScenes } } : {};
  const mimicRun = await runSegmentPhase({ ...student, ...transfer, teacher: teacherSpec }, log, `${words.short} student`);
  const control = base('labels');
  const labelRun = (c.control ?? MIMIC_DEFAULTS.control) ? await runSegmentPhase(control, log, 'student on labels') : null;

  // The teacher scored on the students' test images; sizes and latency at the training size.
  const probe = await segmentationData(control, { train: false });
  let teacherFacts: SegmentModelFacts;
  let studentFacts: Omit<SegmentModelFacts, 'testMIoU'>;
  try {
    const teacher = loadSegmentationTeacher(teacherSpec, { classes: probe.classes, inChannels: probe.inChannels, folders: Boolean(t.folders) });
    log(`teacher ${t.model} from ${c.teacher}: evaluating on the test set`);
    const tEval = await evaluateSegmentation(teacher.model, dist.evalShare(probe.test), probe.classes.length, null, c.student.limitBatches ?? 0, { crossReplicaSum: dist.rankSum() });
    const input = [1, probe.inChannels, ...probe.inputSize];
    log(`measuring CPU latency at ${input.slice(2).join('×')}, batch 1 (teacher and student in turns)`);
    // Under \`launch\`, rank 0 alone times them, once every rank is done evaluating: nothing else runs meanwhile.
    meet();
    const [tMs, sMs] = isLead() ? measureLatency([teacher.model, mimicRun.model], randn(input).keep()).map((l) => l.ms) : [NaN, NaN];
    const facts = (m: Module): { parameters: number; multAdds: number } => {
      const s = summary(m, input);
      return { parameters: s.totalParams, multAdds: s.totalMultAdds };
    };
    teacherFacts = { name: t.model, ...facts(teacher.model), ms: tMs, testMIoU: tEval.mIoU };
    studentFacts = { name: studentModel, ...facts(mimicRun.model), ms: sMs };
  } finally {
    probe.dispose();
  }

  const studentRun = (r: SegmentResult & { final: SegmentEpoch }): SegmentStudentRun => ({ dir: path.dirname(r.checkpoint), testMIoU: r.final.testMIoU, testPixelAccuracy: r.final.testPixelAccuracy, curve: r.history.map((h) => h.testMIoU), weights: r.weights });
  const mimic = studentRun(mimicRun);
  const labels = labelRun && studentRun(labelRun);
  const [curves, report, md] = ['curves.png', 'report.json', 'SUMMARY.md'].map((f) => path.join(c.outDir, f));
  const line = (name: string, r: SegmentStudentRun): Series => ({ name, points: r.curve.map((m, i): [number, number] => [i + 1, 100 * m]) });
  const epochs = Math.max(mimic.curve.length, labels?.curve.length ?? 0);
  await leadWrites(async () => {
    await savePlotsPng(curves, [{
      title: `${studentModel} student of ${t.model}: test mIoU per epoch`,
      xLabel: 'epoch',
      yLabel: 'test mIoU (%)',
      series: [
        line(words.curve + withLabels, mimic),
        ...(labels ? [line("student, labels (its paper's loss)", labels)] : []),
        { name: `teacher (${t.model})`, points: [[1, 100 * teacherFacts.testMIoU], [epochs, 100 * teacherFacts.testMIoU]] },
      ],
    }]);
    writeJsonAtomic(report, { method: T ? `knowledge distillation at every pixel (Hinton et al. 2015), temperature ${T}` : 'mimic learning at every pixel (Ba & Caruana 2014)', labelWeight: c.labelWeight ?? 0, teacher: { file: c.teacher, ...teacherFacts }, student: { model: studentModel, options: c.student.modelOptions ?? {}, ...studentFacts }, recipe: student, runs: { mimic, labels } });
    const row = (label: string, f: Omit<SegmentModelFacts, 'testMIoU'>, mIoU: number, note: string): string =>
      `| ${label} | ${f.parameters.toLocaleString('en-US')} | ${(f.multAdds / 1e6).toFixed(2)}M | ${f.ms.toFixed(2)} | ${pct(mIoU)} | ${note} |`;
    writeFileAtomic(
      md,
      [
        `# ${words.title} for segmentation: ${studentModel} student of ${t.model}`,
        '',
        `Recipe for both students: ${studentModel}'s (${student.epochs} epochs, ${student.optimizer} lr ${student.lr}, batch ${student.batchSize}, seed ${student.seed}), on the teacher's data. Latency: CPU, batch 1, ${probe.inputSize.join('×')}, median of interleaved runs.`,
        '',
        '| model | parameters | mult-adds | ms | test mIoU | trained on |',
        '|---|---:|---:|---:|---:|---|',
        row(`teacher (${t.model})`, teacherFacts, teacherFacts.testMIoU, `labels (${c.teacher})`),
        row(`student (${studentModel})`, studentFacts, mimic.testMIoU, `${words.target}${withLabels} (${mimic.dir})`),
        labels ? row(`student (${studentModel})`, studentFacts, labels.testMIoU, `labels, its paper's loss (${labels.dir})`) : '',
        '',
        labels ? `${words.short} − labels: ${(100 * (mimic.testMIoU - labels.testMIoU)).toFixed(2)} points of mIoU (one seed).` : '',
        '',
        '![test mIoU per epoch](curves.png)',
        '',
      ].filter((l, i, a) => l !== '' || a[i - 1] !== '').join('\n'),
    );
  });
  log(`test mIoU: teacher ${pct(teacherFacts.testMIoU)} · student ${words.short} ${pct(mimic.testMIoU)}${labels ? ` · student on labels ${pct(labels.testMIoU)}` : ''}`);
  return { teacher: teacherFacts, student: studentFacts, mimic, labels, report, summary: md, curves };
}
