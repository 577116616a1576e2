// `tsvision predict <weights> <images...>`: a trained network on the user's image files. Classifiers print
// their top-k classes; segmentation networks print the classes they found and, with --out, write a mask
// (grey value = class, the training masks' convention) and an overlay per image. --json prints one JSON
// document on stdout instead; progress (images/s) goes to stderr when there are many images.
import { FolderResize, folderFit } from '../train/datasets';
import { imageProblem } from '../data/decode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fromArray, tidy, keep } from '../torch';
import { ClassScore, Predictor, SegmentationPrediction, readImage } from '../infer/predict';
import { Normalization } from '../infer/restore';
import type { InferencePrecision } from '../infer/optimize';
import { maskPng, overlayPng } from '../report/overlay';
import { writeFileAtomic } from '../util/fs';

export interface PredictCommandOptions {
  model?: string;
  opt: Record<string, unknown>;
  top: number;
  json: boolean;
  out?: string;
  size?: [number, number];
  /** How images reach the size: 'squash' or 'crop' (the centre 87.5%); default: as the run evaluated. */
  resize?: FolderResize;
  native: boolean;
  /** commander's --no-optimize: false. */
  optimize: boolean;
  /** --bf16: 'bfloat16'. */
  precision: InferencePrecision;
  legend: boolean;
  /** Segmentation: average over input scales and the mirrored image (DeepLab-V3 §4.3). */
  scales?: number[];
  flip: boolean;
  /** Segmentation: sliding windows of this size over each image at its own size (PSPNet's evaluation), `stride` apart. */
  crop?: [number, number];
  stride?: [number, number];
  /** Sliding windows through the network at once. */
  windowsPerCall?: number;
  normalization?: Normalization;
  /** Images decoded and run through the network together. */
  batchSize: number;
  /**
   * Classifiers: an answer whose top probability is below this is marked unsure (`unsure: true` in --json)
   * rather than taken; meaningful on calibrated weights (`tsvision calibrate`).
   */
  minConfidence?: number;
  /** Classifiers: also write each image's answer to this CSV file (file, class, probability[, unsure]). */
  csv?: string;
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);
/**
 * Above this many images progress (images/s) goes to stderr: on a terminal as a line redrawn in place; into a
 * pipe or log only for longer runs, as plain lines, since a redrawn line is control codes there.
 */
const PROGRESS_FROM = { tty: 20, pipe: 50 };

type Result = { file: string } & ({ top: ClassScore[]; unsure?: boolean } | (Omit<SegmentationPrediction, 'labels' | 'classes'> & { mask?: string; overlay?: string }));

