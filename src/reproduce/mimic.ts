// Ba & Caruana, "Do Deep Nets Really Need to be Deep?" (NIPS 2014): a shallow network trained to regress a
// deep teacher's logits (L2) learns functions it does not learn from the labels themselves, and more of them
// from a larger transfer set of images the teacher labels. Here with scarce labels, as the paper's setting
// has it (its students learned from far more images than were labelled): every run goes through `runMimic`,
// as `tsvision mimic --labelled n [--unlabelled-rest]` does, three seeds each.
import * as path from 'node:path';
import { savePlotsPng } from '../report/plot';
import { MIMIC_DEFAULTS, runMimic, stepsPerEpoch } from '../methods/mimic-run';
import { train } from '../train/trainer';
import { Log, inWorkDir, int, markdownTable, meanStd, pairedDifference, pct, seedsCell, writeReport } from './common';

export const MIMIC_SEEDS = [0, 1, 2] as const;

export interface MimicBudget {
  /** Training images whose labels are kept (the same share of every class); the rest are the transfer set. */
  labelled: number;
  /** The deep teacher: `cnn` on all 60,000 labels, this many epochs. */
  teacherEpochs: number;
  /** The control teacher: `cnn` on the labelled images alone (with random crops and flips), this many epochs. */
  weakTeacherEpochs: number;
  /** Epochs of the students with the transfer set; the others train as many optimizer steps. */
  studentEpochs: number;
  /** Soft-target temperature of the distilled student (Hinton et al.'s comparison). */
  temperature: number;
  /** Caps every run's batches per epoch (quick mode); 0: none. */
  limitBatches: number;
}

export const MIMIC_BUDGET: MimicBudget = { labelled: 2000, teacherEpochs: 2, weakTeacherEpochs: 20, studentEpochs: 2, temperature: 4, limitBatches: 0 };
export const MIMIC_QUICK_BUDGET: MimicBudget = { labelled: 200, teacherEpochs: 1, weakTeacherEpochs: 1, studentEpochs: 1, temperature: 4, limitBatches: 2 };

/** The students, each the same `shallow` network and recipe; only what it learns from differs. */
export const MIMIC_VARIANTS = ['labels', 'mimic', 'mimic-transfer', 'distil-transfer', 'weak-transfer'] as const;
export type MimicVariant = (typeof MIMIC_VARIANTS)[number];

export interface MimicRun {
  seed: number;
  top1: number;
  /** Share of the test images where the student's top class is its teacher's. */
  agreement: number;
}

export interface MimicStudy {
  reportPath: string;
  teachers: { strong: number; weak: number };
  results: Record<MimicVariant, MimicRun[]>;
}

