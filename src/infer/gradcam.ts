// Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
// Localization", ICCV 2017): where in the image a classifier found the evidence for a class. The class
// score's gradient with respect to a layer's feature maps A^k, averaged over positions, weighs each map
// (α_k, Eq. 1); the map is ReLU(Σ_k α_k A^k) (Eq. 2), upsampled to the input's size.
import { Module, withForwardHooks } from '../nn';
import { AdaptiveAvgPool2d } from '../nn/layers';
import { Tensor, callOp, enableGrad, grad, interpolate, softmax, tensor, tidy } from '../torch';

export interface GradCamOptions {
  /**
   * The module whose output is explained, by its state-dict name (e.g. 'layer4.2.relu', 'features.5').
   * Default: the last module call whose output is a feature map of more than one position, not counting an
   * adaptive average pooling (the head's): the network's last convolutional stage. Where a module runs
   * several times (a shared ReLU), its last call counts.
   */
  layer?: string;
  /** The class explained: one for every sample, or one per sample. Default: each sample's top class. */
  classIndex?: number | readonly number[];
}

export interface GradCamResult {
  /** [N, H, W] float32 in [0, 1] at the input's size (each sample scaled by its own range): 1 where the evidence is strongest. */
  heatmap: Tensor;
  /** The module explained. */
  layer: string;
  /** The class explained per sample. */
  classIndex: number[];
  /** Its softmax probability per sample. */
  probability: number[];
}

/**
 * Grad-CAM of a classifier for input x [N, C, H, W], in eval mode (the model's mode is restored after).
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
        const last = seen[seen.length - 1];
        if (!last) throw new Error(o.layer !== undefined ? `gradCam: module '${o.layer}' gave no feature map of more than one position` : 'gradCam: no module gave a feature map of more than one position');
        if (!last.out.requiresGrad) throw new Error(`gradCam: the output of '${last.name}' does not depend on parameters that require grad`);
        const n = logits.size(0);
        const classes = o.classIndex === undefined ? Array.from(logits.argmax(1).toArray() as BigInt64Array, Number) : typeof o.classIndex === 'number' ? new Array<number>(n).fill(o.classIndex) : [...o.classIndex];
        if (classes.length !== n || classes.some((c) => !Number.isInteger(c) || c < 0 || c >= logits.size(1))) throw new Error(`gradCam: classIndex must give ${n} class(es) in [0, ${logits.size(1)}), got [${classes}]`);
        const index = tensor(classes, { dtype: 'int64', device: logits.device }).view(n, 1);
        const [dA] = grad(logits.gather(1, index).sum(), last.out);
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
        const probability = Array.from(softmax(logits.detach(), 1).gather(1, index).view(n).toArray() as Float32Array);
        return { heatmap, layer: last.name, classIndex: classes, probability };
      }),
    );
  } finally {
    for (const [m, t] of wasTraining) m.training = t;
  }
}
