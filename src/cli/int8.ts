// `tsvision export --int8`: the float graph is calibrated on the checkpoint's own training images (never its
// test images), quantized (src/export/quantize.ts) and written; then the int8 file, run by onnxruntime-node,
// is scored against tsvision's float network on test images: what a user gives up for a 4× smaller file.
import type * as Ort from 'onnxruntime-node';
import { DataLoader, disposeBatch } from '../data';
import { CARD_METADATA_KEY, ModelCard } from '../export/card';
import { ModelProto, encodeModel } from '../export/protobuf';
import { CalibrationMethod, QuantizeReport, TensorRange, calibrate, quantizeModel } from '../export/quantize';
import { Normalization, RestoredNetwork } from '../infer/restore';
import { ConfusionMatrix } from '../metrics/confusion';
import { SegmentationMeter } from '../metrics/segmentation';
import { Tensor, fromArray, noGrad, tidy } from '../torch';
import { makeLoaders, withoutTransferSet } from '../train/datasets';
import { DEFAULT_SEGMENT_CONFIG, SegmentConfig, segmentationData } from '../train/segment';
import { TrainConfig } from '../train/trainer';
import { writeFileAtomic } from '../util/fs';

/** Training images to calibrate on by default (onnxruntime's examples use a few hundred). */
export const CALIBRATION_IMAGES = 512;
/** Test images the int8 file is scored on by default. */
export const INT8_EVAL_IMAGES = 1000;

/** A checkpoint's images for `export --int8`, loaded once for calibrating and scoring; `using` frees them. */
export interface Int8Data extends Disposable {
  calibration: DataLoader;
  test: DataLoader;
}

/** Calibration (training split, shuffled with seed 0, not augmented) and test loaders of a run's data. */
export async function int8Data(restored: RestoredNetwork, file: string): Promise<Int8Data> {
  // A checkpoint's config, or the run record in a weights file of `train` or `segment` (model, best).
  const config = restored.config;
  if (!config) throw new Error(`--int8 calibrates on the training images a checkpoint names; ${file} holds plain weights (--int8 --weights-only needs none)`);
  if (!restored.segmentation) {
    const loaders = makeLoaders(withoutTransferSet((config as TrainConfig).data), { batchSize: 32, seed: 0, augment: false });
    return { calibration: loaders.train, test: loaders.test, [Symbol.dispose]: () => undefined };
  }
  const data = await segmentationData({ ...DEFAULT_SEGMENT_CONFIG, ...(config as SegmentConfig) }, { train: true });
  // The training scenes or images through the deterministic test transform: no augmentation, no jitter.
  const calibration = new DataLoader(data.train!.dataset, { batchSize: 8, shuffle: true, seed: 0, transform: data.transform });
  return { calibration, test: data.test, [Symbol.dispose]: () => data.dispose() };
}

/**
 * Up to `images` images of a loader, as batches the graph takes: its traced H×W only (a folder of mixed sizes
 * may hold others), cut to its batch size where that is fixed. The views are freed when the caller moves on.
 */
async function* graphBatches(loader: DataLoader, images: number, shape: readonly number[], fixedBatch: boolean): AsyncGenerator<{ x: Tensor; y: Tensor }> {
  let seen = 0;
  for await (const b of loader.epoch(0)) {
    try {
      if (b.x.shape.slice(2).join() !== shape.slice(2).join()) continue;
      const step = fixedBatch ? shape[0] : b.x.size(0);
      for (let at = 0; at + step <= b.x.size(0) && seen < images; at += step) {
        const n = fixedBatch ? step : Math.min(step, images - seen);
        const [x, y] = [b.x.narrow(0, at, n), b.y.narrow(0, at, n)];
        try {
          yield { x, y };
        } finally {
          x.dispose();
          y.dispose();
        }
        seen += n;
      }
    } finally {
      disposeBatch(b);
    }
    if (seen >= images) return;
  }
}

/** What the graph takes: normalized float NCHW, or (--with-preprocessing) uint8 NHWC pixels. */
function feedOf(ort: typeof Ort, x: Tensor, pixels: Normalization | null): Ort.Tensor {
  return tidy(() => {
    if (!pixels) return new ort.Tensor('float32', x.contiguous().toArray() as Float32Array, x.shape);
    // Training normalized (p / 255 − mean) / std: undo it to get the bytes back.
    const c = x.size(1);
    const stat = (v: number[]) => fromArray(Float32Array.from({ length: c }, (_, i) => v[Math.min(i, v.length - 1)]), [1, c, 1, 1]);
    const p = x.mul(stat(pixels.std)).add(stat(pixels.mean)).mul(255).round().clamp(0, 255).permute(0, 2, 3, 1).contiguous().to('uint8');
    return new ort.Tensor('uint8', p.toArray() as Uint8Array, p.shape);
  });
}

export interface Int8Export {
  report: QuantizeReport;
  calibrationImages: number;
  /** The written graph, for the export's summary lines. */
  summary: { model: ModelProto; bytes: number; nodes: number; initializers: number };
}

