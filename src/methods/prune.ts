// Magnitude pruning with held masks, the "S" step of DSD (Han et al. 2017, §2): in every pruned layer keep the
// K weights of largest |w| (K = (1 − sparsity)·N, per layer, not one global threshold), zero the rest, and keep
// them zero while training goes on. Only weights of convolutions and fully connected layers are pruned
// (tensors of 2 or more dimensions); biases and BatchNorm parameters stay dense. The first layer is skipped by
// default: it has few weights and every later feature depends on it (the paper's choice too).
//
// Filter ("kernel") pruning, as ICNet compresses its network (Zhao et al. 2018, §5, after Li et al. 2017):
// rank each convolution's output filters by the L1 norm of their weights, keep the top fraction, and remove
// the rest for real — the conv, its BatchNorm and every layer reading those channels get narrower — so the
// network needs fewer parameters and mult-adds, not just more zeros.
import { Tensor, arange, cat, noGrad, ones, tidy, zeros } from '../torch';
import { BatchNorm2d, Conv2d, ConvTranspose2d, Linear, Module, PReLU, Parameter } from '../nn';

export interface MagnitudePruneOptions {
  /** Fraction of each pruned layer's weights set to zero; DSD uses 0.25–0.5. */
  sparsity: number;
  /** Leave the first convolution / linear layer dense (default true). */
  skipFirst?: boolean;
}

export interface LayerSparsity {
  name: string;
  numel: number;
  /** Weights that are exactly zero now. */
  zeros: number;
  sparsity: number;
  pruned: boolean;
}

/** The weights pruning applies to, in module order: conv and linear weights (2+ dimensions). */
export function prunableWeights(model: Module): [string, Parameter][] {
  return model.namedParameters().filter(([name, p]) => name.endsWith('weight') && p.ndim >= 2);
}

/** A 0/1 mask of w's shape keeping exactly its k largest-magnitude entries. */
export function topKMask(w: Tensor, k: number): Tensor {
  const n = w.numel();
  if (!Number.isInteger(k) || k < 0 || k > n) throw new RangeError(`topKMask: k must be an integer in [0, ${n}], got ${k}`);
  return noGrad(() => {
    if (k === n) return ones(w.shape, { dtype: w.dtype, device: w.device });
    const flat = zeros([n], { dtype: w.dtype, device: w.device });
    if (k === 0) return flat.view(...w.shape);
    // topk, not a threshold: ties at the K-th magnitude would otherwise keep more than K weights.
    const idx = w.detach().abs().flatten().topk(k).indices;
    return flat.scatter(0, idx, 1).view(...w.shape);
  });
}

/**
 * Masks over a model's prunable weights. `apply()` zeroes the pruned weights, `maskGradients()` zeroes their
 * gradients before the optimizer step, so neither momentum nor weight decay nor Adam's moments move them.
 */
export class MagnitudeMasks {
  private constructor(
    /** Parameter name → [parameter, mask]; only pruned layers appear. */
    readonly masks: Map<string, [Parameter, Tensor]>,
    private readonly model: Module,
  ) {}

  /** Keeps the top-K |w| of each prunable layer (all but the first, by default). */
  static topK(model: Module, o: MagnitudePruneOptions): MagnitudeMasks {
    if (!(o.sparsity >= 0 && o.sparsity < 1)) throw new RangeError(`sparsity must be in [0, 1), got ${o.sparsity}`);
    const layers = prunableWeights(model).slice((o.skipFirst ?? true) ? 1 : 0);
    const masks = new Map<string, [Parameter, Tensor]>();
    for (const [name, p] of layers) {
      const n = p.numel();
      masks.set(name, [p, topKMask(p, n - Math.floor(o.sparsity * n)).keep()]);
    }
    return new MagnitudeMasks(masks, model);
  }

  /** Masks saved by stateDict(), checked against the model's parameters. */
  static fromStateDict(model: Module, saved: Record<string, Tensor>): MagnitudeMasks {
    const params = new Map(model.namedParameters());
    const masks = new Map<string, [Parameter, Tensor]>();
    for (const [name, m] of Object.entries(saved)) {
      const p = params.get(name);
      if (!p) throw new Error(`pruning mask for '${name}', which the model does not have`);
      if (m.shape.join(',') !== p.shape.join(',')) throw new Error(`pruning mask for '${name}' has shape [${m.shape}], the weight [${p.shape}]`);
      masks.set(name, [p, m.to({ device: p.device, dtype: p.dtype }).keep()]);
    }
    return new MagnitudeMasks(masks, model);
  }

