// Inference on the user's own image files (or bytes a server received): a Predictor holds one restored
// network and answers classify() (top-k classes and probabilities) or segment() (a class per pixel at the
// image's own size). Images are decoded by sharp exactly as training decoded them — alpha dropped, grey or
// sRGB to the network's channels, resized to the trained size with the same filter — and normalized with the
// run's statistics; everything after decoding runs in libtorch inside tidy(), so no tensor outlives a call.
import * as fs from 'node:fs';
import { Tensor, callOp, cat, fromArray, interpolate, noGrad, tidy, zeros } from '../torch';
import { Module } from '../nn';
import { GradCamOptions, gradCam } from './gradcam';
import { InferenceLayout, InferencePrecision, OptimizedForInference, optimizeForInference } from './optimize';
import { BatchTransform, Rng, compose, normalize, toFloat } from '../data';
import { DecodeOptions, Fit, centerCropBox, decodeRaw, uprightSize } from '../data/decode';
import { classProbabilities } from '../models/common';
import { MultiScaleOptions, SegmentationForward, SegmentationNet, forwardAnySize, predictMultiScale, upsample } from '../models/segmentation';
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
   * How an image is brought to `size`: 'fill' (squashed) or 'center-crop' (the aspect kept, the centre
   * `cropFraction` resized). Default: as the run evaluated (`--resize crop`: the centre 87.5%).
   */
  resize?: { fit: Fit; cropFraction: number };
  /**
   * Segmentation at each image's own size, padded to the network's size multiple, instead of resizing to
   * the trained size. Also what happens when no trained size is known (plain weights, mixed-size folders).
   */
  native?: boolean;
  /**
   * Run the network optimized for inference (default true): BatchNorms folded into the convolutions before
   * them (nn.foldBatchNorm), and activations kept in oneDNN's layout between layers (torch.withOneDnnLayout)
   * where that is faster for the input's size (timed on the first calls; see LayoutChooser). The answers are
   * the plain network's up to float rounding; false runs the network exactly as trained.
   */
  optimize?: boolean;
  /** With optimize: 'onednn' or 'ordinary' fixes the layout instead of timing both ('auto'). */
  layout?: InferenceLayout;
  /**
   * With optimize: 'bfloat16' stores the weights and activations in bfloat16 (faster on CPUs with AVX-512 BF16
   * or AMX; ~1% relative error in the logits); images go in and probabilities come out in float32. Default
   * 'float32'.
   */
  precision?: InferencePrecision;
}

export interface ClassScore {
  class: string;
  index: number;
  probability: number;
}

export interface SegmentOptions extends MultiScaleOptions {
  /**
   * Run at each image's own size (padded to the network's size multiple) instead of the trained size.
   * Sliding windows (`crop`) always run at the image's own size: covering a large image is their purpose.
   */
  native?: boolean;
  /** Also return the image decoded at its own size (`image`), for overlays. */
  keepImage?: boolean;
}

export interface SegmentationPrediction {
  /** The class of each pixel, row-major, height × width (the image's own size). */
  labels: Uint8Array;
  width: number;
  height: number;
  classes: readonly string[];
  /** Pixels per class (index = class id). */
  classPixels: number[];
  /** With `keepImage`: the image decoded at its own size, as the network's channels. */
  image?: DecodedImage;
}

