// Optimizers, schedules and clipping against torch.optim / torch.nn.utils: the same weights and data on
// both sides, every step's parameters compared. All PyTorch work runs in one Python process.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import * as nn from '../../src/nn';
import {
  Adam,
  AdamW,
  CosineAnnealingLR,
  LinearWarmup,
  LRScheduler,
  OptimizerLike,
  OptimizerStateDict,
  PolyLR,
  RMSprop,
  RMSpropTF,
  SGD,
  StepLR,
  ConstantLR,
  clipGradNorm_,
  clipGradValue_,
} from '../../src/optim';
import { makeOptimizer } from '../../src/train/optimizers';
import { assertClose, runTorchWithMeta } from '../helpers/pytorch';

// ---- models: the same two on both sides -----------------------------------------------------------------
class MLP extends nn.Module {
  fc1 = new nn.Linear(6, 8);
  act = new nn.ReLU();
  fc2 = new nn.Linear(8, 3);
  forward(x: T.Tensor): T.Tensor {
    return this.fc2.forward(this.act.forward(this.fc1.forward(x)));
  }
}
/** Conv + BatchNorm (train mode, so running statistics move too) + a linear head. */
class ConvBN extends nn.Module {
  conv = new nn.Conv2d(2, 4, 3, { padding: 1 });
  bn = new nn.BatchNorm2d(4);
  fc = new nn.Linear(4, 3);
  forward(x: T.Tensor): T.Tensor {
    return this.fc.forward(T.adaptiveAvgPool2d(this.bn.forward(this.conv.forward(x)).relu(), 1).flatten(1));
  }
}
type Net = MLP | ConvBN;
const PY_MODELS = [
  'import json, torch.nn as nn',
  'class MLP(nn.Module):',
  '    def __init__(s): super().__init__(); s.fc1 = nn.Linear(6, 8); s.act = nn.ReLU(); s.fc2 = nn.Linear(8, 3)',
  '    def forward(s, x): return s.fc2(s.act(s.fc1(x)))',
  'class ConvBN(nn.Module):',
  '    def __init__(s): super().__init__(); s.conv = nn.Conv2d(2, 4, 3, padding=1); s.bn = nn.BatchNorm2d(4); s.fc = nn.Linear(4, 3)',
  '    def forward(s, x): return s.fc(F.adaptive_avg_pool2d(F.relu(s.bn(s.conv(x))), 1).flatten(1))',
  'def sub(prefix): return {k[len(prefix):]: v for k, v in I.items() if k.startswith(prefix)}',
  // TensorFlow's RMSprop, written from its kernels' documented updates (ApplyRMSProp, ApplyCenteredRMSProp):
  // ms starts at 1; ms += (g² − ms)(1 − ρ); mom = μ·mom + lr·g/√(ms − mg² + ε); var −= mom.
  'class TFRMSprop(torch.optim.Optimizer):',
  '    def __init__(s, params, lr, rho=0.9, momentum=0.9, eps=1.0, weight_decay=0.0, centered=False):',
  '        super().__init__(params, dict(lr=lr, rho=rho, momentum=momentum, eps=eps, weight_decay=weight_decay, centered=centered))',
  '    @torch.no_grad()',
  '    def step(s):',
  '        for g in s.param_groups:',
  '            for p in g["params"]:',
  '                if p.grad is None: continue',
  '                st = s.state[p]',
  '                if not st:',
  '                    st["step"] = torch.tensor(0.0); st["square_avg"] = torch.ones_like(p)',
  '                    if g["momentum"] > 0: st["momentum_buffer"] = torch.zeros_like(p)',
  '                    if g["centered"]: st["grad_avg"] = torch.zeros_like(p)',
  '                st["step"] += 1',
  '                grad = p.grad + g["weight_decay"] * p',
  '                ms = st["square_avg"]; ms += (grad * grad - ms) * (1 - g["rho"])',
  '                denom = ms + g["eps"]',
  '                if g["centered"]:',
  '                    mg = st["grad_avg"]; mg += (grad - mg) * (1 - g["rho"]); denom = denom - mg * mg',
  '                update = g["lr"] * grad / denom.sqrt()',
  '                if g["momentum"] > 0:',
  '                    mom = st["momentum_buffer"]; mom.mul_(g["momentum"]).add_(update); update = mom',
  '                p -= update',
];
const models: { name: string; make: () => Net; input: number[]; py: string }[] = [
  { name: 'mlp', make: () => new MLP(), input: [16, 6], py: 'MLP()' },
  { name: 'convbn', make: () => new ConvBN(), input: [8, 2, 5, 5], py: 'ConvBN()' },
];

