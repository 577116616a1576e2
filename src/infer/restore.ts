// Rebuilding a trained network from the file `train` or `segment` wrote (a checkpoint) or from plain weights
// (model.safetensors, or PyTorch weights converted by scripts/pth2safetensors.py): which model with which
// options, how many classes and input channels, the input size and normalization training used, and the class
// names. `tsvision export` and `tsvision predict` (Predictor) both start here.
import { Module } from '../nn';
import { Tensor } from '../torch';
import { createModel, createSegmentationModel, isModelName, isSegmentationModelName, listModels, listSegmentationModels } from '../models/registry';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD, ImageFolder, SCENE_CLASSES } from '../data';
import { CheckpointContents, RunRecord, fitWeights, readWeights } from '../train/checkpoint';
import { segmentationNormalization } from '../train/segment';
import { FolderNormalization, FolderResize, folderFit, folderNormalization } from '../train/datasets';
import type { Fit } from '../data/decode';

/** Any restored network: a classifier ([N, classes] logits) or a segmentation net ([N, classes, H, W]). */
export type Network = Module & { forward(x: Tensor): Tensor };

/** Per-channel (x / 255 - mean) / std, as training normalized its inputs; one value applies to every channel. */
export interface Normalization {
  mean: number[];
  std: number[];
}

export interface RestoreOptions {
  /** The model of plain weights (a checkpoint names its own). */
  model?: string;
  /** Model options; for checkpoints they override the recorded ones (as `--opt` does). */
  opt?: Record<string, unknown>;
}

export interface RestoredNetwork {
  /** The network with the weights loaded, in eval mode. */
  model: Network;
  name: string;
  segmentation: boolean;
  /** NxCxHxW (N = 1) the network was trained on, or null: plain weights, or images of several sizes. */
  inputShape: number[] | null;
  /** Input channels the weights expect. */
  inChannels: number;
  /** Classes the weights output (0 where no layer of the model says). */
  numClasses: number;
  /** What training normalized with; for plain weights the image-folder convention (see `normalizationOf`). */
  normalization: Normalization;
  /** How the run's evaluation brought an image to inputShape: squashed ('fill'), or its centre cropped. */
  resize: { fit: Fit; cropFraction: number };
  /** Class names, one per output; `class i` where the file does not name them. */
  classes: string[];
  /** `tsvision calibrate`'s temperature, folded into the weights (their logits are the trained ones / T); null: none. */
  temperature: number | null;
  /** The checkpoint when the file was one (its config, history, …). */
  checkpoint: CheckpointContents | null;
  /** The run's recorded config: a checkpoint's, or the record a run wrote into its weights file; null for weights from elsewhere. */
  config: unknown;
}

/** What a checkpoint's `state.config` says about the model and data (classification or segmentation runs). */
interface RecordedConfig {
  model?: string;
  modelOptions?: Record<string, unknown>;
  data?: { kind: string; train?: string; size?: number; channels?: 1 | 3; normalize?: FolderNormalization; resize?: FolderResize };
  scenes?: { size: number };
  folders?: { train: string; test: string; size?: [number, number]; channels: 1 | 3 };
}

const knownModels = (): string => [...listModels(), ...listSegmentationModels()].join(', ');

/**
 * Reads `file` once and rebuilds its network. Checkpoints of `train` (also DSD's, mimic's and prune's phases,
 * which are ordinary runs whose options — e.g. a pruned network's `channels` — are in the config) and of
 * `segment` name their model, and so do the plain weights those runs write (their run record); other plain
 * weights need `o.model`. numClasses and inChannels are what the checkpoint
 * recorded where it did (one build), else read from the weights (two probe builds first, see inferSizes).
 */
