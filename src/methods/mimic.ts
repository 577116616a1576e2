// Mimic learning (Ba & Caruana 2014, "Do Deep Nets Really Need to be Deep?"): a shallow student learns to
// reproduce a deep teacher's logits — the values before the softmax — by L2 regression,
//   L(W, β) = 1/(2T) Σ_t ‖g(x_t; W, β) − z_t‖²,
// instead of fitting the 0/1 labels. Logits keep what the softmax squashes (how confident, and which wrong
// classes look alike), which is what lets the shallow net match more of the deep one.
import { Tensor, isHalfFloat, klDiv, logSoftmax, noGrad } from '../torch';
import { Classifier } from '../models/common';
import { ModelName, createClassifier, isModelName } from '../models/registry';
import { fitWeights, readWeights } from '../train/checkpoint';
import type { DataSpec } from '../train/datasets';

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
  // Read once: a checkpoint, or the plain weights a run wrote, gives both the teacher's config and its weights.
  const { weights, checkpoint, run } = readWeights(spec.file);
  if (run) {
    const cfg = run.config as { model: ModelName; modelOptions: Record<string, unknown>; data: DataSpec };
    if (JSON.stringify(normalizeData(cfg.data)) !== JSON.stringify(normalizeData(ctx.data))) {
      throw new Error(`teacher ${spec.file} was trained on ${JSON.stringify(cfg.data)}, the student reads ${JSON.stringify(ctx.data)}: its logits would answer different inputs`);
    }
    name = cfg.model;
    options = cfg.modelOptions;
    const history = (checkpoint?.state as { history?: { testTop1: number }[] } | undefined)?.history;
    testTop1 = history?.length ? history[history.length - 1].testTop1 : null;
  }
  if (!name) throw new Error(`teacher ${spec.file} holds plain weights: name its model (teacherModel)`);
  if (!isModelName(name)) throw new Error(`teacher model '${name}' is not a registered model`);
  const model = createClassifier(name, options ?? {}, ctx);
  fitWeights(model, weights, `teacher ${spec.file} does not fit its model`);
  model.eval();
  model.freeze();
  return { model, name, testTop1, logits: (x) => noGrad(() => model.forward(x)) };
}

function normalizeData(d: DataSpec): DataSpec {
  if (d.kind === 'fashion-mnist') return { kind: 'fashion-mnist' };
  // Which images and how they are fed; neither a validation split (valSplit) nor the range of training's
  // random crops (cropScale) changes them: the teacher answers the student's batches.
  const { valSplit: _, cropScale: __, ...images } = d;
  return { ...images, size: images.size ?? 32, channels: images.channels ?? 3 };
}