/** Weight decay on matrices and kernels only, and a doubled rate for the rest: the usual split. */
const split = (m: nn.Module): [nn.Parameter[], nn.Parameter[]] => [m.parameters().filter((p) => p.ndim > 1), m.parameters().filter((p) => p.ndim <= 1)];
const PY_SPLIT = '[p for p in m.parameters() if p.ndim > 1], [p for p in m.parameters() if p.ndim <= 1]';

type Make = (m: nn.Module) => OptimizerLike;
const configs: { name: string; make: Make; py: string }[] = [
  { name: 'SGD plain', make: (m) => new SGD(m.parameters(), { lr: 0.1 }), py: 'torch.optim.SGD(m.parameters(), lr=0.1)' },
  { name: 'SGD momentum dampening', make: (m) => new SGD(m.parameters(), { lr: 0.05, momentum: 0.9, dampening: 0.3 }), py: 'torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, dampening=0.3)' },
  { name: 'SGD nesterov weight decay', make: (m) => new SGD(m.parameters(), { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-3 }), py: 'torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-3)' },
  {
    name: 'SGD parameter groups',
    make: (m) => { const [w, b] = split(m); return new SGD([{ params: w }, { params: b, lr: 0.1, weightDecay: 0 }], { lr: 0.05, momentum: 0.9, weightDecay: 1e-2 }); },
    py: `(lambda w, b: torch.optim.SGD([{"params": w}, {"params": b, "lr": 0.1, "weight_decay": 0}], lr=0.05, momentum=0.9, weight_decay=1e-2))(${PY_SPLIT})`,
  },
  { name: 'Adam', make: (m) => new Adam(m.parameters(), { lr: 0.01 }), py: 'torch.optim.Adam(m.parameters(), lr=0.01)' },
  { name: 'Adam weight decay', make: (m) => new Adam(m.parameters(), { lr: 0.01, weightDecay: 0.1, eps: 1e-6 }), py: 'torch.optim.Adam(m.parameters(), lr=0.01, weight_decay=0.1, eps=1e-6)' },
  {
    name: 'Adam amsgrad betas weight decay',
    make: (m) => new Adam(m.parameters(), { lr: 0.01, amsgrad: true, weightDecay: 0.1, betas: [0.8, 0.99] }),
    py: 'torch.optim.Adam(m.parameters(), lr=0.01, amsgrad=True, weight_decay=0.1, betas=(0.8, 0.99))',
  },
  { name: 'AdamW', make: (m) => new AdamW(m.parameters(), { lr: 0.01, weightDecay: 0.1 }), py: 'torch.optim.AdamW(m.parameters(), lr=0.01, weight_decay=0.1)' },
  {
    name: 'AdamW amsgrad parameter groups',
    make: (m) => { const [w, b] = split(m); return new AdamW([{ params: w }, { params: b, weightDecay: 0, betas: [0.5, 0.9] }], { lr: 0.02, amsgrad: true }); },
    py: `(lambda w, b: torch.optim.AdamW([{"params": w}, {"params": b, "weight_decay": 0, "betas": (0.5, 0.9)}], lr=0.02, amsgrad=True))(${PY_SPLIT})`,
  },
  { name: 'RMSprop', make: (m) => new RMSprop(m.parameters(), { lr: 0.01 }), py: 'torch.optim.RMSprop(m.parameters(), lr=0.01)' },
  {
    name: 'RMSprop centered momentum weight decay',
    make: (m) => new RMSprop(m.parameters(), { lr: 0.005, alpha: 0.9, eps: 1e-6, momentum: 0.9, centered: true, weightDecay: 0.1 }),
    py: 'torch.optim.RMSprop(m.parameters(), lr=0.005, alpha=0.9, eps=1e-6, momentum=0.9, centered=True, weight_decay=0.1)',
  },
  {
    name: 'RMSprop parameter groups',
    make: (m) => { const [w, b] = split(m); return new RMSprop([{ params: w }, { params: b, lr: 0.02, momentum: 0 }], { lr: 0.01, momentum: 0.5 }); },
    py: `(lambda w, b: torch.optim.RMSprop([{"params": w}, {"params": b, "lr": 0.02, "momentum": 0}], lr=0.01, momentum=0.5))(${PY_SPLIT})`,
  },
  { name: 'RMSpropTF', make: (m) => new RMSpropTF(m.parameters(), { lr: 0.02 }), py: 'TFRMSprop(m.parameters(), lr=0.02)' },
  {
    name: 'RMSpropTF centered weight decay without momentum',
    make: (m) => new RMSpropTF(m.parameters(), { lr: 0.01, eps: 0.1, momentum: 0, centered: true, weightDecay: 0.05 }),
    py: 'TFRMSprop(m.parameters(), lr=0.01, eps=0.1, momentum=0, centered=True, weight_decay=0.05)',
  },
];
const STEPS = 20;

