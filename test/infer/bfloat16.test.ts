// bfloat16 inference (optimizeForInference's precision 'bfloat16'): every architecture runs, in both layouts,
// and loses no more accuracy than PyTorch's own bfloat16 inference of the independent definitions
// (scripts/reference_models.py) with the same weights; the two libtorch 1.13 bfloat16 bugs worked around here
// (transposed convolution, oneDNN batch norm) are checked against float32 computations.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import * as nn from '../../src/nn';
import { createModel, createSegmentationModel } from '../../src/models/registry';
import { optimizeForInference } from '../../src/infer/optimize';
import { evalArchitectures, first, randomBatchNorms, relMaxDiff } from '../helpers/inference';
import { runTorch } from '../helpers/pytorch';

type Net = nn.Module & { forward(x: T.Tensor): T.Tensor };
const CASES: { name: string; make: () => Net; py: string; shape: number[] }[] = [
  { name: 'mobilenet_v1', make: () => createModel('mobilenet_v1', { numClasses: 10 }) as Net, py: "R.MODELS['mobilenet_v1'](num_classes=10)", shape: [1, 3, 64, 64] },
  { name: 'se_resnet50', make: () => createModel('se_resnet50', { numClasses: 10 }) as Net, py: "R.MODELS['se_resnet50'](num_classes=10)", shape: [1, 3, 64, 64] },
  { name: 'xception', make: () => createModel('xception', { numClasses: 10 }) as Net, py: "R.MODELS['xception'](num_classes=10)", shape: [1, 3, 71, 71] },
  { name: 'enet', make: () => createSegmentationModel('enet', { numClasses: 5 }) as Net, py: 'R.ENet(num_classes=5)', shape: [1, 3, 64, 128] },
  { name: 'deeplabv3', make: () => createSegmentationModel('deeplabv3', { numClasses: 5, backbone: 'resnet18', width: 16, atrousRates: [1, 2, 3] }) as Net, py: "R.DeepLabV3(num_classes=5, depth=18, width=16, atrous_rates=(1, 2, 3))", shape: [1, 3, 64, 64] },
];

const ref = runTorch(`
import copy
import reference_models as R
def in_float(mod):
    # libtorch 1.13 has no bfloat16 max_unpool2d on CPU, and its bfloat16 transposed convolution computes a
    # plain convolution; these run in float32 on both sides, as tsvision does.
    mod.float()
    mod.register_forward_pre_hook(lambda m, a: tuple(t.float() if torch.is_tensor(t) and t.is_floating_point() else t for t in a))
    mod.register_forward_hook(lambda m, a, out: out.bfloat16())
unpool = F.max_unpool2d
R.F.max_unpool2d = lambda x, i, *a, **k: unpool(x.float(), i, *a, **k).to(x.dtype)
for i, (name, py, shape) in enumerate(${JSON.stringify(CASES.map((c) => [c.name, c.py, c.shape]))}):
    torch.manual_seed(30 + i)
    m = eval(py).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.5, 0.5)
                mod.running_mean.uniform_(-0.5, 0.5); mod.running_var.uniform_(0.5, 1.5)
    for k, v in m.state_dict().items():
        O[name + '.sd.' + k] = v.clone()
    x = torch.randn(*shape)
    O[name + '.x'] = x
    low = copy.deepcopy(m).bfloat16()
    for mod in low.modules():
        if isinstance(mod, torch.nn.ConvTranspose2d):
            in_float(mod)
    with torch.no_grad():
        y = m(x)
        O[name + '.y'] = y
        O[name + '.error'] = ((low(x.bfloat16()).float() - y).norm() / y.norm()).reshape(1)
`);

for (const c of CASES) {
  test(`${c.name} in bfloat16, both layouts: float32 out, error at most PyTorch's own bfloat16 inference`, () => {
    const m = c.make();
    const sd = Object.fromEntries(Object.entries(ref).filter(([k]) => k.startsWith(`${c.name}.sd.`)).map(([k, t]) => [k.slice(c.name.length + 4), t]));
    const { missing, unexpected } = m.loadStateDict(sd);
    assert.deepEqual([missing, unexpected], [[], []]);
    m.eval();
    const x = ref[`${c.name}.x`];
    const y = ref[`${c.name}.y`];
    const torchError = ref[`${c.name}.error`].item();
    const fast = optimizeForInference(m, x, { precision: 'bfloat16', layout: 'ordinary' });
    T.tidy(() =>
      T.noGrad(() => {
        for (const layout of ['ordinary', 'onednn'] as const) {
          const out = layout === 'onednn' ? T.withOneDnnLayout(() => fast.forward(x)) : fast.forward(x);
          assert.equal(out.dtype, 'float32', `${c.name} ${layout}: the output comes back in float32`);
          const err = T.tidy(() => out.sub(y).norm().item() / y.norm().item());
          // Relative RMS error: where the roundings fall differs (tsvision rounds the folded weights once), so
          // the same order as PyTorch's, not the same bits. bfloat16 has 8 bits of mantissa: 2⁻⁸ ≈ 3.9e-3.
          assert.ok(err <= 2 * torchError + 1e-3, `${c.name} ${layout}: ‖Δ‖ / ‖y‖ = ${err.toExponential(2)}, PyTorch's bfloat16 ${torchError.toExponential(2)}`);
        }
      }),
    );
  });
}

