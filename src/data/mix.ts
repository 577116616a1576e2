// Mixing two images per training sample, and their labels with them:
//   mixup (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018): x = λ·x_i + (1 − λ)·x_j;
//   CutMix (Yun et al., "CutMix", ICCV 2019, §3.1): a box of x_j pasted into x_i, its side √(1 − λ) of the
//   image's, centred uniformly at random and clipped at the border, λ then the share of x_i left.
// λ ~ Beta(α, α); j is a random permutation of the batch; the loss is λ·CE(ŷ, y_i) + (1 − λ)·CE(ŷ, y_j).
import { CrossEntropyOptions, Tensor, crossEntropy, tensor } from '../torch';
import { Rng } from './rng';

export interface MixOptions {
  /** mixup's α (0: off). The paper: 0.2 for ImageNet, 1 for CIFAR-10. */
  mixup: number;
  /** CutMix's α (0: off). The paper: 1. With both on, each batch takes one of the two at even odds. */
  cutmix: number;
}

export interface MixDraw {
  kind: 'mixup' | 'cutmix';
  /** The weight of each sample's own image and label. */
  lambda: number;
  /** Whose image each sample mixes in. */
  partner: Int32Array;
  /** CutMix: the pasted box, rows y0..y1 and columns x0..x1 (end exclusive). */
  box: { y0: number; y1: number; x0: number; x1: number } | null;
}

/** One batch's mixing: n samples of h×w images, drawn from rng. */
export function drawMix(o: MixOptions, n: number, h: number, w: number, rng: Rng): MixDraw {
  if (!(o.mixup > 0 || o.cutmix > 0)) throw new Error('drawMix: mixup or cutmix must be on');
  const kind = o.mixup > 0 && o.cutmix > 0 ? (rng.next() < 0.5 ? 'mixup' : 'cutmix') : o.mixup > 0 ? 'mixup' : 'cutmix';
  const lambda = rng.beta(kind === 'mixup' ? o.mixup : o.cutmix, kind === 'mixup' ? o.mixup : o.cutmix);
  const partner = rng.permutation(n);
  if (kind === 'mixup') return { kind, lambda, partner, box: null };
  const cut = Math.sqrt(1 - lambda);
  const [ch, cw] = [Math.floor(h * cut), Math.floor(w * cut)];
  const [cy, cx] = [rng.int(h), rng.int(w)];
  const clip = (v: number, hi: number) => Math.min(hi, Math.max(0, v));
  const box = { y0: clip(cy - (ch >> 1), h), y1: clip(cy + ch - (ch >> 1), h), x0: clip(cx - (cw >> 1), w), x1: clip(cx + cw - (cw >> 1), w) };
  // The share actually left after clipping.
  return { kind, lambda: 1 - ((box.y1 - box.y0) * (box.x1 - box.x0)) / (h * w), partner, box };
}

/** The mixed images [N, C, H, W] and the partners' labels. */
export function applyMix(x: Tensor, y: Tensor, d: MixDraw): { x: Tensor; partnerY: Tensor } {
  const idx = tensor(Array.from(d.partner), { dtype: 'int64', device: x.device });
  const other = x.indexSelect(0, idx);
  const partnerY = y.indexSelect(0, idx);
  if (d.kind === 'mixup') return { x: x.mul(d.lambda).add(other.mul(1 - d.lambda)), partnerY };
  const { y0, y1, x0, x1 } = d.box!;
  const mixed = x.clone();
  if (y1 > y0 && x1 > x0) mixed.narrow(2, y0, y1 - y0).narrow(3, x0, x1 - x0).copy_(other.narrow(2, y0, y1 - y0).narrow(3, x0, x1 - x0));
  return { x: mixed, partnerY };
}

/** λ·CE(logits, y) + (1 − λ)·CE(logits, partnerY). */
export function mixedCrossEntropy(logits: Tensor, y: Tensor, partnerY: Tensor, lambda: number, o: CrossEntropyOptions = {}): Tensor {
  return crossEntropy(logits, y, o).mul(lambda).add(crossEntropy(logits, partnerY, o).mul(1 - lambda));
}
