// bench/kernels: the layers where tsvision replaces libtorch 1.13's CPU kernel (src/torch/functional.ts) —
// strided transposed convolutions as sub-pixel convolutions (one convolution and a pixel shuffle, where
// libtorch runs col2im), max pooling channels-last (where libtorch's NCHW kernel is several times slower),
// adaptive average pooling to the input's own size as a copy — and the whole ENet, which holds the first two.
// Three sides per layer: tsvision, libtorch's own kernel called from tsvision (what tsvision ran before), and
// PyTorch eager (F.conv_transpose2d, F.max_pool2d, F.adaptive_avg_pool2d: the same kernels as the second); the network: tsvision against PyTorch eager on scripts/reference_models.py's ENet with the
// same weights. Forward alone (no grad) and forward + backward. Answers compared first; interleaved rounds,
// medians.
//   node dist/bench/kernels.js [--rounds 5] [--n 10] [--no-write]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as T from '../src/torch';
import { createSegmentationModel } from '../src/models/registry';
import { LivePeer, arg, machineLine, median, pause, timeEach, writeSection } from './common';

const rounds = Number(arg('rounds', '5'));
const n = Number(arg('n', '10'));
const CLASSES = 19;
const IMAGE: [number, number] = [256, 512];

type Case =
  | { kind: 'convt'; label: string; input: number[]; out: number; k: number; stride: number; padding: number; outputPadding: number }
  | { kind: 'pool'; label: string; input: number[]; k: number; stride: number; padding: number }
  | { kind: 'adaptive'; label: string; input: number[]; size: number };

/** ENet's transposed convolutions at a 256×512 input; the max pools of Xception, a ResNet stem and `npm start`'s CNN. */
const CASES: Record<string, Case> = {
  fullconv: { kind: 'convt', label: "ENet's fullconv: transposed 2×2 stride 2, 16→19 channels, 128×256 → 256×512", input: [1, 16, 128, 256], out: 19, k: 2, stride: 2, padding: 0, outputPadding: 0 },
  up5: { kind: 'convt', label: "ENet's bottleneck5.0 upsample: transposed 3×3 stride 2, 16→16, 64×128 → 128×256", input: [1, 16, 64, 128], out: 16, k: 3, stride: 2, padding: 1, outputPadding: 1 },
  up4: { kind: 'convt', label: "ENet's bottleneck4.0 upsample: transposed 3×3 stride 2, 32→32, 32×64 → 64×128", input: [1, 32, 32, 64], out: 32, k: 3, stride: 2, padding: 1, outputPadding: 1 },
  xception: { kind: 'pool', label: "Xception's first max pool: 3×3 stride 2, 1×128×147×147", input: [1, 128, 147, 147], k: 3, stride: 2, padding: 1 },
  stem: { kind: 'pool', label: 'a ResNet stem max pool: 3×3 stride 2, 8×64×112×112', input: [8, 64, 112, 112], k: 3, stride: 2, padding: 1 },
  cnn: { kind: 'pool', label: "`npm start`'s CNN, first max pool: 2×2, 128×32×28×28", input: [128, 32, 28, 28], k: 2, stride: 2, padding: 0 },
  cnnAdaptive: { kind: 'adaptive', label: "`npm start`'s CNN, adaptive average pool to its input's 7×7: 128×64×7×7", input: [128, 64, 7, 7], size: 7 },
};
type Side = 'ours' | 'aten' | 'torch';

function outputShape(c: Case): number[] {
  const [b, ch, h, w] = c.input;
  const size = (d: number): number =>
    c.kind === 'convt' ? (d - 1) * c.stride - 2 * c.padding + c.k + c.outputPadding : c.kind === 'adaptive' ? c.size : Math.floor((d + 2 * c.padding - c.k) / c.stride) + 1;
  return [b, c.kind === 'convt' ? c.out : ch, size(h), size(w)];
}

