// Zhao et al., "Pyramid Scene Parsing Network" (CVPR 2017), §5.2 (Tables 2 and 3): on the same dilated
// ResNet, the pyramid pooling module raises mIoU over the baseline whose head sees the features alone (the
// dilated FCN), and the auxiliary loss on layer3 raises it further. Here on Fashion-MNIST scenes, every run
// through `trainSegmentation` as `tsvision segment -m pspnet --opt ppm=false --opt auxWeight=0` (and so on)
// runs it, three seeds each; only the two parts under test differ.
import * as path from 'node:path';
import { SEGMENT_RECIPES } from '../train/segment';
import { Ablation, AblationResults, ablationTable, mIoUDifference, plotAblation, runAblation } from './ablation';
import { Log, int, pct, writeReport } from './common';

/** The paper's ablation, smallest first: the dilated FCN, + pyramid pooling, + the auxiliary loss (PSPNet). */
export const PSPNET_VARIANTS = ['fcn', 'ppm', 'ppm-aux'] as const;
export type PspnetVariant = (typeof PSPNET_VARIANTS)[number];

export const PSPNET_ABLATION: Ablation<PspnetVariant> = {
  model: 'pspnet',
  variants: PSPNET_VARIANTS,
  options: { fcn: { ppm: false, auxWeight: 0 }, ppm: { auxWeight: 0 }, 'ppm-aux': {} },
  words: {
    fcn: 'dilated FCN (the head on the features alone)',
    ppm: '+ pyramid pooling (bins 1, 2, 3, 6)',
    'ppm-aux': '+ auxiliary loss on layer3, weight 0.4 (PSPNet)',
  },
};

export interface PspnetStudy extends AblationResults<PspnetVariant> {
  reportPath: string;
}

export async function reproducePspnet(outDir: string, quick: boolean, log: Log): Promise<PspnetStudy> {
  const t0 = Date.now();
  const r = await runAblation(PSPNET_ABLATION, quick, log);
  const { budget: b, seeds } = r;
  await plotAblation(path.join(outDir, 'pspnet.png'), 'PSPNet ablation on Fashion-MNIST scenes: test mIoU per seed', { fcn: 'dilated FCN', ppm: '+ pyramid pooling', 'ppm-aux': '+ auxiliary loss (PSPNet)' }, PSPNET_ABLATION, r);
  const n = seeds.length;
  const recipe = SEGMENT_RECIPES.pspnet;
  const o = recipe.modelOptions as { backbone: string; width: number; headChannels: number; auxChannels: number };
  const versus = (v: PspnetVariant, than: PspnetVariant): string => mIoUDifference(r, v, than);
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

${ablationTable(PSPNET_ABLATION, r)}

![test mIoU of every network and seed](pspnet.png)

**Conclusion:** pyramid pooling against the dilated FCN: ${versus('ppm', 'fcn')}; the auxiliary loss on
top: ${versus('ppm-aux', 'ppm')}; PSPNet against the dilated FCN: ${versus('ppm-aux', 'fcn')}. The pyramid costs
${pct(r.cost.ppm.multAdds / r.cost.fcn.multAdds - 1)}% more mult-adds than the FCN here (its head reads twice the channels); the auxiliary head costs nothing at test time.
Caveats: 64-pixel scenes, which the backbone's receptive field already spans (the paper's scenes are
ADE20K's, where global context is what the baseline lacks); a small backbone trained for minutes from scratch, not
ImageNet-pretrained; ${n} seed${n > 1 ? 's' : ''}.
`;
  return { reportPath: writeReport(outDir, 'pspnet', quick, body, (Date.now() - t0) / 1000), ...r };
}