// ---- the reference run ---------------------------------------------------------------------------------
T.manualSeed(0);
const inputs: Record<string, T.Tensor> = {};
const inits = models.map((md) => {
  const m = md.make();
  for (const [k, t] of Object.entries(m.stateDict())) inputs[`${md.name}.w.${k}`] = t.clone().keep();
  inputs[`${md.name}.x`] = T.randn(md.input).keep();
  inputs[`${md.name}.y`] = T.randint(0, 3, [md.input[0]]).keep();
  return m;
});
const py: string[] = [...PY_MODELS];
models.forEach((md) => {
  configs.forEach((c, ci) => {
    const key = `${md.name}.${ci}`;
    py.push(
      `m = ${md.py}; m.load_state_dict(sub("${md.name}.w.")); m.train()`,
      `opt = ${c.py}`,
      `for s in range(${STEPS}):`,
      `    opt.zero_grad(); F.cross_entropy(m(I["${md.name}.x"]), I["${md.name}.y"]).backward(); opt.step()`,
      `    for k, v in m.state_dict().items(): O[f"${key}.{s}.{k}"] = v.clone()`,
      // torch's own optimizer state dict: the numbering and names ours must reproduce.
      'sd = opt.state_dict()',
      'for i, entry in sd["state"].items():',
      '    for name, v in entry.items():',
      `        if name == "step": META[f"${key}.step.{i}"] = str(int(v))`,
      `        elif v is not None: O[f"${key}.state.{i}.{name}"] = v`,
      `META["${key}.groups"] = json.dumps([len(g["params"]) for g in sd["param_groups"]])`,
    );
  });
});