/** The layer on (x, ...params) as tsvision computes it, or as libtorch's own kernel does. */
function layer(c: Case, side: 'ours' | 'aten'): (x: T.Tensor, ...p: T.Tensor[]) => T.Tensor {
  if (c.kind === 'convt') {
    const o = { stride: c.stride, padding: c.padding, outputPadding: c.outputPadding };
    return side === 'ours' ? (x, w, b) => T.convTranspose2d(x, w, b, o) : (x, w, b) => T.callOp('aten::conv_transpose2d.input', x, w, b, c.stride, c.padding, c.outputPadding, 1, 1) as T.Tensor;
  }
  if (c.kind === 'adaptive') return side === 'ours' ? (x) => T.adaptiveAvgPool2d(x, c.size) : (x) => T.callOp('aten::adaptive_avg_pool2d', x, [c.size, c.size]) as T.Tensor;
  return side === 'ours' ? (x) => T.maxPool2d(x, c.k, { stride: c.stride, padding: c.padding }) : (x) => T.callOp('aten::max_pool2d', x, c.k, c.stride, c.padding, 1, false) as T.Tensor;
}

async function main(): Promise<void> {
  T.manualSeed(0);
  const threads = T.getNumThreads();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsv-bench-kernels-'));
  const tensors: Record<string, T.Tensor> = {};
  const params: Record<string, T.Tensor[]> = {};
  for (const [name, c] of Object.entries(CASES)) {
    // ReLU'd inputs, as pooling meets them (ties included).
    tensors[`${name}.x`] = c.kind !== 'convt' ? T.randn(c.input).relu() : T.randn(c.input);
    tensors[`${name}.g`] = T.randn(outputShape(c));
    if (c.kind === 'convt') {
      tensors[`${name}.w`] = T.randn([c.input[1], c.out, c.k, c.k]).mul(0.1);
      tensors[`${name}.b`] = T.randn([c.out]);
      params[name] = [tensors[`${name}.w`], tensors[`${name}.b`]];
    } else params[name] = [];
  }
  const net = createSegmentationModel('enet', { numClasses: CLASSES });
  for (const [k, v] of Object.entries(net.stateDict())) tensors[`net.${k}`] = v;
  Object.assign(tensors, { 'enet.x': T.randn([1, 3, ...IMAGE]), 'enet.xb': T.randn([2, 3, ...IMAGE]), 'enet.g': T.randn([2, CLASSES, ...IMAGE]) });
  const file = path.join(dir, 'tensors.safetensors');
  const out = path.join(dir, 'peer.safetensors');
  T.saveSafetensors(file, tensors);
  const peerCases = Object.fromEntries(
    Object.entries(CASES).map(([k, c]) => [
      k,
      c.kind === 'convt' ? { kind: c.kind, stride: c.stride, padding: c.padding, outputPadding: c.outputPadding } : c.kind === 'adaptive' ? { kind: c.kind, size: c.size } : { kind: c.kind, kernel: c.k, stride: c.stride, padding: c.padding },
    ]),
  );
  const { peer } = await LivePeer.start<{ ready: boolean }>('kernels_torch.py', { tensors: file, out, cases: peerCases, classes: CLASSES, threads });
  const theirs = T.loadSafetensors(out).tensors;

  // The same answers first: each tsvision side against PyTorch's.
  let worst = 0;
  for (const [name, c] of Object.entries(CASES)) {
    for (const side of ['ours', 'aten'] as const) {
      const e = T.tidy(() => T.noGrad(() => layer(c, side)(tensors[`${name}.x`], ...params[name]).sub(theirs[name]).abs().max().item() / theirs[name].abs().max().item()));
      if (!(e < 1e-5)) throw new Error(`${name} (${side}): differs from PyTorch's by ${e} (relative)`);
      worst = Math.max(worst, e);
    }
  }
  net.eval();
  const enetError = T.tidy(() => T.noGrad(() => (net.forward(tensors['enet.x']) as T.Tensor).sub(theirs.enet).abs().max().item() / theirs.enet.abs().max().item()));
  if (!(enetError < 1e-4)) throw new Error(`ENet differs from PyTorch's by ${enetError} (relative)`);

  const ours = new Map<string, () => void>();
  for (const [name, c] of Object.entries(CASES)) {
    const [x, g] = [tensors[`${name}.x`], tensors[`${name}.g`]];
    const leaves = [x, ...params[name]].map((t) => t.detach().requiresGrad_());
    for (const side of ['ours', 'aten'] as const) {
      const fn = layer(c, side);
      ours.set(`${name}:infer:${side}`, () => T.tidy(() => T.noGrad(() => void fn(x, ...params[name]))));
      ours.set(`${name}:train:${side}`, () =>
        T.tidy(() => {
          for (const t of leaves) t.grad?.dispose(), (t.grad = null);
          fn(leaves[0], ...leaves.slice(1)).mul(g).sum().backward();
        }),
      );
    }
  }
  const trainNet = createSegmentationModel('enet', { numClasses: CLASSES });
  trainNet.loadStateDict(net.stateDict());
  ours.set('enet:infer:ours', () => T.tidy(() => T.noGrad(() => void net.forward(tensors['enet.x']))));
  ours.set('enet:train:ours', () =>
    T.tidy(() => {
      trainNet.zeroGrad();
      (trainNet.forward(tensors['enet.xb']) as T.Tensor).mul(tensors['enet.g']).sum().backward();
    }),
  );

  const times = new Map<string, number[]>();
  const push = (k: string, ms: number[]): void => void times.set(k, [...(times.get(k) ?? []), ...ms]);
  const tasks = [...Object.keys(CASES), 'enet'].flatMap((name) => ['infer', 'train'].map((mode) => `${name}:${mode}`));
  for (let r = 0; r < rounds; r++) {
    for (const task of tasks) {
      const reps = task.startsWith('enet') ? Math.max(2, n >> 2) : n;
      const sides: Side[] = [...(ours.has(`${task}:aten`) ? ['aten' as const] : []), 'ours', 'torch'];
      for (const side of r % 2 ? [...sides].reverse() : sides) {
        if (side === 'torch') push(`${task}:torch`, (await peer.request<{ ms: number[] }>({ task, n: reps, warmup: 1 })).ms);
        else push(`${task}:${side}`, timeEach(ours.get(`${task}:${side}`)!, reps, 1));
        await pause(20);
      }
    }
    console.log(`round ${r + 1}/${rounds} done`);
  }
  await peer.close();
  fs.rmSync(dir, { recursive: true, force: true });

  const ms = (k: string): number => median(times.get(k) ?? [NaN]);
  const f = (v: number): string => (v < 10 ? v.toFixed(2) : v.toFixed(1));
  const rows: string[] = [];
  for (const task of tasks) {
    const [name, mode] = task.split(':');
    const what = name === 'enet' ? `ENet ${IMAGE[0]}×${IMAGE[1]}, ${mode === 'infer' ? 'batch-1 inference (eval, eager)' : 'batch-2 forward + backward (train mode)'}` : `${CASES[name].label}, ${mode === 'infer' ? 'forward' : 'forward + backward'}`;
    const [mine, aten, torch] = [ms(`${task}:ours`), ms(`${task}:aten`), ms(`${task}:torch`)];
    rows.push(`| ${what} | ${f(mine)} ms | ${Number.isNaN(aten) ? '—' : `${f(aten)} ms (${(mine / aten).toFixed(2)}×)`} | ${f(torch)} ms | ${(mine / torch).toFixed(2)} |`);
  }
  const table = ["| what | tsvision | tsvision, libtorch's kernel (before) | PyTorch eager | ratio tsvision/PyTorch |", '|---|---|---|---|---|', ...rows].join('\n');
  console.log(table);
  const cmd = ['node dist/bench/kernels.js', ...process.argv.slice(2)].join(' ');
  writeSection(
    'kernels-cpu',
    `## Kernels tsvision replaces (cpu): transposed convolutions, max and adaptive pooling, and ENet\n\n\`${cmd}\` — ${machineLine('cpu')}; ${rounds} interleaved rounds, each timing ${n} calls of a layer (${Math.max(2, n >> 2)} of the network) after 1 untimed on every side, the order alternating; medians; measured ${new Date().toISOString().slice(0, 10)}. Random inputs and weights, the same on both sides; the layers' answers agree with PyTorch's to ${worst.toExponential(1)} and ENet's to ${enetError.toExponential(1)} (relative). tsvision computes a strided transposed convolution as one ordinary convolution with s² filters per output channel and a pixel shuffle, max pooling in the channels-last layout (with autograd, the values gathered at its argmax), and adaptive average pooling to the input's own size as a copy. "libtorch's kernel" is aten::conv_transpose2d, aten::max_pool2d or aten::adaptive_avg_pool2d called from tsvision: what tsvision ran before, and what PyTorch eager runs. The ratio is tsvision's time over PyTorch's: below 1.0 tsvision is faster.\n\n${table}`,
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
