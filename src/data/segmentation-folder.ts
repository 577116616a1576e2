// Your own segmentation data: root/images/<name>.(png|jpg|jpeg) with root/masks/<name>.png beside each, the
// mask's grey value the class of the pixel and 255 "ignore" (the VOC/Cityscapes train-id convention), and an
// optional root/classes.txt naming the classes one per line. Decoded once by sharp — images resized
// bilinearly, masks by nearest neighbour so that no class is invented at an edge — and held in memory as
// uint8 tensors (PixelLabelledImages), so batches are assembled in libtorch like the scenes'.
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { Tensor, fromArray, stack, tidy, where } from '../torch';
import { PixelLabelledImages } from './pixel-labels';

export interface SegmentationFolderOptions {
  /** Resize images and masks to (H, W) (a number: square). Without it every image must have one size. */
  size?: number | readonly [number, number];
  /** 1 (grey) or 3 (RGB, the default). */
  channels?: 1 | 3;
  /** The classes when the folder has no classes.txt; otherwise read from it. */
  numClasses?: number;
}

/** The label that counts for nothing. */
export const IGNORE_LABEL = 255;
const IMAGE_EXTS = new Set(['.png', '.jpg', '.jpeg']);

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
    const channels = o.channels ?? 3;
    if (channels !== 1 && channels !== 3) throw new Error(`SegmentationFolder: channels must be 1 or 3, got ${String(channels)}`);
    const imgDir = path.join(root, 'images');
    const maskDir = path.join(root, 'masks');
    for (const d of [imgDir, maskDir]) if (!fs.existsSync(d) || !fs.statSync(d).isDirectory()) throw new Error(`SegmentationFolder: ${d} is not a folder (expected ${root}/images and ${root}/masks)`);
    const files = fs.readdirSync(imgDir).filter((f) => IMAGE_EXTS.has(path.extname(f).toLowerCase())).sort();
    if (files.length === 0) throw new Error(`SegmentationFolder: no .png/.jpg images in ${imgDir}`);
    const size = o.size === undefined ? null : typeof o.size === 'number' ? [o.size, o.size] : [o.size[0], o.size[1]];
    const decode = async (file: string, mask: boolean, want: number[] | null): Promise<{ data: Buffer; h: number; w: number }> => {
      try {
        let img = sharp(file, { failOn: 'error' }).removeAlpha();
        img = mask || channels === 1 ? img.greyscale() : img.toColourspace('srgb');
        if (want) img = img.resize(want[1], want[0], { fit: 'fill', kernel: mask ? 'nearest' : 'lanczos3' });
        const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
        return { data, h: info.height, w: info.width };
      } catch (e) {
        throw new Error(`SegmentationFolder: cannot decode ${file}: ${(e as Error).message}`);
      }
    };
    const images: Buffer[] = [];
    const masks: Buffer[] = [];
    let shape: number[] | null = size;
    for (const f of files) {
      const maskFile = path.join(maskDir, path.basename(f, path.extname(f)) + '.png');
      if (!fs.existsSync(maskFile)) throw new Error(`SegmentationFolder: ${path.join(imgDir, f)} has no mask ${maskFile}`);
      const img = await decode(path.join(imgDir, f), false, size);
      shape ??= [img.h, img.w];
      if (img.h !== shape[0] || img.w !== shape[1]) throw new Error(`SegmentationFolder: ${f} is ${img.h}×${img.w}, ${files[0]} ${shape[0]}×${shape[1]}; give a size to resize them`);
      // The mask goes to the image's final size, whatever its own.
      const mask = await decode(maskFile, true, shape);
      images.push(img.data);
      masks.push(mask.data);
    }
    const [h, w] = shape!;
    const [x, y] = tidy(() => [
      stack(images.map((b) => fromArray(b, [h, w, channels]).permute(2, 0, 1))).keep(),
      stack(masks.map((b) => fromArray(b, [h, w]))).keep(),
    ]);
    const classesFile = path.join(root, 'classes.txt');
    const named = fs.existsSync(classesFile) ? fs.readFileSync(classesFile, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean) : null;
    const k = named?.length ?? o.numClasses;
    if (!k) throw new Error(`SegmentationFolder: ${root} has no classes.txt; give the number of classes`);
    const classes = named ?? Array.from({ length: k }, (_, i) => `class ${i}`);
    // A mask value that is neither a class nor "ignore" is an error naming the file, not a silent mislabel.
    const perMask = tidy(() => y.ge(k).logicalAnd(y.ne(IGNORE_LABEL)).flatten(1).sum(1).toNumbers());
    const bad = perMask.flatMap((n, i) => (n > 0 ? [i] : []));
    if (bad.length) {
      const max = tidy(() => {
        const m = y.narrow(0, bad[0], 1);
        return where(m.ne(IGNORE_LABEL), m, 0).max().item();
      });
      x.dispose();
      y.dispose();
      throw new Error(`SegmentationFolder: mask of ${files[bad[0]]} has label ${max}, but there are ${k} classes (0..${k - 1}, ${IGNORE_LABEL} ignored)${bad.length > 1 ? `; ${bad.length - 1} more masks too` : ''}`);
    }
    return new SegmentationFolder(root, x, y, classes, files);
  }
}
