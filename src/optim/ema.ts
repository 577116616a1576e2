// An exponential moving average of a model's weights (Polyak averaging; timm's ModelEmaV2, PyTorch's
// AveragedModel with an EMA): after every optimizer step, ema ← decay·ema + (1 − decay)·w for every floating
// entry of the state dict, BatchNorm's running statistics included; integer entries (num_batches_tracked)
// are copied. The averaged weights often score better than the last ones, at no training cost. Early on the
// decay is warmed up as TensorFlow's ExponentialMovingAverage does with num_updates, min(decay, (1 + t) /
// (10 + t)) at step t, so that the random initialization does not linger in the average.
import { Tensor, handles, noGrad, op } from '../torch';
import { Module } from '../nn/module';

const isFloat = (t: Tensor) => t.dtype.startsWith('float') || t.dtype === 'bfloat16';

export class ExponentialMovingAverage {
  /** The averaged state dict, keyed as the model's: `into`'s own tensors, or copies kept until dispose(). */
  readonly shadow: Record<string, Tensor>;
  // The model's tensors and their averages, paired once: state-dict tensors are updated in place, never replaced.
  private readonly averaged: { mine: Tensor[]; theirs: Tensor[] };
  private readonly copied: [Tensor, Tensor][];
  private readonly owned: boolean;

  /**
   * `into`: a second network built as `model` whose weights hold the average, so that it can be scored or
   * saved as it is (it starts as a copy of model's weights); without it the average lives in plain tensors.
   */
  constructor(readonly model: Module, readonly decay: number, into?: Module) {
    if (!(decay > 0 && decay < 1)) throw new RangeError(`ExponentialMovingAverage: decay must lie in (0, 1), got ${decay}`);
    const sd = model.stateDict();
    if (into) noGrad(() => void into.loadStateDict(sd));
    this.owned = !into;
    this.shadow = into ? into.stateDict() : Object.fromEntries(Object.entries(sd).map(([k, t]) => [k, noGrad(() => t.detach().clone()).keep()]));
    const floats = Object.keys(sd).filter((k) => isFloat(sd[k]));
    this.averaged = { mine: floats.map((k) => this.shadow[k]), theirs: floats.map((k) => sd[k]) };
    this.copied = Object.keys(sd).filter((k) => !isFloat(sd[k])).map((k) => [this.shadow[k], sd[k]]);
  }

  /** The decay used at step t (0-based, counting optimizer steps): the warmed-up one. */
  decayAt(t: number): number {
    return Math.min(this.decay, (1 + t) / (10 + t));
  }

  /** One step of the average toward the model's current weights, after optimizer step t. */
  update(t: number): void {
    const d = this.decayAt(t);
    // No tensor is created: the foreach ops work in place on the averages, reading the model's tensors.
    noGrad(() => {
      const [mine, theirs] = [handles(this.averaged.mine), handles(this.averaged.theirs)];
      op('aten::_foreach_mul_.Scalar').run(mine, d);
      op('aten::_foreach_add_.List').run(mine, theirs, 1 - d);
      for (const [mine, theirs] of this.copied) mine.copy_(theirs);
    });
  }

  /** Replaces the average (a resumed run's), checked against the model's keys and shapes. */
  load(sd: Record<string, Tensor>): void {
    for (const k of Object.keys(this.shadow)) {
      const t = sd[k];
      if (!t || t.shape.join() !== this.shadow[k].shape.join()) throw new Error(`ExponentialMovingAverage.load: '${k}' ${t ? `has shape [${t.shape}], expected [${this.shadow[k].shape}]` : 'is missing'}`);
      noGrad(() => this.shadow[k].copy_(t));
    }
  }

  /** Frees the average's own copies (a network given as `into` keeps its weights). */
  dispose(): void {
    if (this.owned) for (const t of Object.values(this.shadow)) t.dispose();
  }
}