test('the rest of the architectures in bfloat16 with the layout chosen per shape (auto): float32 out, close to float32', () => {
  for (const { name, model, x } of evalArchitectures(4)) {
    if (CASES.some((c) => c.name === name)) continue;
    T.tidy(() =>
      T.noGrad(() => {
        const want = first(model.forward(x));
        const fast = optimizeForInference(model, x, { precision: 'bfloat16' });
        fast.settle(x);
        const got = first(fast.forward(x));
        assert.equal(got.dtype, 'float32');
        const err = got.sub(want).norm().item() / want.norm().item();
        assert.ok(err < 2e-2, `${name}: ‖Δ‖ / ‖y‖ = ${err.toExponential(2)}`);
        assert.ok(model.parameters().every((p) => p.dtype === 'bfloat16'), `${name}: the weights are stored in bfloat16`);
      }),
    );
  }
});

test('libtorch 1.13\'s bfloat16 gaps: convolution without AVX-512, transposed convolution, max-unpooling and oneDNN batch norm agree with float32', () => {
  T.manualSeed(7);
  T.noGrad(() => {
    // Transposed convolution: PyTorch 1.13 in bfloat16 returns a plain strided convolution (4×8 from 8×16).
    const x = T.randn([1, 8, 8, 16]);
    const w = T.randn([8, 6, 3, 3]);
    const b = T.randn([6]);
    const o = { stride: 2, padding: 1, outputPadding: 1 };
    const want = T.convTranspose2d(x.to('bfloat16').float(), w.to('bfloat16').float(), b.to('bfloat16').float(), o);
    const got = T.convTranspose2d(x.to('bfloat16'), w.to('bfloat16'), b.to('bfloat16'), o);
    assert.deepEqual([got.dtype, got.shape], ['bfloat16', [1, 6, 16, 32]]);
    assert.ok(relMaxDiff(want, got.float()) <= 2 ** -8, 'one rounding of the float32 result');
    // Convolution: float32 sums of the bfloat16 operands, rounded once — as oneDNN computes on AVX-512, and as
    // tsvision computes without it (libtorch's own kernel there sums in bfloat16: 3% off for 3×3×64).
    const xc = T.randn([1, 64, 16, 16]).to('bfloat16');
    const wc = T.randn([32, 64, 3, 3]).div(24).to('bfloat16');
    const convLow = T.conv2d(xc, wc, null, { padding: 1 });
    assert.equal(convLow.dtype, 'bfloat16');
    const exact = T.conv2d(xc.float(), wc.float(), null, { padding: 1 });
    const convErr = convLow.float().sub(exact).norm().item() / exact.norm().item();
    assert.ok(convErr <= 2 ** -8, `bfloat16 convolution: ‖Δ‖ / ‖y‖ = ${convErr.toExponential(2)} against float32 sums of the same operands`);
    // Max-unpooling only moves values: exact.
    const { output, indices } = T.maxPool2dWithIndices(x, 2);
    const low = output.to('bfloat16');
    const unpooled = T.maxUnpool2d(low, indices, [8, 16]);
    assert.equal(unpooled.dtype, 'bfloat16');
    assert.equal(unpooled.float().sub(T.maxUnpool2d(low.float(), indices, [8, 16])).abs().max().item(), 0);
    // BatchNorm on a convolution's output inside withOneDnnLayout (oneDNN's bfloat16 kernel is wrong in 1.13).
    const conv = new nn.Conv2d(8, 16, 3, { padding: 1 });
    const bn = new nn.BatchNorm2d(16);
    randomBatchNorms(bn);
    conv.eval().to('bfloat16');
    bn.eval().to('bfloat16');
    const xb = x.to('bfloat16');
    const plain = bn.forward(conv.forward(xb)).float();
    const inLayout = T.withOneDnnLayout(() => bn.forward(conv.forward(xb))).float();
    assert.ok(relMaxDiff(plain, inLayout) <= 2 ** -7, `oneDNN layout: ${relMaxDiff(plain, inLayout)}`);
  });
});
