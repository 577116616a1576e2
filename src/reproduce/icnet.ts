// Zhao, Qi, Shen, Shi and Jia, "ICNet for Real-Time Semantic Segmentation on High-Resolution Images" (ECCV
// 2018), §6.2: the cascade's prediction gains accuracy with each finer branch for little more time (Table 3:
// sub4, sub24, sub124), cascade label guidance helps the final prediction, and the image cascade makes ICNet
// cost a fraction of PSPNet's time at 1024×2048. Here the accuracy claims on Fashion-MNIST scenes — every run
// through `trainSegmentation` as `tsvision segment -m icnet [--opt lambdas=0,0,1]` runs it, three seeds, the
// cut cascades scored as `tsvision eval --opt output=sub4` scores them — and the cost claims on the
// paper-sized networks at the paper's resolution, timed in turns on this machine.
import * as os from 'node:os';
import * as path from 'node:path';
import { Tensor, randn, tidy } from '../torch';
import { SegmentationNet } from '../models/segmentation';
import { ICNET_OUTPUTS, ICNetOutput } from '../models/icnet';
import { createSegmentationModel } from '../models';
import { summary } from '../metrics/summary';
import { measureLatency } from '../metrics/speed';
import { savePlotsPng } from '../report/plot';
import { SEGMENT_RECIPES, evaluateSegmentCheckpoint } from '../train/segment';
import { Ablation, AblationResults, Scores, ablationTable, mIoUDifference, runAblation, sceneCost } from './ablation';
import { Log, int, markdownTable, pairedDifference, pct, seedsCell, withThreads, writeReport } from './common';

/** The loss ablation: the cascade trained on its final prediction alone, then with cascade label guidance (ICNet). */
export const ICNET_VARIANTS = ['final', 'clg'] as const;
export type IcnetVariant = (typeof ICNET_VARIANTS)[number];

/** Scores of each cut of a trained cascade on the run's test scenes, as `eval --opt output=<cut>` gives them. */
async function cascadeScores(checkpoint: string, limitBatches: number): Promise<Record<ICNetOutput, Scores>> {
  const out = {} as Record<ICNetOutput, Scores>;
  for (const output of ICNET_OUTPUTS) {
    const r = await evaluateSegmentCheckpoint(checkpoint, { modelOptions: { output }, limitBatches });
    out[output] = { mIoU: r.mIoU, pixelAccuracy: r.pixelAccuracy };
  }
  return out;
}

export const ICNET_ABLATION: Ablation<IcnetVariant> = {
  model: 'icnet',
  variants: ICNET_VARIANTS,
  options: { final: { lambdas: [0, 0, 1] }, clg: {} },
  words: {
    final: 'the cascade trained on its final 1/4 prediction alone (λ1 = λ2 = 0)',
    clg: '+ cascade label guidance, λ = 0.16, 0.4, 1 (ICNet)',
  },
  // Only guidance trains the cut cascades' classifiers, so only ICNet's are scored.
  evaluate: { clg: cascadeScores },
};

/** The cost comparison: the paper's networks at the paper's resolution. */
export const ICNET_TIMING = { size: [1024, 2048] as [number, number], rounds: 3, reps: 1, warmup: 1 };
export const ICNET_QUICK_TIMING = { size: [128, 256] as [number, number], rounds: 1, reps: 1, warmup: 0 };

export interface CostRow {
  network: string;
  /** Parameters of the layers its eval-mode forward pass runs. */
  parameters: number;
  multAdds: number;
  /** Median milliseconds per batch-1 forward pass (eval mode, no autograd). */
  ms: number;
}

export interface IcnetStudy extends AblationResults<IcnetVariant> {
  reportPath: string;
  cost1024: CostRow[];
  timing: typeof ICNET_TIMING;
  threads: number;
}

/**
 * ICNet's three cuts and PSPNet, paper-sized (ResNet-50, 19 classes, RGB; weights as initialized, which time
 * does not depend on), on one input: size and mult-adds from `summary`, then latency in turns (medians).
 */
