// Mimic learning (Ba & Caruana 2014, "Do Deep Nets Really Need to be Deep?"): a shallow student learns to
// reproduce a deep teacher's logits — the values before the softmax — by L2 regression,
//   L(W, β) = 1/(2T) Σ_t ‖g(x_t; W, β) − z_t‖²,
// instead of fitting the 0/1 labels. Logits keep what the softmax squashes (how confident, and which wrong
// classes look alike), which is what lets the shallow net match more of the deep one. Segmentation networks
// learn the same way at every pixel (pixelMimicLoss, loadSegmentationTeacher, below).
import { Tensor, cat, fromArray, isHalfFloat, keep, klDiv, logSoftmax, noGrad, tidy } from '../torch';
import { DataLoader } from '../data';
import type { Module } from '../nn';
import { Classifier } from '../models/common';
import { ModelName, SegmentationModelName, SegmentationModelOptions, createClassifier, createSegmentationModel, isModelName, isSegmentationModelName } from '../models/registry';
import { SegmentationNet, forwardAnySize, pixelLoss } from '../models/segmentation';
import { fitWeights, readWeights } from '../train/checkpoint';
import { evalPass } from '../train/eval-pass';
import type { DataSpec } from '../train/datasets';
import { IGNORE_LABEL } from '../data/segmentation-folder';

/** Half-float logits (autocast's) compared in float32: in 8 mantissa bits a difference is mostly rounding. */
const f32 = (t: Tensor): Tensor => (isHalfFloat(t.dtype) ? t.to('float32') : t);

function checkLogits(what: string, student: Tensor, teacher: Tensor): void {
  const [a, b] = [student.shape, teacher.shape];
  if (a.length !== 2 || a.join(',') !== b.join(',')) throw new Error(`${what}: student logits [${a}] and teacher logits [${b}] must both be [batch, classes]`);
}

/**
 * ½ · squared L2 distance between student and teacher logits, summed over classes, averaged over the batch.
 * bfloat16 or float16 logits (`--bf16`: autocast's linear layers give them) are compared in float32, as
 * autocast runs PyTorch's mse_loss: in 8 mantissa bits the difference of two close logits is mostly rounding.
 */
export function mimicLoss(student: Tensor, teacher: Tensor): Tensor {
  checkLogits('mimicLoss', student, teacher);
  return f32(student).sub(f32(teacher.detach())).square().sum(1).mean().mul(0.5);
}

/**
 * Knowledge distillation's soft targets (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural
 * Network"): T² · KL(softmax(z_t / T) ‖ softmax(z_s / T)), averaged over the batch. The T² keeps the
 * gradients' size as T grows (§2). As T → ∞ it approaches the L2 on zero-mean logits above, divided by the
 * number of classes (§2.1): mimicLoss is that limit, this the finite-temperature variant.
 */
export function distillationLoss(student: Tensor, teacher: Tensor, temperature: number): Tensor {
  checkLogits('distillationLoss', student, teacher);
  if (!(temperature > 0)) throw new RangeError(`distillationLoss: the temperature must be positive, got ${temperature}`);
  const soft = (z: Tensor) => logSoftmax(f32(z).div(temperature), 1);
  return klDiv(soft(student), soft(teacher.detach()), { reduction: 'batchmean', logTarget: true }).mul(temperature * temperature);
}

export interface TeacherSpec {
  /** A tsvision checkpoint (names its own model), or plain weights with `model`. */
  file: string;
  model?: ModelName;
  modelOptions?: Record<string, unknown>;
}

export interface Teacher {
  model: Classifier;
  name: ModelName;
  /** Its training run's final test top-1, when the checkpoint records one. */
  testTop1: number | null;
  /** How many training images its run had labels for (DataSpec.labelled), when it records a run with fewer than all. */
  labelled: number | null;
  /** Logits for a batch: eval mode (BatchNorm running statistics), no autograd. */
  logits(x: Tensor): Tensor;
}

/**
 * Loads a trained teacher for a student that sees `data` with `numClasses` classes. A checkpoint's run must
 * have read the same data (same normalization and size), or its logits would answer a different input.
 */
