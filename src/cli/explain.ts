// `tsvision explain <weights> <images...>`: Grad-CAM heatmaps of a classifier — for each image the class it
// chose (or --class) and <out>/<name>.gradcam.png, the image with the network's evidence for that class laid
// over it (warm where it looked) — or of a segmentation network, for the region of a class (Seg-Grad-CAM).

import { FolderResize, folderFit } from '../train/datasets';
import * as path from 'node:path';
import { tidy } from '../torch';
import { Predictor } from '../infer/predict';
import { Normalization } from '../infer/restore';
import { heatmapPng } from '../report/overlay';
import { writeFileAtomic } from '../util/fs';
import { SkippedImages, expandImages, outputNames } from './predict';

export interface ExplainCommandOptions {
  model?: string;
  opt: Record<string, unknown>;
  out: string;
  layer?: string;
  /** A class name or index; default each image's top class. */
  class?: string;
  alpha: number;
  json: boolean;
  size?: [number, number];
  /** How images reach the size: 'squash' or 'crop' (the centre 87.5%); default: as the run evaluated. */
  resize?: FolderResize;
  normalization?: Normalization;
}

export async function explainCommand(weights: string, args: readonly string[], o: ExplainCommandOptions): Promise<void> {
  const files = expandImages(args);
  const names = outputNames(files, '.gradcam.png');
  // The network exactly as trained: the gradient runs through it (no folding, no oneDNN layout).
  const predictor = await Predictor.load(weights, { model: o.model, opt: o.opt, size: o.size, ...(o.resize ? { resize: folderFit({ resize: o.resize }) } : {}), normalization: o.normalization, optimize: false });
  const classIndex = o.class === undefined ? undefined : classOf(o.class, predictor.classes);
  const results = [];
  const skipped = new SkippedImages();
  for (const [i, file] of files.entries()) {
    const e = await skipped.attempt(file, () => predictor.explain(file, { layer: o.layer, classIndex }));
    if (!e) continue;
    const out = path.join(o.out, `${names[i]}.gradcam.png`);
    // ReLU(Σ α_k A^k) can be 0 everywhere: no position adds evidence for the class at this layer.
    const empty = tidy(() => e.heatmap.max().item()) === 0;
    try {
      writeFileAtomic(out, await heatmapPng(e.image, e.heatmap, { alpha: o.alpha }));
    } finally {
      e.heatmap.dispose();
      e.image.dispose();
    }
    const r = { file, class: e.className, classIndex: e.classIndex, probability: e.probability, layer: e.layer, heatmap: out, empty };
    results.push(r);
    const note = empty ? `; no position of ${r.layer}'s maps adds evidence for it, so the heatmap is empty (try --layer)` : '';
    const what = predictor.segmentation ? `${r.class} region, mean probability ${(100 * r.probability).toFixed(1)}%` : `${r.class} ${(100 * r.probability).toFixed(1)}%`;
    if (!o.json) console.log(`${file}: ${what} (Grad-CAM of ${r.layer}${note}) → ${out}`);
  }
  if (o.json) console.log(JSON.stringify(results, null, 2));
  skipped.finish(files.length);
}

/** A class by name, or by index when no class has that name. */
function classOf(c: string, classes: readonly string[]): number {
  const named = classes.indexOf(c);
  if (named >= 0) return named;
  const n = Number(c);
  if (Number.isInteger(n) && n >= 0 && n < Math.max(classes.length, 1)) return n;
  throw new Error(`--class: '${c}' is neither a class name (${classes.join(', ')}) nor an index below ${classes.length}`);
}
