// Inference on the user's own image files (or bytes a server received): a Predictor holds one restored
// network and answers classify() (top-k classes and probabilities) or segment() (a class per pixel at the
// image's own size). Images are decoded by sharp exactly as training decoded them — alpha dropped, grey or
// sRGB to the network's channels, resized to the trained size with the same filter — and normalized with the
// run's statistics; everything after decoding runs in libtorch inside tidy(), so no tensor outlives a call.
import * as fs from 'node:fs';
import sharp from 'sharp';
import { Tensor, callOp, fromArray, noGrad, softmax, tidy } from '../torch';
import { BatchTransform, Rng, compose, normalize, toFloat } from '../data';
import { decodeRaw } from '../data/decode';
import { MultiScaleOptions, SegmentationNet, forwardAnySize, predictMultiScale, upsample } from '../models/segmentation';
import { Network, Normalization, RestoreOptions, restoreNetwork } from './restore';

/** A file path, or the encoded bytes of a PNG, JPEG, WebP, … (named, so that errors can say which). */
export type ImageInput = string | Buffer | NamedImage;

/** Encoded image bytes and a name for error messages (a file name, an upload's name). */
export interface NamedImage {
  name: string;
  bytes: Buffer;
}

export interface PredictorOptions extends RestoreOptions {
  /** Override the normalization training used (needed for plain weights not trained on image folders). */
  normalization?: Normalization;
  /** Override the class names (plain weights have none). */
  classes?: readonly string[];
  /** (H, W) every image is resized to before the network. Default: the size the network was trained on. */
  size?: readonly [number, number];
  /**
   * Segmentation at each image's own size, padded to the network's size multiple, instead of resizing to
   * the trained size. Also what happens when no trained size is known (plain weights, mixed-size folders).
   */
  native?: boolean;
}

export interface ClassScore {
  class: string;
  index: number;
  probability: number;
}

export interface SegmentationPrediction {
  /** The class of each pixel, row-major, height × width (the image's own size). */
  labels: Uint8Array;
  width: number;
  height: number;
  classes: readonly string[];
  /** Pixels per class (index = class id). */
  classPixels: number[];
}

/** An image decoded to the network's channels: bytes height × width × channels, row-major. */
export interface DecodedImage {
  pixels: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

export class Predictor {
  readonly name: string;
  readonly segmentation: boolean;
  readonly classes: readonly string[];
  readonly channels: 1 | 3;
  /** (H, W) images are resized to, or null: each image at its own size. */
  readonly size: readonly [number, number] | null;
  readonly normalization: Normalization;
  private readonly model: Network;
  private readonly transform: BatchTransform;
  private readonly native: boolean;

  private constructor(file: string, o: PredictorOptions) {
    const r = restoreNetwork(file, o);
    if (r.inChannels !== 1 && r.inChannels !== 3) throw new Error(`${file}: the network reads ${r.inChannels} channels; images decode to 1 (grey) or 3 (RGB)`);
    if (r.segmentation && r.numClasses > 256) throw new Error(`${file}: ${r.numClasses} classes do not fit 8-bit label maps`);
    this.name = r.name;
    this.model = r.model;
    this.segmentation = r.segmentation;
    this.channels = r.inChannels;
    this.classes = o.classes ?? r.classes;
    this.normalization = o.normalization ?? r.normalization;
    const trained = r.inputShape ? ([r.inputShape[2], r.inputShape[3]] as const) : null;
    this.size = o.size ?? trained;
    this.native = o.native ?? false;
    // The loaders' own deterministic transform: uint8 → [0, 1] → (x - mean) / std per channel.
    this.transform = compose(toFloat(), normalize(this.normalization.mean, this.normalization.std));
  }

  /** Restores a checkpoint of `train` or `segment`, or plain weights with `model` (see restoreNetwork). */
  static async load(file: string, o: PredictorOptions = {}): Promise<Predictor> {
    return new Predictor(file, o);
  }

  /** The k most probable classes (softmax over the logits), most probable first. */
  async classify(image: ImageInput, o: { topK?: number } = {}): Promise<ClassScore[]> {
    if (this.segmentation) throw new Error(`${this.name} is a segmentation network: use segment()`);
    const img = await decodeImage(image, this.channels, this.size);
    return tidy(() =>
      noGrad(() => {
        const logits = this.model.forward(this.input(img));
        const k = Math.max(1, Math.min(o.topK ?? 5, logits.size(1)));
        const { values, indices } = softmax(logits, 1).topk(k, 1);
        const p = values.toNumbers();
        return indices.toNumbers().map((index, i) => ({ class: this.className(index), index, probability: p[i] }));
      }),
    );
  }

