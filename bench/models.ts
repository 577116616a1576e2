// bench/models: batch-1 inference latency and training samples/s of MobileNet v1 (224), SE-ResNet-50 (224)
// and Xception (299), tsvision vs PyTorch eager with identical architectures (the peer checks the parameter
// count), same threads, interleaved rounds, medians.
//   node dist/bench/models.js [--device cuda] [--rounds 2] [--batch 8] [--n 10] [--train-n 3]
import * as T from '../src/torch';
import { createModel } from '../src/models/registry';
import { SGD } from '../src/optim';
import { machineLine, median, runPeer, timeEach, writeSection } from './common';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const device = arg('device', 'cpu');
const rounds = Number(arg('rounds', '2'));
const batch = Number(arg('batch', '8'));
const n = Number(arg('n', '10'));
const trainN = Number(arg('train-n', '3'));
const threads = T.getNumThreads();
const sync = device !== 'cpu';

const MODELS = [
  { name: 'mobilenet_v1', size: 224 },
  { name: 'se_resnet50', size: 224 },
  { name: 'xception', size: 299 },
] as const;

const rows: string[] = [];
for (const { name, size } of MODELS) {
  T.manualSeed(0);
  const model = createModel(name, {}).to(device);
  const params = model.numParameters();
  const x1 = T.randn([1, 3, size, size], { device }).keep();
  const xb = T.randn([batch, 3, size, size], { device }).keep();
  const yb = T.randint(0, 1000, [batch], { device }).keep();
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const infer = (): void => T.tidy(() => T.noGrad(() => void model.forward(x1)));
  const step = (): void =>
    T.tidy(() => {
      const loss = T.crossEntropy(model.forward(xb), yb);
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
  const ours = { infer: [] as number[], train: [] as number[] };
  const peer = { infer: [] as number[], train: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    model.eval();
    ours.infer.push(...timeEach(infer, n, 3, sync));
    model.train();
    ours.train.push(...timeEach(step, trainN, 1, sync));
    const p = runPeer<{ infer_ms: number[]; train_ms: number[] }>('models_torch.py', { model: name, params, size, batch, n, warmup: 3, train_n: trainN, train_warmup: 1, threads, device });
    peer.infer.push(...p.infer_ms);
    peer.train.push(...p.train_ms);
    console.log(`${name} round ${r + 1}: inference ${median(ours.infer).toFixed(1)} vs ${median(peer.infer).toFixed(1)} ms, training step ${median(ours.train).toFixed(0)} vs ${median(peer.train).toFixed(0)} ms`);
  }
  const [ti, pi] = [median(ours.infer), median(peer.infer)];
  const [ts, ps] = [(batch * 1000) / median(ours.train), (batch * 1000) / median(peer.train)];
  rows.push(`| ${name} ${size}×${size} (${(params / 1e6).toFixed(2)}M params) | batch-1 inference latency | ${ti.toFixed(1)} ms | ${pi.toFixed(1)} ms | ${(ti / pi).toFixed(2)} |`);
  // For throughput a higher number is better: the ratio is still tsvision time over PyTorch time.
  rows.push(`| | training, batch ${batch} | ${ts.toFixed(1)} samples/s | ${ps.toFixed(1)} samples/s | ${(ps / ts).toFixed(2)} |`);
}
const table = ['| model | what | tsvision | PyTorch eager | time ratio |', '|---|---|---|---|---|', ...rows].join('\n');
console.log(table);
writeSection(
  device === 'cpu' ? 'models-cpu' : 'models-cuda',
  `## Models (${device})\n\n\`node dist/bench/models.js${device === 'cpu' ? '' : ' --device ' + device}\` — ${machineLine(device)}; ${rounds} interleaved rounds (inference ${n} timed calls after 3 warm-up, training ${trainN} timed steps after 1), medians; measured ${new Date().toISOString().slice(0, 10)}. The time ratio is tsvision's time over PyTorch's (for samples/s: PyTorch's rate over tsvision's).\n\n${table}`,
);
