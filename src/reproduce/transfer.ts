// Yosinski et al., "How transferable are features in deep neural networks?" (NIPS 2014): features learned
// on one task help another, and a network started from them and fine-tuned generalizes better than one
// trained from scratch on the target task alone. Here: Fashion-MNIST's classes halved into tasks A and B,
// once into similar halves and once into dissimilar ones, through the user's own path — PNG folders,
// `train --init … --freeze-epochs`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { TensorDataset } from '../data';
import { savePlotsPng } from '../report/plot';
import { TrainConfig, train } from '../train/trainer';
import { Log, inWorkDir, fashion, int, markdownTable, pairedDifference, pct, seedsCell, writeReport } from './common';

/**
 * Two ways to halve Fashion-MNIST's classes into tasks A (the base network's) and B (the target), after the
 * paper's two splits: halves of similar classes (its random A/B split of ImageNet) and dissimilar ones (its
 * man-made/natural split).
 */
export const TRANSFER_SPLITS = {
  similar: { a: [0, 1, 4, 5, 8], b: [2, 3, 6, 7, 9], words: 'similar halves: tops, legwear or dresses, footwear and more on both sides' },
  dissimilar: { a: [0, 2, 4, 6, 8], b: [1, 3, 5, 7, 9], words: 'dissimilar halves: upper-body garments and bags against trousers, dresses and footwear' },
} as const;
export type TransferSplit = keyof typeof TRANSFER_SPLITS;
export const TRANSFER_SEEDS = [0, 1, 2] as const;

export interface TransferBudget {
  /** Base network: training images per class of A, epochs. */
  baseImages: number;
  baseEpochs: number;
  /** Target studies: training images per class of B, and epochs over them. */
  targets: readonly { images: number; epochs: number }[];
  /** Test images per class (of A for the base, of B for the target). */
  testImages: number;
  /** Target runs: batch size, the fine-tuned variant's frozen share of epochs, learning rate. */
  batchSize: number;
  freezeShare: number;
  lr: number;
}

export const TRANSFER_BUDGET: TransferBudget = { baseImages: 2400, baseEpochs: 2, targets: [{ images: 10, epochs: 15 }, { images: 100, epochs: 4 }], testImages: 200, batchSize: 10, freezeShare: 0.25, lr: 0.02 };
export const TRANSFER_QUICK_BUDGET: TransferBudget = { baseImages: 40, baseEpochs: 1, targets: [{ images: 4, epochs: 2 }], testImages: 8, batchSize: 4, freezeShare: 0.5, lr: 0.02 };

export const TRANSFER_VARIANTS = ['scratch', 'frozen', 'fine-tuned'] as const;
export type TransferVariant = (typeof TRANSFER_VARIANTS)[number];
const VARIANT_NAMES: Record<TransferVariant, string> = { scratch: 'from scratch (B only)', frozen: 'A\'s features frozen, new head', 'fine-tuned': 'A\'s features fine-tuned' };

export interface TransferRun {
  seed: number;
  images: number;
  top1: number;
}

export interface TransferStudy {
  /** The base network's test top-1 on task A. */
  baseTop1: number;
  results: Record<TransferVariant, TransferRun[]>;
}

export interface TransferResults {
  reportPath: string;
  studies: Record<TransferSplit, TransferStudy>;
}

/** A Fashion-MNIST split's labels and pixels in JavaScript, read out of libtorch once for every folder written. */
interface Images {
  ys: number[];
  pixels: Uint8Array;
  side: number;
  classes: readonly string[] | undefined;
}
const imagesOf = (d: TensorDataset): Images => ({ ys: Array.from(d.labels.toArray(), Number), pixels: d.images.toArray() as Uint8Array, side: d.images.size(2), classes: d.classes });

