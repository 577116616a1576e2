// Checking a dataset before hours of training go into it: every image decoded (a truncated JPEG fails here,
// not at epoch 7), every mask's labels against the classes, the classes' counts, the image sizes, and
// identical files — one image under two classes (a label conflict) or in both the training and the test
// folders (a test that has seen its questions). `tsvision check-data` prints it; it changes nothing.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { imageProblem } from './decode';
import { Dataset, PixelSample, Sample } from './loader';
import { ImageFolder } from './image-folder';
import { labelCounts } from './pixel-labels';
import { SegmentationFiles, SegmentationFolderOptions } from './segmentation-folder';

export interface DataProblem {
  file: string;
  problem: string;
}

export interface SplitCheck {
  dir: string;
  kind: 'classification' | 'segmentation';
  images: number;
  classes: readonly string[];
  /** Classification: images per class; segmentation: labelled pixels per class (ignored ones left out). */
  counts: number[];
  /** Files that could not be read or decoded, or masks with labels outside the classes. */
  unreadable: DataProblem[];
  /** Height and width: smallest, median and largest over the images read, and how many distinct sizes. */
  sizes: { height: [number, number, number]; width: [number, number, number]; distinct: number } | null;
  /** Identical files within this folder: the same class twice (a warning) or different classes (a conflict). */
  duplicates: { files: string[]; classes: string[] }[];
}

export interface DataCheck {
  train: SplitCheck;
  test: SplitCheck | null;
  /** Files of the test folder identical to files of the training folder. */
  leaked: { test: string; train: string }[];
  /** Problems that make training or its test score wrong: unreadable files, label conflicts, leakage. */
  errors: number;
  /** Duplicates within a class: wasted work rather than wrong results. */
  warnings: number;
}

export interface CheckDataOptions {
  /** A CSV of labels instead of class folders (classification), as --labels; `testLabels` for the test folder. */
  labels?: string;
  testLabels?: string;
  /** Segmentation folders (images/, masks/): their options, as `segment` takes them. */
  segmentation?: Omit<SegmentationFolderOptions, 'size'>;
  /** Files decoded at once. Default 8. */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Whether `dir` is laid out as segmentation data (images/ and masks/ folders). */
export const isSegmentationFolder = (dir: string): boolean => ['images', 'masks'].every((d) => fs.existsSync(path.join(dir, d)) && fs.statSync(path.join(dir, d)).isDirectory());

/** Checks a training folder, and a test folder beside it when given (see the file's opening comment). */
export async function checkData(trainDir: string, testDir: string | null, o: CheckDataOptions = {}): Promise<DataCheck> {
  const train = await checkSplit(trainDir, o);
  const test = testDir ? await checkSplit(testDir, { ...o, labels: o.testLabels }) : null;
  const leaked: DataCheck['leaked'] = [];
  if (test) {
    const trainHashes = new Map(hashesOf(train));
    for (const [h, f] of hashesOf(test)) {
      const other = trainHashes.get(h);
      if (other) leaked.push({ test: f, train: other });
    }
  }
  const conflicts = (s: SplitCheck | null): number => s?.duplicates.filter((d) => new Set(d.classes).size > 1).length ?? 0;
  const sameClass = (s: SplitCheck | null): number => s?.duplicates.filter((d) => new Set(d.classes).size === 1).length ?? 0;
  return {
    train,
    test,
    leaked,
    errors: train.unreadable.length + (test?.unreadable.length ?? 0) + conflicts(train) + conflicts(test) + leaked.length,
    warnings: sameClass(train) + sameClass(test),
  };
}

// Each split's files by content hash, [hash, file] (kept beside the check, not in its report).
const fileHashes = new WeakMap<SplitCheck, [string, string][]>();
const hashesOf = (s: SplitCheck): [string, string][] => fileHashes.get(s) ?? [];

function hashes(dir: string, files: readonly { file: string }[]): [string, string][] {
  return files.map(({ file }) => [createHash('sha1').update(fs.readFileSync(path.join(dir, file))).digest('hex'), file]);
}

async function checkSplit(dir: string, o: CheckDataOptions): Promise<SplitCheck> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`${dir}: no such folder`);
  const segmentation = isSegmentationFolder(dir);
  let files: { file: string; label: string }[];
  let classes: readonly string[];
  let dataset: Dataset<Sample> | Dataset<PixelSample>;
  if (segmentation) {
    const s = SegmentationFiles.open(dir, o.segmentation ?? {});
    files = s.files.map((f) => ({ file: path.join('images', f), label: '' }));
    classes = s.classes;
    dataset = s;
  } else {
    const { imageFolderFromCsv } = await import('./label-csv');
    const f = o.labels ? imageFolderFromCsv(dir, o.labels) : new ImageFolder(dir);
    files = f.samples.map((s) => ({ file: path.relative(dir, s.path), label: f.classes[s.label] }));
    classes = f.classes;
    dataset = f;
  }
  const counts = new Array<number>(classes.length).fill(0);
  const unreadable: DataProblem[] = [];
  const heights: number[] = [];
  const widths: number[] = [];
  const distinct = new Set<string>();
  let next = 0;
  let done = 0;
  // A few decodes at a time: sharp works off the main thread, so they overlap.
  const worker = async (): Promise<void> => {
    for (let i = next++; i < files.length; i = next++) {
      try {
        const s = await dataset.get(i);
        const [h, w] = s.x.shape.slice(1);
        heights.push(h);
        widths.push(w);
        distinct.add(`${h}×${w}`);
        if (segmentation) {
          const y = (s as PixelSample).y;
          const c = labelCounts(y);
          for (let k = 0; k < classes.length; k++) counts[k] += c[k];
          y.dispose();
        } else counts[(s as Sample).y] += 1;
        s.x.dispose();
      } catch (e) {
        // The file is named beside the problem: its path in the message once is enough.
        unreadable.push({ file: files[i].file, problem: imageProblem((e as Error).message, path.join(dir, files[i].file)) });
      }
      o.onProgress?.(++done, files.length);
    }
  };
  await Promise.all(Array.from({ length: o.concurrency ?? 8 }, worker));
  unreadable.sort((a, b) => a.file.localeCompare(b.file));
  const hashed = hashes(dir, files);
  const byHash = new Map<string, { files: string[]; classes: string[] }>();
  for (const [[h, file], { label }] of hashed.map((x, i) => [x, files[i]] as const)) {
    const d = byHash.get(h) ?? byHash.set(h, { files: [], classes: [] }).get(h)!;
    d.files.push(file);
    d.classes.push(label);
  }
  const spread = (xs: number[]): [number, number, number] => {
    const s = [...xs].sort((a, b) => a - b);
    return [s[0], s[Math.floor((s.length - 1) / 2)], s[s.length - 1]];
  };
  const check: SplitCheck = {
    dir,
    kind: segmentation ? 'segmentation' : 'classification',
    images: files.length,
    classes,
    counts,
    unreadable,
    sizes: heights.length ? { height: spread(heights), width: spread(widths), distinct: distinct.size } : null,
    duplicates: [...byHash.values()].filter((d) => d.files.length > 1),
  };
  fileHashes.set(check, hashed);
  return check;
}

