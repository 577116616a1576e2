// The model card: what a runtime outside tsvision needs besides the ONNX graph to use the network the way it
// was trained — the input layout and size, the normalization, the class names and (segmentation) the colours
// tsvision's overlays use. `tsvision export` writes it beside the .onnx file as <name>.json, for pages and
// servers to fetch, and inside the file as the metadata entry 'tsvision.card' (Netron and onnx.load show it),
// so that an .onnx file that travels alone still carries it. With `--with-preprocessing` the card says so
// (version 2): the graph then takes raw pixels and does the normalization the card still records.
import type { CalibrationMethod } from './quantize';
import type { Fit } from '../data/decode';
import { OVERLAY_COLOURS } from '../report/overlay';
import { writeFileAtomic } from '../util/fs';

export const CARD_FORMAT = 'tsvision-model-card';
/** Key of the card among the ONNX file's metadata_props. */
export const CARD_METADATA_KEY = 'tsvision.card';

export interface ModelCard {
  format: typeof CARD_FORMAT;
  /**
   * 1: the graph takes the normalized float input (NCHW) and returns logits; decoding, normalizing and softmax
   * or argmax are the reader's. 2: `preprocessing: 'in-graph'` — raw uint8 pixels (NHWC) in, answers out. A
   * version-1 reader would feed a version-2 graph floats, so these cards say 2; plain exports still write 1.
   */
  version: 1 | 2;
  /** The registered model name (`cnn`, `mobilenet_v1`, `enet`, …). */
  model: string;
  /** classify: output [N, classes] logits; segment: output [N, classes, H, W] logits at the input size. */
  task: 'classify' | 'segment';
  /** Version 2: normalization, softmax (classify) and argmax (segment) are in the graph; absent: the reader's. */
  preprocessing?: 'in-graph';
  input: {
    name: string;
    /** NCHW (float, normalized) or, with in-graph preprocessing, NHWC (pixels as decoders lay them out). */
    layout: 'NCHW' | 'NHWC';
    /** Version 2: the element type ('uint8' pixels); version 1 inputs are float32. */
    dtype?: 'float32' | 'uint8';
    /** 1 (grey: the mean of R, G, B as sharp's greyscale computes it) or 3 (RGB). */
    channels: number;
    height: number;
    width: number;
    /** 'dynamic' when dimension 0 is symbolic, else the fixed batch size. */
    batch: 'dynamic' | number;
    /**
     * How an image reaches height × width, as the run evaluated: 'fill' resizes it whole (the aspect ratio
     * given up); 'center-crop' resizes its centre: the largest centred region of the input's aspect ratio,
     * `cropFraction` of it per side, rounded to whole pixels and centred by floor (see data/decode.ts's
     * centerCropBox). Images are turned upright by their EXIF orientation first. Absent in cards written
     * before it was recorded: 'fill'.
     */
    resize?: { fit: 'fill' } | { fit: 'center-crop'; cropFraction: number };
  };
  /**
   * Version 1: the logits. In-graph: classify → probabilities, float [N, classes]; segment → a class id per
   * pixel [N, H, W], uint8 (int64 beyond 256 classes, see classMapDtype). `dtype` is given from version 2.
   */
  output: { name: string; dtype?: 'float32' | 'uint8' | 'int64' };
  /** In-graph with --keep-logits: the network's logits as a second output (version 1's output). */
  logits?: { name: string };
  /** Network input = (pixel / 255 − mean[c]) / std[c], per channel (in-graph: what the graph already does). */
  normalization: { mean: number[]; std: number[] };
  classes: string[];
  /**
   * `tsvision calibrate` (temperature scaling, Guo et al. 2017): the logits are the trained network's divided
   * by this T, folded into its head, so its probabilities are calibrated. Absent: as trained.
   */
  temperature?: number;
  /** Segmentation: a '#rrggbb' colour per class, as tsvision's overlays draw them (class 0 left unpainted). */
  colours?: string[];
  /**
   * `export --int8`: the layers run on 8-bit integers (int8-qdq: int8 weights, uint8 activations, calibrated
   * on this many training images by `calibration`; `reduceRange`: weights in ±64, exact on x86 CPUs without
   * VNNI);
   * `--int8 --weights-only` (int8-weights): int8 weights, float32 arithmetic. Inputs and outputs are as
   * without it. Absent: float32 throughout.
   */
  quantization?: { scheme: 'int8-qdq'; calibrationImages: number; calibration: CalibrationMethod; reduceRange: boolean } | { scheme: 'int8-weights' };
}

