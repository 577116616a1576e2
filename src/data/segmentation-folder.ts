// Your own segmentation data: root/images/<name>.(png|jpg|jpeg) with root/masks/<name>.png beside each, the
// mask's grey value the class of the pixel and 255 "ignore" (the VOC/Cityscapes train-id convention), and an
// optional root/classes.txt naming the classes one per line. Decoded by sharp — images resized bilinearly
// when a size is given, masks by nearest neighbour so that no class is invented at an edge.
//
// Two ways to hold it: `SegmentationFiles` decodes each pair when the DataLoader asks (any number of images,
// of any sizes: a Cityscapes-sized set never sits in memory), and `SegmentationFolder` decodes everything
// once into uint8 tensors (PixelLabelledImages), for small sets of one size.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeRaw } from './decode';
import { Tensor, callOp, fromArray, full, stack, tidy, where } from '../torch';
import { PixelSample } from './loader';
import { imagesIn, unlabelledImagesIn } from './image-folder';
import { PixelLabelledImages, labelCounts } from './pixel-labels';

export interface SegmentationFolderOptions {
  /** Resize images and masks to (H, W) (a number: square). Without it images keep their own sizes. */
  size?: number | readonly [number, number];
  /** 1 (grey) or 3 (RGB, the default). */
  channels?: 1 | 3;
  /** The classes when the folder has no classes.txt; otherwise read from it. */
  numClasses?: number;
  /**
   * The mask of images/<dir>/<name>.<ext> is masks/<dir>/<name with `from` replaced by `to`>.png, e.g.
   * ['_leftImg8bit', '_gtFine_labelIds'] for Cityscapes. Default: the same name.
   */
  maskName?: readonly [string, string];
  /**
   * Mask value → class, every other value ignored (255): e.g. Cityscapes' label ids to its 19 train ids
   * ('cityscapes', CITYSCAPES_TRAIN_IDS). Default: the mask's value is the class.
   */
  labelMap?: Readonly<Record<number, number>> | 'cityscapes';
}

/**
 * Cityscapes' label ids → train ids (cityscapesScripts' labels.py): road, sidewalk, building, wall, fence,
 * pole, traffic light, traffic sign, vegetation, terrain, sky, person, rider, car, truck, bus, train,
 * motorcycle, bicycle; every other id is ignored.
 */
export const CITYSCAPES_TRAIN_IDS: Readonly<Record<number, number>> = Object.fromEntries(
  [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33].map((id, trainId) => [id, trainId]),
);

/** The label that counts for nothing. */
export const IGNORE_LABEL = 255;

/** The `size` option as (H, W), or null: images keep their own sizes. */
const sizeOf = (size: SegmentationFolderOptions['size']): readonly [number, number] | null =>
  size === undefined ? null : typeof size === 'number' ? [size, size] : [size[0], size[1]];

/** Decoded interleaved pixels [H, W, C] as the network's layout [C, H, W], kept (made in a continuation). */
const chw = (data: Buffer, h: number, w: number, channels: number): Tensor => tidy(() => fromArray(data, [h, w, channels]).permute(2, 0, 1).contiguous().keep());

/** The image/mask pairs of a folder, decoded one pair per get(): uint8 x [C, H, W] and uint8 y [H, W]. */
export class SegmentationFiles {
  private constructor(
    readonly root: string,
    readonly files: readonly string[],
    readonly classes: readonly string[],
    readonly channels: 1 | 3,
    readonly size: readonly [number, number] | null,
    private readonly maskName: readonly [string, string] | null,
    /** 256 entries, mask value → class (IGNORE_LABEL for the unmapped), or null: the value is the class. */
    private readonly lut: Uint8Array | null,
  ) {}

  /** Lists the pairs and reads the classes; every image must have its mask. Decodes nothing yet. */
  static open(root: string, o: SegmentationFolderOptions = {}): SegmentationFiles {
    const channels = o.channels ?? 3;
    if (channels !== 1 && channels !== 3) throw new Error(`SegmentationFolder: channels must be 1 or 3, got ${String(channels)}`);
    const imgDir = path.join(root, 'images');
    const maskDir = path.join(root, 'masks');
    for (const d of [imgDir, maskDir]) if (!fs.existsSync(d) || !fs.statSync(d).isDirectory()) throw new Error(`SegmentationFolder: ${d} is not a folder (expected ${root}/images and ${root}/masks)`);
    // Sub-folders too, each mirrored under masks/.
    const files = imagesIn(imgDir);
    if (files.length === 0) throw new Error(`SegmentationFolder: no .png/.jpg images in ${imgDir}`);
    const maskName = o.maskName ?? null;
    for (const f of files) {
      const mask = maskOf(root, f, maskName);
      if (!fs.existsSync(mask)) throw new Error(`SegmentationFolder: ${path.join(imgDir, f)} has no mask ${mask}`);
    }
    const classesFile = path.join(root, 'classes.txt');
    const named = fs.existsSync(classesFile) ? fs.readFileSync(classesFile, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean) : null;
    const k = named?.length ?? o.numClasses;
    if (!k) throw new Error(`SegmentationFolder: ${root} has no classes.txt; give the number of classes`);
    const classes = named ?? Array.from({ length: k }, (_, i) => `class ${i}`);
    return new SegmentationFiles(root, files, classes, channels, sizeOf(o.size), maskName, labelTable(o.labelMap));
  }