export function loadTeacher(spec: TeacherSpec, ctx: { numClasses: number; inChannels: number; data: DataSpec }): Teacher {
  let name = spec.model;
  let options = spec.modelOptions ?? {};
  let testTop1: number | null = null;
  let labelled: number | null = null;
  // Read once: a checkpoint, or the plain weights a run wrote, gives both the teacher's config and its weights.
  const { weights, checkpoint, run } = readWeights(spec.file);
  if (run) {
    const cfg = run.config as { model: ModelName; modelOptions: Record<string, unknown>; data: DataSpec };
    if (JSON.stringify(normalizeData(cfg.data)) !== JSON.stringify(normalizeData(ctx.data))) {
      throw new Error(`teacher ${spec.file} was trained on ${JSON.stringify(cfg.data)}, the student reads ${JSON.stringify(ctx.data)}: its logits would answer different inputs`);
    }
    name = cfg.model;
    options = cfg.modelOptions;
    labelled = cfg.data.labelled ?? null;
    const history = (checkpoint?.state as { history?: { testTop1: number }[] } | undefined)?.history;
    testTop1 = history?.length ? history[history.length - 1].testTop1 : null;
  }
  if (!name) throw new Error(`teacher ${spec.file} holds plain weights: name its model (teacherModel)`);
  if (!isModelName(name)) throw new Error(`teacher model '${name}' is not a registered model`);
  const model = createClassifier(name, options ?? {}, ctx);
  fitWeights(model, weights, `teacher ${spec.file} does not fit its model`);
  model.eval();
  model.freeze();
  return { model, name, testTop1, labelled, logits: (x) => noGrad(() => model.forward(x)) };
}

/** The most logits a teacher's cache holds (float32: 512 MB); beyond, the teacher runs on every batch. */
export const MAX_CACHED_LOGITS = 128 * 2 ** 20;

/**
 * A teacher's logits for every image of a training set, computed once, as Ba & Caruana did for their
 * transfer set, instead of once per image per epoch: a deep teacher's forward pass can outweigh the shallow
 * student's whole step (`cnn`'s 18.7M mult-adds per image against `shallow`'s 2.24M, backward pass aside).
 * Valid only while the loader feeds each image identically every epoch (no random augmentation): `rows`
 * checks the first batch it serves against the teacher itself.
 */
export class CachedLogits {
  private checked = false;
  private failed = false;

  private constructor(
    private readonly logitsOf: (x: Tensor) => Tensor,
    /** float32 [images, ...], in dataset order. */
    readonly logits: Tensor,
  ) {}

  /**
   * Runs `logitsOf` (the teacher `model`, in eval mode) over `loader`'s images in dataset order, through the
   * loader's own transforms and in its own batch size, so that the kernels are the ones training will meet.
   */
  static async compute(model: Module, logitsOf: (x: Tensor) => Tensor, loader: DataLoader): Promise<CachedLogits> {
    const parts: Tensor[] = [];
    try {
      await evalPass([model], loader.inOrder(), {}, (b) => parts.push(keep(f32(logitsOf(b.x)))));
      return new CachedLogits(logitsOf, keep(tidy(() => cat(parts, 0))));
    } finally {
      for (const t of parts) t.dispose();
    }
  }

  /**
   * The cached logits of a batch's images. The first call also runs the teacher on the batch and, if the two
   * differ by more than float rounding across batch compositions, says so and answers null from then on: the
   * images were not fed as when cached, and the teacher must run on every batch instead.
   */
  rows(x: Tensor, samples: Int32Array, log: (line: string) => void): Tensor | null {
    if (this.failed) return null;
    const z = this.logits.indexSelect(0, fromArray(samples).to('int64'));
    if (!this.checked) {
      const live = f32(this.logitsOf(x));
      const diff = live.sub(z).abs().max().item();
      const scale = live.abs().max().item();
      this.checked = true;
      if (!(diff <= 1e-4 * Math.max(1, scale))) {
        this.failed = true;
        log(`teacher logits: the cached ones differ from the teacher's answer on the first batch by ${diff.toPrecision(3)} (logits up to ${scale.toPrecision(3)}), so the images are not fed the same way every epoch: the teacher runs on every batch instead`);
        return null;
      }
    }
    return z;
  }

  dispose(): void {
    this.logits.dispose();
  }
}

/** What decides whether a run computes its teacher's logits once (cacheTeacherLogits). */
export interface CacheRequest {
  /** The teacher network and its logits for a batch of images (eval mode, no autograd). */
  model: Module;
  logitsOf: (x: Tensor) => Tensor;
  /** The training loader (its dataset, transforms and batch size). */
  train: DataLoader;
  /** Every image is fed the same way each epoch: no random augmentation, and the teacher's precision fixed. */
  fixedInputs: boolean;
  /** Images this process will train on from here. */
  imagesSeen: number;
  /** Logits per image (classes, times pixels for a segmentation teacher). */
  perImage: number;
  /** false: the teacher runs on every batch in any case. */
  enabled: boolean;
  log: (line: string) => void;
}

/**
 * The teacher's logits over the training set, computed once where that pays and is safe (every image fed
 * alike; the run sees more images than the set holds, so one pass over it costs less than one per batch;
 * within MAX_CACHED_LOGITS); otherwise null, the teacher then running on every batch. Logs which and why.
 */
