// Optimizers against torch.optim: 20 steps from the same weights on the same data; trajectories match.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { Linear, Module, Parameter } from '../../src/nn';
import { Adam, AdamW, CosineAnnealingLR, PolyLR, SGD, StepLR, clipGradNorm_, OptimizerLike } from '../../src/optim';
import { assertClose, runTorch } from '../helpers/pytorch';

class MLP extends Module {
  fc1 = new Linear(6, 8);
  fc2 = new Linear(8, 3);
  forward(x: T.Tensor): T.Tensor {
    return this.fc2.forward(this.fc1.forward(x).tanh());
  }
}

const STEPS = 20;
type Make = (ps: Parameter[]) => OptimizerLike;
const configs: [string, Make, string][] = [
  ['SGD plain', (p) => new SGD(p, { lr: 0.1 }), 'torch.optim.SGD(ps, lr=0.1)'],
  ['SGD momentum dampening weight decay', (p) => new SGD(p, { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 1e-2 }), 'torch.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-2)'],
  ['SGD nesterov', (p) => new SGD(p, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4 }), 'torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)'],
  ['Adam', (p) => new Adam(p, { lr: 0.01 }), 'torch.optim.Adam(ps, lr=0.01)'],
  ['Adam amsgrad weight decay', (p) => new Adam(p, { lr: 0.01, amsgrad: true, weightDecay: 0.1, betas: [0.8, 0.99] }), 'torch.optim.Adam(ps, lr=0.01, amsgrad=True, weight_decay=0.1, betas=(0.8, 0.99))'],
  ['AdamW', (p) => new AdamW(p, { lr: 0.01, weightDecay: 0.1 }), 'torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1)'],
];

test('optimizer trajectories match torch.optim over 20 steps', () => {
  T.manualSeed(0);
  const x = T.randn([16, 6]).keep();
  const y = T.randint(0, 3, [16]).keep();
  const init = new MLP();
  const inputs: Record<string, T.Tensor> = { x, y };
  for (const [k, t] of Object.entries(init.stateDict())) inputs[`w.${k}`] = t;
  const py: string[] = [
    'import torch.nn as nn',
    'class MLP(nn.Module):',
    '    def __init__(s):',
    '        super().__init__(); s.fc1 = nn.Linear(6, 8); s.fc2 = nn.Linear(8, 3)',
    '    def forward(s, x): return s.fc2(torch.tanh(s.fc1(x)))',
    'sd = {k[2:]: v for k, v in I.items() if k.startswith("w.")}',
  ];
  configs.forEach(([, , ctor], i) => {
    py.push(
      'm = MLP(); m.load_state_dict(sd); ps = list(m.parameters())',
      `opt = ${ctor}`,
      `for s in range(${STEPS}):`,
      '    opt.zero_grad(); F.cross_entropy(m(I["x"]), I["y"]).backward(); opt.step()',
      '    if s in (0, 9, 19):',
      `        for k, v in m.state_dict().items(): O[f"c${i}.{s}.{k}"] = v.clone()`,
    );
  });
  const ref = runTorch(py.join('\n'), inputs);
  configs.forEach(([name, make], i) => {
    const m = new MLP();
    m.loadStateDict(init.stateDict());
    const opt = make(m.parameters());
    for (let s = 0; s < STEPS; s++) {
      T.tidy(() => {
        opt.zeroGrad();
        T.crossEntropy(m.forward(x), y).backward();
        opt.step();
      });
      if (s === 0 || s === 9 || s === 19) {
        for (const [k, t] of Object.entries(m.stateDict())) assertClose(t, ref[`c${i}.${s}.${k}`], 1e-5, `${name}, step ${s + 1}, ${k}`);
      }
    }
  });
});

