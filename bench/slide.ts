// bench/slide: sliding-window segmentation (PSPNet's evaluation, `eval --slide`), windows batched into one
// network call (slidingProbabilities' windowsPerCall, default 4) against one window per call, and against a
// PyTorch peer running the PSPNet authors' scale_process (one window at a time) on the same weights and input.
// Eager networks on both sides (no BatchNorm folding), the same threads, interleaved rounds, medians; the two
// sides' probabilities are compared first (within 1e-3: deep random-weight networks amplify float rounding).
//   node dist/bench/slide.js [--rounds 3] [--n 2] [--models enet,pspnet] [--no-write]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as T from '../src/torch';
import { createSegmentationModel, SegmentationModelName } from '../src/models/registry';
import { SLIDE_WINDOWS_PER_CALL, slidingProbabilities } from '../src/models/segmentation';
import { LivePeer, arg, machineLine, median, pause, timeEach, writeSection } from './common';

const rounds = Number(arg('rounds', '3'));
const n = Number(arg('n', '2'));
const threads = T.getNumThreads();
const CLASSES = 19;

interface Entry {
  name: SegmentationModelName;
  label: string;
  image: [number, number];
  crop: [number, number];
}
const ALL: Entry[] = [
  { name: 'enet', label: 'ENet', image: [512, 1024], crop: [256, 256] },
  { name: 'pspnet', label: 'PSPNet (ResNet-50, OS 8)', image: [256, 384], crop: [160, 160] },
];
const wanted = arg('models', ALL.map((m) => m.name).join(',')).split(',');
const MODELS = ALL.filter((m) => wanted.includes(m.name));
if (MODELS.length === 0) throw new Error(`--models: none of ${wanted.join(', ')} is one of ${ALL.map((m) => m.name).join(', ')}`);
const fmtMs = (v: number): string => (v < 10 ? v.toFixed(2) : v.toFixed(0));
const windows = (size: number, c: number): number => Math.ceil((size - c) / Math.ceil((c * 2) / 3)) + 1;

async function main(): Promise<void> {
  const rows: string[] = [];
  for (const e of MODELS) {
    T.manualSeed(0);
    const model = createSegmentationModel(e.name, { numClasses: CLASSES }).eval();
    const x = T.randn([1, 3, ...e.image]).keep();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsv-bench-slide-'));
    const weights = path.join(dir, 'w.safetensors');
    T.saveSafetensors(weights, { ...model.stateDict(), 'input.x': x });
    const out = path.join(dir, 'peer.safetensors');
    const { peer } = await LivePeer.start<{ ready: boolean }>('slide_torch.py', { model: e.name, classes: CLASSES, crop: e.crop, threads, weights, out });
    // The same answer first: tsvision's batched windows against the authors' loop in PyTorch.
    const agree = T.tidy(() => T.noGrad(() => slidingProbabilities(model, x, e.crop).sub(T.loadSafetensors(out).tensors.p).abs().max().item()));
    if (!(agree < 1e-3)) throw new Error(`${e.name}: tsvision's sliding-window probabilities differ from the peer's by ${agree}`);
    const ours = (k: number) => (): void => T.tidy(() => T.noGrad(() => void slidingProbabilities(model, x, e.crop, undefined, false, k)));
    const times = { one: [] as number[], batched: [] as number[], peer: [] as number[] };
    const sides: [keyof typeof times, () => Promise<void>][] = [
      ['one', async () => void times.one.push(...timeEach(ours(1), n, 1))],
      ['batched', async () => void times.batched.push(...timeEach(ours(SLIDE_WINDOWS_PER_CALL), n, 1))],
      ['peer', async () => void times.peer.push(...(await peer.request<{ ms: number[] }>({ task: 'slide', n, warmup: 1 })).ms)],
    ];
    for (let r = 0; r < rounds; r++) {
      for (const [, side] of r % 2 ? [...sides].reverse() : sides) {
        await side();
        await pause(30);
      }
    }
    await peer.close();
    fs.rmSync(dir, { recursive: true, force: true });
    x.dispose();
    const [one, batched, torch] = [median(times.one), median(times.batched), median(times.peer)];
    const count = windows(e.image[0], e.crop[0]) * windows(e.image[1], e.crop[1]);
    console.log(`${e.name}: ${count} windows; one per call ${fmtMs(one)} ms, ${SLIDE_WINDOWS_PER_CALL} per call ${fmtMs(batched)} ms, PyTorch (one at a time) ${fmtMs(torch)} ms; max |Δp| ${agree.toExponential(1)}`);
    rows.push(`| ${e.label}, ${e.image[0]}×${e.image[1]} in ${e.crop[0]}×${e.crop[1]} windows (${count}) | ${fmtMs(one)} ms | ${fmtMs(batched)} ms (${(batched / one).toFixed(2)}×) | ${fmtMs(torch)} ms | ${(batched / torch).toFixed(2)} | ${agree.toExponential(1)} |`);
  }
  const table = ['| network, image, windows | tsvision, 1 window per call | tsvision, 4 per call (default) | PyTorch, authors\' loop (1 per call) | ratio tsvision default/PyTorch | max \\|Δ probability\\| |', '|---|---|---|---|---|---|', ...rows].join('\n');
  console.log(table);
  const cmd = ['node dist/bench/slide.js', ...process.argv.slice(2)].join(' ');
  writeSection(
    'slide',
    `## Sliding windows\n\n\`${cmd}\` — ${machineLine('cpu')}; batch 1, stride ⌈2/3⌉ of the window, eager networks with random weights (the same on both sides) and a random image; ${rounds} rounds, each timing ${n} calls after 1 untimed one on every side, the order alternating; medians; measured ${new Date().toISOString().slice(0, 10)}.\n\n${table}`,
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
