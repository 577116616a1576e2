// What a training method changes in the one training loop (train/trainer.ts): the loss of a batch, and what
// happens just before and after the optimizer step. A run names its method in its config, so a checkpoint
// resumes with the same method; a method's tensors (DSD's masks) travel in the checkpoint.
import { Tensor, crossEntropy, isHalfFloat } from '../torch';
import { NO_LABEL } from '../data/loader';
import { Module } from '../nn';
import type { Batch, DataLoader } from '../data';
import type { DataSpec } from '../train/datasets';
import type { ModelName } from '../models/registry';
import { MagnitudeMasks, overallSparsity } from './prune';
import { CachedLogits, cacheTeacherLogits, distillationLoss, loadTeacher, mimicLoss } from './mimic';

export type MethodSpec =
  /** DSD's sparse step: prune by magnitude once at the start, hold the masks through training. */
  | { kind: 'sparse'; sparsity: number; skipFirst?: boolean }
  /** Mimic learning: regress the teacher's logits with L2 instead of fitting labels. */
  /** temperature: Hinton et al.'s soft targets at that temperature instead of the paper's L2 on logits. */
  /** labelWeight: also this weight × the labels' cross-entropy (images without labels left out), as Hinton et al. pair them. */
  /** cacheTeacher: false runs the teacher on every batch even where its logits could be computed once (default true). */
  | { kind: 'mimic'; teacher: string; teacherModel?: ModelName; teacherOptions?: Record<string, unknown>; temperature?: number; labelWeight?: number; cacheTeacher?: boolean };

export interface TrainingMethod {
  /** One line for the log. */
  readonly description: string;
  /**
   * Before the first step: `train` is the training loader; `fixedInputs` says whether it feeds every image
   * the same way each epoch (no random augmentation, float32), so that per-image results can be computed
   * once; `imagesSeen`, how many images this process will train on from here.
   */
  prepare?(o: { train: DataLoader; fixedInputs: boolean; imagesSeen: number; log: (line: string) => void }): Promise<void>;
  /** The loss of one batch, given the model's logits; default: cross-entropy with the labels. */
  loss?(logits: Tensor, batch: Batch): Tensor;
  /** After backward, before the optimizer step. */
  beforeStep?(): void;
  /** After the optimizer step. */
  afterStep?(): void;
  /** Tensors a checkpoint must keep for an exact resume. */
  stateDict?(): Record<string, Tensor>;
  /** JSON for report.json. */
  summary?(): unknown;
  /** Frees what the method holds, once training is over. */
  dispose?(): void;
}

export interface MethodContext {
  numClasses: number;
  inChannels: number;
  data: DataSpec;
}

/** Builds the method for a run; `saved` is the method state of the checkpoint being resumed, if any. */
export function createMethod(spec: MethodSpec, model: Module, saved: Record<string, Tensor> | null, ctx: MethodContext): TrainingMethod {
  if (spec.kind === 'sparse') {
    const skipFirst = spec.skipFirst ?? true;
    const masks = saved && Object.keys(saved).length ? MagnitudeMasks.fromStateDict(model, saved) : MagnitudeMasks.topK(model, { sparsity: spec.sparsity, skipFirst });
    masks.apply();
    return {
      description: `sparse training (DSD's S step): ${(100 * spec.sparsity).toFixed(0)}% of each ${skipFirst ? 'but the first ' : ''}conv/linear layer's weights pruned by magnitude, masks held`,
      beforeStep: () => masks.maskGradients(),
      afterStep: () => masks.apply(),
      stateDict: () => masks.stateDict(),
      summary: () => ({ overallSparsity: overallSparsity(model), layers: masks.report() }),
    };
  }
  if (spec.kind === 'mimic') {
    const teacher = loadTeacher({ file: spec.teacher, model: spec.teacherModel, modelOptions: spec.teacherOptions }, ctx);
    const acc = teacher.testTop1 === null ? '' : `, test top-1 ${(100 * teacher.testTop1).toFixed(2)}%`;
    if (spec.labelWeight !== undefined && !(spec.labelWeight >= 0)) throw new RangeError(`mimic: the label weight must be 0 or more, got ${spec.labelWeight}`);
    const w = spec.labelWeight ?? 0;
    let cache: CachedLogits | null = null;
    let say: (line: string) => void = () => {};
    return {
      description: `${spec.temperature ? `knowledge distillation: the soft targets (temperature ${spec.temperature})` : 'mimic learning: L2 regression on the logits'} of ${teacher.name} from ${spec.teacher} (${teacher.model.numParameters().toLocaleString('en-US')} parameters${acc})${w ? `, + ${w} × the labels' cross-entropy` : ''}`,
      prepare: async ({ train, fixedInputs, imagesSeen, log }) => {
        say = log;
        cache = await cacheTeacherLogits({ model: teacher.model, logitsOf: teacher.logits, train, fixedInputs, imagesSeen, perImage: ctx.numClasses, enabled: spec.cacheTeacher !== false, log });
      },
      loss: (logits, batch) => {
        const z = cache?.rows(batch.x, batch.samples, say) ?? teacher.logits(batch.x);
        const l = spec.temperature ? distillationLoss(logits, z, spec.temperature) : mimicLoss(logits, z);
        // A batch of a transfer set's images alone has no label: no label term, rather than a mean over none (NaN).
        if (!w || batch.y.ge(0).any().item() === 0) return l;
        return l.add(crossEntropy(isHalfFloat(logits.dtype) ? logits.to('float32') : logits, batch.y, { ignoreIndex: NO_LABEL }).mul(w));
      },
      dispose: () => cache?.dispose(),
      summary: () => ({ teacher: spec.teacher, teacherModel: teacher.name, teacherParameters: teacher.model.numParameters(), teacherTestTop1: teacher.testTop1 }),
    };
  }
  throw new Error(`unknown training method ${JSON.stringify(spec)}`);
}
