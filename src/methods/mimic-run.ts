// The mimic-learning experiment of Ba & Caruana (2014): the same shallow student trained two ways — on the
// deep teacher's logits (L2, src/methods/mimic.ts) and, as the control, on the labels — with one recipe, so
// the difference is the targets alone. Writes both runs, the teacher's numbers and a comparison.
import * as path from 'node:path';
import { TrainConfig, Logger, evaluate } from '../train/trainer';
import { imageSize, makeLoaders } from '../train/datasets';
import { summary } from '../metrics/summary';
import { Module } from '../nn';
import { ModelName, createClassifier } from '../models/registry';
import { loadTeacher } from './mimic';
import { PhaseResult, pct, plotPhases, runPhase, writeJsonAtomic } from './phases';
import { writeFileAtomic } from '../util/fs';

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
  report: string;
  summary: string;
  curves: string;
}

export async function runMimic(c: MimicConfig, log: Logger = (l) => console.log(l)): Promise<MimicResult> {
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
  const loaders = makeLoaders(data, { batchSize: 500, seed: 0, augment: false });
  const teacher = loadTeacher({ file: teacherFile, model: c.teacherModel, modelOptions: c.teacherOptions }, { numClasses: loaders.numClasses, inChannels: loaders.inChannels, data });
  const size = imageSize(data);
  const input = [1, loaders.inChannels, size, size];
  const facts = (m: Module): { parameters: number; multAdds: number } => {
    const s = summary(m, input);
    return { parameters: s.totalParams, multAdds: s.totalMultAdds };
  };
  log(`teacher ${teacher.name} from ${teacherFile}: evaluating on the test set`);
  const tEval = await evaluate(teacher.model, loaders.test, base.limitBatches ?? 0);
  const teacherFacts: ModelFacts = { name: teacher.name, ...facts(teacher.model), testTop1: tEval.top1 };

  // How the student learned, in each place the run names it: the paper's L2 mimicry, or distillation at T.
  const T = c.temperature;
  const words = T
    ? { phase: `distil-T${T}`, target: `the teacher's soft targets, T = ${T}`, curve: `distilled (soft targets, T = ${T})`, method: `knowledge distillation (Hinton et al. 2015), temperature ${T}`, title: 'Knowledge distillation', short: 'distilled', student: 'distilled' }
    : { phase: 'mimic', target: "the teacher's logits, L2", curve: 'mimic (teacher logits, L2)', method: 'mimic learning (Ba & Caruana 2014)', title: 'Mimic learning', short: 'mimic', student: 'by mimicry' };
  const method = { kind: 'mimic' as const, teacher: teacherFile, ...(c.teacherModel ? { teacherModel: c.teacherModel, teacherOptions: c.teacherOptions ?? {} } : {}), ...(T ? { temperature: T } : {}) };
  // Its own folder, so that the L2 student, a distilled one and their shared control can sit side by side.
  const mimic = await runPhase(c.outDir, words.phase, { ...base, method }, log);
  const labels = (c.control ?? MIMIC_DEFAULTS.control) ? await runPhase(c.outDir, 'labels', base, log) : null;

  const student = facts(createClassifier(base.model!, base.modelOptions ?? {}, loaders));
  const curves = path.join(c.outDir, 'curves.png');
  await plotPhases(curves, `${base.model} student: mimic vs labels (teacher ${teacher.name} ${pct(tEval.top1)})`, [
    { name: `student, ${words.curve}`, start: 0, phase: mimic },
    ...(labels ? [{ name: 'student, labels (cross-entropy)', start: 0, phase: labels }] : []),
  ]);
  const report = path.join(c.outDir, 'report.json');
  writeJsonAtomic(report, { method: words.method, teacher: { file: teacherFile, ...teacherFacts }, student: { model: base.model, options: base.modelOptions ?? {}, ...student }, recipe: base, phases: { mimic, labels } });
  const md = path.join(c.outDir, 'SUMMARY.md');
  const row = (label: string, f: { parameters: number; multAdds: number }, top1: number, note: string): string =>
    `| ${label} | ${f.parameters.toLocaleString('en-US')} | ${(f.multAdds / 1e6).toFixed(2)}M | ${pct(top1)} | ${note} |`;
  writeFileAtomic(
    md,
    [
      `# ${words.title}: ${base.model} student of ${teacher.name}`,
      '',
      `Recipe for both students: ${base.epochs} epochs, ${base.optimizer} lr ${base.lr}, batch ${base.batchSize ?? 128}, seed ${base.seed ?? 0}.`,
      '',
      '| model | parameters | mult-adds | test top-1 | trained on |',
      '|---|---:|---:|---:|---|',
      row(`teacher (${teacher.name})`, teacherFacts, tEval.top1, 'labels'),
      row(`student (${base.model})`, student, mimic.testTop1, `${words.target} (${mimic.dir})`),
      labels ? row(`student (${base.model})`, student, labels.testTop1, `labels, cross-entropy (${labels.dir})`) : '',
      '',
      labels ? `${words.short} − labels: ${(100 * (mimic.testTop1 - labels.testTop1)).toFixed(2)} points of top-1 (one seed).` : '',
      '',
      '![test top-1 per epoch](curves.png)',
      '',
    ].filter((l, i, a) => l !== '' || a[i - 1] !== '').join('\n'),
  );
  log(`test top-1: teacher ${pct(tEval.top1)} · student ${words.student} ${pct(mimic.testTop1)}${labels ? ` · student on labels ${pct(labels.testTop1)}` : ''}`);
  return { teacher: teacherFacts, student, mimic, labels, report, summary: md, curves };
}
