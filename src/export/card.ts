// The model card: what a runtime outside tsvision needs besides the ONNX graph to use the network the way it
// was trained — the input layout and size, the normalization, the class names and (segmentation) the colours
// tsvision's overlays use. `tsvision export` writes it beside the .onnx file as <name>.json, for pages and
// servers to fetch, and inside the file as the metadata entry 'tsvision.card' (Netron and onnx.load show it),
// so that an .onnx file that travels alone still carries it.
import { OVERLAY_COLOURS } from '../report/overlay';
import { writeFileAtomic } from '../util/fs';

export const CARD_FORMAT = 'tsvision-model-card';
/** Key of the card among the ONNX file's metadata_props. */
export const CARD_METADATA_KEY = 'tsvision.card';

export interface ModelCard {
  format: typeof CARD_FORMAT;
  version: 1;
  /** The registered model name (`cnn`, `mobilenet_v1`, `enet`, …). */
  model: string;
  /** classify: output [N, classes] logits; segment: output [N, classes, H, W] logits at the input size. */
  task: 'classify' | 'segment';
  input: {
    name: string;
    layout: 'NCHW';
    /** 1 (grey: the mean of R, G, B as sharp's greyscale computes it) or 3 (RGB). */
    channels: number;
    height: number;
    width: number;
    /** 'dynamic' when dimension 0 is symbolic, else the fixed batch size. */
    batch: 'dynamic' | number;
  };
  output: { name: string };
  /** Network input = (pixel / 255 − mean[c]) / std[c], per channel. */
  normalization: { mean: number[]; std: number[] };
  classes: string[];
  /** Segmentation: a '#rrggbb' colour per class, as tsvision's overlays draw them (class 0 left unpainted). */
  colours?: string[];
}

export interface CardSource {
  name: string;
  segmentation: boolean;
  normalization: { mean: number[]; std: number[] };
  classes: readonly string[];
}

/** The card of a network exported with `inputShape` (NCHW) under the given input and output names. */
export function modelCard(net: CardSource, inputShape: readonly number[], io: { input: string; output: string; fixedBatch?: boolean }): ModelCard {
  const [n, channels, height, width] = inputShape;
  const card: ModelCard = {
    format: CARD_FORMAT,
    version: 1,
    model: net.name,
    task: net.segmentation ? 'segment' : 'classify',
    input: { name: io.input, layout: 'NCHW', channels, height, width, batch: io.fixedBatch ? n : 'dynamic' },
    output: { name: io.output },
    normalization: { mean: [...net.normalization.mean], std: [...net.normalization.std] },
    classes: [...net.classes],
  };
  if (net.segmentation) card.colours = net.classes.map((_, i) => OVERLAY_COLOURS[i % OVERLAY_COLOURS.length]);
  return card;
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