export function restoreNetwork(file: string, o: RestoreOptions = {}): RestoredNetwork {
  const { weights, checkpoint, run } = readWeights(file);
  // A checkpoint's record, or the one a run wrote into its plain weights: either names the network.
  const cfg = (run?.config ?? null) as RecordedConfig | null;
  let name = o.model;
  let options: Record<string, unknown> = o.opt ?? {};
  if (cfg) {
    name = cfg.model ?? (cfg.scenes ? 'enet' : undefined); // segment checkpoints before the registry were ENet
    options = { ...(cfg.scenes || cfg.folders ? {} : { smallInput: true }), ...(cfg.modelOptions ?? {}), ...options }; // as `train` built it
  } else {
    if (!name) throw new Error(`${file} holds plain weights: name the model with --model`);
    if (isModelName(name)) options = { smallInput: true, ...options };
  }
  const segmentation = name !== undefined && isSegmentationModelName(name);
  if (!name || (!segmentation && !isModelName(name))) throw new Error(`unknown model '${name}'; known: ${knownModels()}`);
  // Options come from --opt and JSON, so they are checked by the constructors, not by the compiler.
  const create = (segmentation ? createSegmentationModel : createModel) as (n: string, opts: Record<string, unknown>) => Network;
  const build = (extra: Record<string, unknown>): Network => create(name as string, { ...options, ...extra });
  // Both sizes known (a checkpoint's record, or --opt): one build, which fitWeights checks. Else two probe
  // builds read them from the weights' shapes first — also when the known sizes do not fit, so that the
  // answer, and the error for weights that fit nothing, stay what the probes alone give.
  const known = { ...recordedSizes(run, cfg), ...givenSizes(o.opt) };
  let inferred: { numClasses?: number; inChannels?: number } = known;
  let model = known.numClasses !== undefined && known.inChannels !== undefined ? buildFitting(() => build({ ...known, ...(o.opt ?? {}) }), weights) : null;
  if (!model) {
    inferred = inferSizes(build, weights);
    model = build({ ...inferred, ...(o.opt ?? {}) });
    fitWeights(model, weights, `weights ${file} do not fit the model`);
  }
  model.eval();
  const trained = cfg ? trainedShape(cfg) : null;
  const inChannels = num(o.opt?.inChannels) ?? inferred.inChannels ?? trained?.[1] ?? 3;
  const numClasses = num(o.opt?.numClasses) ?? inferred.numClasses ?? 0;
  return {
    model,
    name,
    segmentation,
    inputShape: trained && [trained[0], inChannels, trained[2], trained[3]],
    inChannels,
    numClasses,
    normalization: normalizationOf(cfg, segmentation, inChannels),
    resize: cfg?.data?.kind === 'image-folder' ? folderFit(cfg.data) : { fit: 'fill', cropFraction: 1 },
    classes: classNames(run, cfg, numClasses),
    temperature: run?.temperature ?? null,
    checkpoint,
    config: run?.config ?? null,
  };
}

const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

/** The network with `weights` loaded, or null (nothing left allocated) where they do not fit it. */
function buildFitting(build: () => Network, weights: Record<string, Tensor>): Network | null {
  let model: Network | null = null;
  try {
    model = build();
    model.loadStateDict(weights); // checks every name and shape before it copies anything
    return model;
  } catch {
    if (model) for (const t of Object.values(model.stateDict())) t.dispose();
    return null;
  }
}

/** numClasses and inChannels as --opt gives them. */
function givenSizes(opt: Record<string, unknown> | undefined): { numClasses?: number; inChannels?: number } {
  const out: { numClasses?: number; inChannels?: number } = {};
  const [numClasses, inChannels] = [num(opt?.numClasses), num(opt?.inChannels)];
  if (numClasses !== undefined) out.numClasses = numClasses;
  if (inChannels !== undefined) out.inChannels = inChannels;
  return out;
}

/**
 * numClasses and inChannels as the run built its network, where its checkpoint says: `train` and `segment`
 * build with numClasses = the classes they record (or Fashion-MNIST's 10, the scenes' 11) and inChannels =
 * the data's channels (src/train/datasets.ts, segmentationData). Absent where the record does not say.
 */
function recordedSizes(run: RunRecord | null, cfg: RecordedConfig | null): { numClasses?: number; inChannels?: number } {
  if (!cfg) return {};
  const out: { numClasses?: number; inChannels?: number } = {};
  const recorded = run?.classes;
  const fashionMnist = !cfg.scenes && !cfg.folders && cfg.data?.kind === 'fashion-mnist';
  if (Array.isArray(recorded) && recorded.length > 0) out.numClasses = recorded.length;
  else if (fashionMnist) out.numClasses = FASHION_MNIST_CLASSES.length;
  else if (cfg.scenes && !cfg.folders) out.numClasses = SCENE_CLASSES.length;
  if (cfg.folders) out.inChannels = cfg.folders.channels;
  else if (cfg.scenes || fashionMnist) out.inChannels = 1;
  else if (cfg.data?.kind === 'image-folder') out.inChannels = cfg.data.channels ?? 3;
  return out;
}