  apply(): void {
    noGrad(() => {
      for (const [p, m] of this.masks.values()) p.mul_(m);
    });
  }

  maskGradients(): void {
    for (const [p, m] of this.masks.values()) {
      const g = p.grad;
      if (g) {
        g.mul_(m);
        g.dispose();
      }
    }
  }

  stateDict(): Record<string, Tensor> {
    return Object.fromEntries([...this.masks].map(([name, [, m]]) => [name, m]));
  }

  /** Per prunable layer: how many weights are zero now (pruned or not). */
  report(): LayerSparsity[] {
    return prunableWeights(this.model).map(([name, p]) => {
      const z = countZeros([p]);
      return { name, numel: p.numel(), zeros: z, sparsity: z / p.numel(), pruned: this.masks.has(name) };
    });
  }

  dispose(): void {
    for (const [, m] of this.masks.values()) m.dispose();
    this.masks.clear();
  }
}

/** Fraction of zeros over all prunable weights of a model. */
export function overallSparsity(model: Module): number {
  const weights = prunableWeights(model).map(([, p]) => p);
  const n = weights.reduce((a, p) => a + p.numel(), 0);
  return n ? countZeros(weights) / n : 0;
}

/** Parameters of the model that are exactly zero (what pruning left, stored dense). */
export function countZeroParameters(model: Module): number {
  return countZeros(model.parameters());
}

function countZeros(ts: Tensor[]): number {
  return tidy(() => ts.reduce((a, p) => a + p.detach().eq(0).sum().item(), 0));
}

/** A layer whose output filters pruning may remove: a convolution, or a transposed one (ENet's upsampling). */
export type FilterConv = Conv2d | ConvTranspose2d;

/**
 * A conv reading the channel concatenation of `parts`' outputs, in this order, one of which is the chain's
 * conv (DeepLab-V3's ASPP projection over its branches). The chain's channels sit at an offset that depends on
 * the other parts' widths at the time of the surgery, so the parts are named, not the offset.
 */
export interface ConcatInput {
  conv: Conv2d;
  parts: readonly FilterConv[];
}

/**
 * What narrows with a chain's filters: layers that follow channel for channel (BatchNorm, PReLU's per-channel
 * slopes, a depthwise conv), and layers reading the channels — a conv's or transposed conv's inputs, a linear
 * layer's features (perChannel of them per channel after a flatten), or a conv's inputs at the chain's place
 * in a concatenation.
 */
export type FilterUse = BatchNorm2d | PReLU | Conv2d | ConvTranspose2d | { linear: Linear; perChannel: number } | ConcatInput;

/** One layer whose output filters may be removed, and what must narrow with them, in order. */
export interface FilterChain {
  /** The conv's state-dict prefix, for reports. */
  name: string;
  conv: FilterConv;
  uses: FilterUse[];
}

/** A model that knows its filter chains and the options that rebuild it at its current widths. */
export interface FilterPrunable extends Module {
  filterChains(): FilterChain[];
  channelOptions(): Record<string, unknown>;
}

export function isFilterPrunable(m: Module): m is FilterPrunable {
  const f = m as unknown as Partial<Pick<FilterPrunable, 'filterChains' | 'channelOptions'>>;
  return typeof f.filterChains === 'function' && typeof f.channelOptions === 'function';
}

/** Σ|w| of each output filter of a conv weight [out, in/groups, kh, kw]: [out]. */
export function filterL1Norms(w: Tensor): Tensor {
  return noGrad(() => w.detach().abs().flatten(1).sum(1));
}

/** The weight with one output filter per row: a transposed conv keeps its outputs in dim 1 ([in, out, kh, kw]). */
export function filterWeights(conv: FilterConv): Tensor {
  return conv instanceof ConvTranspose2d ? conv.weight.detach().transpose(0, 1) : conv.weight;
}

