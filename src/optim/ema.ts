// An exponential moving average of a model's weights (Polyak averaging; timm's ModelEmaV2, PyTorch's
// AveragedModel with an EMA): after every optimizer step, ema ← decay·ema + (1 − decay)·w for every floating
// entry of the state dict, BatchNorm's running statistics included; integer entries (num_batches_tracked)
// are copied. The averaged weights often score better than the last ones, at no training cost. Early on the
// decay is warmed up as TensorFlow's ExponentialMovingAverage does with num_updates, min(decay, (1 + t) /
// (10 + t)) at step t, so that the random initialization does not linger in the average.
import { Tensor, noGrad, op } from '../torch';
import { Module } from '../nn/module';

const handles = (ts: Tensor[]) => ts.map((t) => t.h);
const isFloat = (t: Tensor) => t.dtype.startsWith('float') || t.dtype === 'bfloat16';

export class ExponentialMovingAverage {
  /** The averaged state dict, keyed as the model's; kept until dispose(). */
  readonly shadow: Record<string, Tensor>;
  private readonly floats: string[];
  private readonly others: string[];

  constructor(readonly model: Module, readonly decay: number) {
    if (!(decay > 0 && decay < 1)) throw new RangeError(`ExponentialMovingAverage: decay must lie in (0, 1), got ${decay}`);
    const sd = model.stateDict();
    this.shadow = Object.fromEntries(Object.entries(sd).map(([k, t]) => [k, noGrad(() => t.detach().clone()).keep()]));
    this.floats = Object.keys(sd).filter((k) => isFloat(sd[k]));
    this.others = Object.keys(sd).filter((k) => !isFloat(sd[k]));
  }

  /** The decay used at step t (0-based, counting optimizer steps): the warmed-up one. */
  decayAt(t: number): number {
    return Math.min(this.decay, (1 + t) / (10 + t));
  }

  /** One step of the average toward the model's current weights, after optimizer step t. */
  update(t: number): void {
    const d = this.decayAt(t);
    const sd = this.model.stateDict();
    noGrad(() => {
      const [mine, theirs] = [this.floats.map((k) => this.shadow[k]), this.floats.map((k) => sd[k].detach())];
      op('aten::_foreach_mul_.Scalar').run(handles(mine), d);
      op('aten::_foreach_add_.List').run(handles(mine), handles(theirs), 1 - d);
      for (const k of this.others) this.shadow[k].copy_(sd[k]);
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

  dispose(): void {
    for (const t of Object.values(this.shadow)) t.dispose();
  }
}