/**
 * Calibrates `model` (the float graph) on up to `images` of `data`'s training images, quantizes it and writes
 * `file` atomically; with `weightsOnly`, int8 weights alone, without calibration (plain weights will do: `data` null).
 */
export async function writeInt8(
  ort: typeof Ort,
  model: ModelProto,
  file: string,
  data: Int8Data | null,
  o: { images: number; calibration: CalibrationMethod; weightsOnly: boolean; reduceRange: boolean; inputShape: readonly number[]; fixedBatch: boolean; pixels: Normalization | null; inputName: string; card: ModelCard },
): Promise<Int8Export> {
  let seen = 0;
  let ranges: Map<string, TensorRange> | null = null;
  if (!o.weightsOnly) {
    if (!data) throw new Error('writeInt8: static int8 calibrates on training images; none given');
    const calibration = data.calibration;
    async function* feeds(): AsyncGenerator<Record<string, Ort.Tensor>> {
      for await (const { x } of graphBatches(calibration, o.images, o.inputShape, o.fixedBatch)) {
        yield { [o.inputName]: feedOf(ort, x, o.pixels) };
        seen += x.size(0);
        if (process.stdout.isTTY) process.stdout.write(`\rcalibrating: ${seen} training images`);
      }
    }
    ranges = await calibrate(ort, model, feeds(), { method: o.calibration });
    if (process.stdout.isTTY) process.stdout.write('\n');
    if (!seen) throw new Error(`--int8: no training image is ${o.inputShape.slice(2).join('×')}, the size the graph was traced at: export with --input of the training images' size`);
  }
  const q = quantizeModel(model, ranges, { reduceRange: o.reduceRange });
  const report = q.report;
  // The card says how the layers compute, inside the file and (written by the caller) beside it.
  o.card.quantization = o.weightsOnly ? { scheme: 'int8-weights' } : { scheme: 'int8-qdq', calibrationImages: seen, calibration: o.calibration, reduceRange: o.reduceRange };
  const quantized: ModelProto = { ...q.model, metadata: { ...q.model.metadata, [CARD_METADATA_KEY]: JSON.stringify(o.card) } };
  const chunks = encodeModel(quantized);
  writeFileAtomic(file, chunks);
  const summary = { model: quantized, bytes: chunks.reduce((a, c) => a + c.length, 0), nodes: quantized.graph.nodes.length, initializers: quantized.graph.initializers.length };
  return { report, calibrationImages: seen, summary };
}

export interface Int8Score {
  images: number;
  /** Top-1 accuracy (classifiers) or mIoU (segmentation) of tsvision's float network and of the int8 file. */
  float: number;
  int8: number;
  /** Share of images (classifiers) or pixels (segmentation) where both predict the same class. */
  agreement: number;
  metric: 'top-1' | 'mIoU';
}

/** The int8 file against tsvision's float network on up to `images` test images of the checkpoint's data. */
export async function scoreInt8(
  ort: typeof Ort,
  file: string,
  restored: RestoredNetwork,
  data: Int8Data,
  o: { images: number; inputShape: readonly number[]; fixedBatch: boolean; pixels: Normalization | null; inputName: string; outputName: string },
): Promise<Int8Score> {
  const session = await ort.InferenceSession.create(file);
  const k = restored.numClasses;
  const Meter = restored.segmentation ? SegmentationMeter : ConfusionMatrix;
  const [mf, mq] = [new Meter(k), new Meter(k)];
  let [seen, same, total] = [0, 0, 0];
  try {
    for await (const { x, y } of graphBatches(data.test, o.images, o.inputShape, o.fixedBatch)) {
      const got = (await session.run({ [o.inputName]: feedOf(ort, x, o.pixels) }))[o.outputName];
      tidy(() =>
        noGrad(() => {
          const want = restored.model.forward(x).argmax(1);
          // Logits or probabilities: their argmax; a class map (--with-preprocessing): the classes themselves.
          const raw = fromArray(got.data instanceof BigInt64Array ? Int32Array.from(got.data, Number) : (got.data as Float32Array | Uint8Array), [...got.dims]);
          const pred = raw.ndim === want.ndim + 1 ? raw.argmax(1) : raw.long();
          mf.update(want, y);
          mq.update(pred, y);
          same += want.eq(pred).sum().item();
          total += want.numel();
        }),
      );
      seen += x.size(0);
    }
    const score = (m: ConfusionMatrix): number => (m instanceof SegmentationMeter ? m.meanIoU() : accuracy(m.confusion()));
    return { images: seen, float: score(mf), int8: score(mq), agreement: same / Math.max(total, 1), metric: restored.segmentation ? 'mIoU' : 'top-1' };
  } finally {
    mf.dispose();
    mq.dispose();
    await session.release();
  }
}

const accuracy = (m: number[][]): number => {
  const all = m.flat().reduce((a, b) => a + b, 0);
  return all ? m.reduce((a, row, i) => a + row[i], 0) / all : NaN;
};