/** Indices (int64, ascending) of the k filters with the largest L1 norm. */
export function topFilters(w: Tensor, k: number): Tensor {
  const n = w.shape[0];
  if (!Number.isInteger(k) || k < 1 || k > n) throw new RangeError(`topFilters: k must be an integer in [1, ${n}], got ${k}`);
  return noGrad(() => filterL1Norms(w).topk(k).indices.sort().values);
}

export interface FilterPruneLayer {
  name: string;
  before: number;
  after: number;
}

/**
 * Keeps ⌈keepRate · filters⌉ (at least 1) of every chain's conv, ranked by L1 norm. All rankings are taken
 * from the weights as they are before any layer changes (Li et al.'s "independent" strategy), so the order
 * of the chains does not matter.
 */
export function pruneFilters(model: FilterPrunable, keepRate: number): FilterPruneLayer[] {
  if (!(keepRate > 0 && keepRate <= 1)) throw new RangeError(`keep rate must be in (0, 1], got ${keepRate}`);
  const chains = model.filterChains();
  const plans = chains.map((c) => [c, topFilters(filterWeights(c.conv), Math.max(1, Math.ceil(keepRate * c.conv.outChannels))).keep()] as const);
  const layers: FilterPruneLayer[] = [];
  for (const [c, index] of plans) {
    const before = c.conv.outChannels;
    keepFilters(c, index);
    layers.push({ name: c.name, before, after: c.conv.outChannels });
    index.dispose();
  }
  return layers;
}

/** The surgery: the chain's conv keeps the filters at `index`, and every layer of `uses` the same channels. */
function keepFilters(c: FilterChain, index: Tensor): void {
  const before = c.conv.outChannels;
  c.conv.keepOutputs(index);
  for (const u of c.uses) {
    if (u instanceof BatchNorm2d || u instanceof PReLU) u.keepChannels(index);
    else if (u instanceof Conv2d || u instanceof ConvTranspose2d) u.keepInputs(index);
    else if ('linear' in u) u.linear.keepInputs(index, u.perChannel);
    else u.conv.keepInputs(concatIndex(u, c.conv, index, before));
  }
}

/**
 * The input channels a concatenation's reader keeps when the part `conv` (`before` channels wide until now)
 * keeps `index`: all channels of the other parts, and `index` shifted to the part's offset.
 */
function concatIndex(u: ConcatInput, conv: FilterConv, index: Tensor, before: number): Tensor {
  const at = u.parts.indexOf(conv);
  if (at < 0) throw new Error('filter chain: a concatenation that does not contain the chain\'s conv');
  const offset = u.parts.slice(0, at).reduce((a, p) => a + p.outChannels, 0);
  const after = u.parts.slice(at + 1).reduce((a, p) => a + p.outChannels, 0);
  // The parts must account for every input channel, or the offset would silently point elsewhere.
  if (offset + before + after !== u.conv.inChannels) throw new Error(`filter chain: the concatenated parts have ${offset + before + after} channels, the conv reading them ${u.conv.inChannels}`);
  const range = (from: number, to: number): Tensor => arange(from, to, 1, { dtype: 'int64' });
  return cat([range(0, offset), index.add(offset), range(offset + before, offset + before + after)], 0);
}

/**
 * Narrows the named chains to `widths[name]` filters (their first ones): gives a freshly built network the
 * shapes of a pruned one, whose weights then load. Unknown names are an error (a different architecture).
 */
export function narrowFilters(model: FilterPrunable, widths: Record<string, number>): void {
  const chains = new Map(model.filterChains().map((c) => [c.name, c]));
  for (const [name, k] of Object.entries(widths)) {
    const c = chains.get(name);
    if (c && k === c.conv.outChannels) continue;
    if (!c) throw new Error(`filterWidths: this network has no prunable layer '${name}'`);
    if (!Number.isInteger(k) || k < 1 || k > c.conv.outChannels) throw new RangeError(`filterWidths: '${name}' must keep 1..${c.conv.outChannels} filters, got ${k}`);
    const index = arange(0, k, 1, { dtype: 'int64' });
    keepFilters(c, index);
    index.dispose();
  }
}
