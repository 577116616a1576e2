// Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks", §4.2): one scalar T > 0,
// fitted on held-out images, divides a classifier's logits so that its probabilities say how often it is
// right. The answer (the argmax) does not move. T is folded into the head — the last linear layer's weight
// and bias divided by T — so the calibrated weights are an ordinary weights file: `predict`, `eval`,
// `export` (ONNX, the model card, the browser and server examples) give calibrated probabilities with no
// step of their own.
import { Tensor, cat, crossEntropy, keep, noGrad, softmax, tidy } from '../torch';
import { labelledPixels } from '../metrics/segmentation';
import type { Module } from '../nn';
import { SegmentationForward, forwardAnySize } from '../models/segmentation';
import { IGNORE_LABEL } from '../data/segmentation-folder';
import { Batch, DataLoader } from '../data';
import { evalPass } from '../train/eval-pass';
import { Calibration, CalibrationMeter, TEMPERATURE_RANGE, fitTemperature } from '../metrics/calibration';
import type { Network } from '../infer/restore';

/** A classifier's logits [N, K] and the labels [N] over a loader (eval mode; kept: the caller disposes). */
export function collectLogits(model: Network, loader: DataLoader): Promise<{ logits: Tensor; labels: Tensor }> {
  return gather(model, loader, (b) => [model.forward(b.x).float(), b.y.clone()]);
}

/**
 * Runs `model` (in eval mode, without gradients) over a loader and concatenates the logits and labels rows
 * `rows` takes from each batch (kept: the caller disposes).
 */
async function gather(model: Module, loader: DataLoader, rows: (b: Batch) => [Tensor, Tensor]): Promise<{ logits: Tensor; labels: Tensor }> {
  const [zs, ys]: [Tensor[], Tensor[]] = [[], []];
  await evalPass([model], loader, {}, (b) => {
    const [z, y] = rows(b);
    zs.push(keep(z));
    ys.push(keep(y));
  });
  if (!zs.length) throw new Error('calibration: the loader yielded no images');
  const out = { logits: keep(cat(zs, 0)), labels: keep(cat(ys, 0)) };
  for (const t of [...zs, ...ys]) t.dispose();
  if (out.labels.size(0) === 0) throw new Error('calibration: no labelled sample (every pixel ignored)');
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
  /** Samples the fit saw: the images (classifiers) or the pixels drawn (segmentation). */
  samples: number;
  before: { nll: number; calibration: Calibration };
  after: { nll: number; calibration: Calibration };
}

/**
 * A warning when T ended at the edge of its search: the held-out images then say that the probabilities
 * carry almost no information (an untrained network) or that they are near certain and always right.
 */
export function temperatureWarning(t: number): string | null {
  const [lo, hi] = TEMPERATURE_RANGE;
  if (t > hi * 0.999) return `T reached the search's upper end (${hi}): on the held-out images the network's probabilities carry almost no information — is it trained?`;
  if (t < lo * 1.001) return `T reached the search's lower end (${lo}): the network was right on nearly every held-out sample with room to spare — calibration needs held-out images it gets wrong`;
  return null;
}

/** Fits T on a loader of held-out images (Guo et al.: the validation set), with the scores before and after. */
export async function fitTemperatureOn(model: Network, loader: DataLoader): Promise<TemperatureFit> {
  return fitAndScore(await collectLogits(model, loader), loader.dataset.length);
}

/**
 * As fitTemperatureOn for a segmentation network: every labelled pixel is a sample (ignored ones left out),
 * about `maxPixels` of them taken at an even stride, since a validation set's pixels can be far more than a
 * fit of one number needs.
 */
export async function fitPixelTemperatureOn(model: SegmentationForward & Module, loader: DataLoader, o: { maxPixels?: number } = {}): Promise<TemperatureFit> {
  return fitAndScore(await collectPixelLogits(model, loader, o.maxPixels ?? 1_000_000), loader.dataset.length);
}

/** Per-pixel logits [M, K] and labels [M] over a loader: every stride-th labelled pixel (kept: the caller disposes). */
export function collectPixelLogits(model: SegmentationForward & Module, loader: DataLoader, maxPixels: number): Promise<{ logits: Tensor; labels: Tensor }> {
  let stride = 0;
  return gather(model, loader, (b) => {
    // The stride from the first batch's size: about maxPixels over the whole set.
    stride ||= Math.max(1, Math.floor((loader.dataset.length * b.y.size(1) * b.y.size(2)) / maxPixels));
    return labelledPixels(forwardAnySize(model, b.x).float(), b.y, IGNORE_LABEL, stride);
  });
}

async function fitAndScore({ logits, labels }: { logits: Tensor; labels: Tensor }, images: number): Promise<TemperatureFit> {
  try {
    const temperature = fitTemperature(logits, labels);
    return { temperature, images, samples: labels.size(0), before: scoreAt(logits, labels, 1), after: scoreAt(logits, labels, temperature) };
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
