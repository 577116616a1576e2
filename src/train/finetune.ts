// Fine-tuning: a classifier that starts from weights trained elsewhere — torchvision's ImageNet networks
// converted by scripts/pth2safetensors.py, or another tsvision run — on other classes, with its backbone
// held frozen for the first epochs so that a fresh head's first gradients cannot wreck it.
import { BatchNorm2d, Parameter } from '../nn';
import { Classifier } from '../models/common';
import { Tensor } from '../torch';
import { fitWeights, readWeights } from './checkpoint';

const under = (key: string, prefix: string): boolean => key === prefix || key.startsWith(`${prefix}.`);

/**
 * Loads `file` into `model`. Every tensor must fit, except the head's when the file was trained on other
 * classes — another number of them, or, where the file's run record names them, other names than `classes`
 * (the data's): that head is left as initialized (torchvision's and timm's `num_classes` recipe).
 * Returns the file's classes (their number, and names where recorded) when its head was replaced, else null.
 */
export function loadForFineTuning(file: string, model: Classifier, classes?: readonly string[]): { fileClasses: number; names: readonly string[] | null } | null {
  const { weights, run } = readWeights(file);
  const own = model.stateDict();
  const headWeight = weights[`${model.head}.weight`];
  const ownHead = own[`${model.head}.weight`];
  const names = Array.isArray(run?.classes) ? (run.classes as string[]) : null;
  const otherNames = names !== null && classes !== undefined && classes.length > 0 && names.join('\n') !== classes.join('\n');
  const replaced = headWeight && ownHead && (headWeight.shape[0] !== ownHead.shape[0] || otherNames) && headWeight.shape.slice(1).join() === ownHead.shape.slice(1).join();
  // A fresh head: the model's own head tensors stand in for the file's (copying a tensor onto itself is a
  // no-op), so that the one strict load checks every other name and shape.
  const keep = (sd: Record<string, Tensor>, head: boolean) => Object.entries(sd).filter(([k]) => under(k, model.head) === head);
  const sd = replaced ? Object.fromEntries([...keep(weights, false), ...keep(own, true)]) : weights;
  fitWeights(model, sd, `weights ${file} do not fit the model`);
  return replaced ? { fileClasses: headWeight.shape[0], names } : null;
}

/**
 * model.train(), and with `frozen` every layer frozen (no gradients, so neither the optimizer nor weight
 * decay moves it) but the head and the BatchNorm layers: those keep their scale and shift trainable and
 * their statistics updating, as fastai's `freeze` (`train_bn`) has it. Holding BatchNorm at the old task's
 * statistics too, tried first, normalized the new images wrongly: on reports/transfer's dissimilar halves
 * (100 images per class) unfreezing then collapsed one of three runs to 58%; this recipe gave 86.6–90.5%.
 * Without `frozen` every parameter trains.
 */
export function trainMode(model: Classifier, frozen: boolean): void {
  model.train();
  const trainable = frozenTrainable(model);
  for (const [name, p] of model.namedParameters()) p.requiresGrad_(!frozen || trainable(name));
}

/** Whether a parameter trains while the backbone is frozen: the head's and the BatchNorm layers'. */
function frozenTrainable(model: Classifier): (parameter: string) => boolean {
  const norms = model.namedModules().filter(([, m]) => m instanceof BatchNorm2d).map(([n]) => n);
  return (name) => under(name, model.head) || norms.some((n) => under(name, n));
}

/** The parameters a frozen backbone leaves to train: the head's and the BatchNorm layers'. */
export function frozenTrainableParameters(model: Classifier): number {
  const trainable = frozenTrainable(model);
  return model.namedParameters().reduce((n, [name, p]) => n + (trainable(name) ? p.numel() : 0), 0);
}

/**
 * The optimizer's parameter groups for a discriminative learning rate (fastai's `lr=slice(…)`, ULMFiT §3.2):
 * every parameter but the head's at `scale` × the run's rate, the head's at the rate itself. The backbone
 * group comes first, in the model's parameter order, so that a checkpoint's optimizer state fits again.
 */
export function backboneLrGroups(model: Classifier, lr: number, scale: number): { params: Parameter[]; lr: number }[] {
  const named = model.namedParameters();
  return [
    { params: named.filter(([n]) => !under(n, model.head)).map(([, p]) => p), lr: lr * scale },
    { params: named.filter(([n]) => under(n, model.head)).map(([, p]) => p), lr },
  ];
}