export async function predictCommand(weights: string, args: readonly string[], o: PredictCommandOptions): Promise<void> {
  const files = expandImages(args); // before loading the network: a typo fails at once
  const predictor = await Predictor.load(weights, { model: o.model, opt: o.opt, size: o.size, ...(o.resize ? { resize: folderFit({ resize: o.resize }) } : {}), native: o.native, normalization: o.normalization, optimize: o.optimize, precision: o.precision });
  if (o.out && !predictor.segmentation) throw new Error(`--out writes segmentation masks; ${predictor.name} is a classifier`);
  if ((o.scales || o.crop) && !predictor.segmentation) throw new Error(`--scales and --slide apply to segmentation networks; ${predictor.name} is a classifier`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new Error(`--batch-size must be an integer >= 1, got ${o.batchSize}`);
  if (o.minConfidence !== undefined && predictor.segmentation) throw new Error(`--min-confidence applies to classifiers; ${predictor.name} is a segmentation network`);
  if (o.csv && predictor.segmentation) throw new Error(`--csv lists classifier answers; ${predictor.name} is a segmentation network (use --out for masks)`);
  const names = o.out ? outputNames(files) : null;
  const results: Result[] = [];
  const skipped = new SkippedImages();
  const progress = progressReporter(files.length);
  try {
    await predictAll(predictor, files, names, o, (r) => {
      results.push(r);
      if (!o.json) console.log(describe(r, predictor.classes));
    }, skipped, () => progress?.update(results.length + skipped.failed.length));
  } finally {
    progress?.end(); // a failed run does not leave its error on the progress line
  }
  if (o.csv) {
    writeFileAtomic(o.csv, answersCsv(results, o.minConfidence !== undefined));
    if (!o.json) console.log(`answers: ${o.csv}`);
  }
  if (o.json) {
    const task = predictor.segmentation ? 'segmentation' : 'classification';
    console.log(JSON.stringify({ model: predictor.name, task, classes: predictor.classes, results, ...(skipped.failed.length ? { failed: skipped.failed } : {}) }, null, 2));
  }
  skipped.finish(files.length);
}

/** readImage's and the decoder's errors; the rest (a network's) is not about one file. */
const isImageError = (e: unknown): e is Error => e instanceof Error && /^(cannot decode |cannot read )|: no such file$| is a folder, not an image$/.test(e.message);

/**
 * Image files that could not be read or decoded, for commands that answer many (predict, explain): one
 * unreadable file among thousands should not cost the others' answers, but a script must notice it. Each is
 * named on stderr as it happens; `finish` adds the count and sets exit code 1.
 */
export class SkippedImages {
  readonly failed: { file: string; error: string }[] = [];

  /** `fn`'s result; an error reading or decoding `file` skips it (undefined), any other error is thrown. */
  async attempt<T>(file: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (e) {
      if (!isImageError(e)) throw e;
      const error = imageProblem(e.message, file);
      this.failed.push({ file, error });
      process.stderr.write(`tsvision: skipped ${file}: ${error}\n`);
      return undefined;
    }
  }

  finish(total: number): void {
    if (!this.failed.length) return;
    process.stderr.write(`tsvision: ${this.failed.length} of ${total} image${total === 1 ? '' : 's'} could not be read or decoded (listed above); the others were answered\n`);
    process.exitCode = 1;
  }
}

/**
 * Batches of --batch-size files: read and decoded concurrently, run through the network together, reported in
 * order. A batch with a file that cannot be read or decoded is run again one image at a time, so that only
 * that file is skipped.
 */
async function predictAll(predictor: Predictor, files: readonly string[], names: readonly string[] | null, o: PredictCommandOptions, report: (r: Result) => void, skipped: SkippedImages, batchDone: () => void): Promise<void> {
  for (let start = 0; start < files.length; start += o.batchSize) {
    const slice = files.slice(start, start + o.batchSize);
    let all: Result[] | undefined;
    try {
      all = await predictBatch(predictor, slice, start, names, o);
    } catch (e) {
      if (!isImageError(e)) throw e;
    }
    if (all) all.forEach(report);
    else for (const [j, file] of slice.entries()) (await skipped.attempt(file, () => predictBatch(predictor, [file], start + j, names, o)))?.forEach(report);
    batchDone();
  }
}

async function predictBatch(predictor: Predictor, slice: readonly string[], start: number, names: readonly string[] | null, o: PredictCommandOptions): Promise<Result[]> {
  const batch = await Promise.all(slice.map(readImage));
  const done: Result[] = predictor.segmentation
    ? await Promise.all(
        (await predictor.segmentMany(batch, { scales: o.scales, flip: o.flip, crop: o.crop, stride: o.stride, windowsPerCall: o.windowsPerCall, batchSize: o.batchSize, keepImage: !!o.out })).map((p, j) =>
          segmentResult(p, batch[j].name, o, names?.[start + j]),
        ),
      )
    : (await predictor.classifyMany(batch, { topK: o.top, batchSize: o.batchSize, flip: o.flip })).map((top, j) => ({ file: batch[j].name, top, ...(o.minConfidence !== undefined ? { unsure: top[0].probability < o.minConfidence } : {}) }));
  return done;
}

/**
 * The top answer per image as CSV (RFC 4180: a field with a comma, quote or line break is quoted, quotes
 * doubled), the header `file,class,probability` (`,unsure` with --min-confidence): what a spreadsheet, pandas or a
 * Kaggle submission reads.
 */
export function answersCsv(results: readonly Result[], withUnsure: boolean): string {
  const field = (v: string): string => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  const rows = results.map((r) => {
    if (!('top' in r)) throw new Error('answersCsv: classifier results only');
    const [best] = r.top;
    return [r.file, best.class, String(best.probability), ...(withUnsure ? [String(Boolean(r.unsure))] : [])].map(field).join(',');
  });
  return `${['file', 'class', 'probability', ...(withUnsure ? ['unsure'] : [])].join(',')}\n${rows.map((l) => `${l}\n`).join('')}`;
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
export function outputNames(files: readonly string[], suffix = '.mask.png'): string[] {
  const names = files.map((f) => path.basename(f, path.extname(f)));
  const seen = new Map<string, string>();
  files.forEach((f, i) => {
    const other = seen.get(names[i]);
    if (other) throw new Error(`${other} and ${f} would both write ${names[i]}${suffix}: give them different names`);
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
  if ('top' in r) return `${r.file}: ${r.unsure ? 'unsure — ' : ''}${r.top.map((c) => `${c.class} ${pct(c.probability)}`).join(', ')}`;
  const total = r.width * r.height;
  const found = r.classPixels.map((n, i) => [i, n] as const).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  const written = r.mask ? ` → ${r.mask}, ${r.overlay}` : '';
  return `${r.file}: ${r.width}×${r.height}, ${found.map(([i, n]) => `${classes[i] ?? `class ${i}`} ${pct(n / total)}`).join(', ')}${written}`;
}

const pct = (p: number): string => `${(100 * p).toFixed(1)}%`;

/** What progress needs of a stream (process.stderr, or a test's). */
export interface ProgressStream {
  isTTY?: boolean;
  write(s: string): unknown;
}

/**
 * Progress of `total` images on `stream` (stderr), or null where the run is too short to need it: done/total
 * and images per second. On a terminal one line redrawn at most 4 times a second; elsewhere (a pipe, a log
 * file) a plain line at most every 5 s, so that logs stay readable. Both show the last count; `end` finishes
 * a redrawn line that an error cut short. `now` (ms) is injectable for tests.
 */
export function progressReporter(total: number, stream: ProgressStream = process.stderr, now: () => number = () => performance.now()): { update(done: number): void; end(): void } | null {
  const tty = stream.isTTY === true;
  if (total <= (tty ? PROGRESS_FROM.tty : PROGRESS_FROM.pipe)) return null;
  const start = now();
  let shown = start;
  let open = false; // a redrawn line without its newline yet
  return {
    update(done) {
      const t = now();
      if (done < total && t - shown < (tty ? 250 : 5000)) return;
      shown = t;
      const line = `[${String(done).padStart(String(total).length)}/${total}] ${(done / Math.max((t - start) / 1000, 1e-3)).toFixed(1)} images/s`;
      if (!tty) stream.write(`${line}\n`);
      else {
        stream.write(`\r${line}\x1b[K${done >= total ? '\n' : ''}`);
        open = done < total;
      }
    },
    end() {
      if (open) stream.write('\n');
      open = false;
    },
  };
}
