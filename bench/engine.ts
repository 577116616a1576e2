// bench/engine: training-step time of two small networks and per-op overhead, tsvision vs PyTorch eager,
// same machine, same threads, interleaved rounds, medians.
//   node dist/bench/engine.js [--device cuda] [--rounds 3] [--steps 30]
import * as T from '../src/torch';
import { BatchNorm2d, Conv2d, Linear, Module, Sequential, ReLU } from '../src/nn';
import { SGD } from '../src/optim';
import { arg, machineLine, median, nowMs, runPeer, timeEach, writeSection } from './common';

const device = arg('device', 'cpu');
const rounds = Number(arg('rounds', '3'));
const steps = Number(arg('steps', device === 'cpu' ? '20' : '100'));
const threads = T.getNumThreads();

/** 10 conv layers of 64 channels with BN, ReLU and residual additions every two layers. */
class ResNet10 extends Module {
  stem = new Conv2d(3, 64, 3, { padding: 1, bias: false });
  bn0 = new BatchNorm2d(64);
  convs = Array.from({ length: 9 }, () => new Conv2d(64, 64, 3, { padding: 1, bias: false }));
  bns = Array.from({ length: 9 }, () => new BatchNorm2d(64));
  fc = new Linear(64, 10);
  forward(x: T.Tensor): T.Tensor {
    x = this.bn0.forward(this.stem.forward(x)).relu();
    for (let i = 0; i < 8; i += 2) {
      const y = this.bns[i].forward(this.convs[i].forward(x)).relu();
      x = this.bns[i + 1].forward(this.convs[i + 1].forward(y)).add(x).relu();
    }
    x = this.bns[8].forward(this.convs[8].forward(x)).relu();
    return this.fc.forward(T.adaptiveAvgPool2d(x, 1).flatten(1));
  }
}

/** MobileNet-v1-style depthwise-separable blocks. */
class DSNet extends Module {
  stem: Conv2d;
  bn0: BatchNorm2d;
  blocks: Sequential;
  fc: Linear;
  constructor(widths = [32, 64, 128, 128, 256, 256]) {
    super();
    this.stem = new Conv2d(3, widths[0], 3, { stride: 2, padding: 1, bias: false });
    this.bn0 = new BatchNorm2d(widths[0]);
    const strides = [1, 2, 1, 2, 1];
    const layers: Module[] = [];
    for (let i = 0; i < 5; i++) {
      const [cin, cout] = [widths[i], widths[i + 1]];
      layers.push(
        new Conv2d(cin, cin, 3, { stride: strides[i], padding: 1, groups: cin, bias: false }), new BatchNorm2d(cin), new ReLU(),
        new Conv2d(cin, cout, 1, { bias: false }), new BatchNorm2d(cout), new ReLU(),
      );
    }
    this.blocks = new Sequential(...layers);
    this.fc = new Linear(widths[5], 10);
  }
  forward(x: T.Tensor): T.Tensor {
    x = this.bn0.forward(this.stem.forward(x)).relu();
    return this.fc.forward(T.adaptiveAvgPool2d(this.blocks.forward(x), 1).flatten(1));
  }
}

/** One training step with torch.optim.SGD's update (momentum 0.9), in the documented tidy idiom. */
function trainer(model: Module & { forward(x: T.Tensor): T.Tensor }, x: T.Tensor, y: T.Tensor): () => void {
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  return () =>
    T.tidy(() => {
      const loss = T.crossEntropy(model.forward(x), y);
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
}

interface Row {
  name: string;
  ts: number;
  py: number;
  unit: string;
}

function benchTrain(kind: 'resnet10' | 'dsnet', batch: number, size: number): Row {
  T.manualSeed(0);
  const model = (kind === 'resnet10' ? new ResNet10() : new DSNet()).to(device);
  const x = T.randn([batch, 3, size, size], { device }).keep();
  const y = T.randint(0, 10, [batch], { device }).keep();
  const step = trainer(model, x, y);
  const ours: number[] = [];
  const peer: number[] = [];
  for (let r = 0; r < rounds; r++) {
    ours.push(...timeEach(step, steps, 3, device !== 'cpu'));
    peer.push(...runPeer<{ ms: number[] }>('engine_torch.py', { kind, batch, size, n: steps, warmup: 3, threads, device }).ms);
  }
  const label = kind === 'resnet10' ? `10-layer 64-ch conv/BN/ReLU + residuals, batch ${batch}, ${size}×${size}` : `MobileNet-v1-style depthwise-separable blocks, batch ${batch}, ${size}×${size}`;
  return { name: `training step: ${label}`, ts: median(ours), py: median(peer), unit: 'ms' };
}

function benchAdd(): Row {
  const a = T.ones([1], { device }).keep();
  const b = T.ones([1], { device }).keep();
  const n = 100000;
  const ours: number[] = [];
  const peer: number[] = [];
  for (let r = 0; r < rounds; r++) {
    // Scopes of 1,000 ops: the idiom a loop of tiny ops would use.
    const t0 = nowMs();
    for (let i = 0; i < n / 1000; i++) T.tidy(() => { for (let k = 0; k < 1000; k++) a.add(b); });
    ours.push(((nowMs() - t0) / n) * 1000);
    peer.push(runPeer<{ us_per_op: number }>('engine_torch.py', { kind: 'add', n, threads, device }).us_per_op);
  }
  return { name: 'per-op overhead: tiny add (1 element), incl. result wrapper and free', ts: median(ours), py: median(peer), unit: 'µs' };
}

const rows = [benchTrain('resnet10', 8, 28), benchTrain('dsnet', 8, 56), benchAdd()];
const fmt = (v: number): string => (v < 10 ? v.toFixed(2) : v.toFixed(1));
const table = [
  '| what | tsvision | PyTorch eager | ratio |',
  '|---|---|---|---|',
  ...rows.map((r) => `| ${r.name} | ${fmt(r.ts)} ${r.unit} | ${fmt(r.py)} ${r.unit} | ${(r.ts / r.py).toFixed(2)} |`),
].join('\n');
console.log(table);
const section = device === 'cpu' ? 'engine-cpu' : 'engine-cuda';
writeSection(
  section,
  `## Engine (${device})\n\n\`node dist/bench/engine.js${device === 'cpu' ? '' : ' --device ' + device}\` — ${machineLine(device)}; ${rounds} interleaved rounds × ${steps} steps, medians; measured ${new Date().toISOString().slice(0, 10)}.\n\n${table}`,
);