  get length(): number {
    return this.files.length;
  }

  /**
   * Pair i: the image at the folder's size (or its own), its mask at the image's final size whatever the
   * mask's own. A label that is neither a class nor "ignore" is an error naming the file, not a silent
   * mislabel. The tensors are the caller's (kept: this runs in promise continuations).
   */
  async get(i: number): Promise<PixelSample> {
    const f = this.files[i];
    if (f === undefined) throw new RangeError(`SegmentationFolder.get(${i}): index out of range [0, ${this.length})`);
    const img = await this.decode(path.join(this.root, 'images', f), false, this.size);
    const mask = await this.decode(maskOf(this.root, f, this.maskName), true, [img.h, img.w]);
    const k = this.classes.length;
    return tidy(() => {
      const y = fromArray(mask.data, [img.h, img.w]);
      const bad = y.ge(k).logicalAnd(y.ne(IGNORE_LABEL));
      if (bad.any().item() === 1) {
        const max = where(bad, y, 0).max().item();
        throw new Error(`SegmentationFolder: mask of ${f} has label ${max}, but there are ${k} classes (0..${k - 1}, ${IGNORE_LABEL} ignored)`);
      }
      return { x: chw(img.data, img.h, img.w, this.channels), y: y.keep() };
    });
  }

  /**
   * Pixels per label value over every mask (256 bins; IGNORE_LABEL's is its own), for class weights —
   * decoding only the masks, at the sizes training sees them. With `shard`, only every worldSize-th file from
   * rank on: one process's share, whose sums over the processes are the whole folder's. With `indices`, only
   * those files (a training part without its held-out validation images).
   */
  async labelCounts(onProgress?: (done: number) => void, shard?: { rank: number; worldSize: number }, indices?: Int32Array): Promise<Float64Array> {
    const total = new Float64Array(256);
    const [first, stride] = shard ? [shard.rank, shard.worldSize] : [0, 1];
    const n = indices ? indices.length : this.length;
    let done = 0;
    for (let k = first; k < n; k += stride) {
      const f = this.files[indices ? indices[k] : k];
      const want = this.size ?? null;
      const mask = await this.decode(maskOf(this.root, f, this.maskName), true, want);
      const counts = tidy(() => labelCounts(fromArray(mask.data)));
      counts.forEach((c, v) => (total[v] += c));
      onProgress?.(++done);
    }
    return total;
  }

  private async decode(file: string, mask: boolean, want: readonly number[] | null): Promise<{ data: Buffer; h: number; w: number }> {
    try {
      // A paletted mask (VOC's) stores class indices as palette entries: decode its colours, map them back.
      const palette = mask ? pngPalette(file) : null;
      const channels = palette ? 3 : mask ? 1 : this.channels;
      const img = await decodeRaw(file, { channels, size: want ? [want[0], want[1]] : null, kernel: mask ? 'nearest' : 'lanczos3' });
      const values = palette ? paletteIndices(img.data, palette, file) : img.data;
      return { data: mask && this.lut ? mapLabels(values, this.lut) : values, h: img.height, w: img.width };
    } catch (e) {
      const msg = (e as Error).message;
      throw new Error(msg.startsWith('SegmentationFolder:') ? msg : `SegmentationFolder: cannot decode ${file}: ${msg}`);
    }
  }
}

/**
 * Images without masks (root and its sub-folders), as PixelSamples whose every pixel is IGNORE_LABEL: a
 * transfer set for distillation, where a teacher answers what no label does. Decoded as SegmentationFiles
 * decodes its images (the same size and channels).
 */
export class UnlabelledImages {
  private constructor(
    readonly root: string,
    readonly files: readonly string[],
    private readonly channels: 1 | 3,
    private readonly size: readonly [number, number] | null,
  ) {}

  static open(root: string, o: Pick<SegmentationFolderOptions, 'size' | 'channels'> = {}): UnlabelledImages {
    return new UnlabelledImages(root, unlabelledImagesIn(root), o.channels ?? 3, sizeOf(o.size));
  }

  get length(): number {
    return this.files.length;
  }

  async get(i: number): Promise<PixelSample> {
    const f = this.files[i];
    if (f === undefined) throw new RangeError(`UnlabelledImages.get(${i}): index out of range [0, ${this.length})`);
    const file = path.join(this.root, f);
    let img: { data: Buffer; width: number; height: number };
    try {
      img = await decodeRaw(file, { channels: this.channels, size: this.size ? [this.size[0], this.size[1]] : null, kernel: 'lanczos3' });
    } catch (e) {
      throw new Error(`UnlabelledImages: cannot decode ${file}: ${(e as Error).message}`);
    }
    return { x: chw(img.data, img.height, img.width, this.channels), y: tidy(() => full([img.height, img.width], IGNORE_LABEL, { dtype: 'uint8' }).keep()) };
  }
}

