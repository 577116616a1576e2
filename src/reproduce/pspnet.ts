// Zhao et al., "Pyramid Scene Parsing Network" (CVPR 2017), §5.2 (Tables 2 and 3): on the same dilated
// ResNet, the pyramid pooling module raises mIoU over the baseline whose head sees the features alone (the
// dilated FCN), and the auxiliary loss on layer3 raises it further. Here on Fashion-MNIST scenes, every run
// through `trainSegmentation` as `tsvision segment -m pspnet --opt ppm=false --opt auxWeight=0` (and so on)
// runs it, three seeds each; only the two parts under test differ.
import { SegmentationNet, createSegmentationModel } from '../models';
import { PSPNet } from '../models/pspnet';
import { summary } from '../metrics/summary';
import { SEGMENT_RECIPES, trainSegmentation } from '../train/segment';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { savePlotsPng } from '../report/plot';
import { Log, int, mAdds, markdownTable, pairedDifference, pct, seedsCell, writeReport } from './common';

export const PSPNET_SEEDS = [0, 1, 2] as const;

export interface PspnetBudget {
  trainScenes: number;
  testScenes: number;
  epochs: number;
  /** Caps every run's batches per epoch (quick mode); 0: none. */
  limitBatches: number;
}

export const PSPNET_BUDGET: PspnetBudget = { trainScenes: 4000, testScenes: 2000, epochs: 4, limitBatches: 0 };
export const PSPNET_QUICK_BUDGET: PspnetBudget = { trainScenes: 64, testScenes: 32, epochs: 1, limitBatches: 2 };

/** The paper's ablation, smallest first: the dilated FCN, + pyramid pooling, + the auxiliary loss (PSPNet). */
export const PSPNET_VARIANTS = ['fcn', 'ppm', 'ppm-aux'] as const;
export type PspnetVariant = (typeof PSPNET_VARIANTS)[number];

const VARIANT_OPTIONS: Record<PspnetVariant, { ppm?: boolean; auxWeight?: number }> = { fcn: { ppm: false, auxWeight: 0 }, ppm: { auxWeight: 0 }, 'ppm-aux': {} };
const VARIANT_WORDS: Record<PspnetVariant, string> = {
  fcn: 'dilated FCN (the head on the features alone)',
  ppm: '+ pyramid pooling (bins 1, 2, 3, 6)',
  'ppm-aux': '+ auxiliary loss on layer3, weight 0.4 (PSPNet)',
};
const VARIANT_FLAGS: Record<PspnetVariant, string> = { fcn: '--opt ppm=false --opt auxWeight=0', ppm: '--opt auxWeight=0', 'ppm-aux': '' };

export interface PspnetRun {
  seed: number;
  mIoU: number;
  pixelAccuracy: number;
}

export interface PspnetStudy {
  reportPath: string;
  results: Record<PspnetVariant, PspnetRun[]>;
  /** Parameters at test time (the auxiliary head dropped) and mult-adds per 64×64 scene. */
  cost: Record<PspnetVariant, { parameters: number; auxParameters: number; multAdds: number }>;
}