// Schedules: the learning rate seen by each of 15 optimizer steps.
py.push(
  'def lrs(mk, n, base=(0.1, 0.01)):',
  '    ps = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]',
  '    o = torch.optim.SGD([{"params": [ps[0]], "lr": base[0]}, {"params": [ps[1]], "lr": base[1]}], lr=base[0]); s = mk(o); out = []',
  '    for _ in range(n): out.append([g["lr"] for g in o.param_groups]); o.step(); s.step()',
  '    return torch.tensor(out, dtype=torch.float64)',
  'S = torch.optim.lr_scheduler',
  'O["lr.poly"] = lrs(lambda o: S.PolynomialLR(o, total_iters=10, power=0.9), 15)',
  'O["lr.step"] = lrs(lambda o: S.StepLR(o, 3, 0.5), 15)',
  'O["lr.cos"] = lrs(lambda o: S.CosineAnnealingLR(o, 10, eta_min=0.001), 11)',
  'O["lr.warmstep"] = lrs(lambda o: S.ChainedScheduler([S.LinearLR(o, start_factor=0.2, total_iters=4), S.StepLR(o, 3, 0.5)]), 15)',
  // Warm-up wrapped around decays whose torch forms do not chain: the formulas, written out independently.
  'import math',
  'w = lambda t, n, s0: 1.0 if t >= n - 1 else s0 + (1 - s0) * t / (n - 1)',
  'O["lr.warmpoly"] = torch.tensor([[b * (1 - min(t, 12) / 12) ** 0.9 * w(t, 5, 0.1) for b in (0.1, 0.01)] for t in range(15)], dtype=torch.float64)',
  'O["lr.warmcos"] = torch.tensor([[(0.001 + (b - 0.001) * (1 + math.cos(math.pi * min(t, 12) / 12)) / 2) * w(t, 4, 1 / 4) for b in (0.1, 0.01)] for t in range(15)], dtype=torch.float64)',
);

// Clipping: the same gradients, each norm type; clip_grad_value_.
const grads = [T.randn([3, 4]).mul(2).keep(), T.randn([5]).keep(), T.randn([2, 2, 3]).mul(0.1).keep()];
grads.forEach((g, i) => (inputs[`g${i}`] = g));
const clips: { name: string; maxNorm: number; normType: number; py: string }[] = [
  { name: 'l2', maxNorm: 0.5, normType: 2, py: '2.0' },
  { name: 'l1', maxNorm: 3, normType: 1, py: '1.0' },
  { name: 'inf', maxNorm: 0.7, normType: Infinity, py: 'float("inf")' },
  { name: 'p3', maxNorm: 1, normType: 3, py: '3.0' },
  { name: 'loose', maxNorm: 1e3, normType: 2, py: '2.0' },
];
py.push('def gparams():', '    ps = [torch.nn.Parameter(torch.zeros_like(I[f"g{i}"])) for i in range(3)]', '    for i, p in enumerate(ps): p.grad = I[f"g{i}"].clone()', '    return ps');
clips.forEach((c) => {
  py.push(
    'ps = gparams()',
    `O["clip.${c.name}.total"] = torch.nn.utils.clip_grad_norm_(ps, ${c.maxNorm}, ${c.py}).reshape(1)`,
    `for i, p in enumerate(ps): O[f"clip.${c.name}.g{i}"] = p.grad`,
  );
});
py.push('ps = gparams(); torch.nn.utils.clip_grad_value_(ps, 0.3)', 'for i, p in enumerate(ps): O[f"clipv.g{i}"] = p.grad');

const { tensors: ref, metadata: meta } = runTorchWithMeta(py.join('\n'), inputs);

// ---- helpers ---------------------------------------------------------------------------------------------
function fresh(mi: number): Net {
  const m = models[mi].make();
  m.loadStateDict(inits[mi].stateDict());
  return m.train();
}
function trainSteps(mi: number, m: Net, opt: OptimizerLike, n: number, each?: (s: number) => void, sched?: LRScheduler): void {
  const md = models[mi];
  for (let s = 0; s < n; s++) {
    T.tidy(() => {
      opt.zeroGrad();
      T.crossEntropy(m.forward(inputs[`${md.name}.x`]), inputs[`${md.name}.y`]).backward();
      opt.step();
      sched?.step();
    });
    each?.(s);
  }
}

