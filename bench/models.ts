// bench/models: batch-1 inference latency and training samples/s of MobileNet v1 α=1 (224), SE-ResNet-50
// (224) and Xception (299), 1000 classes, tsvision vs PyTorch eager with identical architectures (the peer,
// scripts/reference_models.py, checks every state-dict key and shape), same threads, interleaved rounds, medians.
//   node dist/bench/models.js [--device cuda] [--rounds 2] [--batch 8] [--n 10] [--warmup 3]
//                             [--train-n 3] [--train-warmup 1] [--models mobilenet_v1,se_resnet50,xception]
//                             [--breakdown] [--no-write]
// --breakdown also times the training forward pass alone (train mode, with grad, loss included), so that
// backward + optimizer step = step − forward, on both sides; --no-write leaves BENCHMARKS.md alone.
import * as T from '../src/torch';
import { createModel } from '../src/models/registry';
import { SGD } from '../src/optim';
import { machineLine, median, runPeer, timeEach, writeSection } from './common';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const flag = (name: string): boolean => process.argv.includes(`--${name}`);
const device = arg('device', 'cpu');
const rounds = Number(arg('rounds', '2'));
const batch = Number(arg('batch', '8'));
const n = Number(arg('n', '10'));
const warmup = Number(arg('warmup', '3'));
const trainN = Number(arg('train-n', '3'));
const trainWarmup = Number(arg('train-warmup', '1'));
const breakdown = flag('breakdown');
const threads = T.getNumThreads();
const sync = device !== 'cpu';

const ALL = [
  { name: 'mobilenet_v1', size: 224, label: 'MobileNet v1 α=1' },
  { name: 'se_resnet50', size: 224, label: 'SE-ResNet-50' },
  { name: 'xception', size: 299, label: 'Xception' },
] as const;
const wanted = arg('models', ALL.map((m) => m.name).join(',')).split(',');
const MODELS = ALL.filter((m) => wanted.includes(m.name));
if (MODELS.length === 0) throw new Error(`--models: none of ${wanted.join(', ')} is one of ${ALL.map((m) => m.name).join(', ')}`);

interface PeerResult {
  infer_ms: number[];
  train_ms: number[];
  fwd_ms?: number[];
}

const fmtMs = (v: number): string => (v < 10 ? v.toFixed(2) : v.toFixed(1));
const fmtRate = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const rows: string[] = [];
for (const { name, size, label } of MODELS) {
  T.manualSeed(0);
  const model = createModel(name, {}).to(device);
  const params = model.numParameters();
  const shapes = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, t.shape]));
  const x1 = T.randn([1, 3, size, size], { device }).keep();
  const xb = T.randn([batch, 3, size, size], { device }).keep();
  const yb = T.randint(0, 1000, [batch], { device }).keep();
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const infer = (): void => T.tidy(() => T.noGrad(() => void model.forward(x1)));
  // One training step in the documented tidy idiom, as bench/engine.ts.
  const step = (): void =>
    T.tidy(() => {
      const loss = T.crossEntropy(model.forward(xb), yb);
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
  const forwardOnly = (): void => T.tidy(() => void T.crossEntropy(model.forward(xb), yb));
  const ours: Required<PeerResult> = { infer_ms: [], train_ms: [], fwd_ms: [] };
  const peer: Required<PeerResult> = { infer_ms: [], train_ms: [], fwd_ms: [] };
  for (let r = 0; r < rounds; r++) {
    model.eval();
    ours.infer_ms.push(...timeEach(infer, n, warmup, sync));
    model.train();
    ours.train_ms.push(...timeEach(step, trainN, trainWarmup, sync));
    if (breakdown) ours.fwd_ms.push(...timeEach(forwardOnly, trainN, 0, sync));
    const p = runPeer<PeerResult>('models_torch.py', {
      model: name, params, shapes, size, batch, n, warmup, train_n: trainN, train_warmup: trainWarmup, breakdown, threads, device,
    });
    peer.infer_ms.push(...p.infer_ms);
    peer.train_ms.push(...p.train_ms);
    if (p.fwd_ms) peer.fwd_ms.push(...p.fwd_ms);
    console.log(
      `${name} round ${r + 1}/${rounds}: batch-1 inference ${fmtMs(median(ours.infer_ms))} vs ${fmtMs(median(peer.infer_ms))} ms, ` +
        `training step ${fmtMs(median(ours.train_ms))} vs ${fmtMs(median(peer.train_ms))} ms` +
        (breakdown ? ` (forward ${fmtMs(median(ours.fwd_ms))} vs ${fmtMs(median(peer.fwd_ms))} ms)` : '') + ' (tsvision vs PyTorch, medians so far)',
    );
  }
  const [ti, pi] = [median(ours.infer_ms), median(peer.infer_ms)];
  const [tt, pt] = [median(ours.train_ms), median(peer.train_ms)];
  const head = `${label} ${size}×${size} (${(params / 1e6).toFixed(2)}M params)`;
  rows.push(`| ${head} | batch-1 inference latency | ${fmtMs(ti)} ms | ${fmtMs(pi)} ms | ${(ti / pi).toFixed(2)} |`);
  // Samples/s: higher is better; the ratio stays tsvision's time over PyTorch's (= PyTorch's rate over ours).
  rows.push(`| | training samples/s, batch ${batch} (step ${fmtMs(tt)} vs ${fmtMs(pt)} ms) | ${fmtRate((batch * 1000) / tt)} | ${fmtRate((batch * 1000) / pt)} | ${(tt / pt).toFixed(2)} |`);
  if (breakdown) {
    const [tf, pf] = [median(ours.fwd_ms), median(peer.fwd_ms)];
    rows.push(`| | training forward + loss, batch ${batch} | ${fmtMs(tf)} ms | ${fmtMs(pf)} ms | ${(tf / pf).toFixed(2)} |`);
    rows.push(`| | backward + SGD step (step − forward) | ${fmtMs(tt - tf)} ms | ${fmtMs(pt - pf)} ms | ${((tt - tf) / (pt - pf)).toFixed(2)} |`);
  }
  for (const t of [x1, xb, yb]) t.dispose();
}

const table = ['| model | what | tsvision | PyTorch eager | ratio tsvision/PyTorch (time) |', '|---|---|---|---|---|', ...rows].join('\n');
console.log(table);
if (!flag('no-write')) {
  // The exact command line of this run (the flags it was given, in order).
  const cmd = ['node dist/bench/models.js', ...process.argv.slice(2)].join(' ');
  writeSection(
    device === 'cpu' ? 'models-cpu' : 'models-cuda',
    `## Models (${device})\n\n\`${cmd}\` — ${machineLine(device)}; ${rounds} interleaved rounds (tsvision block, then a PyTorch peer process), ` +
      `inference ${n} timed calls after ${warmup} warm-up (eval mode, no grad), training ${trainN} timed SGD-momentum steps after ${trainWarmup} (train mode, cross-entropy), ` +
      `medians; measured ${new Date().toISOString().slice(0, 10)}. The peer builds the same architectures in PyTorch (scripts/reference_models.py, whose forward and gradients the tests match against tsvision's) and checks every state-dict key and shape against tsvision's. ` +
      `Ratios are tsvision's time over PyTorch's (for samples/s, PyTorch's rate over tsvision's): below 1.0 tsvision is faster.\n\n${table}`,
  );
}