  /**
   * A class per pixel at the image's own size: the network runs at the trained size (its logits upsampled
   * back bilinearly) or, with `native`, at the image's size padded to its size multiple (logits cropped).
   * With `scales` and/or `flip`, the class probabilities are averaged over rescaled and mirrored copies
   * (predictMultiScale, DeepLab-V3 §4.3).
   */
  async segment(image: ImageInput, o: { native?: boolean } & MultiScaleOptions = {}): Promise<SegmentationPrediction> {
    if (!this.segmentation) throw new Error(`${this.name} is a classifier: use classify()`);
    const bytes = await readImage(image);
    const size = (o.native ?? this.native) ? null : this.size;
    const [img, full] = await Promise.all([decodeImage(bytes, this.channels, size), size ? imageSize(bytes) : null]);
    const { width, height } = full ?? img;
    const { labels, classPixels } = tidy(() =>
      noGrad(() => {
        // forwardAnySize pads only where the size is not a multiple of the network's (e.g. --size 30x30 for ENet).
        const net = this.model as SegmentationNet;
        const multi = o.scales !== undefined || o.flip === true;
        // Probabilities or logits: their argmax is the class either way, and both resize bilinearly.
        const logits = multi ? predictMultiScale(net, this.input(img), o) : forwardAnySize(net, this.input(img));
        const atImage = logits.size(2) === height && logits.size(3) === width ? logits : upsample(logits, [height, width]);
        const l = atImage.argmax(1).flatten();
        const counts = callOp('aten::bincount', l, null, this.classes.length) as Tensor;
        return { labels: l.to('uint8').toArray() as Uint8Array, classPixels: counts.toNumbers() };
      }),
    );
    return { labels, width, height, classes: this.classes, classPixels };
  }

  /** The image as the network's channels decode it at its own size (for overlays and masks). */
  async decode(image: ImageInput): Promise<DecodedImage> {
    return decodeImage(image, this.channels, null);
  }

  private className(i: number): string {
    return this.classes[i] ?? `class ${i}`;
  }

  /** Decoded bytes → the normalized network input [1, C, H, W]; call inside tidy(). */
  private input(img: DecodedImage): Tensor {
    const x = fromArray(img.pixels, [img.height, img.width, img.channels]).permute(2, 0, 1).unsqueeze(0);
    // The transform maps batches of images and labels; inference has no labels, so y is a placeholder.
    return this.transform({ x, y: x }, { epoch: 0, index: 0, rng: Rng.from(0) }).x;
  }
}

/** The bytes of an image (a file is read once); errors name the file. */
export async function readImage(image: ImageInput): Promise<NamedImage> {
  if (typeof image !== 'string') return Buffer.isBuffer(image) ? { name: 'image buffer', bytes: image } : image;
  try {
    return { name: image, bytes: await fs.promises.readFile(image) };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new Error(err.code === 'ENOENT' ? `${image}: no such file` : err.code === 'EISDIR' ? `${image} is a folder, not an image` : `cannot read ${image}: ${err.message}`);
  }
}

/**
 * Decodes as training does (decodeRaw, shared with ImageFolder and SegmentationFiles): alpha dropped, grey (1 channel) or
 * sRGB (3; grey images are expanded), resized to (H, W) with sharp's default Lanczos-3 filter.
 */
async function decodeImage(image: ImageInput, channels: 1 | 3, size: readonly [number, number] | null): Promise<DecodedImage> {
  const { name, bytes } = await readImage(image);
  try {
    const img = await decodeRaw(bytes, { channels, size });
    if (img.channels !== channels) throw new Error(`decoded to ${img.channels} channels, expected ${channels}`);
    return { pixels: img.data, width: img.width, height: img.height, channels };
  } catch (e) {
    throw new Error(`cannot decode ${name}: ${(e as Error).message}`);
  }
}

/** Width and height from the header, without decoding the pixels. */
async function imageSize({ name, bytes }: NamedImage): Promise<{ width: number; height: number }> {
  try {
    const m = await sharp(bytes).metadata();
    if (!m.width || !m.height) throw new Error('no image size in the header');
    return { width: m.width, height: m.height };
  } catch (e) {
    throw new Error(`cannot decode ${name}: ${(e as Error).message}`);
  }
}