export async function cacheTeacherLogits(r: CacheRequest): Promise<CachedLogits | null> {
  const n = r.train.dataset.length;
  const why =
    !r.enabled ? 'as asked (cacheTeacher: false)'
    : !r.fixedInputs ? 'the training images are augmented at random or fed in bfloat16'
    : r.imagesSeen <= n ? 'the run sees fewer images than the training set holds'
    : n * r.perImage > MAX_CACHED_LOGITS ? `${n.toLocaleString('en-US')} images × ${r.perImage.toLocaleString('en-US')} logits are more than ${MAX_CACHED_LOGITS * 4 / 2 ** 20} MB`
    : '';
  if (why) {
    r.log(`teacher logits: computed on every batch (${why})`);
    return null;
  }
  const t0 = Date.now();
  const cache = await CachedLogits.compute(r.model, r.logitsOf, r.train);
  r.log(`teacher logits: computed once for the ${n.toLocaleString('en-US')} training images in ${((Date.now() - t0) / 1000).toFixed(1)} s, looked up on every batch`);
  return cache;
}

/** How closely a student follows its teacher on some images (not how often either is right). */
export interface Fidelity {
  /** Share of the images where the student's top class is the teacher's. */
  agreement: number;
  /** ½‖g − z‖² between their logits, averaged over the images: what mimicry minimizes. */
  l2: number;
  images: number;
}

/**
 * A student's fidelity to its teacher over a loader's images (eval mode, no autograd; the first
 * `limitBatches` batches, 0: all): mimic learning's own measure, which accuracy alone does not show.
 */
export async function fidelity(student: Classifier, teacher: Classifier, loader: DataLoader, limitBatches = 0): Promise<Fidelity> {
  let [same, l2, n] = [0, 0, 0];
  await evalPass([student, teacher], loader, { limitBatches }, (b) => {
    const [g, z] = [f32(student.forward(b.x)), f32(teacher.forward(b.x))];
    const m = b.x.size(0);
    same += g.argmax(1).eq(z.argmax(1)).sum().item();
    l2 += mimicLoss(g, z).item() * m;
    n += m;
  });
  return { agreement: same / Math.max(1, n), l2: l2 / Math.max(1, n), images: n };
}

function normalizeData(d: DataSpec): DataSpec {
  if (d.kind === 'fashion-mnist') return { kind: 'fashion-mnist' };
  // Which images and how they are fed; neither a validation split (valSplit), the range of training's
  // random crops (cropScale) nor which images have labels (labelled, unlabelled) changes them: the teacher
  // answers the student's batches.
  const { valSplit: _, valSeed: _s, cropScale: __, labelled: ___, unlabelled: ____, ...images } = d;
  return { ...images, size: images.size ?? 32, channels: images.channels ?? 3 };
}

// ---- Segmentation: the same targets at every pixel --------------------------------------------------------
// A segmentation network is a classifier per pixel, so mimicry carries over pixel by pixel: the student's
// logits at each pixel regress the teacher's there (or match its soft targets at T, the "pixel-wise
// distillation" of Liu et al. 2019). Every pixel counts, labelled or not: the teacher answers them all, which
// is what lets unlabelled (ignored, 255) regions teach the student too.

/** [N, K, H, W] logits as [N·H·W, K] rows, one per pixel. */
const pixelRows = (t: Tensor): Tensor => t.permute(0, 2, 3, 1).reshape(-1, t.size(1));

function checkPixelLogits(what: string, student: Tensor, teacher: Tensor): void {
  const [a, b] = [student.shape, teacher.shape];
  if (a.length !== 4 || a.join(',') !== b.join(',')) throw new Error(`${what}: student logits [${a}] and teacher logits [${b}] must both be [batch, classes, height, width]`);
}

/** mimicLoss at every pixel: ½‖g − z‖² over the classes, averaged over the batch's pixels. */
export function pixelMimicLoss(student: Tensor, teacher: Tensor): Tensor {
  checkPixelLogits('pixelMimicLoss', student, teacher);
  return mimicLoss(pixelRows(student), pixelRows(teacher));
}

/** distillationLoss at every pixel: T² · KL of the softened distributions, averaged over the batch's pixels. */
export function pixelDistillationLoss(student: Tensor, teacher: Tensor, temperature: number): Tensor {
  checkPixelLogits('pixelDistillationLoss', student, teacher);
  return distillationLoss(pixelRows(student), pixelRows(teacher), temperature);
}

/** How a segmentation student learns from its teacher (SegmentConfig.teacher). */
export interface SegmentTeacherSpec {
  /** A `tsvision segment` checkpoint or the weights it wrote. */
  file: string;
  /** Soft targets at this temperature (Hinton et al. 2015) instead of the logits by L2 (Ba & Caruana 2014). */
  temperature?: number;
  /**
   * Also this weight × the labels' cross-entropy on the student's logits (class weights and ignored pixels
   * as the run's), as distillation is usually paired with the labels; 0 or absent: the teacher alone.
   */
  labelWeight?: number;
  /** false: the teacher runs on every batch even where its logits could be computed once (default true). */
  cacheTeacher?: boolean;
}

