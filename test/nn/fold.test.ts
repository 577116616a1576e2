// BatchNorm folding (src/nn/fold.ts): the folded weights against PyTorch's fuse_conv_bn_weights, every
// architecture's output unchanged, and the pairs that must not fold left alone.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import * as nn from '../../src/nn';
import { runTorch, relError } from '../helpers/pytorch';
import { evalArchitectures, first, randomBatchNorms, relMaxDiff } from '../helpers/inference';
import { LAYOUT_TRIALS, LayoutChooser, optimizeForInference } from '../../src/infer/optimize';

test('foldBatchNorm: weights and bias equal torch.nn.utils.fusion.fuse_conv_bn_weights (with and without a conv bias, depthwise too)', () => {
  T.manualSeed(4);
  const cases: [string, nn.Conv2d][] = [
    ['plain', new nn.Conv2d(3, 8, 3, { padding: 1, bias: false })],
    ['biased', new nn.Conv2d(3, 8, 3, { padding: 1 })],
    ['depthwise', new nn.Conv2d(8, 8, 3, { padding: 1, groups: 8, bias: false })],
  ];
  for (const [name, conv] of cases) {
    const bn = new nn.BatchNorm2d(8, { eps: 1e-3 });
    randomBatchNorms(bn);
    const inputs: Record<string, T.Tensor> = { w: conv.weight.detach().clone(), rm: bn.running_mean!.clone(), rv: bn.running_var!.clone(), g: bn.weight!.detach().clone(), b: bn.bias!.detach().clone() };
    if (conv.bias) inputs.cb = conv.bias.detach().clone();
    const seq = new nn.Sequential(conv, bn);
    const x = T.randn([1, conv.inChannels, 9, 9]);
    const before = T.noGrad(() => seq.eval().forward(x));
    const r = nn.foldBatchNorm(seq, x);
    assert.deepEqual(r, { folded: 1, skipped: 0 }, name);
    const ref = runTorch(`from torch.nn.utils.fusion import fuse_conv_bn_weights
w, b = fuse_conv_bn_weights(I['w'], I.get('cb'), I['rm'], I['rv'], 1e-3, I['g'], I['b'])
O['w'] = w.detach(); O['b'] = b.detach()`, inputs);
    assert.ok(relError(conv.weight, ref.w) < 1e-6, `${name}: weight ${relError(conv.weight, ref.w)}`);
    assert.ok(relError(conv.bias!, ref.b) < 1e-6, `${name}: bias ${relError(conv.bias!, ref.b)}`);
    assert.equal(bn.folded, true);
    assert.ok(relMaxDiff(before, T.noGrad(() => seq.forward(x))) < 1e-5, `${name}: output`);
  }
});

test('foldBatchNorm: every architecture folds its conv → BatchNorm pairs and keeps its output', () => {
  const expected: Record<string, number> = { cnn: 4, resnet18: 20, se_resnet50: 53, mobilenet_v1: 27, xception: 40 };
  for (const { name, model, x } of evalArchitectures(5)) {
    const before = T.noGrad(() => first(model.forward(x))).keep();
    const r = nn.foldBatchNorm(model, x);
    const bns = model.modules().filter((m) => m instanceof nn.BatchNorm2d).length;
    assert.equal(r.folded + r.skipped, bns, `${name}: every BatchNorm accounted for`);
    if (name in expected) assert.equal(r.folded, expected[name], name);
    else assert.ok(r.folded > bns / 2, `${name}: ${r.folded} of ${bns} folded`);
    T.tidy(() =>
      T.noGrad(() => {
        const after = first(model.forward(x));
        assert.ok(relMaxDiff(before, after) < 1e-4, `${name}: folded ${relMaxDiff(before, after)}`);
        const both = first(T.withOneDnnLayout(() => model.forward(x)));
        assert.ok(relMaxDiff(before, both) < 1e-4, `${name}: folded, in oneDNN layout ${relMaxDiff(before, both)}`);
      }),
    );
    before.dispose();
  }
});

/** conv → bn, where the conv's output is also read by the shortcut (`leak`) or a conv runs twice into two BNs (`shared`). */
class Awkward extends nn.Module {
  conv = new nn.Conv2d(4, 4, 3, { padding: 1 });
  bn = new nn.BatchNorm2d(4);
  bn2 = new nn.BatchNorm2d(4);
  after = new nn.BatchNorm2d(4);
  constructor(readonly mode: 'leak' | 'shared' | 'twice') {
    super();
  }
  forward(x: T.Tensor): T.Tensor {
    const y = this.conv.forward(x);
    if (this.mode === 'leak') return this.after.forward(this.bn.forward(y).add(y));
    if (this.mode === 'shared') return this.bn.forward(y).add(this.bn2.forward(this.conv.forward(y)));
    return this.bn.forward(this.conv.forward(this.bn.forward(y))); // the same pair twice: foldable
  }
}

