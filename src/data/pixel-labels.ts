// What a segmentation dataset is once built, whether generated (Fashion-MNIST scenes) or read from the user's
// folders: uint8 images [N, C, H, W] and uint8 label maps [N, H, W] in memory, batches assembled in libtorch
// with int64 labels (the DataLoader's fast path).
import { Tensor, callOp, tidy } from '../torch';
import { BatchSource } from './loader';
import { BatchData } from './transforms';

/** Pixels per label value (256 bins, so that ignored pixels, 255, have their own, left out of any class). */
export function labelCounts(labels: Tensor): Float64Array {
  return tidy(() => Float64Array.from((callOp('aten::bincount', labels.flatten().long(), null, 256) as Tensor).toNumbers()));
}

export class PixelLabelledImages implements BatchSource {
  constructor(
    readonly images: Tensor,
    readonly labels: Tensor,
    readonly classes: readonly string[],
  ) {}

  get length(): number {
    return this.labels.size(0);
  }

  getBatch(indices: Tensor): BatchData {
    return { x: this.images.indexSelect(0, indices), y: this.labels.indexSelect(0, indices).long() };
  }

  dispose(): void {
    this.images.dispose();
    this.labels.dispose();
  }
}
