// `tsvision predict <weights> <images...>`: a trained network on the user's image files. Classifiers print
// their top-k classes; segmentation networks print the classes they found and, with --out, write a mask
// (grey value = class, the training masks' convention) and an overlay per image. --json prints one JSON
// document on stdout instead; progress (images/s) goes to stderr when there are many images.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fromArray, tidy, keep } from '../torch';
import { ClassScore, Predictor, SegmentationPrediction, readImage } from '../infer/predict';
import { Normalization } from '../infer/restore';
import { maskPng, overlayPng } from '../report/overlay';
import { writeFileAtomic } from '../util/fs';

export interface PredictCommandOptions {
  model?: string;
  opt: Record<string, unknown>;
  top: number;
  json: boolean;
  out?: string;
  size?: [number, number];
  native: boolean;
  legend: boolean;
  /** Segmentation: average over input scales and the mirrored image (DeepLab-V3 §4.3). */
  scales?: number[];
  flip: boolean;
  normalization?: Normalization;
  /** Images decoded and run through the network together. */
  batchSize: number;
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);
/** Above this many images a progress line (images/s) goes to stderr. */
const PROGRESS_FROM = 20;

type Result = { file: string } & ({ top: ClassScore[] } | (Omit<SegmentationPrediction, 'labels' | 'classes'> & { mask?: string; overlay?: string }));

export async function predictCommand(weights: string, args: readonly string[], o: PredictCommandOptions): Promise<void> {
  const files = expandImages(args); // before loading the network: a typo fails at once
  const predictor = await Predictor.load(weights, { model: o.model, opt: o.opt, size: o.size, native: o.native, normalization: o.normalization });
  if (o.out && !predictor.segmentation) throw new Error(`--out writes segmentation masks; ${predictor.name} is a classifier`);
  if ((o.scales || o.flip) && !predictor.segmentation) throw new Error(`--scales and --flip apply to segmentation networks; ${predictor.name} is a classifier`);
  const names = o.out ? outputNames(files) : null;
  const results: Result[] = [];
  const progress = files.length > PROGRESS_FROM ? progressLine(files.length) : null;
  // Batches of --batch-size files: decoded concurrently, run through the network together, then reported.
  for (let start = 0; start < files.length; start += o.batchSize) {
    const batch = await Promise.all(files.slice(start, start + o.batchSize).map(readImage));
    const done: Result[] = predictor.segmentation
      ? await Promise.all(
          (await predictor.segmentMany(batch, { scales: o.scales, flip: o.flip, batchSize: o.batchSize, keepImage: !!o.out })).map((p, j) =>
            segmentResult(p, batch[j].name, o, names?.[start + j]),
          ),
        )
      : (await predictor.classifyMany(batch, { topK: o.top, batchSize: o.batchSize })).map((top, j) => ({ file: batch[j].name, top }));
    for (const r of done) {
      results.push(r);
      if (!o.json) console.log(describe(r, predictor.classes));
    }
    progress?.(results.length);
  }
  if (o.json) {
    const task = predictor.segmentation ? 'segmentation' : 'classification';
    console.log(JSON.stringify({ model: predictor.name, task, classes: predictor.classes, results }, null, 2));
  }
}

/** Files as given, folders expanded to their .png/.jpg/.jpeg files (sorted); errors name the path. */
export function expandImages(args: readonly string[]): string[] {
  return args.flatMap((arg) => {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(arg);
    } catch {
      throw new Error(`${arg}: no such file`);
    }
    if (!stat.isDirectory()) return [arg];
    const inside = fs.readdirSync(arg, { withFileTypes: true })
      .filter((d) => d.isFile() && IMAGE_EXTENSIONS.has(path.extname(d.name).toLowerCase()))
      .map((d) => path.join(arg, d.name))
      .sort();
    if (inside.length === 0) throw new Error(`${arg}: a folder with no ${[...IMAGE_EXTENSIONS].join('/')} images`);
    return inside;
  });
}

/** `<out>/<name>` for each image (its base name without extension); two images of one name would overwrite. */
function outputNames(files: readonly string[]): string[] {
  const names = files.map((f) => path.basename(f, path.extname(f)));
  const seen = new Map<string, string>();
  files.forEach((f, i) => {
    const other = seen.get(names[i]);
    if (other) throw new Error(`${other} and ${f} would both write ${names[i]}.mask.png: give them different names`);
    seen.set(names[i], f);
  });
  return names;
}

async function segmentResult(p: SegmentationPrediction, file: string, o: PredictCommandOptions, name: string | undefined): Promise<Result> {
  const facts = { width: p.width, height: p.height, classPixels: p.classPixels };
  if (!o.out || name === undefined || !p.image) return { file, ...facts };
  const files = { mask: path.join(o.out, `${name}.mask.png`), overlay: path.join(o.out, `${name}.overlay.png`) };
  const decoded = p.image; // decoded with the prediction, at the image's own size
  const [pixels, labels] = tidy(() => keep([
    fromArray(decoded.pixels, [decoded.height, decoded.width, decoded.channels]).permute(2, 0, 1),
    fromArray(p.labels, [p.height, p.width]),
  ]));
  try {
    writeFileAtomic(files.mask, await maskPng(labels));
    writeFileAtomic(files.overlay, await overlayPng(pixels, labels, { classes: p.classes, legend: o.legend }));
  } finally {
    pixels.dispose();
    labels.dispose();
  }
  return { file, ...facts, ...files };
}

/** One human-readable line per image. */
function describe(r: Result, classes: readonly string[]): string {
  if ('top' in r) return `${r.file}: ${r.top.map((c) => `${c.class} ${pct(c.probability)}`).join(', ')}`;
  const total = r.width * r.height;
  const found = r.classPixels.map((n, i) => [i, n] as const).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  const written = r.mask ? ` → ${r.mask}, ${r.overlay}` : '';
  return `${r.file}: ${r.width}×${r.height}, ${found.map(([i, n]) => `${classes[i] ?? `class ${i}`} ${pct(n / total)}`).join(', ')}${written}`;
}

const pct = (p: number): string => `${(100 * p).toFixed(1)}%`;

/** A transient stderr line, redrawn at most 4 times a second: done/total and images per second; a newline at the end. */
function progressLine(total: number): (done: number) => void {
  const start = performance.now();
  let shown = start;
  return (done) => {
    const now = performance.now();
    if (done < total && now - shown < 250) return;
    shown = now;
    const rate = done / ((now - start) / 1000);
    process.stderr.write(`\r[${String(done).padStart(String(total).length)}/${total}] ${rate.toFixed(1)} images/s\x1b[K${done === total ? '\n' : ''}`);
  };
}
