// Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks", §4.2): one scalar T > 0,
// fitted on held-out images, divides a classifier's logits so that its probabilities say how often it is
// right. The answer (the argmax) does not move. T is folded into the head — the last linear layer's weight
// and bias divided by T — so the calibrated weights are an ordinary weights file: `predict`, `eval`,
// `export` (ONNX, the model card, the browser and server examples) give calibrated probabilities with no
// step of their own.
import { Tensor, cat, crossEntropy, keep, noGrad, softmax, tidy } from '../torch';
import { DataLoader, disposeBatch } from '../data';
import { Calibration, CalibrationMeter, fitTemperature } from '../metrics/calibration';
import type { Network } from '../infer/restore';

/** A classifier's logits [N, K] and the labels [N] over a loader (eval mode; kept: the caller disposes). */
export async function collectLogits(model: Network, loader: DataLoader): Promise<{ logits: Tensor; labels: Tensor }> {
  const [zs, ys]: [Tensor[], Tensor[]] = [[], []];
  const wasTraining = model.training;
  model.eval();
  try {
    for await (const b of loader.epoch(0)) {
      zs.push(keep(tidy(() => noGrad(() => model.forward(b.x).float()))));
      ys.push(keep(b.y.clone()));
      disposeBatch(b);
    }
  } finally {
    model.train(wasTraining);
  }
  if (!zs.length) throw new Error('collectLogits: the loader yielded no images');
  const out = { logits: keep(cat(zs, 0)), labels: keep(cat(ys, 0)) };
  for (const t of [...zs, ...ys]) t.dispose();
  return out;
}

/** Negative log-likelihood and calibration of softmax(logits / t). */
export function scoreAt(logits: Tensor, labels: Tensor, t: number): { nll: number; calibration: Calibration } {
  return tidy(() =>
    noGrad(() => {
      const z = logits.div(t);
      const meter = new CalibrationMeter();
      meter.update(softmax(z, 1), labels);
      return { nll: crossEntropy(z, labels).item(), calibration: meter.result() };
    }),
  );
}

export interface TemperatureFit {
  temperature: number;
  /** Held-out images it was fitted on. */
  images: number;
  before: { nll: number; calibration: Calibration };
  after: { nll: number; calibration: Calibration };
}

/** Fits T on a loader of held-out images (Guo et al.: the validation set), with the scores before and after. */
export async function fitTemperatureOn(model: Network, loader: DataLoader): Promise<TemperatureFit> {
  const { logits, labels } = await collectLogits(model, loader);
  try {
    const temperature = fitTemperature(logits, labels);
    return { temperature, images: labels.size(0), before: scoreAt(logits, labels, 1), after: scoreAt(logits, labels, temperature) };
  } finally {
    logits.dispose();
    labels.dispose();
  }
}

/**
 * The state dict with the head's weight and bias divided by t: the network then computes logits / t. The
 * head (`Classifier.head`) is the last layer, a linear map to the logits.
 */
export function scaledHead(weights: Record<string, Tensor>, head: string, t: number): Record<string, Tensor> {
  if (!(t > 0) || !Number.isFinite(t)) throw new RangeError(`scaledHead: the temperature must be a positive number, got ${t}`);
  const w = weights[`${head}.weight`];
  if (!w) throw new Error(`scaledHead: the weights have no '${head}.weight' (the classifier's head)`);
  const out = { ...weights };
  for (const k of [`${head}.weight`, `${head}.bias`]) if (weights[k]) out[k] = tidy(() => keep(weights[k].div(t)));
  return out;
}
