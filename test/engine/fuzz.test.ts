// Thousands of random operator calls with random shapes, dtypes and bad arguments: each either works or
// throws a JS Error; none may kill the process (node --test runs this file in its own process, so an abort
// or segfault fails the test).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';

const OPS = [
  'aten::add.Tensor', 'aten::mul.Tensor', 'aten::div.Tensor', 'aten::sub.Scalar', 'aten::pow.Tensor_Scalar', 'aten::matmul',
  'aten::mm', 'aten::bmm', 'aten::conv2d', 'aten::conv_transpose2d.input', 'aten::batch_norm', 'aten::prelu', 'aten::relu',
  'aten::hardtanh', 'aten::softmax.int', 'aten::log_softmax.int', 'aten::max_pool2d', 'aten::max_pool2d_with_indices',
  'aten::max_unpool2d', 'aten::avg_pool2d', 'aten::adaptive_avg_pool2d', 'aten::upsample_bilinear2d.vec',
  'aten::upsample_nearest2d.vec', 'aten::dropout', 'aten::feature_dropout', 'aten::cross_entropy_loss', 'aten::mse_loss',
  'aten::kl_div', 'aten::reshape', 'aten::view', 'aten::permute', 'aten::transpose.int', 'aten::slice.Tensor', 'aten::cat',
  'aten::stack', 'aten::index_select', 'aten::gather', 'aten::scatter.src', 'aten::where.self', 'aten::masked_fill.Scalar',
  'aten::sum.dim_IntList', 'aten::mean.dim', 'aten::max.dim', 'aten::topk', 'aten::sort', 'aten::expand', 'aten::repeat',
  'aten::narrow', 'aten::select.int', 'aten::unsqueeze', 'aten::squeeze.dim', 'aten::flatten.using_ints', 'aten::to.dtype_layout',
  'aten::index.Tensor', 'aten::linear', 'aten::clamp', 'aten::sqrt', 'aten::log', 'aten::argmax', 'aten::cumsum', 'aten::flip',
  'aten::addcmul_', 'aten::add_.Tensor', 'aten::copy_', 'aten::fill_.Scalar', 'aten::chunk', 'aten::split.Tensor',
  'aten::constant_pad_nd', 'aten::nll_loss_nd', 'aten::binary_cross_entropy_with_logits', 'aten::masked_select',
];
const DTYPES: T.DType[] = ['float32', 'float64', 'int64', 'int32', 'uint8', 'bool', 'float16'];

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('random operator calls never crash the process', () => {
  T.manualSeed(1234); // tensor values too, so a failure reproduces
  const rnd = prng(1234);
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <V>(a: readonly V[]): V => a[Math.floor(rnd() * a.length)];
  const randTensor = (): T.Tensor => {
    const shape = Array.from({ length: int(0, 4) }, () => int(0, 5));
    const dtype = pick(DTYPES);
    const t = T.randn(shape).mul(3);
    return dtype === 'float32' ? t : t.to(dtype);
  };
  const randArg = (): unknown => {
    switch (int(0, 11)) {
      case 0: case 1: case 2: case 3: return randTensor();
      case 4: return int(-3, 6);
      case 5: return pick([NaN, Infinity, -1, 0.5, 1e3]);
      case 6: return Array.from({ length: int(0, 4) }, () => int(-2, 5));
      case 7: return [randTensor(), randTensor()];
      case 8: return pick([true, false]);
      case 9: return pick(['float32', 'same', 'mean', 'nope', '']);
      case 10: return null;
      default: return undefined;
    }
  };
  let ok = 0;
  let failed = 0;
  const calls = Number(process.env.TSVISION_FUZZ_CALLS ?? 6000);
  for (let i = 0; i < calls; i++) {
    T.tidy(() => {
      const spec = pick(OPS);
      const args = Array.from({ length: int(0, 7) }, randArg) as Parameters<typeof T.callOp>[1][];
      if (process.env.TSVISION_FUZZ_TRACE) process.stderr.write(`${i} ${spec} ${args.map((a) => (a instanceof T.Tensor ? a.toString() : JSON.stringify(a, (_k, v) => (v instanceof T.Tensor ? v.toString() : v)))).join(' | ')}\n`);
      try {
        T.callOp(spec, ...args);
        ok++;
      } catch (e) {
        assert.ok(e instanceof Error, `non-Error thrown by ${spec}`);
        assert.ok(e.message.length > 0);
        failed++;
      }
    });
  }
  assert.equal(ok + failed, calls);
  assert.ok(ok > 0 && failed > 0, `expected both successes and failures, got ${ok} ok / ${failed} errors`);
  // The engine still works afterwards.
  assert.deepEqual(T.ones([2]).add(1).toNumbers(), [2, 2]);
});