export interface SegmentationTeacher {
  model: SegmentationNet;
  name: string;
  /** Its run's last test mIoU, where the file records one. */
  testMIoU: number | null;
  /** One line for the log. */
  description: string;
  /** Logits [N, K, H, W] at the input's size: eval mode, no autograd, float32; any size (padded to its strides). */
  logits(x: Tensor): Tensor;
  /** The loss of a student's logits for images whose teacher logits are `z` and labels `labels`. */
  loss(student: Tensor, z: Tensor, labels: Tensor, weight: Tensor | null): Tensor;
}

/** What the student's run reads, which the teacher's run must have read alike. */
export interface SegmentStudentData {
  classes: readonly string[];
  inChannels: number;
  /** Whether the student reads image folders (normalized as ImageNet) rather than the scenes (as Fashion-MNIST). */
  folders: boolean;
}

/**
 * A `segment` run's network as a teacher for a student reading `student`: both must see images normalized
 * alike (scenes, or folders of as many channels) and answer the same classes, or the teacher's logits would
 * answer another question.
 */
export function loadSegmentationTeacher(spec: SegmentTeacherSpec, student: SegmentStudentData): SegmentationTeacher {
  if (spec.temperature !== undefined && !(spec.temperature > 0)) throw new RangeError(`teacher: the temperature must be positive, got ${spec.temperature}`);
  if (spec.labelWeight !== undefined && !(spec.labelWeight >= 0)) throw new RangeError(`teacher: the label weight must be 0 or more, got ${spec.labelWeight}`);
  const { weights, checkpoint, run } = readWeights(spec.file);
  const cfg = run?.config as { model?: string; modelOptions?: Record<string, unknown>; scenes?: unknown; folders?: { channels: number } } | undefined;
  if (!cfg?.scenes || !cfg.model || !isSegmentationModelName(cfg.model)) throw new Error(`teacher ${spec.file} is not a checkpoint (or weights) of \`tsvision segment\``);
  const classes = (run!.classes as string[] | undefined) ?? [];
  const reads = (folders: boolean, channels: number): string => (folders ? `image folders, ${channels} channel${channels === 1 ? '' : 's'}` : 'Fashion-MNIST scenes');
  const [theirs, ours] = [reads(Boolean(cfg.folders), cfg.folders?.channels ?? 1), reads(student.folders, student.inChannels)];
  if (theirs !== ours) throw new Error(`teacher ${spec.file} was trained on ${theirs}, the student reads ${ours}: its logits would answer differently normalized images`);
  if (classes.join('\n') !== student.classes.join('\n')) {
    throw new Error(`teacher ${spec.file} knows ${classes.length} classes (${classes.join(', ')}), the student's data ${student.classes.length} (${student.classes.join(', ')}): they must be the same, in the same order`);
  }
  const model = createSegmentationModel(cfg.model, { ...cfg.modelOptions, numClasses: classes.length, inChannels: student.inChannels } as SegmentationModelOptions[SegmentationModelName]);
  fitWeights(model, weights, `teacher ${spec.file} does not fit its model`);
  model.eval();
  model.freeze();
  const history = (checkpoint?.state as { history?: { testMIoU: number }[] } | undefined)?.history;
  const testMIoU = history?.length ? history[history.length - 1].testMIoU : null;
  const T = spec.temperature;
  const how = T ? `knowledge distillation: the soft targets (temperature ${T}) at every pixel` : 'mimic learning: L2 regression on the logits at every pixel';
  const labels = spec.labelWeight ? `, + ${spec.labelWeight} × the labels' cross-entropy` : '';
  const mIoU = testMIoU === null ? '' : `, test mIoU ${(100 * testMIoU).toFixed(2)}%`;
  return {
    model,
    name: cfg.model,
    testMIoU,
    description: `${how} of ${cfg.model} from ${spec.file} (${model.numParameters().toLocaleString('en-US')} parameters${mIoU})${labels}`,
    logits: (x) => noGrad(() => f32(forwardAnySize(model, x))),
    loss: (s, z, y, weight) => {
      const l = T ? pixelDistillationLoss(s, z, T) : pixelMimicLoss(s, z);
      // A batch of unlabelled images alone has no labelled pixel: no label term, rather than a mean over none (NaN).
      return spec.labelWeight && y.ne(IGNORE_LABEL).any().item() === 1 ? l.add(pixelLoss(s, y, { weight, ignoreIndex: IGNORE_LABEL }).mul(spec.labelWeight)) : l;
    },
  };
}