test('optimizer state round trip: 10 + 10 steps equal 20', () => {
  T.manualSeed(1);
  const x = T.randn([8, 6]).keep();
  const y = T.randint(0, 3, [8]).keep();
  for (const make of [(p: Parameter[]) => new SGD(p, { lr: 0.05, momentum: 0.9 }), (p: Parameter[]) => new Adam(p, { lr: 0.01, amsgrad: true })]) {
    const a = new MLP();
    const b = new MLP();
    b.loadStateDict(a.stateDict());
    const run = (m: MLP, o: OptimizerLike, n: number): void => {
      for (let s = 0; s < n; s++) T.tidy(() => { o.zeroGrad(); T.crossEntropy(m.forward(x), y).backward(); o.step(); });
    };
    const oa = make(a.parameters());
    run(a, oa, 20);
    const ob = make(b.parameters());
    run(b, ob, 10);
    const saved = ob.stateDict();
    const ob2 = make(b.parameters());
    ob2.loadStateDict(saved);
    run(b, ob2, 10);
    for (const [k, t] of Object.entries(a.stateDict())) assert.deepEqual(t.toNumbers(), b.stateDict()[k].toNumbers(), k);
  }
});

test('schedules match torch.optim.lr_scheduler; clip_grad_norm_ matches torch', () => {
  const p = Parameter.from(T.zeros([1]));
  const lrs = (s: { getLr(): number[]; step(): void }, n: number): number[] => Array.from({ length: n }, () => { const v = s.getLr()[0]; s.step(); return v; });
  const poly = lrs(new PolyLR(new SGD([p], { lr: 0.1 }), 10, 0.9), 10);
  const step = lrs(new StepLR(new SGD([p], { lr: 0.1 }), 3, 0.5), 10);
  const cos = lrs(new CosineAnnealingLR(new SGD([p], { lr: 0.1 }), 10), 10);
  const g = [T.randn([3, 4]), T.randn([5])];
  const ps = g.map((t) => { const q = Parameter.from(T.zerosLike(t)); q.grad = t.clone(); return q; });
  const total = clipGradNorm_(ps, 0.5);
  const ref = runTorch(
    [
      'def lrs(mk, n):',
      '    p = torch.nn.Parameter(torch.zeros(1)); o = torch.optim.SGD([p], lr=0.1); s = mk(o); out = []',
      '    for _ in range(n): out.append(o.param_groups[0]["lr"]); o.step(); s.step()',
      '    return torch.tensor(out, dtype=torch.float64)',
      'O["poly"] = lrs(lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda t: (1 - t / 10) ** 0.9), 10)',
      'O["step"] = lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5), 10)',
      'O["cos"] = lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10), 10)',
      'ps = [torch.nn.Parameter(torch.zeros_like(I["g0"])), torch.nn.Parameter(torch.zeros_like(I["g1"]))]',
      'ps[0].grad = I["g0"].clone(); ps[1].grad = I["g1"].clone()',
      'O["total"] = torch.nn.utils.clip_grad_norm_(ps, 0.5).reshape(1); O["c0"] = ps[0].grad; O["c1"] = ps[1].grad',
    ].join('\n'),
    { g0: g[0], g1: g[1] },
  );
  const close = (a: number[], b: number[], what: string): void => a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) < 1e-9, `${what}[${i}]: ${v} vs ${b[i]}`));
  close(poly, ref.poly.toNumbers(), 'poly');
  close(step, ref.step.toNumbers(), 'step');
  close(cos, ref.cos.toNumbers(), 'cosine');
  assert.ok(Math.abs(total - ref.total.item()) < 1e-5);
  assertClose(ps[0].grad!, ref.c0, 1e-5, 'clipped grad 0');
  assertClose(ps[1].grad!, ref.c1, 1e-5, 'clipped grad 1');
});

test('a schedule sets the learning rate from the first step (warm-up included)', () => {
  const p = Parameter.from(T.zeros([1]));
  const opt = new SGD([p], { lr: 0.4 });
  new CosineAnnealingLR(opt, 100, 0, 4);
  assert.equal(opt.paramGroups[0].lr, 0.1);
  const opt2 = new SGD([p], { lr: 0.4 });
  new PolyLR(opt2, 10);
  assert.equal(opt2.paramGroups[0].lr, 0.4);
});