export interface CardSource {
  name: string;
  segmentation: boolean;
  normalization: { mean: number[]; std: number[] };
  /** Absent: 'fill'. */
  resize?: { fit: Fit; cropFraction: number };
  classes: readonly string[];
  /** Temperature scaling folded into the weights (RunRecord.temperature); absent or null: none. */
  temperature?: number | null;
}

/**
 * The class map's element type with in-graph argmax: uint8 while class ids fit in a byte (every tsvision
 * segmentation set; what PNG masks and Predictor's labels hold), else ArgMax's own int64 — never a narrowing
 * that would wrap.
 */
export function classMapDtype(numClasses: number): 'uint8' | 'int64' {
  return numClasses <= 256 ? 'uint8' : 'int64';
}

export interface CardIo {
  input: string;
  output: string;
  fixedBatch?: boolean;
  /** The graph takes uint8 NHWC pixels and returns probabilities or a class map (a version-2 card). */
  inGraph?: { logits?: string };
}

/** The card of a network exported with `inputShape` (the network's NCHW) under the given input and output names. */
export function modelCard(net: CardSource, inputShape: readonly number[], io: CardIo): ModelCard {
  const [n, channels, height, width] = inputShape;
  const task = net.segmentation ? 'segment' : 'classify';
  const card: ModelCard = {
    format: CARD_FORMAT,
    version: io.inGraph ? 2 : 1,
    model: net.name,
    task,
    ...(io.inGraph ? { preprocessing: 'in-graph' as const } : {}),
    input: { name: io.input, layout: 'NCHW', channels, height, width, batch: io.fixedBatch ? n : 'dynamic', resize: cardResize(net.resize) },
    output: { name: io.output },
    normalization: { mean: [...net.normalization.mean], std: [...net.normalization.std] },
    classes: [...net.classes],
    ...(net.temperature ? { temperature: net.temperature } : {}),
  };
  if (io.inGraph) {
    card.input = { name: io.input, layout: 'NHWC', dtype: 'uint8', channels, height, width, batch: card.input.batch, resize: card.input.resize };
    card.output.dtype = task === 'classify' ? 'float32' : classMapDtype(net.classes.length);
    if (io.inGraph.logits) card.logits = { name: io.inGraph.logits };
  }
  if (net.segmentation) card.colours = net.classes.map((_, i) => OVERLAY_COLOURS[i % OVERLAY_COLOURS.length]);
  return card;
}

function cardResize(r: CardSource['resize']): NonNullable<ModelCard['input']['resize']> {
  if (!r || r.fit === 'fill') return { fit: 'fill' };
  if (r.fit === 'center-crop') return { fit: 'center-crop', cropFraction: r.cropFraction };
  throw new Error(`model card: a network evaluated on '${r.fit}' images has no single input size to record`);
}

/** Where the card of `onnxFile` goes: model.onnx → model.json; other names get .json appended. */
export function cardPath(onnxFile: string): string {
  return `${onnxFile.replace(/\.onnx$/i, '')}.json`;
}

/** Writes `card` beside `onnxFile` (atomically); returns the card's path. */
export function writeCard(onnxFile: string, card: ModelCard): string {
  const file = cardPath(onnxFile);
  writeFileAtomic(file, `${JSON.stringify(card, null, 2)}\n`);
  return file;
}
