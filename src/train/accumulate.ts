// Gradient accumulation: one optimizer step's batch is backpropagated in micro-batches, one after the other,
// so that only one micro-batch's activations are alive at a time — a recipe's batch size (the segmentation
// papers train on 8 to 16 crops of 713–769 pixels) on a machine that cannot hold its activations at once.
// The batch, and so the learning rate, the schedule, the data order and mixup's pairs, stay the recipe's.
//
// Each micro-batch's mean loss is weighed by its share of the batch before its backward pass. For a loss that
// is a mean over samples (cross-entropy, label smoothing, mixup, mimic's L2) the summed gradient is then the
// whole batch's. BatchNorm normalizes over what it sees, the micro-batch, and so do losses normalized by a
// count of their own (ignored pixels, class weights): the step is then the mean of the micro-batches' means,
// as PyTorch's usual `loss / n` accumulation makes it.
import { Tensor, cat, tidy } from '../torch';

/** The micro-batches of a batch of `size`: `parts` runs of consecutive samples, their lengths differing by at most one. */
export function microBatches(size: number, parts: number): Array<{ start: number; length: number }> {
  if (!Number.isInteger(parts) || parts < 1) throw new RangeError(`gradient accumulation needs a whole number of micro-batches >= 1, got ${parts}`);
  const n = Math.min(parts, size);
  const out: Array<{ start: number; length: number }> = [];
  for (let i = 0, start = 0; i < n; i++) {
    const length = Math.floor(size / n) + (i < size % n ? 1 : 0);
    out.push({ start, length });
    start += length;
  }
  return out;
}

/** Refuses a micro-batch count that is not a whole number from 1 to the batch size (per process). */
export function checkAccumulate(parts: number | undefined, batchSize: number): void {
  if (parts === undefined) return;
  if (!Number.isInteger(parts) || parts < 1) throw new RangeError(`--accumulate takes a whole number of micro-batches >= 1, got ${parts}`);
  if (parts > batchSize) throw new RangeError(`--accumulate ${parts} splits each batch of ${batchSize} images into more micro-batches than images; use at most ${batchSize}`);
}

/** For the log line: how a batch is split, or nothing. */
export function describeAccumulate(parts: number | undefined, batchSize: number): string {
  if (!parts || parts === 1) return '';
  const sizes = microBatches(batchSize, parts).map((r) => r.length);
  const [lo, hi] = [Math.min(...sizes), Math.max(...sizes)];
  return ` (in ${parts} micro-batches of ${lo === hi ? lo : `${lo}–${hi}`})`;
}

/** What one micro-batch gives back: its mean loss, and optionally outputs to keep (detached) for the step's metrics. */
export interface PartLoss {
  loss: Tensor;
  logits?: Tensor;
}

/**
 * Backpropagates a batch of `size` samples in `parts` micro-batches: `partLoss(start, length)` builds the
 * loss of samples [start, start + length), whose backward pass runs (weighed by length / size) before the
 * next micro-batch's forward pass; its intermediates are freed at once. Gradients add up in the parameters'
 * `.grad` (zero them before). Returns the batch's loss (the weighed sum) and the micro-batches' kept
 * outputs, concatenated. With one part this is exactly `loss.backward()`.
 */
export function backwardInParts(size: number, parts: number, partLoss: (start: number, length: number) => PartLoss): { loss: number; logits: Tensor | null } {
  const runs = microBatches(size, parts);
  let loss = 0;
  const kept: Tensor[] = [];
  for (const { start, length } of runs) {
    const out = tidy(() => {
      const r = partLoss(start, length);
      const share = length / size;
      // One part: no scaling at all, so that a run without accumulation is bit for bit what it was.
      (runs.length === 1 ? r.loss : r.loss.mul(share)).backward();
      loss += runs.length === 1 ? r.loss.item() : share * r.loss.item();
      return r.logits ? r.logits.detach() : null;
    });
    if (out) kept.push(out);
  }
  if (kept.length <= 1) return { loss, logits: kept[0] ?? null };
  const logits = cat(kept, 0);
  for (const t of kept) t.dispose();
  return { loss, logits };
}

/** Samples [start, start + length) of a batch's tensors and dataset indices (views: no copy). */
export function narrowBatch<B extends { x: Tensor; y: Tensor; samples?: Int32Array }>(b: B, start: number, length: number): B {
  return { ...b, x: b.x.narrow(0, start, length), y: b.y.narrow(0, start, length), ...(b.samples ? { samples: b.samples.subarray(start, start + length) } : {}) };
}