/** Writes the first `perClass` images of each of `labels` in `d` as <root>/<class name>/<i>.png. */
async function writeFolder(root: string, { ys, pixels, side, classes }: Images, labels: readonly number[], perClass: number): Promise<void> {
  const writes: Promise<unknown>[] = [];
  for (const c of labels) {
    // Folder names cannot hold '/': "T-shirt/top" becomes "T-shirt-top".
    const dir = path.join(root, (classes?.[c] ?? `class ${c}`).replace(/\//g, '-'));
    fs.mkdirSync(dir, { recursive: true });
    let k = 0;
    for (let i = 0; i < ys.length && k < perClass; i++) {
      if (ys[i] !== c) continue;
      const raw = Buffer.from(pixels.subarray(i * side * side, (i + 1) * side * side));
      writes.push(sharp(raw, { raw: { width: side, height: side, channels: 1 } }).png().toFile(path.join(dir, `${k++}.png`)));
    }
  }
  await Promise.all(writes);
}

export async function reproduceTransfer(outDir: string, quick: boolean, log: Log): Promise<TransferResults> {
  const t0 = Date.now();
  const b = quick ? TRANSFER_QUICK_BUDGET : TRANSFER_BUDGET;
  const seeds: readonly number[] = quick ? [0] : TRANSFER_SEEDS;
  return inWorkDir('tsv-transfer-', async (work) => {
    const { train, test } = fashion();
    const images = { train: imagesOf(train), test: imagesOf(test) };
    const studies = {} as Record<TransferSplit, TransferStudy>;
    for (const split of Object.keys(TRANSFER_SPLITS) as TransferSplit[]) studies[split] = await study(path.join(work, split), TRANSFER_SPLITS[split], images, b, seeds, log);
    return { reportPath: await writeTransferReport(outDir, quick, b, seeds, studies, t0), studies };
  });
}

/** One split: the base network on A, then the three variants on B at each target size and seed. */
async function study(work: string, split: (typeof TRANSFER_SPLITS)[TransferSplit], { train: trainSet, test: testSet }: { train: Images; test: Images }, b: TransferBudget, seeds: readonly number[], log: Log): Promise<TransferStudy> {
  const dirs = { aTrain: path.join(work, 'A', 'train'), aTest: path.join(work, 'A', 'test'), bTest: path.join(work, 'B', 'test') };
  log(`${split.words}: writing PNG folders under ${work}`);
  await writeFolder(dirs.aTrain, trainSet, split.a, b.baseImages);
  await writeFolder(dirs.aTest, testSet, split.a, b.testImages);
  await writeFolder(dirs.bTest, testSet, split.b, b.testImages);
  const folder = (trainDir: string, test: string): TrainConfig['data'] => ({ kind: 'image-folder', train: trainDir, test, size: 28, channels: 1 });
  const quiet = (): void => {};

  const base = await train({ model: 'cnn', data: folder(dirs.aTrain, dirs.aTest), epochs: b.baseEpochs, batchSize: 64, lr: 0.05, seed: 0, outDir: path.join(work, 'runs', 'base') }, quiet);
  const baseTop1 = base.final!.testTop1;
  log(`  base network on A (${split.a.length} classes × ${int(b.baseImages)} images): test top-1 ${pct(baseTop1)}%`);

  const results: Record<TransferVariant, TransferRun[]> = { scratch: [], frozen: [], 'fine-tuned': [] };
  for (const { images, epochs } of b.targets) {
    const bTrain = path.join(work, `B-${images}`, 'train');
    await writeFolder(bTrain, trainSet, split.b, images);
    const freezeEpochs = Math.max(1, Math.round(b.freezeShare * epochs));
    for (const seed of seeds) {
      for (const variant of TRANSFER_VARIANTS) {
        const transfer = variant === 'scratch' ? {} : { init: base.weights, freezeEpochs: variant === 'frozen' ? epochs : freezeEpochs };
        const r = await train({ model: 'cnn', data: folder(bTrain, dirs.bTest), epochs, batchSize: b.batchSize, lr: b.lr, seed, outDir: path.join(work, 'runs', `${variant}-${images}-${seed}`), ...transfer }, quiet);
        results[variant].push({ seed, images, top1: r.final!.testTop1 });
        log(`  B with ${images} images per class, seed ${seed}, ${VARIANT_NAMES[variant]}: test top-1 ${pct(r.final!.testTop1)}%`);
      }
    }
  }
  return { baseTop1, results };
}

async function writeTransferReport(outDir: string, quick: boolean, b: TransferBudget, seeds: readonly number[], studies: Record<TransferSplit, TransferStudy>, t0: number): Promise<string> {
  const { classes: names } = fashion().train;
  const splits = Object.keys(TRANSFER_SPLITS) as TransferSplit[];
  const n = seeds.length;
  const at = (s: TransferStudy, v: TransferVariant, images: number) => s.results[v].filter((r) => r.images === images);
  const cell = (runs: TransferRun[]): string => seedsCell(runs.map((r) => r.top1));
  const table = markdownTable(
    ['split', 'images per class of B', ...TRANSFER_VARIANTS.map((v) => `${VARIANT_NAMES[v]}: test top-1 (%), mean ± std (per seed)`)],
    splits.flatMap((sp) => b.targets.map(({ images }) => [sp, String(images), ...TRANSFER_VARIANTS.map((v) => cell(at(studies[sp], v, images)))])),
  );
  // Paired by seed: the same data order and head initialization for all three variants.
  const versus = (s: TransferStudy, v: TransferVariant, images: number): string =>
    pairedDifference(at(s, v, images).map((r) => r.top1), at(s, 'scratch', images).map((r) => r.top1), { than: 'scratch' });
  const verdict = splits
    .map((sp) => `**${sp}** halves: ${b.targets.map(({ images }) => `with ${images} images per class, fine-tuned ${versus(studies[sp], 'fine-tuned', images)}, frozen ${versus(studies[sp], 'frozen', images)}`).join('; ')}`)
    .join('. ');

  await savePlotsPng(path.join(outDir, 'transfer.png'), splits.map((sp) => ({
    title: `Task B test top-1 per seed, ${sp} halves`,
    xLabel: 'training images per class of B (log10)',
    yLabel: 'test top-1 (%)',
    scatter: true,
    width: 560,
    series: TRANSFER_VARIANTS.map((v, k) => ({ name: VARIANT_NAMES[v], points: studies[sp].results[v].map((r) => [Math.log10(r.images) + 0.02 * (k - 1), 100 * r.top1] as [number, number]) })),
  })));

  const label = (ls: readonly number[]) => ls.map((c) => names?.[c] ?? `class ${c}`).join(', ');
  const body = `# Transfer learning: do features learned on one task help another?

**Claim (Yosinski et al., "How transferable are features in deep neural networks?", NIPS 2014, §4.1–4.2 and
Figs. 2–3):** a network whose layers are copied from one trained on task A and then fine-tuned on task B
generalizes better on B than one trained on B alone (their AnB⁺ above BnB, a boost that lasts after
fine-tuning); with the copied layers frozen (AnB), what transfers shrinks as the tasks grow apart (their
man-made/natural split). The everyday consequence, fine-tuning a pretrained network on few labelled images,
is what \`train --init … --freeze-epochs n\` is for.

**Setup:** Fashion-MNIST's ten classes halved into tasks A and B of five, twice:
${splits.map((sp) => `- **${sp}** (${TRANSFER_SPLITS[sp].words}): A = ${label(TRANSFER_SPLITS[sp].a)}; B = ${label(TRANSFER_SPLITS[sp].b)}.`).join('\n')}

Everything goes through PNG folders and \`train\`, as a user's data would. The base network, tsvision's
compact CNN (\`cnn\`), is trained on A (${int(b.baseImages)} images per class, ${b.baseEpochs} epoch${b.baseEpochs > 1 ? 's' : ''}, batch 64, SGD lr 0.05,
cosine decay): ${splits.map((sp) => `${pct(studies[sp].baseTop1)}% (${sp})`).join(' and ')} on ${int(b.testImages * 5)} test images of A. On B, with
${b.targets.map((t) => `${t.images} training images per class (${t.epochs} epochs)`).join(' or ')}, the first of each class, three
networks are trained with batch ${b.batchSize} (SGD lr ${b.lr}, momentum 0.9, weight decay 5·10⁻⁴, cosine decay) and scored on
${int(b.testImages * 5)} test images of B (${b.testImages} per class): **from scratch** (B only); **frozen**: A's weights, a
fresh head, every other layer frozen throughout but BatchNorm, whose scale, shift and statistics adapt to B
(\`--freeze-epochs\` = epochs; fastai's \`train_bn\`); **fine-tuned**: the same start, frozen so for the first
${Math.round(100 * b.freezeShare)}% of epochs, then every layer. Seed${n > 1 ? 's' : ''} ${seeds.join(', ')} fix${n > 1 ? '' : 'es'} the new layers' initialization and the data order, the same for all
three, so the comparison is paired.

${table}

![task B test top-1 per seed](transfer.png)

**Conclusion:** ${verdict}. Caveats: a 4-layer CNN on 28-pixel images, one learning rate for all three
variants, tasks from one dataset, and ${n} seed${n > 1 ? 's' : ''}.
`;
  return writeReport(outDir, 'transfer', quick, body, (Date.now() - t0) / 1000);
}
