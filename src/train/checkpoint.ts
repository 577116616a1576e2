// Checkpoints: one safetensors file holding the model's state dict (keys as PyTorch's, so a Python reader
// gets a plain state dict from the `model.` entries), the optimizer's state, the RNG state, and JSON
// metadata (epoch, position, schedule, config, history). Written atomically: temp file, fsync, rename.
import * as fs from 'node:fs';
import { Tensor, getRngState, loadSafetensors, readSafetensorsMetadata, saveSafetensors, setRngState } from '../torch';
import { Module } from '../nn';

export const CHECKPOINT_FORMAT = 'tsvision-checkpoint/1';

/** What a trainer needs back to continue exactly where it stopped. */
export interface TrainingState {
  /** The epoch to run next (or to continue). */
  epoch: number;
  /** The first batch of `epoch` still to run (0 at an epoch boundary). */
  batch: number;
  /** Optimizer steps taken so far. */
  step: number;
  /** Free-form JSON: config, schedule state, history, best metric. */
  [key: string]: unknown;
}

export interface OptimizerState {
  tensors: Record<string, Tensor>;
  meta: Record<string, unknown>;
}

export interface CheckpointContents {
  model: Record<string, Tensor>;
  optimizer: OptimizerState | null;
  /** A training method's own state (DSD's masks), saved under `method.` keys; empty for plain training. */
  method: Record<string, Tensor>;
  /** The weights' moving average (train --ema), saved under `ema.` keys; empty without one. */
  ema: Record<string, Tensor>;
  rng: Tensor | null;
  state: TrainingState;
}

export function saveCheckpoint(file: string, model: Module, optimizer: OptimizerState | null, state: TrainingState, method: Record<string, Tensor> = {}, ema: Record<string, Tensor> = {}): void {
  const tensors: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(model.stateDict())) tensors[`model.${k}`] = t;
  if (optimizer) for (const [k, t] of Object.entries(optimizer.tensors)) tensors[`optim.${k}`] = t;
  for (const [k, t] of Object.entries(method)) tensors[`method.${k}`] = t;
  for (const [k, t] of Object.entries(ema)) tensors[`ema.${k}`] = t;
  const rng = getRngState();
  tensors['rng.cpu'] = rng;
  try {
    saveSafetensors(file, tensors, {
      format: CHECKPOINT_FORMAT,
      state: JSON.stringify(state),
      optimizer: JSON.stringify(optimizer?.meta ?? null),
    });
  } finally {
    rng.dispose();
  }
}

/** Reads a checkpoint; errors name the file and what is wrong with it. */
export function readCheckpoint(file: string): CheckpointContents {
  if (!fs.existsSync(file)) throw new Error(`checkpoint ${file}: no such file`);
  return splitCheckpoint(file, loadSafetensors(file));
}

function splitCheckpoint(file: string, { tensors, metadata }: ReturnType<typeof loadSafetensors>): CheckpointContents {
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new Error(`checkpoint ${file}: not a tsvision checkpoint (format '${metadata.format ?? 'missing'}'; a plain safetensors state dict loads with Module.loadStateDict)`);
  }
  const model: Record<string, Tensor> = {};
  const optim: Record<string, Tensor> = {};
  const method: Record<string, Tensor> = {};
  const ema: Record<string, Tensor> = {};
  let rng: Tensor | null = null;
  for (const [k, t] of Object.entries(tensors)) {
    if (k.startsWith('model.')) model[k.slice(6)] = t;
    else if (k.startsWith('optim.')) optim[k.slice(6)] = t;
    else if (k.startsWith('method.')) method[k.slice(7)] = t;
    else if (k.startsWith('ema.')) ema[k.slice(4)] = t;
    else if (k === 'rng.cpu') rng = t;
  }
  const optMeta = JSON.parse(metadata.optimizer ?? 'null') as Record<string, unknown> | null;
  return {
    model,
    optimizer: optMeta ? { tensors: optim, meta: optMeta } : null,
    method,
    ema,
    rng,
    state: JSON.parse(metadata.state ?? '{}') as TrainingState,
  };
}

/** Loads model weights (checked by name, shape and dtype) and restores the RNG; returns the rest. */
export function restoreCheckpoint(file: string, model: Module): CheckpointContents {
  const c = readCheckpoint(file);
  applyCheckpoint(file, c, model);
  return c;
}