// ---- trajectories ----------------------------------------------------------------------------------------
models.forEach((md, mi) => {
  configs.forEach((c, ci) => {
    test(`${c.name} on ${md.name}: every one of ${STEPS} steps matches torch.optim, and so does the state`, () => {
      const key = `${md.name}.${ci}`;
      const m = fresh(mi);
      const opt = c.make(m);
      trainSteps(mi, m, opt, STEPS, (s) => {
        for (const [k, t] of Object.entries(m.stateDict())) {
          const want = ref[`${key}.${s}.${k}`];
          assert.ok(want, `PyTorch has no ${k}`);
          assertClose(t, want, 1e-5, `step ${s + 1}, ${k}`);
        }
      });
      const sd = opt.stateDict();
      const theirs = Object.keys(ref).filter((k) => k.startsWith(`${key}.state.`)).map((k) => k.slice(key.length + 1));
      assert.deepEqual(Object.keys(sd.tensors).sort(), theirs.sort(), 'state tensor keys');
      for (const k of theirs) {
        const want = ref[`${key}.${k}`];
        // The conv bias in front of BatchNorm has a gradient of rounding noise (BN removes the mean): where
        // TensorFlow's RMSprop scales it by lr/√(1 + ε) instead of normalizing it, its momentum stays noise
        // (~1e-9) on both sides, to be compared absolutely.
        if (want.abs().max().item() < 1e-6) assert.ok(sd.tensors[k].sub(want).abs().max().item() < 1e-8, `${k}: noise beyond 1e-8`);
        else assertClose(sd.tensors[k], want, 1e-5, k);
      }
      const steps = (sd.meta as { steps: Record<string, number> }).steps;
      const theirSteps = Object.fromEntries(Object.entries(meta).filter(([k]) => k.startsWith(`${key}.step.`)).map(([k, v]) => [k.slice(`${key}.step.`.length), Number(v)]));
      assert.deepEqual(steps, theirSteps, 'step counts');
      const groups = (sd.meta as { groups: { size: number }[] }).groups.map((g) => g.size);
      assert.deepEqual(groups, JSON.parse(meta[`${key}.groups`]), 'group sizes');
      assert.doesNotThrow(() => JSON.stringify(sd.meta));
    });
  });
});

// ---- checkpoints ----------------------------------------------------------------------------------------
/** What a checkpoint writer does: tensors through safetensors bytes, meta through JSON text. */
function throughCheckpoint(s: OptimizerStateDict): OptimizerStateDict {
  const bytes = Buffer.concat(T.encodeSafetensors(s.tensors, { meta: JSON.stringify(s.meta) }));
  const { tensors, metadata } = T.decodeSafetensors(bytes);
  return { tensors, meta: JSON.parse(metadata.meta) as Record<string, unknown> };
}

test('state round trip through safetensors + JSON: 10 + 10 steps equal 20 uninterrupted, bitwise', () => {
  const cases = [2, 3, 6, 8, 10, 11, 12]; // nesterov, SGD groups, amsgrad, AdamW groups + amsgrad, RMSprop centered, RMSprop groups, RMSpropTF
  for (const mi of [0, 1]) {
    for (const ci of cases) {
      const make = (o: OptimizerLike) => new PolyLR(o, 20, 0.9, 3);
      const a = fresh(mi);
      const oa = configs[ci].make(a);
      trainSteps(mi, a, oa, 20, undefined, make(oa));

      const b = fresh(mi);
      const ob = configs[ci].make(b);
      const sb = make(ob);
      trainSteps(mi, b, ob, 10, undefined, sb);
      const saved = throughCheckpoint(ob.stateDict());
      const schedSaved = JSON.parse(JSON.stringify(sb.stateDict()));
      const weights = Object.fromEntries(Object.entries(b.stateDict()).map(([k, t]) => [k, t.clone()]));

      const c = models[mi].make().train();
      c.loadStateDict(weights);
      const oc = configs[ci].make(c);
      const sc = make(oc);
      oc.loadStateDict(saved);
      sc.loadStateDict(schedSaved);
      trainSteps(mi, c, oc, 10, undefined, sc);
      const want = a.stateDict();
      for (const [k, t] of Object.entries(c.stateDict())) assert.deepEqual(t.toNumbers(), want[k].toNumbers(), `${configs[ci].name} on ${models[mi].name}: ${k}`);
      assert.deepEqual(oc.paramGroups.map((g) => g.lr), oa.paramGroups.map((g) => g.lr));
    }
  }
});

