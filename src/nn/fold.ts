// BatchNorm folding for inference (torch.nn.utils.fusion.fuse_conv_bn_eval, applied to a whole network).
// In eval mode a BatchNorm that only ever sees one convolution's output is an affine map per channel, so it
// can move into that convolution's weights: with s = γ / √(var + ε), W' = W·s and b' = (b − μ)·s + β. The
// network then does one pass over each activation instead of two. Which convolution feeds which BatchNorm
// is read off one traced forward pass (the same op choke point the ONNX export traces), so it works on any
// architecture without knowing how its forward is written.
import { Handle, NativeArg, NativeResult, isHandle } from '../torch/native';
import { Op, OpTracer, setOpTracer } from '../torch/ops';
import { Tensor, noGrad, tidy } from '../torch';
import { BatchNorm2d, Conv2d } from './layers';
import { Module, Parameter } from './module';

export interface FoldReport {
  /** Conv → BatchNorm pairs folded. */
  folded: number;
  /** BatchNorms left alone: fed by something other than a convolution, or whose input is also used elsewhere. */
  skipped: number;
}

const CONV_OPS = new Set(['aten::conv2d', 'aten::conv2d.padding']);

interface Call {
  spec: string;
  args: NativeArg[];
  result: NativeResult | undefined;
}

/** Every tensor handle among a call's arguments, lists included. */
function* handles(args: readonly NativeArg[]): Generator<Handle> {
  for (const a of args) {
    if (Array.isArray(a)) yield* handles(a);
    else if (isHandle(a)) yield a;
  }
}

/**
 * Folds each eval-mode BatchNorm2d into the Conv2d before it, in place, where the convolution's output goes
 * to that BatchNorm and nowhere else. `example` is one input the network accepts (its values do not matter).
 * The model is left in eval mode; the folded BatchNorms pass their input through in eval mode and hold
 * identity statistics. For inference only: training the folded network would train a different
 * parameterization, and its state dict (convolutions with biases) no longer loads into the unfolded one.
 */
export function foldBatchNorm(model: Module & { forward(x: Tensor): unknown }, example: Tensor): FoldReport {
  model.eval();
  const calls: Call[] = [];
  const tracer: OpTracer = { record: (op: Op, args: NativeArg[], result: NativeResult | undefined) => calls.push({ spec: op.spec, args, result }) };
  // The traced pass must show the modules' own weights, not the prepacked oneDNN copies.
  const prepack = Conv2d.prepackForInference;
  Conv2d.prepackForInference = false;
  const previous = setOpTracer(tracer);
  const convByWeight = new Map<Handle, Conv2d>();
  const bnByWeight = new Map<Handle, BatchNorm2d>();
  for (const m of model.modules()) {
    if (m instanceof Conv2d) convByWeight.set(m.weight.h, m);
    else if (m instanceof BatchNorm2d && m.weight && m.running_mean && !m.folded) bnByWeight.set(m.weight.h, m);
  }
  const pairs: [Conv2d, BatchNorm2d][] = [];
  let skipped = 0;
  try {
    tidy(() => {
      noGrad(() => void model.forward(example));
      // How many calls read each tensor: a convolution output read twice cannot lose its BatchNorm.
      const uses = new Map<Handle, number>();
      for (const c of calls) for (const h of handles(c.args)) uses.set(h, (uses.get(h) ?? 0) + 1);
      const producer = new Map<Handle, Call>();
      for (const c of calls) if (isHandle(c.result)) producer.set(c.result, c);
      // A module may run more than once (ICNet's branches share weights): a pair folds only if every call of
      // the BatchNorm reads a call of the convolution, and every call of the convolution feeds the BatchNorm.
      const partner = new Map<BatchNorm2d, Conv2d | null>();
      const convFeeds = new Map<Conv2d, Set<BatchNorm2d | null>>();
      const consumer = new Map<Handle, BatchNorm2d>();
      for (const c of calls) {
        if (c.spec !== 'aten::batch_norm') continue;
        const bn = bnByWeight.get(c.args[1] as Handle);
        if (!bn) continue;
        const input = c.args[0] as Handle;
        const p = producer.get(input);
        const conv = p && CONV_OPS.has(p.spec) && uses.get(input) === 1 ? convByWeight.get(p.args[1] as Handle) ?? null : null;
        if (conv) consumer.set(input, bn);
        const before = partner.get(bn);
        partner.set(bn, before === undefined || before === conv ? conv : null);
      }
      for (const c of calls) {
        if (!CONV_OPS.has(c.spec)) continue;
        const conv = convByWeight.get(c.args[1] as Handle);
        if (!conv) continue;
        const feeds = convFeeds.get(conv) ?? new Set<BatchNorm2d | null>();
        feeds.add(consumer.get(c.result as Handle) ?? null);
        convFeeds.set(conv, feeds);
      }
      for (const [bn, conv] of partner) {
        const feeds = conv ? convFeeds.get(conv) : undefined;
        if (conv && feeds && feeds.size === 1 && feeds.has(bn)) pairs.push([conv, bn]);
        else skipped++;
      }
      for (const bn of bnByWeight.values()) if (!partner.has(bn)) skipped++;
    });
  } finally {
    setOpTracer(previous);
    Conv2d.prepackForInference = prepack;
  }
  for (const [conv, bn] of pairs) foldInto(conv, bn);
  return { folded: pairs.length, skipped };
}

/** W' = W·s, b' = (b − μ)·s + β with s = γ / √(var + ε); then the BatchNorm becomes the identity. */
function foldInto(conv: Conv2d, bn: BatchNorm2d): void {
  noGrad(() =>
    tidy(() => {
      const scale = bn.weight!.div(bn.running_var!.add(bn.eps).sqrt());
      const weight = conv.weight.mul(scale.reshape(-1, 1, 1, 1));
      const bias = (conv.bias ? conv.bias.sub(bn.running_mean!) : bn.running_mean!.neg()).mul(scale).add(bn.bias!);
      conv.weight = Parameter.from(weight);
      conv.bias = Parameter.from(bias);
      bn.weight!.fill_(1);
      bn.bias!.zero_();
      bn.running_mean!.zero_();
      bn.running_var!.fill_(1 - bn.eps);
      bn.folded = true;
    }),
  );
}