/**
 * The palette of a paletted PNG (colour type 3) as RGB triples, or null for any other file: read from the
 * PLTE chunk, since decoders hand out colours, not the indices the mask means.
 */
export function pngPalette(file: string): Uint8Array | null {
  const buf = fs.readFileSync(file);
  if (buf.length < 33 || buf.readUInt32BE(0) !== 0x89504e47) return null; // not a PNG
  if (buf[25] !== 3) return null; // IHDR's colour type
  for (let at = 8; at + 8 <= buf.length; ) {
    const len = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    if (type === 'PLTE') return new Uint8Array(buf.subarray(at + 8, at + 8 + len));
    if (type === 'IDAT') break;
    at += 12 + len;
  }
  return null;
}

/**
 * RGB pixels of a decoded paletted mask back to their palette indices, in libtorch: each colour as one
 * 24-bit key, looked up among the palette's sorted keys. A colour the palette lacks is an error naming the
 * file; a colour listed twice maps to its first index.
 */
function paletteIndices(rgb: Buffer, palette: Uint8Array, file: string): Buffer {
  return tidy(() => {
    const key = (t: Tensor): Tensor => {
      const c = t.view(-1, 3).to('int32');
      return c.select(1, 0).mul(65536).add(c.select(1, 1).mul(256)).add(c.select(1, 2));
    };
    const entries = key(fromArray(palette));
    // Sorted keys, stable so that a repeated colour keeps its first index.
    const [values, indices] = callOp('aten::sort.stable', entries, true, 0, false) as Tensor[];
    const pixels = key(fromArray(rgb));
    const at = (callOp('aten::searchsorted.Tensor', values, pixels, false, false, null, null) as Tensor).clamp(0, values.size(0) - 1);
    if (values.indexSelect(0, at).ne(pixels).any().item() === 1) throw new Error(`SegmentationFolder: mask ${file} has a colour its palette lacks`);
    return Buffer.from(indices.indexSelect(0, at).to('uint8').toArray() as Uint8Array);
  });
}

/** masks/<dir>/<name>.png for images/<dir>/<name>.<ext>, the name's `from` replaced by `to` if asked. */
function maskOf(root: string, image: string, rename: readonly [string, string] | null): string {
  const name = path.basename(image, path.extname(image));
  return path.join(root, 'masks', path.dirname(image), (rename ? name.replace(rename[0], rename[1]) : name) + '.png');
}

/** A label map as a 256-entry table (unmapped values → IGNORE_LABEL), or null for none. */
function labelTable(map: SegmentationFolderOptions['labelMap']): Uint8Array | null {
  if (map === undefined) return null;
  const m = map === 'cityscapes' ? CITYSCAPES_TRAIN_IDS : map;
  const lut = new Uint8Array(256).fill(IGNORE_LABEL);
  for (const [from, to] of Object.entries(m)) {
    const f = Number(from);
    if (!(Number.isInteger(f) && f >= 0 && f < 256 && Number.isInteger(to) && to >= 0 && to < 256)) throw new Error(`SegmentationFolder: label map entry ${from} → ${to} is not a pair of values in 0..255`);
    lut[f] = to;
  }
  return lut;
}

/** Mask values through the label table, in libtorch. */
function mapLabels(values: Buffer, lut: Uint8Array): Buffer {
  return tidy(() => Buffer.from(fromArray(lut).indexSelect(0, fromArray(values).long()).toArray() as Uint8Array));
}

/** A folder decoded once into memory: every image at one size (given, or the images' common size). */
export class SegmentationFolder extends PixelLabelledImages {
  private constructor(
    readonly root: string,
    images: Tensor,
    labels: Tensor,
    classes: readonly string[],
    readonly files: readonly string[],
  ) {
    super(images, labels, classes);
  }

  static async load(root: string, o: SegmentationFolderOptions = {}): Promise<SegmentationFolder> {
    const src = SegmentationFiles.open(root, o);
    const samples: PixelSample[] = [];
    try {
      for (let i = 0; i < src.length; i++) {
        const s = await src.get(i);
        samples.push(s);
        const [h, w] = s.y.shape;
        const [h0, w0] = samples[0].y.shape;
        if (h !== h0 || w !== w0) throw new Error(`SegmentationFolder: ${src.files[i]} is ${h}×${w}, ${src.files[0]} ${h0}×${w0}; give a size to resize them`);
      }
      const [x, y] = tidy(() => [stack(samples.map((s) => s.x)).keep(), stack(samples.map((s) => s.y)).keep()]);
      return new SegmentationFolder(root, x, y, src.classes, src.files);
    } finally {
      for (const s of samples) {
        s.x.dispose();
        s.y.dispose();
      }
    }
  }
}