test('loadStateDict refuses a mismatched state and changes nothing', () => {
  const m = fresh(0);
  const opt = new Adam(m.parameters(), { lr: 0.01, amsgrad: true });
  trainSteps(0, m, opt, 2);
  const good = throughCheckpoint(opt.stateDict());
  const before = throughCheckpoint(opt.stateDict());
  const sgd = new SGD(m.parameters(), { lr: 0.1, momentum: 0.9 });
  assert.throws(() => sgd.loadStateDict(good), /state is for Adam, not SGD/);
  const shape = { tensors: { ...good.tensors, 'state.0.exp_avg': T.zeros([2]) }, meta: good.meta };
  assert.throws(() => opt.loadStateDict(shape), /'state\.0\.exp_avg' has shape \[2\]/);
  const extra = { tensors: { ...good.tensors, 'state.9.exp_avg': T.zeros([2]) }, meta: { ...good.meta, groups: [{ lr: 5, size: 4 }] } };
  assert.throws(() => opt.loadStateDict(extra), /unexpected entry 'state\.9\.exp_avg'/);
  assert.equal(opt.paramGroups[0].lr, 0.01, 'hyperparameters untouched');
  const other = new Adam(m.parameters().slice(1), {});
  assert.throws(() => other.loadStateDict(good), /groups of sizes \[4\], this optimizer \[3\]/);
  for (const [k, t] of Object.entries(opt.stateDict().tensors)) assert.deepEqual(t.toNumbers(), before.tensors[k].toNumbers(), k);
  // Loading its own live state dict is safe (copies are made before the old state is freed).
  opt.loadStateDict(opt.stateDict());
  for (const [k, t] of Object.entries(opt.stateDict().tensors)) assert.deepEqual(t.toNumbers(), before.tensors[k].toNumbers(), k);
});

// ---- step hygiene ----------------------------------------------------------------------------------------
test('step leaves no tensors behind, keeps gradients as they were, and skips parameters without one', () => {
  for (const ci of [2, 3, 6, 8, 10, 12, 13]) {
    const m = fresh(1);
    const opt = configs[ci].make(m);
    trainSteps(1, m, opt, 2); // state exists from here on
    const live = T.liveTensors();
    trainSteps(1, m, opt, 3);
    assert.equal(T.liveTensors(), live, `${configs[ci].name}: live tensors`);
    // Nesterov and weight decay work on copies: .grad is what backward produced (clipping, logging read it).
    const g = T.tidy(() => m.parameters().map((p) => p.grad!.clone().keep()));
    opt.step();
    m.parameters().forEach((p, i) => assert.deepEqual(p.grad!.toNumbers(), g[i].toNumbers(), `${configs[ci].name}: grad ${i}`));
  }
  const m = fresh(0) as MLP;
  const opt = new Adam(m.parameters(), { lr: 0.1 });
  m.fc1.freeze();
  const w = m.fc1.weight.toNumbers();
  trainSteps(0, m, opt, 2);
  assert.deepEqual(m.fc1.weight.toNumbers(), w);
  assert.ok(!Object.keys(opt.stateDict().tensors).some((k) => k.startsWith('state.0.') || k.startsWith('state.1.')));
  opt.zeroGrad();
  assert.ok(m.parameters().every((p) => p.grad === null));
});