function measureCost(t: typeof ICNET_TIMING, log: Log): CostRow[] {
  const nets: { network: string; model: SegmentationNet }[] = [
    ...ICNET_OUTPUTS.map((output) => ({ network: `ICNet (ResNet-50), output ${output}`, model: createSegmentationModel('icnet', { output }) })),
    { network: 'PSPNet (ResNet-50, output stride 8)', model: createSegmentationModel('pspnet', {}) },
  ];
  const shape = [1, 3, ...t.size];
  const sizes = nets.map(({ network, model }) => {
    const s = summary(model.eval(), shape);
    log(`  ${network}: ${int(s.usedParams)} parameters, ${(s.totalMultAdds / 1e9).toFixed(1)}G mult-adds at ${t.size.join('×')}`);
    return { parameters: s.usedParams, multAdds: s.totalMultAdds };
  });
  const x: Tensor = tidy(() => randn(shape).keep());
  try {
    const lat = measureLatency(nets.map((n) => n.model), x, { rounds: t.rounds, reps: t.reps, warmup: t.warmup });
    return nets.map((n, i) => {
      log(`  ${n.network}: ${lat[i].ms.toFixed(0)} ms`);
      return { network: n.network, ...sizes[i], ms: lat[i].ms };
    });
  } finally {
    x.dispose();
  }
}

