// bench/upsample: ENet's transposed convolutions, which tsvision computes as sub-pixel convolutions (one
// ordinary convolution and a pixel shuffle: src/torch/functional.ts) where libtorch 1.13 runs col2im, and the
// whole ENet that holds them. Three sides per layer: tsvision (sub-pixel), libtorch's own kernel called from
// tsvision (aten::conv_transpose2d, what tsvision ran before), and PyTorch eager (F.conv_transpose2d); the
// network: tsvision against PyTorch eager on scripts/reference_models.py's ENet with the same weights. Forward
// alone (no grad) and forward + backward. Answers compared first; interleaved rounds, medians.
//   node dist/bench/upsample.js [--rounds 5] [--n 10] [--no-write]
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

/** ENet's transposed convolutions at a 256×512 input: [in channels, out channels, kernel, stride, padding, output padding, input H, W]. */
const LAYERS = {
  fullconv: { label: 'fullconv: 2×2 stride 2, 16→19 channels, 128×256 → 256×512', shape: [16, 19, 2, 2, 0, 0, 128, 256] },
  bottleneck5_0: { label: 'bottleneck5.0 upsample: 3×3 stride 2, 16→16, 64×128 → 128×256', shape: [16, 16, 3, 2, 1, 1, 64, 128] },
  bottleneck4_0: { label: 'bottleneck4.0 upsample: 3×3 stride 2, 32→32, 32×64 → 64×128', shape: [32, 32, 3, 2, 1, 1, 32, 64] },
} as const;
type LayerName = keyof typeof LAYERS;
type Side = 'subpixel' | 'aten' | 'torch';