export async function reproducePspnet(outDir: string, quick: boolean, log: Log): Promise<PspnetStudy> {
  const t0 = Date.now();
  const b = quick ? PSPNET_QUICK_BUDGET : PSPNET_BUDGET;
  const seeds: readonly number[] = quick ? [0] : PSPNET_SEEDS;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsv-pspnet-'));
  try {
    const results: Record<PspnetVariant, PspnetRun[]> = { fcn: [], ppm: [], 'ppm-aux': [] };
    let classes = 0;
    for (const seed of seeds) {
      for (const v of PSPNET_VARIANTS) {
        const r = await trainSegmentation(
          {
            model: 'pspnet',
            modelOptions: VARIANT_OPTIONS[v],
            scenes: { size: 64, trainCount: b.trainScenes, testCount: b.testScenes, maxItems: 3 },
            epochs: b.epochs,
            seed,
            limitBatches: b.limitBatches,
            outDir: path.join(work, `seed-${seed}`, v),
          },
          () => {},
        );
        classes = r.classes.length;
        results[v].push({ seed, mIoU: r.final!.testMIoU, pixelAccuracy: r.final!.testPixelAccuracy });
        log(`  seed ${seed}, ${VARIANT_WORDS[v]}: test mIoU ${pct(r.final!.testMIoU)}%, pixel accuracy ${pct(r.final!.testPixelAccuracy)}%`);
      }
    }
    const cost = Object.fromEntries(PSPNET_VARIANTS.map((v) => [v, costOf(v, classes)])) as PspnetStudy['cost'];
    const reportPath = await writePspnetReport(outDir, quick, b, seeds, results, cost, t0);
    return { reportPath, results, cost };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** A variant's size as the runs built it (the scenes are grey, 64×64): test-time parameters, the aux head's, mult-adds. */
function costOf(v: PspnetVariant, numClasses: number): { parameters: number; auxParameters: number; multAdds: number } {
  const m = createSegmentationModel('pspnet', { ...SEGMENT_RECIPES.pspnet.modelOptions, ...VARIANT_OPTIONS[v], numClasses, inChannels: 1 }) as SegmentationNet as PSPNet;
  const aux = m.aux ? m.aux.numParameters() : 0;
  const s = summary(m, [1, 1, 64, 64]);
  return { parameters: m.numParameters() - aux, auxParameters: aux, multAdds: s.totalMultAdds };
}

/** Every run's test mIoU, one line per seed, so that a seed's networks read as one path. */
export async function plotPspnet(file: string, results: Record<PspnetVariant, PspnetRun[]>): Promise<void> {
  await savePlotsPng(file, [
    {
      title: 'PSPNet ablation on Fashion-MNIST scenes: test mIoU per seed',
      xLabel: 'network (each adds to the one on its left)',
      yLabel: 'test mIoU (%)',
      categories: ['dilated FCN', '+ pyramid pooling', '+ auxiliary loss (PSPNet)'],
      width: 720,
      series: results.fcn.map((r, i) => ({ name: `seed ${r.seed}`, points: PSPNET_VARIANTS.map((v, k): [number, number] => [k + 1, 100 * results[v][i].mIoU]) })),
    },
  ]);
}

async function writePspnetReport(outDir: string, quick: boolean, b: PspnetBudget, seeds: readonly number[], results: Record<PspnetVariant, PspnetRun[]>, cost: PspnetStudy['cost'], t0: number): Promise<string> {
  const n = seeds.length;
  const recipe = SEGMENT_RECIPES.pspnet;
  const o = recipe.modelOptions as { backbone: string; width: number; headChannels: number; auxChannels: number };
  const table = markdownTable(
    ['network', 'flags', 'parameters at test time', 'mult-adds per scene', 'test mIoU (%), mean ± std (per seed)', 'pixel accuracy (%), mean ± std (per seed)'],
    PSPNET_VARIANTS.map((v) => [
      VARIANT_WORDS[v],
      VARIANT_FLAGS[v] ? `\`${VARIANT_FLAGS[v]}\`` : '(defaults)',
      `${int(cost[v].parameters)}${cost[v].auxParameters ? ` (+ ${int(cost[v].auxParameters)} in training)` : ''}`,
      `${mAdds(cost[v].multAdds)}M`,
      seedsCell(results[v].map((r) => r.mIoU)),
      seedsCell(results[v].map((r) => r.pixelAccuracy)),
    ]),
  );
  // Paired by seed: the same scenes, initialization and batch order in every row of a seed.
  const versus = (v: PspnetVariant, than: PspnetVariant): string => pairedDifference(results[v].map((r) => r.mIoU), results[than].map((r) => r.mIoU), { unit: 'of mIoU' });

  await plotPspnet(path.join(outDir, 'pspnet.png'), results);

  const body = `# PSPNet: does pyramid pooling, and an auxiliary loss, help a dilated ResNet?

**Claim (Zhao et al., "Pyramid Scene Parsing Network", CVPR 2017, §5.2, Tables 2 and 3):** on the same
dilated ResNet (output stride 8), the pyramid pooling module — the features average-pooled into 1×1, 2×2,
3×3 and 6×6 bins, each reduced by a 1×1 conv, upsampled and concatenated with them — raises mIoU over the
baseline whose head sees the features alone (Table 2, ADE20K with ResNet-50, both with the auxiliary loss);
an auxiliary loss on layer3's features, weighted 0.4 and dropped at test time, raises mIoU over training
without it (Table 3, on the baseline).

**Setup:** Fashion-MNIST scenes, 64×64 and grey, up to 3 garments each on 11 classes (10 and background):
${int(b.trainScenes)} training scenes and ${int(b.testScenes)} test scenes of each seed's layouts. Every network is \`tsvision segment -m pspnet\`'s, with
its recipe: a dilated ${o.backbone} at width ${o.width} (output stride 8), a ${o.headChannels}-filter head (the auxiliary one ${o.auxChannels}), SGD with momentum
${recipe.momentum}, lr ${recipe.lr} with poly decay, weight decay ${recipe.weightDecay}, batch 16, ENet's class weights, ${b.epochs} epoch${b.epochs > 1 ? 's' : ''}; only the flags in the table differ. Seed${n > 1 ? 's' : ''}
${seeds.join(', ')} fix${n > 1 ? '' : 'es'} the scenes, initialization and batch order, the same in every row, so the comparison is paired.

${table}

![test mIoU of every network and seed](pspnet.png)

**Conclusion:** pyramid pooling against the dilated FCN: ${versus('ppm', 'fcn')}; the auxiliary loss on
top: ${versus('ppm-aux', 'ppm')}; PSPNet against the dilated FCN: ${versus('ppm-aux', 'fcn')}. The pyramid costs
${pct(cost.ppm.multAdds / cost.fcn.multAdds - 1)}% more mult-adds than the FCN here (its head reads twice the channels); the auxiliary head costs nothing at test time.
Caveats: 64-pixel scenes, which the backbone's receptive field already spans (the paper's scenes are
ADE20K's, where global context is what the baseline lacks); a small backbone trained for minutes from scratch, not
ImageNet-pretrained; ${n} seed${n > 1 ? 's' : ''}.
`;
  return writeReport(outDir, 'pspnet', quick, body, (Date.now() - t0) / 1000);
}
