// Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation" (DeepLab-V3, 2017), §4.2
// (Tables 3 to 5): on a dilated ResNet, multi-grid unit rates in block4 raise mIoU over one rate for every
// unit, and ASPP's image-level features raise it further. Here on Fashion-MNIST scenes, every run through
// `trainSegmentation` as `tsvision segment -m deeplabv3 --opt multiGrid=1,1 --opt imagePooling=false` (and so
// on) runs it, three seeds each; only the two parts under test differ.
import * as path from 'node:path';
import { SEGMENT_RECIPES } from '../train/segment';
import { Ablation, AblationResults, ablationTable, mIoUDifference, plotAblation, runAblation } from './ablation';
import { Log, int, pct, writeReport } from './common';

/** The paper's ablation, smallest first: ASPP alone, + multi-grid, + image-level features (DeepLab-V3). */
export const DEEPLABV3_VARIANTS = ['aspp', 'multigrid', 'deeplabv3'] as const;
export type DeeplabVariant = (typeof DEEPLABV3_VARIANTS)[number];

export const DEEPLABV3_ABLATION: Ablation<DeeplabVariant> = {
  model: 'deeplabv3',
  variants: DEEPLABV3_VARIANTS,
  options: { aspp: { multiGrid: [1, 1], imagePooling: false }, multigrid: { imagePooling: false }, deeplabv3: {} },
  words: {
    aspp: 'ASPP without image-level features, block4 at one rate',
    multigrid: '+ multi-grid (1, 2) in block4',
    deeplabv3: '+ image-level features (DeepLab-V3)',
  },
};

export interface DeeplabStudy extends AblationResults<DeeplabVariant> {
  reportPath: string;
}

export async function reproduceDeeplabv3(outDir: string, quick: boolean, log: Log): Promise<DeeplabStudy> {
  const t0 = Date.now();
  const r = await runAblation(DEEPLABV3_ABLATION, quick, log);
  const { budget: b, seeds } = r;
  await plotAblation(path.join(outDir, 'deeplabv3.png'), 'DeepLab-V3 ablation on Fashion-MNIST scenes: test mIoU per seed', { aspp: 'ASPP, one rate', multigrid: '+ multi-grid', deeplabv3: '+ image pooling (DeepLab-V3)' }, DEEPLABV3_ABLATION, r);
  const n = seeds.length;
  const recipe = SEGMENT_RECIPES.deeplabv3;
  const o = recipe.modelOptions as { backbone: string; width: number; outputStride: number; atrousRates: number[]; channels: number };
  const versus = (v: DeeplabVariant, than: DeeplabVariant): string => mIoUDifference(r, v, than);
  const body = `# DeepLab-V3: do multi-grid rates and image-level features help ASPP?

**Claim (Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation", 2017, §4.2, Tables 3
to 5):** in a dilated ResNet, giving block4's three units the multi-grid rates (1, 2, 4) times the block's
rate raises mIoU over one rate for all of them, and adding image-level features to Atrous Spatial Pyramid
Pooling — the features averaged over the whole image, a 1×1 conv, upsampled back as a fifth branch — raises
it further (PASCAL VOC 2012 val, ResNet-50 and -101).

**Setup:** Fashion-MNIST scenes, 64×64 and grey, up to 3 garments each on 11 classes (10 and background):
${int(b.trainScenes)} training scenes and ${int(b.testScenes)} test scenes of each seed's layouts. Every network is \`tsvision segment -m deeplabv3\`'s, with
its recipe: a dilated ${o.backbone} at width ${o.width} and output stride ${o.outputStride} (block4 has two units, so multi-grid is (1, 2)), ASPP with ${o.channels} filters
per branch at rates (${o.atrousRates.join(', ')}) doubled at output stride 8 as the paper doubles its own (the 8×8 feature map is too small for
(6, 12, 18)), SGD with momentum ${recipe.momentum}, lr ${recipe.lr} with poly decay, weight decay ${recipe.weightDecay}, batch 16, ENet's class weights,
${b.epochs} epoch${b.epochs > 1 ? 's' : ''}; only the flags in the table differ. Seed${n > 1 ? 's' : ''} ${seeds.join(', ')} fix${n > 1 ? '' : 'es'} the scenes, initialization and batch order, the same in
every row, so the comparison is paired.

${ablationTable(DEEPLABV3_ABLATION, r)}

![test mIoU of every network and seed](deeplabv3.png)

**Conclusion:** multi-grid against one rate: ${versus('multigrid', 'aspp')}; image-level features on
top: ${versus('deeplabv3', 'multigrid')}; DeepLab-V3 against ASPP alone: ${versus('deeplabv3', 'aspp')}. The image-level
branch costs ${pct(r.cost.deeplabv3.multAdds / r.cost.multigrid.multAdds - 1)}% more mult-adds here; multi-grid changes rates, not costs.
Caveats: 64-pixel scenes, which the backbone's receptive field already spans (image-level features carry
context that PASCAL's larger images need and these may not); a small backbone trained for minutes from scratch, not
ImageNet-pretrained; ${n} seed${n > 1 ? 's' : ''}.
`;
  return { reportPath: writeReport(outDir, 'deeplabv3', quick, body, (Date.now() - t0) / 1000), ...r };
}