test('invalid hyperparameters are refused', () => {
  const ps = new MLP().parameters();
  assert.throws(() => new SGD(ps, { lr: -1 }), /learning rate/);
  assert.throws(() => new SGD(ps, { lr: 0.1, nesterov: true }), /Nesterov/);
  assert.throws(() => new SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true, dampening: 0.1 }), /Nesterov/);
  assert.throws(() => new Adam(ps, { betas: [1, 0.9] }), /betas/);
  assert.throws(() => new Adam(ps, { eps: -1 }), /eps/);
  assert.throws(() => new AdamW([...ps, ps[0]]), /more than once/);
  assert.throws(() => new RMSprop(ps, { alpha: 1 }), /alpha/);
  assert.throws(() => new RMSpropTF(ps, { momentum: -0.1 }), /RMSpropTF: momentum/);
  assert.throws(() => new RMSprop(ps, { eps: -1 }), /eps/);
});

// ---- schedules ------------------------------------------------------------------------------------------
function groupsOpt(): SGD {
  const p = () => nn.Parameter.from(T.zeros([1]));
  return new SGD([{ params: [p()], lr: 0.1 }, { params: [p()], lr: 0.01 }], { lr: 0.1 });
}
/** The rate each of n optimizer steps runs with (read from the optimizer, as torch's list is). */
function lrs(s: LRScheduler, n: number): number[][] {
  return Array.from({ length: n }, () => {
    const v = s.optimizer.paramGroups.map((g) => g.lr);
    assert.deepEqual(s.getLr(), v);
    s.step();
    return v;
  });
}
function closeRows(ours: number[][], theirs: T.Tensor, what: string): void {
  const flat = theirs.toNumbers();
  assert.equal(ours.flat().length, flat.length, `${what}: length`);
  ours.flat().forEach((v, i) => assert.ok(Math.abs(v - flat[i]) <= 1e-12 + 1e-9 * Math.abs(flat[i]), `${what}[${i}]: ${v} vs ${flat[i]}`));
}

test('schedules match torch.optim.lr_scheduler (per group, absolute eta_min, warm-up chained)', () => {
  closeRows(lrs(new PolyLR(groupsOpt(), 10, 0.9), 15), ref['lr.poly'], 'poly vs PolynomialLR');
  closeRows(lrs(new StepLR(groupsOpt(), 3, 0.5), 15), ref['lr.step'], 'step vs StepLR');
  closeRows(lrs(new CosineAnnealingLR(groupsOpt(), 10, 0.001), 11), ref['lr.cos'], 'cosine vs CosineAnnealingLR');
  closeRows(lrs(new LinearWarmup(new StepLR(groupsOpt(), 3, 0.5), 5, 0.2), 15), ref['lr.warmstep'], 'warm-up + step vs LinearLR chained with StepLR');
  closeRows(lrs(new LinearWarmup(new PolyLR(groupsOpt(), 12), 5, 0.1), 15), ref['lr.warmpoly'], 'warm-up + poly');
  // The built-in warmup argument is LinearWarmup with its default start, 1/n.
  closeRows(lrs(new CosineAnnealingLR(groupsOpt(), 12, 0.001, 4), 15), ref['lr.warmcos'], 'cosine with warmup=4');
  closeRows(lrs(new LinearWarmup(new CosineAnnealingLR(groupsOpt(), 12, 0.001), 4), 15), ref['lr.warmcos'], 'LinearWarmup(cosine, 4)');
});

test('a schedule sets the rate from the first step and resumes exactly from its state dict', () => {
  const opt = new SGD([nn.Parameter.from(T.zeros([1]))], { lr: 0.4 });
  new ConstantLR(opt, 4);
  assert.equal(opt.paramGroups[0].lr, 0.1);
  const make = (o: SGD) => new LinearWarmup(new PolyLR(o, 30), 6, 0.05);
  const a = make(groupsOpt());
  const all = lrs(a, 20);
  const b = make(groupsOpt());
  lrs(b, 8);
  const saved = JSON.parse(JSON.stringify(b.stateDict()));
  const c = make(groupsOpt());
  c.loadStateDict(saved);
  assert.deepEqual(lrs(c, 12), all.slice(8));
});

