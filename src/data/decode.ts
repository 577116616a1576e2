// One image decode for every reader (image folders, segmentation folders, Predictor): sharp (libvips, off the
// JavaScript thread), turned upright by its EXIF orientation (as browsers and labelling tools show a phone's
// photo), alpha dropped, grey or sRGB, and brought to the network's size by one of three fits. Callers name
// the file in their own errors.
import * as fs from 'node:fs';
import sharp from 'sharp';

/**
 * How an image is brought to (H, W):
 * - 'fill': resized to exactly (H, W), the aspect ratio given up (a square network squashes a wide photo);
 * - 'center-crop': the aspect kept — the centre region of (H, W)'s shape and `cropFraction` of the largest
 *   such region, resized to (H, W) (torchvision's evaluation recipe, Resize(size / 0.875) then CenterCrop);
 * - 'shorter-side': the aspect kept, the shorter side resized down to H (never enlarged); W is ignored. The
 *   images then differ in size, for a random crop (randomResizedCrop) to bring them to one.
 */
export type Fit = 'fill' | 'center-crop' | 'shorter-side';

export interface DecodeOptions {
  /** 1: greyscale; 3: sRGB (grey images expanded). */
  channels: 1 | 3;
  /** The size `fit` aims at; null or absent: the image's own size. */
  size?: readonly [number, number] | null;
  /** Default 'fill'. */
  fit?: Fit;
  /** 'center-crop': the crop's share of the largest centred region of the size's shape; default 1. */
  cropFraction?: number;
  /** 'lanczos3' (sharp's default) for images; 'nearest' for label maps, so that no class is invented. */
  kernel?: 'lanczos3' | 'nearest';
}

/** Raw interleaved pixels, height × width × channels bytes. */
export interface RawImage {
  data: Buffer;
  width: number;
  height: number;
  channels: number;
}

/** A rectangle of an image in its own pixels. */
export interface Box {
  top: number;
  left: number;
  height: number;
  width: number;
}

/**
 * The region of an H0×W0 image that 'center-crop' resizes to (H, W): the largest centred rectangle of the
 * size's aspect ratio, shrunk by `fraction` per side. One definition for training, prediction and the
 * examples' readers (examples/server, examples/browser compute the same), so all of them see the same pixels.
 */
export function centerCropBox(imageHeight: number, imageWidth: number, size: readonly [number, number], fraction = 1): Box {
  if (!(fraction > 0 && fraction <= 1)) throw new RangeError(`centerCropBox: the crop fraction must lie in (0, 1], got ${fraction}`);
  // The scale at which (H, W) just fits inside the image, then the crop a fraction of that.
  const scale = Math.min(imageHeight / size[0], imageWidth / size[1]) * fraction;
  const height = Math.max(1, Math.min(imageHeight, Math.round(size[0] * scale)));
  const width = Math.max(1, Math.min(imageWidth, Math.round(size[1] * scale)));
  return { top: Math.floor((imageHeight - height) / 2), left: Math.floor((imageWidth - width) / 2), height, width };
}

/** Width and height as shown, after the EXIF orientation (5–8 turn the image a quarter). */
export async function uprightSize(input: string | Buffer): Promise<{ width: number; height: number }> {
  const m = await sharp(input, { failOn: 'error' }).metadata();
  if (!m.width || !m.height) throw new Error('no image size in the header');
  return (m.orientation ?? 1) >= 5 ? { width: m.height, height: m.width } : { width: m.width, height: m.height };
}

export async function decodeRaw(input: string | Buffer, o: DecodeOptions): Promise<RawImage> {
  const fit = o.fit ?? 'fill';
  const crop = o.size && fit === 'center-crop' ? o.size : null;
  // The crop's box needs the header before the decode: a file is read once for both.
  const source = crop && typeof input === 'string' ? await fs.promises.readFile(input) : input;
  const box = crop ? centerCropBox(...pair(await uprightSize(source)), crop, o.cropFraction ?? 1) : null;
  // rotate() without an angle applies the EXIF orientation; extract and resize then act on the upright image.
  let img = sharp(source, { failOn: 'error' }).rotate().removeAlpha();
  img = o.channels === 1 ? img.greyscale() : img.toColourspace('srgb');
  const kernel = o.kernel ?? 'lanczos3';
  if (box) img = img.extract(box);
  if (o.size && fit === 'shorter-side') img = img.resize(o.size[0], o.size[0], { fit: 'outside', withoutEnlargement: true, kernel });
  else if (o.size) img = img.resize(o.size[1], o.size[0], { fit: 'fill', kernel });
  const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

/**
 * A decoding error's message without the reader's prefix naming `file` ("ImageFolder: cannot decode <file>: ",
 * "cannot read <file>: "), for lists that name each file beside its problem.
 */
export function imageProblem(message: string, file: string): string {
  return message.replace(/^(SegmentationFolder|ImageFolder|UnlabelledImages): /, '').replace(`cannot decode ${file}: `, '').replace(`cannot read ${file}: `, '');
}

const pair = (s: { width: number; height: number }): [number, number] => [s.height, s.width];