async function main(): Promise<void> {
  T.manualSeed(0);
  const threads = T.getNumThreads();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsv-bench-upsample-'));
  const tensors: Record<string, T.Tensor> = {};
  for (const [name, { shape }] of Object.entries(LAYERS)) {
    const [cin, cout, k, , , , h, w] = shape;
    const s = shape[3];
    const outH = (h - 1) * s - 2 * shape[4] + k + shape[5];
    Object.assign(tensors, { [`${name}.x`]: T.randn([1, cin, h, w]), [`${name}.w`]: T.randn([cin, cout, k, k]).mul(0.1), [`${name}.b`]: T.randn([cout]), [`${name}.g`]: T.randn([1, cout, outH, outH * (w / h)]) });
  }
  const net = createSegmentationModel('enet', { numClasses: CLASSES });
  for (const [k, v] of Object.entries(net.stateDict())) tensors[`net.${k}`] = v;
  Object.assign(tensors, { 'enet.x': T.randn([1, 3, ...IMAGE]), 'enet.xb': T.randn([2, 3, ...IMAGE]), 'enet.g': T.randn([2, CLASSES, ...IMAGE]) });
  const file = path.join(dir, 'tensors.safetensors');
  const out = path.join(dir, 'peer.safetensors');
  T.saveSafetensors(file, tensors);
  const layers = Object.fromEntries(Object.entries(LAYERS).map(([k, { shape }]) => [k, [shape[3], shape[4], shape[5]]]));
  const { peer } = await LivePeer.start<{ ready: boolean }>('upsample_torch.py', { tensors: file, out, layers, classes: CLASSES, threads });
  const theirs = T.loadSafetensors(out).tensors;

  const opts = (name: LayerName): T.ConvTranspose2dOptions => {
    const [, , , s, p, op] = LAYERS[name].shape;
    return { stride: s, padding: p, outputPadding: op };
  };
  const call = (name: LayerName, side: Side, x: T.Tensor, w: T.Tensor, b: T.Tensor): T.Tensor => {
    const o = opts(name);
    return side === 'subpixel' ? T.convTranspose2d(x, w, b, o) : (T.callOp('aten::conv_transpose2d.input', x, w, b, o.stride!, o.padding!, o.outputPadding!, 1, 1) as T.Tensor);
  };
  // The same answers first: each tsvision side against PyTorch's.
  const agree: Record<string, number> = {};
  for (const name of Object.keys(LAYERS) as LayerName[]) {
    const [x, w, b] = ['x', 'w', 'b'].map((k) => tensors[`${name}.${k}`]);
    for (const side of ['subpixel', 'aten'] as const) {
      const e = T.tidy(() => T.noGrad(() => call(name, side, x, w, b).sub(theirs[name]).abs().max().item() / theirs[name].abs().max().item()));
      if (!(e < 1e-5)) throw new Error(`${name} (${side}): differs from PyTorch's by ${e} (relative)`);
      agree[name] = Math.max(agree[name] ?? 0, e);
    }
  }
  net.eval();
  agree.enet = T.tidy(() => T.noGrad(() => (net.forward(tensors['enet.x']) as T.Tensor).sub(theirs.enet).abs().max().item() / theirs.enet.abs().max().item()));
  if (!(agree.enet < 1e-4)) throw new Error(`ENet differs from PyTorch's by ${agree.enet} (relative)`);

  const ours = new Map<string, () => void>();
  for (const name of Object.keys(LAYERS) as LayerName[]) {
    const [x, w, b, g] = ['x', 'w', 'b', 'g'].map((k) => tensors[`${name}.${k}`]);
    const [xg, wg, bg] = [x, w, b].map((t) => t.detach().requiresGrad_());
    for (const side of ['subpixel', 'aten'] as const) {
      ours.set(`${name}:infer:${side}`, () => T.tidy(() => T.noGrad(() => void call(name, side, x, w, b))));
      ours.set(`${name}:train:${side}`, () =>
        T.tidy(() => {
          for (const t of [xg, wg, bg]) t.grad?.dispose(), (t.grad = null);
          call(name, side, xg, wg, bg).mul(g).sum().backward();
        }),
      );
    }
  }
  const trainNet = createSegmentationModel('enet', { numClasses: CLASSES });
  trainNet.loadStateDict(net.stateDict());
  ours.set('enet:infer:subpixel', () => T.tidy(() => T.noGrad(() => void net.forward(tensors['enet.x']))));
  ours.set('enet:train:subpixel', () =>
    T.tidy(() => {
      trainNet.zeroGrad();
      (trainNet.forward(tensors['enet.xb']) as T.Tensor).mul(tensors['enet.g']).sum().backward();
    }),
  );

  const times = new Map<string, number[]>();
  const push = (k: string, ms: number[]): void => void times.set(k, [...(times.get(k) ?? []), ...ms]);
  const tasks = [...Object.keys(LAYERS), 'enet'].flatMap((name) => ['infer', 'train'].map((mode) => `${name}:${mode}`));
  for (let r = 0; r < rounds; r++) {
    for (const task of tasks) {
      const reps = task.startsWith('enet') ? Math.max(2, n >> 2) : n;
      const sides = [...(ours.has(`${task}:aten`) ? ['aten'] : []), 'subpixel', 'torch'];
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
    const what = name === 'enet' ? `ENet ${IMAGE[0]}×${IMAGE[1]}, ${mode === 'infer' ? 'batch-1 inference (eval, eager)' : 'batch-2 forward + backward (train mode)'}` : `${LAYERS[name as LayerName].label}, ${mode === 'infer' ? 'forward' : 'forward + backward'}`;
    const [sub, aten, torch] = [ms(`${task}:subpixel`), ms(`${task}:aten`), ms(`${task}:torch`)];
    rows.push(`| ${what} | ${f(sub)} ms | ${Number.isNaN(aten) ? '—' : `${f(aten)} ms (${(sub / aten).toFixed(2)}×)`} | ${f(torch)} ms | ${(sub / torch).toFixed(2)} |`);
  }
  const table = ["| what | tsvision (sub-pixel) | tsvision, libtorch's kernel (before) | PyTorch eager | ratio tsvision/PyTorch |", '|---|---|---|---|---|', ...rows].join('\n');
  console.log(table);
  const cmd = ['node dist/bench/upsample.js', ...process.argv.slice(2)].join(' ');
  const worst = Math.max(...Object.values(agree));
  writeSection(
    'upsample-cpu',
    `## Transposed convolutions as sub-pixel convolutions (cpu): ENet\n\n\`${cmd}\` — ${machineLine('cpu')}; ${rounds} interleaved rounds, each timing ${n} calls of a layer (${Math.max(2, n >> 2)} of the network) after 1 untimed on every side, the order alternating; medians; measured ${new Date().toISOString().slice(0, 10)}. Random inputs and weights, the same on both sides; the answers agree with PyTorch's to ${worst.toExponential(1)} (relative). tsvision computes a strided transposed convolution as one ordinary convolution with s² filters per output channel and a pixel shuffle; "libtorch's kernel" is aten::conv_transpose2d called from tsvision, which is what tsvision ran before and what PyTorch eager runs. The ratio is tsvision's time over PyTorch's: below 1.0 tsvision is faster.\n\n${table}`,
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