/**
 * numClasses and inChannels from the weights: build the model twice with different values (3/5, then 5/3)
 * and take, for each, the first weight dimension that follows the option between the two probe builds.
 */
function inferSizes(build: (extra: Record<string, unknown>) => Network, weights: Record<string, Tensor>): { numClasses?: number; inChannels?: number } {
  const probes = [build({ numClasses: 3, inChannels: 5 }), build({ numClasses: 5, inChannels: 3 })].map((m) => {
    const sd = m.stateDict();
    const shapes = Object.fromEntries(Object.entries(sd).map(([k, t]) => [k, t.shape]));
    for (const t of Object.values(sd)) t.dispose();
    return shapes;
  });
  const inferred: { numClasses?: number; inChannels?: number } = {};
  for (const [k, a] of Object.entries(probes[0])) {
    a.forEach((d, i) => {
      const key = d === 3 && probes[1][k]?.[i] === 5 ? 'numClasses' : d === 5 && probes[1][k]?.[i] === 3 ? 'inChannels' : null;
      const w = weights[k];
      if (key && w && inferred[key] === undefined) inferred[key] = w.shape[i];
    });
  }
  return inferred;
}

/** The input a run trained on (N = 1), or null for folders of images of several sizes. */
function trainedShape(cfg: RecordedConfig): number[] | null {
  const { folders, scenes, data } = cfg;
  if (folders) return folders.size ? [1, folders.channels, ...folders.size] : null;
  if (scenes) return [1, 1, scenes.size, scenes.size];
  if (data?.kind === 'image-folder') return [1, data.channels ?? 3, data.size ?? 32, data.size ?? 32];
  return [1, 1, 28, 28]; // Fashion-MNIST
}

/**
 * The normalization the run trained with (src/train/datasets.ts for `train`, segmentationNormalization for
 * `segment`). Plain weights say nothing, so they get what training on the user's folders uses: [-1, 1]
 * scaling for classifiers, ImageNet's statistics for segmentation networks.
 */
function normalizationOf(cfg: RecordedConfig | null, segmentation: boolean, channels: number): Normalization {
  const c = channels === 1 ? 1 : 3;
  if (segmentation) {
    // segmentationNormalization reads only whether there were folders and their channel count.
    const folders = cfg ? cfg.folders : { train: '', test: '', channels: c as 1 | 3 };
    return segmentationNormalization({ folders });
  }
  if (cfg && cfg.data?.kind !== 'image-folder') return { mean: [FASHION_MNIST_MEAN], std: [FASHION_MNIST_STD] };
  return folderNormalization({ channels: c, normalize: cfg?.data?.normalize });
}

/**
 * Class names: those the checkpoint recorded (segment runs; train runs since predict), else the data's own —
 * Fashion-MNIST's, the scenes', an image folder's sub-folders if it is still there —, else `class i`.
 */
function classNames(run: RunRecord | null, cfg: RecordedConfig | null, numClasses: number): string[] {
  const recorded = run?.classes;
  const fromData = (): readonly string[] | null => {
    if (!cfg) return null;
    if (cfg.scenes && !cfg.folders) return SCENE_CLASSES;
    if (cfg.folders) return null;
    if (cfg.data?.kind !== 'image-folder') return FASHION_MNIST_CLASSES;
    try {
      return cfg.data.train ? new ImageFolder(cfg.data.train).classes : null;
    } catch {
      return null; // the training folder is gone or moved: fall back to numbers
    }
  };
  const names = Array.isArray(recorded) && recorded.every((c) => typeof c === 'string') ? (recorded as string[]) : fromData();
  const n = numClasses || names?.length || 0;
  return Array.from({ length: n }, (_, i) => (names && names.length === n ? names[i] : `class ${i}`));
}