export async function reproduceMimic(outDir: string, quick: boolean, log: Log): Promise<MimicStudy> {
  const t0 = Date.now();
  const b = quick ? MIMIC_QUICK_BUDGET : MIMIC_BUDGET;
  const seeds: readonly number[] = quick ? [0] : MIMIC_SEEDS;
  const quiet = (): void => {};
  return inWorkDir('tsv-mimic-', async (work) => {
    const data = { kind: 'fashion-mnist' as const, labelled: b.labelled };
    const cap = b.limitBatches ? { limitBatches: b.limitBatches } : {};
    const strong = await train({ model: 'cnn', data: { kind: 'fashion-mnist' }, epochs: b.teacherEpochs, seed: 0, outDir: path.join(work, 'teacher'), ...cap }, quiet);
    log(`teacher cnn on all 60,000 labels: test top-1 ${pct(strong.final!.testTop1)}%`);
    const weak = await train({ model: 'cnn', data, augment: true, epochs: b.weakTeacherEpochs, seed: 0, outDir: path.join(work, 'weak-teacher'), ...cap }, quiet);
    log(`teacher cnn on the ${int(b.labelled)} labelled images: test top-1 ${pct(weak.final!.testTop1)}%`);

    // The students without a transfer set train as many optimizer steps as those with one.
    const base = { model: MIMIC_DEFAULTS.student, optimizer: MIMIC_DEFAULTS.optimizer, lr: MIMIC_DEFAULTS.lr, weightDecay: MIMIC_DEFAULTS.weightDecay, batchSize: 128, ...cap };
    const steps = { transfer: stepsPerEpoch(base, { ...data, unlabelled: { rest: true } }), labelled: stepsPerEpoch(base, data) };
    const labelledEpochs = Math.ceil((b.studentEpochs * steps.transfer) / steps.labelled);
    const results: Record<MimicVariant, MimicRun[]> = { labels: [], mimic: [], 'mimic-transfer': [], 'distil-transfer': [], 'weak-transfer': [] };
    const note = (v: MimicVariant, seed: number, r: MimicRun): void => {
      results[v].push(r);
      log(`  seed ${seed}, ${VARIANT_WORDS[v]}: test top-1 ${pct(r.top1)}%, agrees with its teacher on ${pct(r.agreement)}%`);
    };
    for (const seed of seeds) {
      const dir = path.join(work, `seed-${seed}`);
      const rest = { unlabelled: { rest: true } };
      const alone = await runMimic({ base: { ...base, data, seed, epochs: labelledEpochs }, teacher: strong.checkpoint, outDir: dir, control: true }, quiet);
      note('labels', seed, { seed, top1: alone.labels!.testTop1, agreement: alone.fidelity.labels!.agreement });
      note('mimic', seed, { seed, top1: alone.mimic.testTop1, agreement: alone.fidelity.mimic.agreement });
      for (const [v, more] of [['mimic-transfer', {}], ['distil-transfer', { temperature: b.temperature }], ['weak-transfer', { teacher: weak.checkpoint }]] as const) {
        const r = await runMimic({ base: { ...base, data, seed, epochs: b.studentEpochs }, teacher: strong.checkpoint, outDir: path.join(dir, v), control: false, ...rest, ...more }, quiet);
        note(v, seed, { seed, top1: r.mimic.testTop1, agreement: r.fidelity.mimic.agreement });
      }
    }
    const teachers = { strong: strong.final!.testTop1, weak: weak.final!.testTop1 };
    const reportPath = await writeMimicReport(outDir, quick, b, seeds, { labelledEpochs, steps: steps.transfer * b.studentEpochs }, teachers, results, t0);
    return { reportPath, teachers, results };
  });
}

/** Every student's test top-1 per seed, by variant; the teachers' at both edges. */
export async function plotMimic(file: string, results: Record<MimicVariant, MimicRun[]>, teachers: { strong: number; weak: number }): Promise<void> {
  const edges = (top1: number): [number, number][] => [[0.5, 100 * top1], [MIMIC_VARIANTS.length + 0.5, 100 * top1]];
  await savePlotsPng(file, [
    {
      title: "Shallow students' test top-1 per seed; the teachers' at both edges",
      xLabel: 'student: 1 labels, 2 logits, 3 logits + transfer, 4 soft targets + transfer, 5 weak teacher + transfer',
      yLabel: 'test top-1 (%)',
      scatter: true,
      width: 720,
      series: [
        { name: 'students', points: MIMIC_VARIANTS.flatMap((v, k) => results[v].map((r) => [k + 1, 100 * r.top1] as [number, number])) },
        { name: `deep teacher (${pct(teachers.strong)}%)`, points: edges(teachers.strong) },
        { name: `weak teacher (${pct(teachers.weak)}%)`, points: edges(teachers.weak) },
      ],
    },
  ]);
}

const VARIANT_WORDS: Record<MimicVariant, string> = {
  labels: 'the labels (cross-entropy)',
  mimic: "the deep teacher's logits on the labelled images (L2)",
  'mimic-transfer': "the deep teacher's logits, + the transfer set (L2)",
  'distil-transfer': "the deep teacher's soft targets, + the transfer set",
  'weak-transfer': "the weak teacher's logits, + the transfer set (L2)",
};