export async function reproduceIcnet(outDir: string, quick: boolean, log: Log): Promise<IcnetStudy> {
  const t0 = Date.now();
  const r = await runAblation(ICNET_ABLATION, quick, log);
  const { budget: b, seeds } = r;
  const n = seeds.length;
  const timing = quick ? ICNET_QUICK_TIMING : ICNET_TIMING;
  // Time as a deployment would run: on every core (the accuracy runs above are pinned to one thread).
  const threads = os.cpus().length;
  log(`cost at ${timing.size.join('×')}, ${threads} threads:`);
  const cost1024 = await withThreads(threads, async () => measureCost(timing, log));

  /** One score of one cut over the ICNet runs, seed by seed. */
  const cuts = (cut: ICNetOutput, score: keyof Scores = 'mIoU'): number[] => r.results.clg.map((x) => x.extra![cut][score]);
  const cutMultAdds = Object.fromEntries(ICNET_OUTPUTS.map((output) => [output, sceneCost('icnet', { output }).multAdds])) as Record<ICNetOutput, number>;
  const cutWords: Record<ICNetOutput, string> = { sub4: 'sub4: the 1/4 branch alone (CFF24\'s guidance classifier, 1/16)', sub24: 'sub24: the 1/4 and 1/2 branches (CFF12\'s, 1/8)', sub124: 'sub124: the whole cascade (ICNet\'s output, 1/4)' };
  const cutTable = markdownTable(
    ['prediction', 'flags', 'mult-adds per scene', 'test mIoU (%), mean ± std (per seed)', 'pixel accuracy (%), mean ± std (per seed)'],
    ICNET_OUTPUTS.map((c) => [cutWords[c], c === 'sub124' ? '(defaults)' : `\`--opt output=${c}\``, `${(cutMultAdds[c] / 1e6).toFixed(2)}M`, seedsCell(cuts(c)), seedsCell(cuts(c, 'pixelAccuracy'))]),
  );
  const full = cost1024[ICNET_OUTPUTS.indexOf('sub124')];
  const psp = cost1024[cost1024.length - 1];
  const costTable = markdownTable(
    [`network at ${timing.size.join('×')}`, 'parameters used', 'mult-adds', `latency, batch 1 (ms, median of ${timing.rounds * timing.reps})`, 'time relative to ICNet'],
    cost1024.map((c) => [c.network, int(c.parameters), `${(c.multAdds / 1e9).toFixed(1)}G`, c.ms.toFixed(0), `${(c.ms / full.ms).toFixed(2)}×`]),
  );

  await savePlotsPng(path.join(outDir, 'icnet.png'), [
    {
      title: 'ICNet on Fashion-MNIST scenes: test mIoU per seed',
      xLabel: 'prediction',
      yLabel: 'test mIoU (%)',
      categories: ['sub4', 'sub24', 'sub124 (ICNet)', 'sub124 trained without guidance'],
      width: 720,
      series: r.results.clg.map((run, i) => ({
        name: `seed ${run.seed}`,
        points: [...ICNET_OUTPUTS.map((c, k): [number, number] => [k + 1, 100 * run.extra![c].mIoU]), [4, 100 * r.results.final[i].mIoU]],
      })),
    },
  ]);

  const recipe = SEGMENT_RECIPES.icnet;
  const o = recipe.modelOptions as { backbone: string; width: number; bins: number[] };
  const versus = (a: number[], c: number[]): string => pairedDifference(a, c, { unit: 'of mIoU' });
  const body = `# ICNet: does each branch of the cascade, and cascade label guidance, pay for itself?

**Claims (Zhao et al., "ICNet for Real-Time Semantic Segmentation on High-Resolution Images", ECCV 2018,
§6.2):** (1) Table 3: the same trained ICNet predicts from the 1/4 branch alone (sub4), from the 1/4 and 1/2
branches (sub24) or from all three (sub124); each finer branch raises mIoU (59.6, 66.5 and 67.7% on Cityscapes
val) for a small rise in time (18, 25 and 33 ms). (2) Cascade label guidance — the 1/16 and 1/8 predictions
each supervised by the labels at their scale, weighted λ1 = 0.16 and λ2 = 0.4 beside the final 1/4
prediction's λ3 = 1 — raises the final prediction's mIoU over training on it alone. (3) Because the heavy
layers run on the 1/4 image only, ICNet runs at 1024×2048 in real time (about 30 fps on one GPU), where
PSPNet with the same ResNet-50 runs far slower.

**Setup, accuracy:** Fashion-MNIST scenes, 64×64 and grey, up to 3 garments each on 11 classes (10 and
background): ${int(b.trainScenes)} training and ${int(b.testScenes)} test scenes of each seed's layouts. Every network is \`tsvision segment -m icnet\`'s, with its recipe:
a dilated ${o.backbone} at width ${o.width} for the 1/2 and 1/4 branches, pyramid bins ${o.bins.join(', ')} (the scenes' 1/32 maps are 2×2), SGD with momentum ${recipe.momentum},
lr ${recipe.lr} with poly decay, weight decay ${recipe.weightDecay}, batch 16, ENet's class weights, ${b.epochs} epoch${b.epochs > 1 ? 's' : ''}; only the flags in the table
differ. Seed${n > 1 ? 's' : ''} ${seeds.join(', ')} fix${n > 1 ? '' : 'es'} the scenes, initialization and batch order, the same in every row, so the comparison is paired.
The cut cascades are the ICNet runs' own networks, scored on the same test scenes (\`tsvision eval -c <run>/checkpoint.safetensors --opt output=sub4\`).

${ablationTable(ICNET_ABLATION, r)}

The three predictions of the ICNet runs above:

${cutTable}

![test mIoU of every prediction and seed](icnet.png)

**Setup, cost:** the paper-sized networks — ICNet and PSPNet on a dilated ResNet-50, 19 classes, RGB — at
${timing.size.join('×')}, batch 1, eval mode without autograd, as built (no BatchNorm folding), libtorch on this machine's ${threads} CPU
threads (a CPU, not the paper's GPU: the ratios are the claim here, not the milliseconds); the four networks take turns in
${timing.rounds} round${timing.rounds > 1 ? 's' : ''} of ${timing.warmup} untimed and ${timing.reps} timed pass${timing.reps > 1 ? 'es' : ''}.

${costTable}

**Conclusion:** each finer branch's gain on the scenes: sub24 over sub4 ${versus(cuts('sub24'), cuts('sub4'))}; sub124 over
sub24 ${versus(cuts('sub124'), cuts('sub24'))}. Cascade label guidance against the final loss alone: ${mIoUDifference(r, 'clg', 'final')}.
At ${timing.size.join('×')} the cut cascades take ${pct(cost1024[0].ms / full.ms)}% (sub4) and ${pct(cost1024[1].ms / full.ms)}% (sub24) of the whole cascade's time,
and ICNet takes ${pct(full.ms / psp.ms)}% of PSPNet's time (${pct(full.multAdds / psp.multAdds)}% of its mult-adds).
Caveats: 64-pixel scenes, on which the coarse branches' maps are a few pixels across (the paper's images are
Cityscapes' 1024×2048); a small backbone trained for minutes from scratch, not ImageNet-pretrained; ${n} seed${n > 1 ? 's' : ''}; time on a CPU.
`;
  return { reportPath: writeReport(outDir, 'icnet', quick, body, (Date.now() - t0) / 1000), ...r, cost1024, timing, threads };
}
