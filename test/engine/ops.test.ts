// Every engine op, forward and gradient, against PyTorch on fresh random inputs (float32, rel. err <= 1e-5).
import * as T from '../../src/torch';
import { Case, parity } from '../helpers/parity';

const { randn, rand, tensor, randint } = T;
const R = (...s: number[]) => randn(s);
const P = (...s: number[]) => rand(s).add(0.5); // positive, for log/sqrt/pow
const X = (...s: number[]) => ({ x: R(...s) });

const cases: Case[] = [
  // elementwise
  { name: 'add with broadcast and alpha', inputs: () => ({ a: R(3, 4), b: R(4) }), ts: ({ a, b }) => a.add(b, 2.5), py: 'torch.add(a, b, alpha=2.5)' },
  { name: 'add scalar', inputs: () => X(5), ts: ({ x }) => x.add(1.5), py: 'x + 1.5' },
  { name: 'sub', inputs: () => ({ a: R(2, 3), b: R(2, 3) }), ts: ({ a, b }) => a.sub(b), py: 'a - b' },
  { name: 'mul', inputs: () => ({ a: R(2, 3), b: R(2, 1) }), ts: ({ a, b }) => a.mul(b), py: 'a * b' },
  { name: 'div', inputs: () => ({ a: R(2, 3), b: P(2, 3) }), ts: ({ a, b }) => a.div(b), py: 'a / b' },
  { name: 'pow scalar', inputs: () => ({ x: P(6) }), ts: ({ x }) => x.pow(2.5), py: 'x ** 2.5' },
  { name: 'pow tensor', inputs: () => ({ a: P(6), b: R(6) }), ts: ({ a, b }) => a.pow(b), py: 'a ** b' },
  { name: 'neg', inputs: () => X(7), ts: ({ x }) => x.neg(), py: '-x' },
  { name: 'abs', inputs: () => X(7), ts: ({ x }) => x.abs(), py: 'x.abs()' },
  { name: 'exp', inputs: () => X(7), ts: ({ x }) => x.exp(), py: 'x.exp()' },
  { name: 'log', inputs: () => ({ x: P(7) }), ts: ({ x }) => x.log(), py: 'x.log()' },
  { name: 'sqrt', inputs: () => ({ x: P(7) }), ts: ({ x }) => x.sqrt(), py: 'x.sqrt()' },
  { name: 'rsqrt', inputs: () => ({ x: P(7) }), ts: ({ x }) => x.rsqrt(), py: 'x.rsqrt()' },
  { name: 'square', inputs: () => X(7), ts: ({ x }) => x.square(), py: 'x.square()' },
  { name: 'reciprocal', inputs: () => ({ x: P(7) }), ts: ({ x }) => x.reciprocal(), py: 'x.reciprocal()' },
  { name: 'sigmoid', inputs: () => X(7), ts: ({ x }) => T.sigmoid(x), py: 'torch.sigmoid(x)' },
  { name: 'tanh', inputs: () => X(7), ts: ({ x }) => x.tanh(), py: 'x.tanh()' },
  { name: 'sin cos', inputs: () => X(7), ts: ({ x }) => x.sin().add(x.cos()), py: 'x.sin() + x.cos()' },
  { name: 'relu', inputs: () => X(4, 5), ts: ({ x }) => T.relu(x), py: 'F.relu(x)' },
  { name: 'relu6', inputs: () => ({ x: R(4, 5).mul(5) }), ts: ({ x }) => T.relu6(x), py: 'F.relu6(x)' },
  { name: 'leaky relu', inputs: () => X(9), ts: ({ x }) => T.leakyRelu(x, 0.2), py: 'F.leaky_relu(x, 0.2)' },
  { name: 'clamp', inputs: () => X(9), ts: ({ x }) => x.clamp(-0.5, 0.7), py: 'x.clamp(-0.5, 0.7)' },
  { name: 'maximum minimum', inputs: () => ({ a: R(8), b: R(8) }), ts: ({ a, b }) => a.maximum(b).add(a.minimum(b).mul(3)), py: 'torch.maximum(a, b) + 3 * torch.minimum(a, b)' },
  { name: 'where', inputs: () => ({ a: R(3, 4), b: R(3, 4), c: R(3, 4) }), ts: ({ a, b, c }) => T.where(c.gt(0), a, b), py: 'torch.where(c > 0, a, b)', grad: ['a', 'b'] },
  { name: 'masked fill', inputs: () => ({ x: R(3, 4), m: R(3, 4) }), ts: ({ x, m }) => x.maskedFill(m.lt(0), 2), py: 'x.masked_fill(m < 0, 2)', grad: ['x'] },
  { name: 'comparisons', inputs: () => ({ a: R(10), b: R(10) }), ts: ({ a, b }) => [a.eq(b), a.gt(b), a.le(0), a.ne(b)], py: '(a == b, a > b, a <= 0, a != b)', grad: [] },
  { name: 'floor ceil round sign', inputs: () => ({ x: R(10).mul(3) }), ts: ({ x }) => [x.floor(), x.ceil(), x.round(), x.sign()], py: '(x.floor(), x.ceil(), x.round(), x.sign())', grad: [] },
  // reductions
  { name: 'sum all', inputs: () => X(3, 4), ts: ({ x }) => x.sum(), py: 'x.sum()' },
  { name: 'sum dims keepdim', inputs: () => X(2, 3, 4), ts: ({ x }) => x.sum([0, 2], { keepdim: true }), py: 'x.sum((0, 2), keepdim=True)' },
  { name: 'mean dim', inputs: () => X(2, 3, 4), ts: ({ x }) => x.mean(1), py: 'x.mean(1)' },
  { name: 'prod dim', inputs: () => X(3, 4), ts: ({ x }) => x.prod(1), py: 'x.prod(1)' },
  { name: 'max min all', inputs: () => X(3, 4), ts: ({ x }) => x.max().add(x.min()), py: 'x.max() + x.min()' },
  { name: 'max dim with indices', inputs: () => X(3, 5), ts: ({ x }) => { const m = x.maxDim(1); return [m.values, m.indices]; }, py: 'tuple(x.max(1))' },
  { name: 'argmax argmin', inputs: () => X(4, 6), ts: ({ x }) => [x.argmax(1), x.argmin(0)], py: '(x.argmax(1), x.argmin(0))', grad: [] },
  { name: 'std var', inputs: () => X(4, 6), ts: ({ x }) => x.std(1).add(x.var(0, { unbiased: false }).sum()), py: 'x.std(1) + x.var(0, unbiased=False).sum()' },
  { name: 'norm', inputs: () => X(4, 6), ts: ({ x }) => x.norm(2, 1), py: 'torch.linalg.vector_norm(x, 2, 1)' },
  { name: 'logsumexp', inputs: () => X(4, 6), ts: ({ x }) => x.logsumexp(1), py: 'x.logsumexp(1)' },
  { name: 'cumsum', inputs: () => X(4, 6), ts: ({ x }) => x.cumsum(1), py: 'x.cumsum(1)' },
  { name: 'topk', inputs: () => X(4, 8), ts: ({ x }) => { const r = x.topk(3); return [r.values, r.indices]; }, py: 'tuple(x.topk(3))' },
  { name: 'sort', inputs: () => X(4, 8), ts: ({ x }) => { const r = x.sort(1, true); return [r.values, r.indices]; }, py: 'tuple(x.sort(1, descending=True))' },
  // linear algebra
  { name: 'matmul batched', inputs: () => ({ a: R(2, 3, 4), b: R(4, 5) }), ts: ({ a, b }) => a.matmul(b), py: 'a @ b' },
  { name: 'mm', inputs: () => ({ a: R(3, 4), b: R(4, 5) }), ts: ({ a, b }) => a.mm(b), py: 'a.mm(b)' },
  { name: 'bmm', inputs: () => ({ a: R(2, 3, 4), b: R(2, 4, 5) }), ts: ({ a, b }) => a.bmm(b), py: 'a.bmm(b)' },
  { name: 'linear', inputs: () => ({ x: R(5, 4), w: R(3, 4), b: R(3) }), ts: ({ x, w, b }) => T.linear(x, w, b), py: 'F.linear(x, w, b)' },
  // views and indexing
  { name: 'reshape permute transpose', inputs: () => X(2, 3, 4), ts: ({ x }) => x.reshape(3, 2, 4).permute(2, 0, 1).transpose(0, 2), py: 'x.reshape(3, 2, 4).permute(2, 0, 1).transpose(0, 2)' },
  { name: 'slice with step', inputs: () => X(4, 9), ts: ({ x }) => x.slice(1, 1, 8, 3), py: 'x[:, 1:8:3]' },
  { name: 'narrow select', inputs: () => X(4, 9), ts: ({ x }) => x.narrow(1, 2, 4).select(0, 1), py: 'x.narrow(1, 2, 4)[1]' },
  { name: 'index select', inputs: () => ({ x: R(5, 3), i: tensor([4, 0, 2, 2]) }), ts: ({ x, i }) => x.indexSelect(0, i), py: 'x.index_select(0, i)' },
  { name: 'gather', inputs: () => ({ x: R(3, 5), i: randint(0, 5, [3, 4]) }), ts: ({ x, i }) => x.gather(1, i), py: 'x.gather(1, i)' },
  { name: 'advanced index', inputs: () => ({ x: R(5, 6), i: tensor([0, 3, 3]), j: tensor([1, 5, 2]) }), ts: ({ x, i, j }) => x.index([i, j]), py: 'x[i, j]' },
  { name: 'scatter', inputs: () => ({ x: R(3, 5), s: R(3, 2), i: tensor([[0, 4], [1, 2], [3, 0]]) }), ts: ({ x, s, i }) => x.scatter(1, i, s), py: 'x.scatter(1, i, s)' },
  { name: 'cat stack', inputs: () => ({ a: R(2, 3), b: R(4, 3) }), ts: ({ a, b }) => [T.cat([a, b], 0), T.stack([a, a.mul(2)], 1)], py: '(torch.cat([a, b], 0), torch.stack([a, a * 2], 1))' },
  { name: 'chunk split unbind', inputs: () => X(6, 4), ts: ({ x }) => [...x.chunk(3, 0), ...x.split([1, 3], 1), ...x.unbind(0)], py: '(*x.chunk(3, 0), *x.split([1, 3], 1), *x.unbind(0))' },
  { name: 'flip expand repeat', inputs: () => X(1, 3), ts: ({ x }) => x.flip(1).expand(4, 3).add(x.repeat(4, 1)), py: 'x.flip(1).expand(4, 3) + x.repeat(4, 1)' },
  { name: 'squeeze unsqueeze flatten', inputs: () => X(2, 1, 3, 4), ts: ({ x }) => x.squeeze(1).unsqueeze(0).flatten(2), py: 'x.squeeze(1).unsqueeze(0).flatten(2)' },
  { name: 'masked select', inputs: () => ({ x: R(4, 4), m: R(4, 4) }), ts: ({ x, m }) => x.maskedSelect(m.gt(0)), py: 'x.masked_select(m > 0)', grad: ['x'] },
  // convolutions
  { name: 'conv2d stride padding', inputs: () => ({ x: R(2, 3, 11, 9), w: R(5, 3, 3, 3), b: R(5) }), ts: ({ x, w, b }) => T.conv2d(x, w, b, { stride: 2, padding: 1 }), py: 'F.conv2d(x, w, b, stride=2, padding=1)' },
  { name: 'conv2d dilation groups', inputs: () => ({ x: R(2, 4, 12, 12), w: R(6, 2, 3, 3) }), ts: ({ x, w }) => T.conv2d(x, w, null, { dilation: 2, padding: 2, groups: 2 }), py: 'F.conv2d(x, w, None, dilation=2, padding=2, groups=2)' },
  { name: 'conv2d depthwise', inputs: () => ({ x: R(2, 4, 8, 8), w: R(4, 1, 3, 3) }), ts: ({ x, w }) => T.conv2d(x, w, null, { padding: 1, groups: 4 }), py: 'F.conv2d(x, w, None, padding=1, groups=4)' },
  { name: 'conv2d asymmetric 5x1', inputs: () => ({ x: R(1, 3, 9, 9), w: R(3, 3, 5, 1), b: R(3) }), ts: ({ x, w, b }) => T.conv2d(x, w, b, { padding: [2, 0] }), py: 'F.conv2d(x, w, b, padding=(2, 0))' },
  { name: 'conv2d padding same', inputs: () => ({ x: R(1, 2, 7, 7), w: R(3, 2, 3, 3) }), ts: ({ x, w }) => T.conv2d(x, w, null, { padding: 'same', dilation: 2 }), py: "F.conv2d(x, w, None, padding='same', dilation=2)" },
  { name: 'conv transpose2d', inputs: () => ({ x: R(2, 4, 5, 5), w: R(4, 3, 3, 3), b: R(3) }), ts: ({ x, w, b }) => T.convTranspose2d(x, w, b, { stride: 2, padding: 1, outputPadding: 1 }), py: 'F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)' },
  // normalization
  {
    name: 'batch norm training updates running stats',
    inputs: () => ({ x: R(4, 3, 5, 5), w: R(3), b: R(3), rm: R(3), rv: P(3) }),
    ts: ({ x, w, b, rm, rv }) => { const y = T.batchNorm(x, rm, rv, { weight: w, bias: b, training: true, momentum: 0.2 }); return [y, rm, rv]; },
    py: '(F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.2), rm, rv)',
    grad: ['x', 'w', 'b'],
  },
  { name: 'batch norm eval', inputs: () => ({ x: R(2, 3, 4, 4), rm: R(3), rv: P(3) }), ts: ({ x, rm, rv }) => T.batchNorm(x, rm, rv, { training: false }), py: 'F.batch_norm(x, rm, rv, training=False)', grad: ['x'] },
  { name: 'prelu per channel', inputs: () => ({ x: R(2, 3, 4, 4), a: rand([3]) }), ts: ({ x, a }) => T.prelu(x, a), py: 'F.prelu(x, a)' },
  { name: 'softmax log softmax', inputs: () => X(3, 7), ts: ({ x }) => T.softmax(x, 1).add(T.logSoftmax(x, 0)), py: 'F.softmax(x, 1) + F.log_softmax(x, 0)' },
  // pooling
  { name: 'max pool2d', inputs: () => X(2, 3, 9, 9), ts: ({ x }) => T.maxPool2d(x, 3, { stride: 2, padding: 1 }), py: 'F.max_pool2d(x, 3, 2, 1)' },
  { name: 'max pool2d ceil mode', inputs: () => X(1, 2, 7, 7), ts: ({ x }) => T.maxPool2d(x, 2, { ceilMode: true }), py: 'F.max_pool2d(x, 2, ceil_mode=True)' },
  {
    name: 'max pool with indices then max unpool',
    inputs: () => X(2, 3, 8, 10),
    ts: ({ x }) => { const p = T.maxPool2dWithIndices(x, 2); return [T.maxUnpool2d(p.output.mul(2), p.indices, [8, 10]), p.indices]; },
    py: '(lambda p: (F.max_unpool2d(p[0] * 2, p[1], 2, output_size=(8, 10)), p[1]))(F.max_pool2d(x, 2, return_indices=True))',
  },
  { name: 'avg pool2d', inputs: () => X(2, 3, 9, 9), ts: ({ x }) => T.avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false }), py: 'F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)' },
  { name: 'adaptive avg pool (uneven bins)', inputs: () => X(2, 3, 7, 10), ts: ({ x }) => T.adaptiveAvgPool2d(x, [3, 6]), py: 'F.adaptive_avg_pool2d(x, (3, 6))' },
  { name: 'adaptive max pool', inputs: () => X(2, 3, 7, 10), ts: ({ x }) => T.adaptiveMaxPool2d(x, 2), py: 'F.adaptive_max_pool2d(x, 2)' },
  // resampling
  { name: 'bilinear align corners', inputs: () => X(1, 2, 5, 7), ts: ({ x }) => T.interpolate(x, { size: [9, 13], mode: 'bilinear', alignCorners: true }), py: "F.interpolate(x, size=(9, 13), mode='bilinear', align_corners=True)" },
  { name: 'bilinear half pixel', inputs: () => X(1, 2, 5, 7), ts: ({ x }) => T.interpolate(x, { size: [12, 3], mode: 'bilinear', alignCorners: false }), py: "F.interpolate(x, size=(12, 3), mode='bilinear', align_corners=False)" },
  { name: 'bilinear scale factor', inputs: () => X(1, 2, 5, 7), ts: ({ x }) => T.interpolate(x, { scaleFactor: 2, mode: 'bilinear' }), py: "F.interpolate(x, scale_factor=2, mode='bilinear')" },
  { name: 'bilinear antialias (shrink)', inputs: () => X(2, 3, 17, 23), ts: ({ x }) => T.interpolate(x, { size: [5, 9], mode: 'bilinear', antialias: true }), py: "F.interpolate(x, size=(5, 9), mode='bilinear', align_corners=False, antialias=True)" },
  { name: 'nearest', inputs: () => X(1, 2, 5, 7), ts: ({ x }) => T.interpolate(x, { size: [10, 21] }), py: 'F.interpolate(x, size=(10, 21))' },
  { name: 'pad', inputs: () => X(1, 2, 3, 3), ts: ({ x }) => T.pad(x, [1, 2, 0, 1], 0.5), py: 'F.pad(x, (1, 2, 0, 1), value=0.5)' },
  // regularization (same seed, same generator, same mask)
  { name: 'dropout', inputs: () => X(4, 50), ts: ({ x }) => T.dropout(x, 0.3, true), py: 'F.dropout(x, 0.3, True)', seed: 11 },
  { name: 'dropout2d (channel dropout)', inputs: () => X(4, 8, 3, 3), ts: ({ x }) => T.dropout2d(x, 0.5, true), py: 'F.dropout2d(x, 0.5, True)', seed: 12 },
  { name: 'dropout eval is identity', inputs: () => X(4, 5), ts: ({ x }) => T.dropout(x, 0.5, false), py: 'F.dropout(x, 0.5, False)' },
  // losses
  {
    name: 'cross entropy segmentation with ignore index and class weights',
    inputs: () => ({ x: R(2, 4, 5, 6), y: randint(0, 4, [2, 5, 6]).maskedFill(rand([2, 5, 6]).lt(0.2), 255), w: rand([4]).add(0.5) }),
    ts: ({ x, y, w }) => T.crossEntropy(x, y, { weight: w, ignoreIndex: 255 }),
    py: 'F.cross_entropy(x, y, weight=w, ignore_index=255)',
    grad: ['x'],
  },
  { name: 'cross entropy label smoothing sum', inputs: () => ({ x: R(6, 5), y: randint(0, 5, [6]) }), ts: ({ x, y }) => T.crossEntropy(x, y, { labelSmoothing: 0.1, reduction: 'sum' }), py: "F.cross_entropy(x, y, label_smoothing=0.1, reduction='sum')" },
  { name: 'nll loss', inputs: () => ({ x: R(6, 5), y: randint(0, 5, [6]) }), ts: ({ x, y }) => T.nllLoss(T.logSoftmax(x, 1), y), py: 'F.nll_loss(F.log_softmax(x, 1), y)' },
  { name: 'mse loss', inputs: () => ({ a: R(4, 5), b: R(4, 5) }), ts: ({ a, b }) => T.mseLoss(a, b), py: 'F.mse_loss(a, b)' },
  { name: 'kl div batchmean', inputs: () => ({ a: R(4, 5), b: R(4, 5) }), ts: ({ a, b }) => T.klDiv(T.logSoftmax(a, 1), T.softmax(b, 1), { reduction: 'batchmean' }), py: "F.kl_div(F.log_softmax(a, 1), F.softmax(b, 1), reduction='batchmean')" },
  { name: 'bce with logits', inputs: () => ({ a: R(4, 5), b: rand([4, 5]) }), ts: ({ a, b }) => T.binaryCrossEntropyWithLogits(a, b), py: 'F.binary_cross_entropy_with_logits(a, b)' },
  { name: 'smooth l1', inputs: () => ({ a: R(4, 5), b: R(4, 5) }), ts: ({ a, b }) => T.smoothL1Loss(a, b, 0.5), py: 'F.smooth_l1_loss(a, b, beta=0.5)' },
  // factories (the same seeded generator gives the same numbers)
  { name: 'randn rand randint after manual seed', inputs: () => ({}), ts: () => [T.randn([3, 4]), T.rand([5]), T.randint(0, 10, [6])], py: '(torch.randn(3, 4), torch.rand(5), torch.randint(0, 10, (6,)))', seed: 5 },
  { name: 'zeros ones full arange linspace eye', inputs: () => ({}), ts: () => [T.zeros([2, 3]), T.ones([3]), T.full([2], 7.5), T.arange(2, 11, 3), T.linspace(0, 1, 5), T.eye(3), T.arange(5, undefined, 1, { dtype: 'float32' })], py: '(torch.zeros(2, 3), torch.ones(3), torch.full((2,), 7.5), torch.arange(2, 11, 3), torch.linspace(0, 1, 5), torch.eye(3), torch.arange(5, dtype=torch.float32))' },
  // dtypes
  { name: 'dtype conversions', inputs: () => X(6), ts: ({ x }) => [x.to('float64'), x.to('float16'), x.to('bfloat16'), x.mul(10).to('int32'), x.gt(0)], py: '(x.double(), x.half(), x.bfloat16(), (x * 10).int(), x > 0)', grad: [] },
];

parity(cases);