/** The check as lines for a terminal: counts, sizes, then every problem by name. */
export function describeCheck(c: DataCheck): string {
  const lines: string[] = [];
  for (const s of [c.train, c.test]) {
    if (!s) continue;
    const what = s.kind === 'classification' ? 'images' : 'labelled pixels';
    const total = s.counts.reduce((a, b) => a + b, 0);
    lines.push(`${s.dir}: ${s.images} ${s.kind} images, ${s.classes.length} classes`);
    const nonzero = s.counts.filter((n) => n > 0);
    const ratio = nonzero.length ? Math.max(...nonzero) / Math.min(...nonzero) : 0;
    lines.push(`  ${what} per class: ${s.classes.map((k, i) => `${k} ${s.counts[i].toLocaleString('en-US')} (${((100 * s.counts[i]) / Math.max(1, total)).toFixed(1)}%)`).join(', ')}${ratio >= 10 ? ` — the largest class has ${ratio.toFixed(0)}× the smallest (see --class-weights)` : ''}`);
    const missing = s.classes.filter((_, i) => s.counts[i] === 0);
    if (missing.length) lines.push(`  no ${what} of: ${missing.join(', ')}`);
    if (s.sizes) lines.push(`  sizes: height ${s.sizes.height.join(' / ')}, width ${s.sizes.width.join(' / ')} (smallest / median / largest), ${s.sizes.distinct} distinct`);
    for (const u of s.unreadable) lines.push(`  ERROR ${path.join(s.dir, u.file)}: ${u.problem}`);
    for (const d of s.duplicates) {
      const conflict = new Set(d.classes).size > 1;
      lines.push(`  ${conflict ? 'ERROR' : 'warning'} identical files${conflict ? ` under different classes (${[...new Set(d.classes)].join(', ')})` : ''}: ${d.files.join(', ')}`);
    }
  }
  for (const l of c.leaked) lines.push(`ERROR ${path.join(c.test!.dir, l.test)} is identical to the training image ${path.join(c.train.dir, l.train)}: the test score would count it`);
  lines.push(c.errors || c.warnings ? `${c.errors} error${c.errors === 1 ? '' : 's'}, ${c.warnings} warning${c.warnings === 1 ? '' : 's'}` : 'no problems found');
  return lines.join('\n');
}