/** `Predictor.explain`'s answer: the class explained and where its evidence lies. */
export interface Explanation {
  name: string;
  classIndex: number;
  className: string;
  probability: number;
  /** The module whose feature maps were weighed (see GradCamOptions.layer). */
  layer: string;
  /** [H, W] float32 in [0, 1] at the image's own resolution, over what the network saw (see `image`). */
  heatmap: Tensor;
  /** The image's own pixels, [3, H, W] uint8 RGB: all of it, or with a centre-crop fit the region cropped. */
  image: Tensor;
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
  /** How images are brought to `size` (see PredictorOptions.resize). */
  readonly resize: { fit: Fit; cropFraction: number };
  readonly normalization: Normalization;
  private readonly model: Network;
  private readonly transform: BatchTransform;
  private readonly native: boolean;
  /** The network optimized for inference (its chooser picks the layout of each call); null: as trained. */
  private readonly optimized: OptimizedForInference<Network> | null;

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
    this.resize = o.resize ?? r.resize;
    if (this.segmentation && this.resize.fit !== 'fill') throw new Error(`${this.name} is a segmentation network: its class map covers the whole image, so images are resized, not cropped`);
    this.native = o.native ?? false;
    // The loaders' own deterministic transform: uint8 → [0, 1] → (x - mean) / std per channel.
    this.transform = compose(toFloat(), normalize(this.normalization.mean, this.normalization.std));
    // Any input the network accepts shows which convolution feeds which BatchNorm; its values do not matter.
    const [h, w] = this.size ?? [128, 128];
    const optimize = o.optimize ?? true;
    if (!optimize && (o.precision ?? 'float32') !== 'float32') throw new Error(`precision '${o.precision}' is part of the optimization for inference: it needs optimize (not --no-optimize)`);
    this.optimized = optimize ? tidy(() => optimizeForInference(this.model, zeros([1, this.channels, h, w]), { layout: o.layout, precision: o.precision })) : null;
  }

  /** What the network stores its weights and activations in. */
  get precision(): InferencePrecision {
    return this.optimized?.precision ?? 'float32';
  }

  /** One call's forward passes (`fn`, given the network to run) in the layout chosen for `what` at x's shape. */
  private run<T>(x: Tensor, what: string, fn: (forward: (x: Tensor) => Tensor) => T): T {
    const opt = this.optimized;
    if (!opt) return fn((x) => this.model.forward(x) as Tensor);
    return opt.chooser.run(`${what} ${x.shape.join('×')}`, () => fn((x) => opt.run(x) as Tensor));
  }

  /** The layout chosen for each input shape seen so far (optimized predictors). */
  get layouts(): Record<string, 'onednn' | 'ordinary'> {
    return this.optimized?.chooser.choices() ?? {};
  }

  /** Restores a checkpoint of `train` or `segment`, or plain weights with `model` (see restoreNetwork). */
  static async load(file: string, o: PredictorOptions = {}): Promise<Predictor> {
    return new Predictor(file, o);
  }

  /**
   * The k most probable classes (softmax over the logits), most probable first. `flip`: the probabilities
   * averaged with the mirror image's (test-time augmentation, as `eval --flip`).
   */
  async classify(image: ImageInput, o: { topK?: number; flip?: boolean } = {}): Promise<ClassScore[]> {
    return (await this.classifyMany([image], o))[0];
  }

  /**
   * classify() for many images, `batchSize` at a time (default 8): each batch is decoded concurrently (sharp
   * works off the JavaScript thread) and images of one size go through the network together. Eval-mode
   * networks treat every image of a batch alone, so the answers are classify()'s.
   */
  async classifyMany(images: readonly ImageInput[], o: { topK?: number; batchSize?: number; flip?: boolean } = {}): Promise<ClassScore[][]> {
    if (this.segmentation) throw new Error(`${this.name} is a segmentation network: use segment()`);
    return this.inBatches(images, o.batchSize, this.size, (group) =>
      tidy(() =>
        noGrad(() => {
          const x = cat(group.map((g) => this.input(g.img)), 0);
          const p = this.run(x, 'classify', (forward) => classProbabilities(forward, x, o.flip));
          const k = Math.max(1, Math.min(o.topK ?? 5, p.size(1)));
          const { values, indices } = p.topk(k, 1);
          return group.map((_, j) => {
            const p = values.select(0, j).toNumbers();
            return indices.select(0, j).toNumbers().map((index, i) => ({ class: this.className(index), index, probability: p[i] }));
          });
        }),
      ),
      'none', // a class per image: the image's own size plays no part
    );
  }

  /**
   * A class per pixel at the image's own size: the network runs at the trained size (its logits upsampled
   * back bilinearly) or, with `native`, at the image's size padded to its size multiple (logits cropped).
   * With `scales` and/or `flip`, the class probabilities are averaged over rescaled and mirrored copies
   * (predictMultiScale, DeepLab-V3 §4.3); with `crop`, the network sees windows of that size slid over the
   * image at its own size (PSPNet's evaluation). With `keepImage`, the prediction also holds the image decoded at
   * its own size (for overlays): the network's own decode with `native` or where the image has the trained size,
   * else a second decode run alongside it (see inBatches for why not a resize of one decode).
   */
  async segment(image: ImageInput, o: SegmentOptions = {}): Promise<SegmentationPrediction> {
    return (await this.segmentMany([image], o))[0];
  }

  /** segment() for many images, `batchSize` at a time (default 8), images of one size through the network together. */
  async segmentMany(images: readonly ImageInput[], o: SegmentOptions & { batchSize?: number } = {}): Promise<SegmentationPrediction[]> {
    if (!this.segmentation) throw new Error(`${this.name} is a classifier: use classify()`);
    const size = o.crop || (o.native ?? this.native) ? null : this.size;
    return this.inBatches(images, o.batchSize, size, (group) =>
      tidy(() =>
        noGrad(() => {
          // forwardAnySize pads only where the size is not a multiple of the network's (e.g. --size 30x30 for ENet).
          const x = cat(group.map((g) => this.input(g.img)), 0);
          const multi = o.scales !== undefined || o.flip === true || o.crop !== undefined;
          // Probabilities or logits: their argmax is the class either way, and both resize bilinearly.
          const how = multi ? `multi ${o.scales ?? ''} ${o.flip ?? false} ${o.crop ?? ''} ${o.stride ?? ''} ${o.windowsPerCall ?? ''}` : 'segment';
          const out = this.run(x, how, (forward) => {
            const net: SegmentationForward = { sizeMultiple: (this.model as SegmentationNet).sizeMultiple, forward };
            return multi ? predictMultiScale(net, x, o) : forwardAnySize(net, x);
          });
          return group.map(({ own }, j) => {
            const { width, height } = own;
            const one = out.narrow(0, j, 1);
            const atImage = one.size(2) === height && one.size(3) === width ? one : upsample(one, [height, width]);
            const l = atImage.argmax(1).flatten();
            const counts = callOp('aten::bincount', l, null, this.classes.length) as Tensor;
            const p: SegmentationPrediction = { labels: l.to('uint8').toArray() as Uint8Array, width, height, classes: this.classes, classPixels: counts.toNumbers() };
            if (o.keepImage) p.image = 'pixels' in own ? own : undefined;
            return p;
          });
        }),
      ),
      o.keepImage ? 'pixels' : 'size',
    );
  }

  /**
   * Decodes `batchSize` images at a time at `size` (null: each at its own), with what `own` asks of each
   * image's own size — nothing ('none'), its header ('size') or its pixels ('pixels') — and runs `run` on each
   * group of equal decoded size, returning the answers in the images' order.
   *
   * Grouping is within each chunk of `batchSize` images only: at a fixed `size` a chunk is one group; at own
   * sizes (`native`) images of equal size share a forward pass and an odd-sized image runs alone. Gathering
   * equal sizes across the whole input instead would hold more than `batchSize` decoded images and answer out
   * of order, for a gain only on folders that mix a few sizes.
   *
   * One decode per image where one suffices: at own sizes, and where an image already has the trained size (a
   * same-size resize is a no-op in sharp, so its pixels are the network's). Otherwise own pixels need a
   * second decode: resizing the own-size pixels would not be what training did — sharp shrinks JPEGs while
   * decoding them and resizes with alpha premultiplied before dropping it, so such images would reach the
   * network changed (on synthetic 300×200 images: up to 21 levels for a JPEG, 126 for a translucent PNG).
   */
  private async inBatches<R>(
    images: readonly ImageInput[],
    batchSize: number | undefined,
    size: readonly [number, number] | null,
    run: (group: { img: DecodedImage; own: DecodedImage | { width: number; height: number } }[]) => R[],
    own: 'none' | 'size' | 'pixels',
  ): Promise<R[]> {
    const b = batchSize ?? 8;
    if (!Number.isInteger(b) || b < 1) throw new Error(`batch size must be a positive integer, got ${batchSize}`);
    const out: R[] = new Array(images.length);
    for (let start = 0; start < images.length; start += b) {
      const chunk = await Promise.all(
        images.slice(start, start + b).map(async (image) => {
          const bytes = await readImage(image);
          if (!size || own === 'none') {
            const img = await this.decode(bytes, size);
            return { img, own: img };
          }
          // The own size from the header, read alongside the network's decode; own pixels need it first, to
          // tell whether that one decode already is them.
          if (own === 'size') {
            const [img, header] = await Promise.all([this.decode(bytes, size), imageSize(bytes)]);
            return { img, own: header };
          }
          const header = await imageSize(bytes);
          if (header.height === size[0] && header.width === size[1]) {
            // Decoded at `size` all the same, so that the network gets its size whatever the header said.
            const img = await this.decode(bytes, size);
            return { img, own: img };
          }
          const [img, pixels] = await Promise.all([this.decode(bytes, size), this.decode(bytes, null)]);
          return { img, own: pixels };
        }),
      );
      const groups = new Map<string, number[]>();
      chunk.forEach(({ img }, i) => {
        const key = `${img.height}x${img.width}`;
        groups.set(key, [...(groups.get(key) ?? []), i]);
      });
      for (const members of groups.values()) {
        const answers = run(members.map((i) => chunk[i]));
        members.forEach((i, j) => (out[start + i] = answers[j]));
      }
    }
    return out;
  }

  private className(i: number): string {
    return this.classes[i] ?? `class ${i}`;
  }

  /**
   * Where the network found the evidence for a class: Grad-CAM (`gradCam`) of the top class, or of
   * `classIndex`, on the network this predictor holds; for a segmentation network, of the region predicted
   * as the class (by default the largest other than class 0), at the trained size. Its gradient runs through the network, so load the
   * predictor with `optimize: false` for the network exactly as trained (a folded one explains the same
   * function up to rounding; bfloat16 is refused). The heatmap comes at the image's own resolution, with the
   * image's own pixels to lay it over (`heatmapPng`) — the centre region only, where the run cropped it.
   */
  async explain(image: ImageInput, o: GradCamOptions & { classIndex?: number } = {}): Promise<Explanation> {
    if (this.segmentation && !this.size) throw new Error(`${this.name}: explain runs at the trained size, which these weights do not record: give a size`);
    if (this.precision !== 'float32') throw new Error('explain runs in float32: load the predictor without precision bfloat16');
    const named = await readImage(image);
    const [img, whole] = await Promise.all([this.decode(named, this.size), decodeImage(named, { channels: 3 })]);
    return tidy(() => {
      const cam = gradCam(this.model as Module & { forward(x: Tensor): Tensor }, this.input(img), o);
      // A centre crop shows the part of the image the network saw; a squash, all of it.
      const box = this.size && this.resize.fit === 'center-crop' ? centerCropBox(whole.height, whole.width, this.size, this.resize.cropFraction) : { top: 0, left: 0, height: whole.height, width: whole.width };
      const heatmap = interpolate(cam.heatmap.unsqueeze(1), { size: [box.height, box.width], mode: 'bilinear', alignCorners: false }).view(box.height, box.width).clamp(0, 1);
      return {
        name: named.name,
        classIndex: cam.classIndex[0],
        className: this.className(cam.classIndex[0]),
        probability: cam.probability[0],
        layer: cam.layer,
        heatmap,
        image: fromArray(whole.pixels, [whole.height, whole.width, 3]).narrow(0, box.top, box.height).narrow(1, box.left, box.width).permute(2, 0, 1).contiguous(),
      };
    });
  }

  /** An image brought to `size` as this predictor's run evaluated (or at its own size: null). */
  private decode(image: ImageInput, size: readonly [number, number] | null): Promise<DecodedImage> {
    return decodeImage(image, { channels: this.channels, size, ...(size ? this.resize : {}) });
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
 * Decodes as training does (decodeRaw, shared with ImageFolder and SegmentationFiles): upright, alpha dropped,
 * grey (1 channel) or sRGB (3; grey images are expanded), brought to (H, W) by the fit with sharp's default
 * Lanczos-3 filter.
 */
async function decodeImage(image: ImageInput, o: DecodeOptions & { channels: 1 | 3 }): Promise<DecodedImage> {
  const { name, bytes } = await readImage(image);
  try {
    const img = await decodeRaw(bytes, o);
    if (img.channels !== o.channels) throw new Error(`decoded to ${img.channels} channels, expected ${o.channels}`);
    return { pixels: img.data, width: img.width, height: img.height, channels: o.channels };
  } catch (e) {
    throw new Error(`cannot decode ${name}: ${(e as Error).message}`);
  }
}

/** Width and height from the header (as shown: after the EXIF orientation), without decoding the pixels. */
async function imageSize({ name, bytes }: NamedImage): Promise<{ width: number; height: number }> {
  try {
    return await uprightSize(bytes);
  } catch (e) {
    throw new Error(`cannot decode ${name}: ${(e as Error).message}`);
  }
}
