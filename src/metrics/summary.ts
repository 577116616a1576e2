// Layer-by-layer model summary (as torchinfo / Keras' model.summary()): output shapes, parameters and
// mult-adds, found by running one forward pass and watching every leaf module.
import { noGrad, randn, tidy, Tensor } from '../torch';
import { Conv2d, ConvTranspose2d, Linear, Module, withForwardHooks } from '../nn';
import { textTable } from '../util/text-table';

export interface SummaryRow {
  /** Dotted module path, the state-dict prefix (`layer1.0.conv1`). */
  name: string;
  /** The module's class name. */
  type: string;
  outputShape: number[];
  /** Parameters held by this leaf module. */
  params: number;
  /** Multiply-adds for one sample (batch element). */
  multAdds: number;
}

export interface SummaryResult {
  rows: SummaryRow[];
  totalParams: number;
  trainableParams: number;
  /**
   * Parameters the eval-mode forward pass used: all but those of leaves that never ran (a head that only
   * training calls, such as PSPNet's auxiliary one) — what a deployed network holds.
   */
  usedParams: number;
  /** Σ rows' multAdds: per sample, convolutions and fully connected layers only. */
  totalMultAdds: number;
}

/**
 * Multiply-adds of one call per sample. Conv2d: outH·outW·outC·(inC/groups)·kH·kW; ConvTranspose2d: each
 * input pixel scattered through the kernel, inH·inW·inC·(outC/groups)·kH·kW (fvcore's count; ENet's
 * decoder); Linear: in·out per output row. Bias additions, BN, activations and pooling count 0 — the convention of the MobileNet paper
 * (Table 6's 569M for α = 1 at 224 px comes out exactly this way, classifier included).
 */
export function multAddsOf(m: Module, output: Tensor, input?: Tensor): number {
  const perSample = output.shape.slice(1).reduce((a, b) => a * b, 1);
  if (m instanceof ConvTranspose2d) {
    if (!input) throw new Error('multAddsOf: a transposed convolution is counted from its input');
    const [, c, h, w] = input.shape;
    return h * w * c * (m.outChannels / m.groups) * m.kernelSize[0] * m.kernelSize[1];
  }
  if (m instanceof Conv2d) return perSample * (m.inChannels / m.groups) * m.kernelSize[0] * m.kernelSize[1];
  if (m instanceof Linear) return perSample * m.inFeatures;
  return 0;
}

/**
 * Runs model once on a random input of inputShape ([N, C, H, W], N = 1 is enough) in eval mode without
 * gradients, records each leaf module's output shape, and restores the model exactly (training flags,
 * forward methods) afterwards. Leaves are modules without children; each call of a leaf is one row, in
 * execution order.
 */
export function summary(model: Module, inputShape: number[]): SummaryResult {
  const rows: SummaryRow[] = [];
  const leaves = model.namedModules().filter(([, m]) => m.namedChildren().length === 0);
  const ran = new Set<Module>();
  const wasTraining = new Map(model.modules().map((m) => [m, m.training] as const));
  try {
    model.eval();
    // The input goes where the weights are (a model moved to CUDA or float16 is summarized there).
    const p = model.parameters()[0];
    const input = (): Tensor => randn(inputShape, p ? { device: p.device, dtype: p.dtype } : {});
    const row = (name: string, m: Module, args: unknown[], out: unknown): void => {
      ran.add(m);
      const first = Array.isArray(out) ? out[0] : out;
      if (!(first instanceof Tensor)) return;
      const params = m.parameters().reduce((a, q) => a + q.numel(), 0);
      // A module shared by several call sites (a ReLU) gets one row per call.
      rows.push({ name: name || '(model)', type: m.constructor.name, outputShape: first.shape, params, multAdds: multAddsOf(m, first, args[0] instanceof Tensor ? args[0] : undefined) });
    };
    withForwardHooks(leaves, row, () => tidy(() => noGrad(() => void (model as unknown as { forward(x: Tensor): unknown }).forward(input()))));
  } finally {
    for (const [m, t] of wasTraining) m.training = t;
  }
  // A parameter used by a leaf that never ran still counts in the totals (they come from the model).
  const idle = leaves.filter(([, m]) => !ran.has(m)).reduce((a, [, m]) => a + m.parameters().reduce((b, q) => b + q.numel(), 0), 0);
  return {
    rows,
    totalParams: model.numParameters(),
    trainableParams: model.numParameters(true),
    usedParams: model.numParameters() - idle,
    totalMultAdds: rows.reduce((a, r) => a + r.multAdds, 0),
  };
}

const thousands = (n: number): string => Math.round(n).toLocaleString('en-US');
const shape = (s: number[]): string => `[${s.join(', ')}]`;
const scaled = (n: number, unit: 'M' | 'G'): string => (unit === 'G' ? (n / 1e9).toFixed(2) : (n / 1e6).toFixed(2)) + unit;

/** A torchinfo-like text table with totals. */
export function formatSummary(r: SummaryResult, opts: { title?: string } = {}): string {
  const head = ['Layer (type)', 'Output shape', 'Param #', 'Mult-adds'];
  const body = r.rows.map((x) => [`${x.name} (${x.type})`, shape(x.outputShape), x.params ? thousands(x.params) : '--', x.multAdds ? thousands(x.multAdds) : '--']);
  const [header, rule, ...rows] = textTable(head, body, '=');
  const ma = r.totalMultAdds >= 1e9 ? scaled(r.totalMultAdds, 'G') : scaled(r.totalMultAdds, 'M');
  return [
    ...(opts.title ? [opts.title] : []),
    rule,
    header,
    rule,
    ...rows,
    rule,
    `Total params: ${thousands(r.totalParams)} (${scaled(r.totalParams, 'M')})`,
    `Trainable params: ${thousands(r.trainableParams)}`,
    `Non-trainable params: ${thousands(r.totalParams - r.trainableParams)}`,
    // Only where a layer never ran in eval mode (PSPNet's auxiliary head): what a deployed copy holds.
    ...(r.usedParams !== r.totalParams ? [`Params used at inference: ${thousands(r.usedParams)} (${thousands(r.totalParams - r.usedParams)} only in training)`] : []),
    `Mult-adds per sample: ${thousands(r.totalMultAdds)} (${ma})`,
    rule,
  ].join('\n');
}
