// Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
// Localization", ICCV 2017): where in the image a classifier found the evidence for a class. The class
// score's gradient with respect to a layer's feature maps A^k, averaged over positions, weighs each map
// (α_k, Eq. 1); the map is ReLU(Σ_k α_k A^k) (Eq. 2), upsampled to the input's size. For segmentation
// networks the class score is the sum of the class's logits over the pixels predicted as it (Seg-Grad-CAM,
// Vinogradova et al., "Towards Interpretable Semantic Segmentation via Gradient-weighted Class Activation
// Mapping", AAAI 2020): where the network found the evidence for that region.
import { Module, withForwardHooks } from '../nn';
import { AdaptiveAvgPool2d } from '../nn/layers';
import { Tensor, callOp, enableGrad, grad, interpolate, softmax, tensor, tidy } from '../torch';

export interface GradCamOptions {
  /**
   * The module whose output is explained, by its state-dict name (e.g. 'layer4.2.relu', 'features.5').
   * Default: the last module call whose output is a feature map of more than one position, not counting an
   * adaptive average pooling (the head's): the network's last convolutional stage. For segmentation networks,
   * the last feature map below the input's resolution that is not the logits (as many channels as classes).
   * Where a module runs several times (a shared ReLU), its last call counts.
   */
  layer?: string;
  /**
   * The class explained: one for every sample, or one per sample. Default: each sample's top class; for
   * segmentation, the class covering most pixels other than class 0 (background in tsvision's data), else 0.
   */
  classIndex?: number | readonly number[];
}

export interface GradCamResult {
  /** [N, H, W] float32 in [0, 1] at the input's size (each sample scaled by its own range): 1 where the evidence is strongest. */
  heatmap: Tensor;
  /** The module explained. */
  layer: string;
  /** The class explained per sample. */
  classIndex: number[];
  /** Its softmax probability per sample (segmentation: the mean over the pixels its score summed). */
  probability: number[];
}

/**
 * Grad-CAM of a classifier (logits [N, K]) or a segmentation network (logits [N, K, H, W]) for input
 * x [N, C, H, W], in eval mode (the model's mode is restored after).
 * Nothing accumulates into the parameters' gradients: the one gradient needed is taken with `grad`.
 */
export function gradCam(model: Module & { forward(x: Tensor): Tensor }, x: Tensor, o: GradCamOptions = {}): GradCamResult {
  const named = model.namedModules();
  if (o.layer !== undefined && !named.some(([n]) => n === o.layer)) {
    const hint = named.filter(([n, m]) => n && m.namedChildren().length === 0).slice(-5).map(([n]) => n);
    throw new Error(`gradCam: the model has no module '${o.layer}' (its last leaf modules: ${hint.join(', ')})`);
  }
  // Watch the named module, or every leaf: each call's 4-D output of more than one position, in call order.
  const watched = o.layer !== undefined ? named.filter(([n]) => n === o.layer) : named.filter(([, m]) => m.namedChildren().length === 0 && !(m instanceof AdaptiveAvgPool2d));
  const seen: { name: string; out: Tensor }[] = [];
  const keepFeatureMap = (name: string, _m: Module, _args: unknown[], out: unknown): void => {
    if (out instanceof Tensor && out.ndim === 4 && out.size(2) * out.size(3) > 1) seen.push({ name, out });
  };
  const wasTraining = new Map(model.modules().map((m) => [m, m.training] as const));
  try {
    model.eval();
    return tidy(() =>
      enableGrad(() => {
        const logits = withForwardHooks(watched, keepFeatureMap, () => model.forward(x));
        const dense = logits.ndim === 4;
        // A segmentation network's maps at the input's size, or with the classes' count, are its output.
        const below = (t: Tensor): boolean => t.size(2) * t.size(3) < x.size(2) * x.size(3) && t.size(1) !== logits.size(1);
        const candidates = dense && o.layer === undefined ? seen.filter((s) => below(s.out)) : seen;
        const last = candidates[candidates.length - 1];
        if (!last) throw new Error(o.layer !== undefined ? `gradCam: module '${o.layer}' gave no feature map of more than one position` : 'gradCam: no module gave a feature map of more than one position');
        if (!last.out.requiresGrad) throw new Error(`gradCam: the output of '${last.name}' does not depend on parameters that require grad`);
        const n = logits.size(0);
        const classes = o.classIndex === undefined ? (dense ? largestRegions(logits) : Array.from(logits.argmax(1).toArray() as BigInt64Array, Number)) : typeof o.classIndex === 'number' ? new Array<number>(n).fill(o.classIndex) : [...o.classIndex];
        if (classes.length !== n || classes.some((c) => !Number.isInteger(c) || c < 0 || c >= logits.size(1))) throw new Error(`gradCam: classIndex must give ${n} class(es) in [0, ${logits.size(1)}), got [${classes}]`);
        const index = tensor(classes, { dtype: 'int64', device: logits.device }).view(n, 1, ...(dense ? [1, 1] : []));
        // Segmentation: the pixels predicted as the class (all of them where there are none).
        const region = dense ? predictedRegion(logits, index) : null;
        const scores = dense ? logits.gather(1, index.expand(n, 1, logits.size(2), logits.size(3))).mul(region!) : logits.gather(1, index);
        const [dA] = grad(scores.sum(), last.out);
        if (!dA) throw new Error(`gradCam: the class scores do not depend on '${last.name}'`);
        const A = last.out.detach();
        // α_k: the gradient's mean over positions (Eq. 1); the map: ReLU of the weighted sum of A's maps (Eq. 2).
        const alpha = dA.mean([2, 3], { keepdim: true });
        const cam = A.mul(alpha).sum(1, { keepdim: true }).relu();
        const up = interpolate(cam, { size: [x.size(2), x.size(3)], mode: 'bilinear', alignCorners: false }).squeeze(1);
        const lo = callOp('aten::amin', up, [1, 2], true) as Tensor;
        const hi = callOp('aten::amax', up, [1, 2], true) as Tensor;
        // A sample whose map is flat (no positive evidence anywhere) stays all 0.
        const heatmap = up.sub(lo).div(hi.sub(lo).clamp(1e-12));
        const p = softmax(logits.detach(), 1);
        const probability = Array.from((dense ? p.gather(1, index.expand(n, 1, p.size(2), p.size(3))).mul(region!).sum([1, 2, 3]).div(region!.sum([1, 2, 3])) : p.gather(1, index).view(n)).toArray() as Float32Array);
        return { heatmap, layer: last.name, classIndex: classes, probability };
      }),
    );
  } finally {
    for (const [m, t] of wasTraining) m.training = t;
  }
}

/** Per sample, the class predicted on most pixels other than class 0, or 0 where nothing else is. */
function largestRegions(logits: Tensor): number[] {
  const [n, k] = logits.shape;
  const predicted = logits.argmax(1).view(n, -1);
  return Array.from({ length: n }, (_, i) => {
    const counts = (callOp('aten::bincount', predicted.select(0, i), null, k) as Tensor).toNumbers();
    const best = counts.slice(1).reduce((b, c, j) => (c > counts[b] ? j + 1 : b), 1);
    return k > 1 && counts[best] > 0 ? best : 0;
  });
}

/** [N, 1, H, W] float: 1 where a sample's class (index [N, 1, 1, 1]) is predicted; all 1 where it is nowhere. */
function predictedRegion(logits: Tensor, index: Tensor): Tensor {
  const mask = logits.argmax(1, true).eq(index).to(logits.dtype);
  const none = mask.sum([1, 2, 3], { keepdim: true }).eq(0).to(logits.dtype);
  return mask.add(none).clamp(0, 1);
}