test("makeOptimizer: rmsprop and rmsprop-tf, and the exp schedule's staircase (×0.94 every 2 epochs by default)", () => {
  const one = () => [nn.Parameter.from(T.zeros([1]))];
  const recipe = { lr: 0.045, momentum: 0.9, weightDecay: 4e-5, warmupEpochs: 0 };
  const tf = makeOptimizer(one(), { ...recipe, optimizer: 'rmsprop-tf', schedule: 'exp' }, 100, 5);
  assert.ok(tf.optimizer instanceof RMSpropTF);
  assert.deepEqual({ ...tf.optimizer.paramGroups[0], params: [] }, { params: [], lr: 0.045, alpha: 0.9, eps: 1, momentum: 0.9, weightDecay: 4e-5, centered: false });
  const rates = (t: typeof tf, n: number) => Array.from({ length: n }, () => { const v = t.optimizer.paramGroups[0].lr; t.schedule.step(); return v; });
  rates(tf, 35).forEach((v, i) => assert.ok(Math.abs(v - 0.045 * 0.94 ** Math.floor(i / 10)) < 1e-15, `step ${i}: ${v}`));
  const torchForm = makeOptimizer(one(), { ...recipe, optimizer: 'rmsprop', schedule: 'exp', decayRate: 0.5, decayEpochs: 0.4, warmupEpochs: 0.8 }, 100, 5);
  assert.ok(torchForm.optimizer instanceof RMSprop && !(torchForm.optimizer instanceof RMSpropTF));
  assert.equal(torchForm.optimizer.paramGroups[0].momentum, 0.9);
  // 2 steps per decay; 4 steps of warm-up in front: (t + 1)/4 for t < 3.
  const want = [0.25, 0.5, 0.75 * 0.5, 0.5, 0.25, 0.25];
  rates(torchForm, 6).forEach((v, i) => assert.ok(Math.abs(v - 0.045 * want[i]) < 1e-15, `step ${i}: ${v} vs ${0.045 * want[i]}`));
});

// ---- clipping -----------------------------------------------------------------------------------------
function gradParams(): nn.Parameter[] {
  return grads.map((g) => {
    const p = nn.Parameter.from(T.zerosLike(g));
    p.grad = g.clone();
    return p;
  });
}

test('clipGradNorm_ matches torch.nn.utils.clip_grad_norm_ for norms 2, 1, inf, 3 and when not clipping', () => {
  for (const c of clips) {
    const ps = gradParams();
    const total = clipGradNorm_([...ps, nn.Parameter.from(T.zeros([2]))], c.maxNorm, c.normType);
    const want = ref[`clip.${c.name}.total`].item();
    assert.ok(Math.abs(total - want) <= 1e-5 * want, `${c.name}: total ${total} vs ${want}`);
    ps.forEach((p, i) => assertClose(p.grad!, ref[`clip.${c.name}.g${i}`], 1e-5, `${c.name}: gradient ${i}`));
  }
  const ps = gradParams();
  clipGradValue_(ps, 0.3);
  ps.forEach((p, i) => assertClose(p.grad!, ref[`clipv.g${i}`], 0, `clip_grad_value_: gradient ${i}`));
});

test('clipGradNorm_ errorIfNonfinite throws on a NaN gradient and leaves it alone', () => {
  const ps = gradParams();
  ps[1].grad = T.full([5], NaN);
  assert.throws(() => clipGradNorm_(ps, 1, 2, { errorIfNonfinite: true }), /non-finite/);
  assertClose(ps[0].grad!, grads[0], 0, 'untouched gradient');
  assert.ok(Number.isNaN(clipGradNorm_(ps, 1)));
  assert.equal(clipGradNorm_([nn.Parameter.from(T.zeros([1]))], 1), 0);
});