test('foldBatchNorm: leaves a BatchNorm whose input is read elsewhere, not from a conv, or whose conv feeds another BatchNorm', () => {
  const cases: [Awkward['mode'], { folded: number; skipped: number }][] = [
    ['leak', { folded: 0, skipped: 3 }],
    ['shared', { folded: 0, skipped: 3 }],
    ['twice', { folded: 1, skipped: 2 }],
  ];
  for (const [mode, want] of cases) {
    T.manualSeed(7);
    const m = new Awkward(mode);
    randomBatchNorms(m);
    m.eval();
    const x = T.randn([1, 4, 8, 8]);
    const before = T.noGrad(() => m.forward(x));
    assert.deepEqual(nn.foldBatchNorm(m, x), want, mode);
    assert.ok(relMaxDiff(before, T.noGrad(() => m.forward(x))) < 1e-5, `${mode}: output kept`);
  }
});

test('optimizeForInference: folds, runs under noGrad in oneDNN layout, and falls back to the plain forward with autograd on', () => {
  T.manualSeed(8);
  const make = (): nn.Sequential => new nn.Sequential(new nn.Conv2d(3, 8, 3, { padding: 1 }), new nn.BatchNorm2d(8), new nn.ReLU(), new nn.Conv2d(8, 8, 3, { padding: 1, bias: false }), new nn.BatchNorm2d(8));
  const plain = make();
  randomBatchNorms(plain);
  plain.eval();
  const twin = make();
  twin.loadStateDict(plain.stateDict());
  const x = T.randn([1, 3, 96, 96]);
  const fast = optimizeForInference(twin, x, { layout: 'onednn' });
  assert.deepEqual(fast.folded, { folded: 2, skipped: 0 });
  const want = T.noGrad(() => plain.forward(x));
  const seen: boolean[] = [];
  // The first conv's output (inside the network) is in oneDNN's layout only on the noGrad path.
  const conv = twin.at(0) as nn.Conv2d;
  const original = conv.forward.bind(conv);
  conv.forward = (t: T.Tensor): T.Tensor => {
    const y = original(t);
    seen.push(T.isOneDnnLayout(y));
    return y;
  };
  const got = T.noGrad(() => fast.forward(x));
  assert.ok(relMaxDiff(want, got) < 1e-5 && !T.isOneDnnLayout(got));
  const withGrad = fast.forward(x.requiresGrad_(true));
  assert.ok(relMaxDiff(want, withGrad) < 1e-5);
  assert.deepEqual(seen, [true, false]);
});

test("LayoutChooser 'auto' keeps the faster layout per key after timing both; fixed layouts do not time", () => {
  const spin = (ms: number): void => {
    const end = performance.now() + ms;
    while (performance.now() < end);
  };
  const inOneDnn: boolean[] = [];
  // A forward pass that is slow in oneDNN's layout for key 'a' and slow in the ordinary one for key 'b'.
  const fn = (key: string) => (): number => {
    const active = T.oneDnnLayoutActive();
    inOneDnn.push(active);
    spin(active === (key === 'a') ? 6 : 1);
    return 1;
  };
  const chooser = new LayoutChooser('auto');
  T.noGrad(() => {
    for (let i = 0; i < 2 * (LAYOUT_TRIALS + 1); i++) for (const k of ['a', 'b']) chooser.run(k, fn(k));
  });
  assert.deepEqual(chooser.choices(), { a: 'ordinary', b: 'onednn' });
  assert.equal(inOneDnn.filter((v) => v).length, 2 * (LAYOUT_TRIALS + 1), 'each key tried in each layout');
  assert.equal(inOneDnn.length, 4 * (LAYOUT_TRIALS + 1));
  inOneDnn.length = 0;
  T.noGrad(() => ['a', 'b', 'a'].forEach((k) => chooser.run(k, fn(k))));
  assert.deepEqual(inOneDnn, [false, true, false], 'then each key keeps its choice');
  const fixed = new LayoutChooser('ordinary');
  inOneDnn.length = 0;
  T.noGrad(() => [1, 2, 3].forEach(() => fixed.run('a', fn('b'))));
  assert.deepEqual(inOneDnn, [false, false, false]);
  assert.deepEqual(fixed.choices(), {});
});
