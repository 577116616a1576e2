// Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions" (CVPR 2017): depthwise-separable
// convolutions in residual blocks make more efficient use of parameters (§4: Xception beats Inception V3 at
// about the same parameter count). Here: one small Xception-style network built twice — with separable
// convolutions, and with standard 3×3 convolutions at a width chosen so that the parameter counts match.
import * as path from 'node:path';
import { Tensor } from '../torch';
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d, Module, ReLU, Sequential } from '../nn';
import { initConvNet } from '../models/common';
import { SeparableConv2d } from '../models/xception';
import { savePlotsPng } from '../report/plot';
import { Budget, Fitted, Log, budgetLine, fit, int, mAdds, markdownTable, meanStd, pct, writeReport } from './common';

export type ConvKind = 'separable' | 'standard';

/** Exit-flow width of the separable network (entry-flow widths are ¼ and ½ of it). */
export const XCEPTION_SEPARABLE_CHANNELS = 128;
export const XCEPTION_SEEDS = [0, 1, 2] as const;
export const XCEPTION_BUDGET: Budget = { trainSamples: 6000, testSamples: 5000, epochs: 2, batchSize: 64, lr: 0.1 };
export const XCEPTION_QUICK_BUDGET: Budget = { trainSamples: 512, testSamples: 500, epochs: 1, batchSize: 64, lr: 0.1 };

/** Xception's residual block (Fig. 5): (ReLU, conv, BN) × reps, a 3×3/2 max-pool when strided, 1×1 projection shortcut. */
class Block extends Module {
  rep: Sequential;
  skip: Sequential | null;
  constructor(inC: number, outC: number, reps: number, stride: number, kind: ConvKind) {
    super();
    const layers: Module[] = [];
    for (let i = 0; i < reps; i++) {
      const a = i === 0 ? inC : outC;
      layers.push(new ReLU(), kind === 'separable' ? new SeparableConv2d(a, outC) : new Conv2d(a, outC, 3, { padding: 1, bias: false }), new BatchNorm2d(outC));
    }
    if (stride > 1) layers.push(new MaxPool2d(3, { stride, padding: 1 }));
    this.rep = new Sequential(...layers);
    this.skip = inC !== outC || stride > 1 ? new Sequential(new Conv2d(inC, outC, 1, { stride, bias: false }), new BatchNorm2d(outC)) : null;
  }
  forward(x: Tensor): Tensor {
    return this.rep.forward(x).add(this.skip ? this.skip.forward(x) : x);
  }
}

/**
 * A miniature of Xception's three flows for 28 px images. Entry: a standard 3×3 stem (as in the paper,
 * whose first two convolutions are standard) and two strided blocks of two convolutions (28 → 14 → 7 px).
 * Middle: two identity blocks of three convolutions. Exit: ReLU, global pool, FC. Only the convolutions
 * inside the blocks change between the two kinds; the stem, shortcuts and classifier are shared.
 */
export class MiniXception extends Module {
  stem: Sequential;
  blocks: Sequential;
  pool = new AdaptiveAvgPool2d(1);
  fc: Linear;
  /** Entry-flow and middle-flow widths. */
  readonly widths: readonly [number, number, number];
  constructor(readonly channels: number, readonly kind: ConvKind, numClasses = 10) {
    super();
    const c = channels;
    const [a, b] = [Math.max(1, Math.round(c / 4)), Math.max(1, Math.round(c / 2))];
    this.widths = [a, b, c];
    this.stem = new Sequential(new Conv2d(1, a, 3, { padding: 1, bias: false }), new BatchNorm2d(a), new ReLU());
    this.blocks = new Sequential(new Block(a, b, 2, 2, kind), new Block(b, c, 2, 2, kind), new Block(c, c, 3, 1, kind), new Block(c, c, 3, 1, kind));
    this.fc = new Linear(c, numClasses);
    initConvNet(this); // He-normal convolutions, as every tsvision conv net
  }
  forward(x: Tensor): Tensor {
    const h = this.blocks.forward(this.stem.forward(x));
    return this.fc.forward(this.pool.forward(h.relu()).flatten(1));
  }
}

/**
 * Parameter matching: the exit-flow width C of the standard-convolution net (entry widths C/4, C/2 rounded)
 * whose parameter count is closest to the separable net's, by exhaustive search over C. Varying C in steps
 * of 1 rather than a base width in steps of 1 matches to about 1%.
 */
export function matchedChannels(separableChannels: number): { channels: number; params: number; target: number } {
  const target = new MiniXception(separableChannels, 'separable').numParameters();
  let best = { channels: 1, params: new MiniXception(1, 'standard').numParameters(), target };
  for (let c = 2; c <= separableChannels; c++) {
    const p = new MiniXception(c, 'standard').numParameters();
    if (Math.abs(p - target) < Math.abs(best.params - target)) best = { channels: c, params: p, target };
  }
  return best;
}

export interface XceptionResults {
  reportPath: string;
  separable: Fitted[];
  standard: Fitted[];
  /** Exit-flow widths of the separable and the parameter-matched standard net. */
  channels: { separable: number; standard: number };
}

