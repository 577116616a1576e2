// Fine-tuning: a classifier that starts from weights trained elsewhere — torchvision's ImageNet networks
// converted by scripts/pth2safetensors.py, or another tsvision run — on other classes, with its backbone
// (everything but the head) held frozen for the first epochs so that a fresh head cannot wreck it.
import { Classifier } from '../models/common';
import { readWeights } from './checkpoint';

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
  const sd = replaced ? Object.fromEntries(Object.entries(weights).filter(([k]) => !under(k, model.head))) : weights;
  const problems = [
    ...Object.keys(own).filter((k) => !(k in sd) && !(replaced && under(k, model.head))).map((k) => `${k}: missing from the file`),
    ...Object.keys(sd).filter((k) => !(k in own)).map((k) => `${k}: not in the model`),
  ];
  try {
    if (problems.length) throw new Error(`${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
    model.loadStateDict(sd, { strict: false });
  } catch (e) {
    throw new Error(`weights ${file} do not fit the model: ${(e as Error).message.replace(/^loadStateDict: /, '')}`);
  }
  return replaced ? { fileClasses: headWeight.shape[0], names } : null;
}

/**
 * model.train(), and with `frozen` everything but the head frozen (no gradients, so no optimizer or weight
 * decay moves it) and in inference mode: BatchNorm normalizes with, and keeps, the statistics it came with,
 * and dropout before the head is off, so the head learns on the features the backbone will give later.
 * Without `frozen` every parameter trains again.
 */
export function trainMode(model: Classifier, frozen: boolean): void {
  model.train();
  for (const [name, p] of model.namedParameters()) p.requiresGrad_(!frozen || under(name, model.head));
  if (!frozen) return;
  // Modules on the head's path (the root, `classifier` above `classifier.3`) hold no layers of their own.
  for (const [name, m] of model.namedModules()) if (!under(name, model.head) && !under(model.head, name) && name !== '') m.training = false;
}

/** The parameters a frozen backbone leaves to train: the head's. */
export function headParameters(model: Classifier): number {
  return model.namedParameters().reduce((n, [name, p]) => n + (under(name, model.head) ? p.numel() : 0), 0);
}
