// torchvision's ImageFolder: root/<class>/<image>, classes sorted by name, labels their positions. Images
// are decoded by sharp (libvips, off the JavaScript thread), so a DataLoader with prefetch decodes the next
// batch while the current one trains.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Fit, RawImage, decodeRaw } from './decode';
import { fromArray, keep, tidy } from '../torch';
import { Dataset, NO_LABEL, Sample } from './loader';

export interface ImageFolderOptions {
  /** Bring every image to this (H, W) (a number: square) by `fit`. Without it images keep their size. */
  size?: number | readonly [number, number];
  /** How: 'fill' (the default) squashes, 'center-crop' keeps the aspect ratio (see decode.ts's Fit). */
  fit?: Fit;
  /** 'center-crop': the crop's share of the largest centred region (default 1; torchvision evaluates at 0.875). */
  cropFraction?: number;
  /** 1 (grey) or 3 (RGB, the default). Alpha is dropped. */
  channels?: 1 | 3;
  /** File extensions to include, lower case with the dot. Default .png, .jpg, .jpeg. */
  extensions?: readonly string[];
}

export interface ImageFolderSample {
  path: string;
  label: number;
}

const IMAGE_EXTS = new Set(['.png', '.jpg', '.jpeg']);

/** The .png/.jpg images below dir, sub-folders too (Cityscapes keeps a folder per city), relative to dir, sorted. */
export const imagesIn = (dir: string): string[] => (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => IMAGE_EXTS.has(path.extname(f).toLowerCase())).sort();

/** The images below a folder of a transfer set (imagesIn), or an error naming the folder: missing, or without images. */
export function unlabelledImagesIn(root: string): string[] {
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) throw new Error(`unlabelled images: ${root} is not a folder`);
  const files = imagesIn(root);
  if (files.length === 0) throw new Error(`unlabelled images: no .png/.jpg images in ${root}`);
  return files;
}

// Plain code-unit order, as Python's sorted(), so class indices match torchvision's for the same folder.
const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export class ImageFolder implements Dataset<Sample> {
  readonly root: string;
  readonly classes: readonly string[];
  readonly samples: readonly ImageFolderSample[];
  readonly channels: 1 | 3;
  readonly size: [number, number] | null;
  readonly fit: Fit;
  readonly cropFraction: number;

  constructor(root: string, o: ImageFolderOptions = {}, listing?: { classes: readonly string[]; samples: readonly ImageFolderSample[] }) {
    this.root = root;
    this.channels = o.channels ?? 3;
    if (this.channels !== 1 && this.channels !== 3) throw new Error(`ImageFolder: channels must be 1 or 3, got ${String(this.channels)}`);
    this.size = o.size === undefined ? null : typeof o.size === 'number' ? [o.size, o.size] : [o.size[0], o.size[1]];
    this.fit = o.fit ?? 'fill';
    this.cropFraction = o.cropFraction ?? 1;
    if (!(this.cropFraction > 0 && this.cropFraction <= 1)) throw new RangeError(`ImageFolder: cropFraction must lie in (0, 1], got ${this.cropFraction}`);
    if (listing) {
      this.classes = listing.classes;
      this.samples = listing.samples;
      return;
    }
    const exts = new Set((o.extensions ?? ['.png', '.jpg', '.jpeg']).map((e) => e.toLowerCase()));
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(root, { withFileTypes: true });
    } catch (e) {
      throw new Error(`ImageFolder: cannot read ${root} (${(e as Error).message})`);
    }
    this.classes = entries.filter((d) => d.isDirectory() && !d.name.startsWith('.')).map((d) => d.name).sort(byName);
    if (this.classes.length === 0) throw new Error(`ImageFolder: ${root} has no class folders`);
    const samples: ImageFolderSample[] = [];
    this.classes.forEach((cls, label) => {
      const dir = path.join(root, cls);
      const files = fs.readdirSync(dir, { withFileTypes: true })
        .filter((f) => f.isFile() && exts.has(path.extname(f.name).toLowerCase()))
        .map((f) => f.name)
        .sort(byName);
      for (const f of files) samples.push({ path: path.join(dir, f), label });
    });
    if (samples.length === 0) throw new Error(`ImageFolder: no ${[...exts].join('/')} images under ${root}`);
    this.samples = samples;
  }

  /**
   * The images below `root` (sub-folders too) without labels (NO_LABEL), beside a labelled folder of these
   * `classes`: a transfer set, which only a teacher's logits teach. Decoded as `o` says, like the labelled ones.
   */
  static unlabelled(root: string, o: Omit<ImageFolderOptions, 'extensions'>, classes: readonly string[]): ImageFolder {
    return new ImageFolder(root, o, { classes, samples: unlabelledImagesIn(root).map((f) => ({ path: path.join(root, f), label: NO_LABEL })) });
  }

  /** The same images, those at `indices` without their labels (NO_LABEL). */
  withoutLabels(indices: Iterable<number>): ImageFolder {
    const drop = new Set(indices);
    return new ImageFolder(this.root, this.decoding(), { classes: this.classes, samples: this.samples.map((s, i) => (drop.has(i) ? { ...s, label: NO_LABEL } : s)) });
  }

  /** How this folder decodes its images (size, fit, crop, channels): for more images decoded alike. */
  decoding(): Omit<ImageFolderOptions, 'extensions'> {
    return { channels: this.channels, fit: this.fit, cropFraction: this.cropFraction, ...(this.size ? { size: this.size } : {}) };
  }

  /** The same images and labels, decoded another way (e.g. training's random crops beside evaluation's centre crops). */
  decodedAs(o: Omit<ImageFolderOptions, 'extensions'>): ImageFolder {
    return new ImageFolder(this.root, { channels: this.channels, ...o }, this);
  }

  get length(): number {
    return this.samples.length;
  }

  /** Decodes sample i to a uint8 tensor [C, H, W] (kept: the caller owns it) and its label. */
  async get(i: number): Promise<Sample> {
    const s = this.samples[i];
    if (!s) throw new RangeError(`ImageFolder.get(${i}): index out of range [0, ${this.length})`);
    let img: RawImage;
    try {
      img = await decodeRaw(s.path, { channels: this.channels, size: this.size, fit: this.fit, cropFraction: this.cropFraction });
    } catch (e) {
      throw new Error(`ImageFolder: cannot decode ${s.path}: ${(e as Error).message}`);
    }
    if (img.channels !== this.channels) throw new Error(`ImageFolder: ${s.path} decoded to ${img.channels} channels, expected ${this.channels}`);
    // This runs in a promise continuation, maybe inside a caller's open scope: keep the result out of it.
    const x = tidy(() => keep(fromArray(img.data, [img.height, img.width, img.channels]).permute(2, 0, 1).contiguous()));
    return { x, y: s.label };
  }
}