async function writeMimicReport(
  outDir: string,
  quick: boolean,
  b: MimicBudget,
  seeds: readonly number[],
  plan: { labelledEpochs: number; steps: number },
  teachers: { strong: number; weak: number },
  results: Record<MimicVariant, MimicRun[]>,
  t0: number,
): Promise<string> {
  const n = seeds.length;
  const words = { ...VARIANT_WORDS, 'distil-transfer': `the deep teacher's soft targets at T = ${b.temperature}, + the transfer set` };
  const table = markdownTable(
    ['student learns from', 'test top-1 (%), mean ± std (per seed)', 'agrees with its teacher (%), mean ± std (per seed)'],
    MIMIC_VARIANTS.map((v) => [words[v], seedsCell(results[v].map((r) => r.top1)), seedsCell(results[v].map((r) => r.agreement))]),
  );
  const best = Math.max(...MIMIC_VARIANTS.map((v) => meanStd(results[v].map((r) => r.top1)).mean));
  // Paired by seed: the same student initialization and data order in every row of a seed.
  const versus = (v: MimicVariant, than: MimicVariant): string => pairedDifference(results[v].map((r) => r.top1), results[than].map((r) => r.top1));

  await plotMimic(path.join(outDir, 'mimic.png'), results, teachers);

  const body = `# Mimic learning: do shallow nets need labels, or a deep net's logits?

**Claim (Ba & Caruana, "Do Deep Nets Really Need to be Deep?", NIPS 2014, §2 and §3):** a shallow network
trained to regress a deep teacher's logits with L2 learns more than the same network trained on the labels;
the teacher answers for a large transfer set of images without labels, which lets the shallow network come
close to the deep one (their TIMIT and CIFAR-10 students learned from far more images than were labelled).
Hinton et al.'s soft targets at a temperature (2015) are the usual alternative to the logits.

**Setup:** Fashion-MNIST with the labels of ${int(b.labelled)} training images kept (\`--labelled ${b.labelled}\`: the same share of every
class, the same images in every run); the other ${int(60000 - b.labelled)} are the transfer set (\`--unlabelled-rest\`), taught by a
teacher alone. The deep teacher is tsvision's \`cnn\` trained on all 60,000 labels (${b.teacherEpochs} epoch${b.teacherEpochs > 1 ? 's' : ''}, \`npm start\`'s recipe):
test top-1 **${pct(teachers.strong)}%**. The weak teacher is the same \`cnn\` trained on the ${int(b.labelled)} labelled images alone (${b.weakTeacherEpochs} epoch${b.weakTeacherEpochs > 1 ? 's' : ''} with
random crops and flips): **${pct(teachers.weak)}%**. Every student is \`shallow\` (one convolution and one wide hidden layer), trained by
\`runMimic\` with Adam at 10⁻³, batch 128, for ${int(plan.steps)} optimizer steps: ${b.studentEpochs} epoch${b.studentEpochs > 1 ? 's' : ''} over the 60,000 images with the transfer set,
${plan.labelledEpochs} over the ${int(b.labelled)} labelled ones without it. The teachers' logits are computed once per image. Seed${n > 1 ? 's' : ''} ${seeds.join(', ')} fix${n > 1 ? '' : 'es'}
the student's initialization and data order, the same in every row, so the comparison is paired; *agrees* is
the share of the 10,000 test images where the student's top class is its teacher's (for the student on
labels, the deep teacher's).

${table}

![test top-1 of every student and seed](mimic.png)

**Conclusion:** from the deep teacher's logits on the same labelled images, the student scores
${versus('mimic', 'labels')} against the labels; with the transfer set ${versus('mimic-transfer', 'labels')}, which is
${versus('mimic-transfer', 'mimic')} over the logits without it; from the soft targets with the transfer set
${versus('distil-transfer', 'labels')}. The best student's mean, ${pct(best)}%, is ${pct(Math.abs(teachers.strong - best))} points ${best < teachers.strong ? 'below' : 'above'} the deep
teacher's ${pct(teachers.strong)}%. From the weak teacher (${pct(teachers.weak)}%), with the transfer set: ${versus('weak-transfer', 'labels')}.
Caveats: a 28-pixel dataset, one student architecture, one recipe for every row, one teacher per kind, and ${n} seed${n > 1 ? 's' : ''}.
`;
  return writeReport(outDir, 'mimic', quick, body, (Date.now() - t0) / 1000);
}