/** restoreCheckpoint for contents already read (a resuming run reads them first for its config). */
export function applyCheckpoint(file: string, c: CheckpointContents, model: Module): void {
  fitWeights(model, c.model, `checkpoint ${file} does not fit the model`);
  if (c.rng) setRngState(c.rng);
}

/** model.loadStateDict(sd), its error prefixed with what was being loaded. */
export function fitWeights(model: Module, sd: Record<string, Tensor>, what: string): void {
  try {
    model.loadStateDict(sd);
  } catch (e) {
    throw new Error(`${what}: ${(e as Error).message}`);
  }
}

/**
 * Loads weights into a model from either a tsvision checkpoint (its `model.` entries; the RNG is left alone)
 * or a plain safetensors state dict, as `train` writes or scripts/pth2safetensors.py converts from PyTorch.
 * Returns the checkpoint when it was one.
 */
export function loadWeights(file: string, model: Module): CheckpointContents | null {
  const { weights, checkpoint } = readWeights(file);
  fitWeights(model, weights, `weights ${file} do not fit the model`);
  return checkpoint;
}

/**
 * What a run records about the network it trained — its config (model, options, data) and class names — in
 * its checkpoint's state, and in the metadata of the plain weights it writes, so that `predict`, `export`
 * and `eval` rebuild the network from model.safetensors alone (the shapes do not tell, e.g., a small-input
 * stem from an ImageNet one).
 */
export interface RunRecord {
  config: unknown;
  classes?: unknown;
  /** For weights saved mid-run (a best epoch's): after which epoch. */
  epoch?: number;
  /** Weights of the moving average (train --ema) rather than the trained ones. */
  ema?: boolean;
  /**
   * Temperature scaling (`tsvision calibrate`): the head's weights were divided by this T, fitted on
   * `calibratedOn` (held-out images), so the logits are the trained network's / T.
   */
  temperature?: number;
  calibratedOn?: string;
}
/** Metadata key of the run record in plain weights files. */
export const RUN_METADATA_KEY = 'tsvision.run';

/** The model's state dict as plain safetensors (PyTorch's keys; torch loads it), with the run record. */
export function saveWeights(file: string, model: Module, run: RunRecord): void {
  saveSafetensors(file, model.stateDict(), { format: 'pt', [RUN_METADATA_KEY]: JSON.stringify(run) });
}

/**
 * A checkpoint's or a weights file's run record, and a checkpoint's training state (its epoch, history),
 * from the file's header alone: what a run was, without loading its tensors.
 */
export function readRunRecord(file: string): { run: RunRecord | null; state: TrainingState | null } {
  if (!fs.existsSync(file)) throw new Error(`weights ${file}: no such file`);
  const metadata = readSafetensorsMetadata(file);
  const parse = <T>(key: string): T => {
    try {
      return JSON.parse(metadata[key]) as T;
    } catch {
      throw new Error(`weights ${file}: its '${key}' metadata is not JSON`);
    }
  };
  if (metadata.format === CHECKPOINT_FORMAT) {
    const state = parse<TrainingState>('state');
    return { run: { config: state.config, classes: state.classes }, state };
  }
  return { run: metadata[RUN_METADATA_KEY] !== undefined ? parse<RunRecord>(RUN_METADATA_KEY) : null, state: null };
}

/**
 * One read of a checkpoint or a plain state dict: the model's weights, the checkpoint when it was one, and
 * the run record (a checkpoint's, or a weights file's; null for weights from elsewhere).
 */
export function readWeights(file: string): { weights: Record<string, Tensor>; checkpoint: CheckpointContents | null; run: RunRecord | null } {
  if (!fs.existsSync(file)) throw new Error(`weights ${file}: no such file`);
  const loaded = loadSafetensors(file);
  const checkpoint = loaded.metadata.format === CHECKPOINT_FORMAT ? splitCheckpoint(file, loaded) : null;
  let run: RunRecord | null = checkpoint ? { config: checkpoint.state.config, classes: checkpoint.state.classes } : null;
  const recorded = loaded.metadata[RUN_METADATA_KEY];
  if (!run && recorded !== undefined) {
    try {
      run = JSON.parse(recorded) as RunRecord;
    } catch {
      throw new Error(`weights ${file}: its '${RUN_METADATA_KEY}' metadata is not JSON`);
    }
  }
  return { weights: checkpoint ? checkpoint.model : loaded.tensors, checkpoint, run };
}