export async function reproduceXception(outDir: string, quick: boolean, log: Log): Promise<XceptionResults> {
  const t0 = Date.now();
  const budget = quick ? XCEPTION_QUICK_BUDGET : XCEPTION_BUDGET;
  const seeds: readonly number[] = quick ? [0] : XCEPTION_SEEDS;
  const sepC = quick ? 32 : XCEPTION_SEPARABLE_CHANNELS;
  const match = matchedChannels(sepC);
  const nets = { separable: new MiniXception(sepC, 'separable'), standard: new MiniXception(match.channels, 'standard') };
  log(`separable C = ${sepC} (${nets.separable.numParameters()} params); standard C = ${match.channels} (${match.params} params)`);
  const runs: { separable: Fitted[]; standard: Fitted[] } = { separable: [], standard: [] };
  for (const seed of seeds) {
    log(`separable convolutions, seed ${seed}:`);
    runs.separable.push(await fit(() => new MiniXception(sepC, 'separable'), budget, seed, 28, log));
    log(`standard convolutions, seed ${seed}:`);
    runs.standard.push(await fit(() => new MiniXception(match.channels, 'standard'), budget, seed, 28, log));
  }

  const label = (k: ConvKind): string => (k === 'separable' ? 'depthwise separable' : 'standard 3×3');
  const table = markdownTable(
    ['convolutions', 'widths (entry / middle)', 'params', 'mult-adds (M)', 'test top-1 (%), mean ± std', 'per seed (%)', 'train time / run (s)'],
    (['separable', 'standard'] as const).map((k) => {
      const r = runs[k];
      const m = meanStd(r.map((x) => x.top1));
      return [label(k), nets[k].widths.join(' / '), int(r[0].params), mAdds(r[0].multAdds), `${pct(m.mean)} ± ${pct(m.std)}`, r.map((x) => pct(x.top1)).join(', '), meanStd(r.map((x) => x.seconds)).mean.toFixed(0)];
    }),
  );

  await savePlotsPng(path.join(outDir, 'xception.png'), [
    {
      title: 'Matched parameters: test top-1 per seed against mult-adds',
      xLabel: 'million mult-adds per image',
      yLabel: 'test top-1 (%)',
      scatter: true,
      width: 720,
      series: (['separable', 'standard'] as const).map((k) => ({ name: `${label(k)} (C = ${nets[k].channels}, ${int(runs[k][0].params)} params)`, points: runs[k].map((r) => [r.multAdds / 1e6, 100 * r.top1] as [number, number]) })),
    },
  ]);

  const diffs = runs.separable.map((r, i) => r.top1 - runs.standard[i].top1);
  const d = meanStd(diffs);
  const n = seeds.length;
  const wins = diffs.filter((x) => x > 0).length;
  const pRatio = runs.standard[0].params / runs.separable[0].params;
  const verdict =
    d.mean > 0
      ? `At matched parameters (standard/separable = ${pRatio.toFixed(3)}), the separable network was ${pct(d.mean)} ± ${pct(d.std)} points more accurate (paired over ${n} seed${n > 1 ? 's' : ''}; it won ${wins} of ${n})` +
        `${n > 1 && d.mean > d.std ? ', in line with the claim' : ', in the claimed direction but within seed-to-seed noise'}.`
      : `At matched parameters (standard/separable = ${pRatio.toFixed(3)}), the separable network was ${pct(-d.mean)} ± ${pct(d.std)} points less accurate (paired over ${n} seed${n > 1 ? 's' : ''}; it won ${wins} of ${n}), ` +
        `against the claim at this scale and budget.`;
  const body = `# Xception: separable convolutions at a matched parameter count

**Claim (Chollet, "Xception", §4.4–4.5, Table 1, Table 3):** replacing Inception modules by depthwise-separable
convolutions in residual blocks makes more efficient use of the parameters: Xception (22.9M parameters)
beats Inception V3 (23.6M) on ImageNet, 79.0% vs 78.2% top-1, and the gap is larger on JFT.

**Setup:** one small Xception-style network, built twice. Entry flow: a standard 3×3 stem, then two residual
blocks of two convolutions each ending in a 3×3 stride-2 max-pool with a strided 1×1 projection shortcut
(28 → 14 → 7 px); middle flow: two identity residual blocks of three convolutions; exit flow: ReLU, global
average pool, FC. Each convolution in a block is preceded by ReLU and followed by BN, as in the paper's Fig. 5.
Widths are C/4, C/2, C. Separable net: every block convolution is a depthwise 3×3 then a pointwise 1×1 with
nothing in between (§4.7), C = ${sepC}. Standard net: every block convolution is a standard 3×3, and its C = ${match.channels}
was matched by exhaustive search over C for the parameter count closest to the separable net's
(${int(match.params)} vs ${int(match.target)}, ${(100 * (match.params / match.target - 1)).toFixed(1)}%). Both: ${budgetLine(budget)}.
Seeds ${seeds.join(', ')} for both (paired: same initialisation RNG seed and data order).

${table}

![separable vs standard](xception.png)

**Conclusion:** ${verdict} The separable network spent ${(runs.separable[0].multAdds / runs.standard[0].multAdds).toFixed(2)}× the standard network's mult-adds:
at equal parameters it is ${(sepC / match.channels).toFixed(1)}× wider, and a depthwise-separable layer's mult-adds per parameter equal the
spatial size, like a standard layer's, so equal parameters means roughly equal compute. In wall time it trained
${(meanStd(runs.separable.map((r) => r.seconds)).mean / meanStd(runs.standard.map((r) => r.seconds)).mean).toFixed(1)}× slower on this CPU (depthwise convolutions use the hardware poorly). Caveats: the paper compares
against Inception V3, not against plain convolutions, and trains for 60+ epochs on ImageNet; here the budget is
${budget.epochs} epoch${budget.epochs === 1 ? '' : 's'} on ${int(budget.trainSamples)} images and ${n} seed${n > 1 ? 's' : ''}.
`;
  return { reportPath: writeReport(outDir, 'xception', quick, body, (Date.now() - t0) / 1000), separable: runs.separable, standard: runs.standard, channels: { separable: sepC, standard: match.channels } };
}
