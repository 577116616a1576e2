// bench/export: batch-1 inference latency of the same network three ways — tsvision (libtorch, eval, no grad),
// onnxruntime-node running tsvision's ONNX export, and PyTorch eager (the live peer of bench/models.ts, with
// the same architecture from scripts/reference_models.py, state-dict keys and shapes checked) — in one run,
// block by block in turns (the side going first rotating), medians.
//   node dist/bench/export.js [--models mobilenet_v1,enet] [--rounds 4] [--n 5] [--warmup 2] [--no-write]
import * as ort from 'onnxruntime-node';
import * as T from '../src/torch';
import { ModelName, createModel, createSegmentationModel, isSegmentationModelName } from '../src/models/registry';
import { onnxBytes } from '../src/export';
import { LivePeer, machineLine, median, nowMs, pause, timeEach, writeSection } from './common';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const rounds = Number(arg('rounds', '4'));
const n = Number(arg('n', '5'));
const warmup = Number(arg('warmup', '2'));
const threads = T.getNumThreads();

const ALL = [
  { name: 'mobilenet_v1', size: [224, 224], classes: 1000, label: 'MobileNet v1 α=1' },
  { name: 'enet', size: [256, 512], classes: 19, label: 'ENet' },
];
const wanted = arg('models', ALL.map((m) => m.name).join(',')).split(',');
const MODELS = ALL.filter((m) => wanted.includes(m.name));
if (MODELS.length === 0) throw new Error(`--models: none of ${wanted.join(', ')} is one of ${ALL.map((m) => m.name).join(', ')}`);

const fmtMs = (v: number): string => (v < 10 ? v.toFixed(2) : v.toFixed(1));

async function main(): Promise<void> {
  const rows: string[] = [];
  for (const { name, size, classes, label } of MODELS) {
    T.manualSeed(0);
    const seg = isSegmentationModelName(name);
    const model = seg ? createSegmentationModel(name, { numClasses: classes }) : createModel(name as ModelName, {});
    model.eval();
    const shape = [1, 3, ...size];
    const x = T.randn(shape).keep();
    const session = await ort.InferenceSession.create(onnxBytes(model, { inputShape: shape }), {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
    const feeds = { input: new ort.Tensor('float32', x.toArray() as Float32Array, shape) };
    const shapes = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, t.shape]));
    const { peer } = await LivePeer.start<{ ready: boolean }>('models_torch.py', { model: name, params: model.numParameters(), shapes, size, classes, seg, batch: 1, threads, device: 'cpu' });
    const times = { tsvision: [] as number[], ort: [] as number[], torch: [] as number[] };
    const sides: [keyof typeof times, () => Promise<void>][] = [
      ['tsvision', async () => void times.tsvision.push(...timeEach(() => T.tidy(() => T.noGrad(() => void model.forward(x))), n, warmup))],
      ['ort', async () => {
        for (let i = 0; i < warmup; i++) await session.run(feeds);
        for (let i = 0; i < n; i++) {
          const t0 = nowMs();
          await session.run(feeds);
          times.ort.push(nowMs() - t0);
        }
      }],
      ['torch', async () => void times.torch.push(...(await peer.request<{ ms: number[] }>({ task: 'infer', n, warmup })).ms)],
    ];
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < sides.length; i++) {
        await sides[(i + r) % sides.length][1]();
        await pause(30); // lets the previous side's idle threads stop spinning
      }
    }
    await peer.close();
    await session.release();
    x.dispose();
    const [ts, on, pt] = [median(times.tsvision), median(times.ort), median(times.torch)];
    console.log(`${name}: tsvision ${fmtMs(ts)} ms, onnxruntime-node ${fmtMs(on)} ms, PyTorch eager ${fmtMs(pt)} ms (medians of ${times.ort.length})`);
    rows.push(`| ${label} ${size[0]}×${size[1]} | ${fmtMs(ts)} ms | ${fmtMs(on)} ms | ${fmtMs(pt)} ms |`);
  }
  const table = ['| model, batch 1 | tsvision | onnxruntime-node (tsvision\'s ONNX export) | PyTorch eager |', '|---|---|---|---|', ...rows].join('\n');
  console.log(table);
  const cmd = ['node dist/bench/export.js', ...process.argv.slice(2)].join(' ');
  writeSection(
    'export-cpu',
    `## Inference after ONNX export (cpu)\n\n\`${cmd}\` — ${machineLine('cpu')}, onnxruntime-node ${ort.env.versions.node ?? ''} with the same intra-op threads; ${rounds} rounds, each timing ` +
      `${n} batch-1 calls after ${warmup} untimed ones on each side in turn (the side going first rotating); medians; measured ${new Date().toISOString().slice(0, 10)}.\n\n${table}`,
  );
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
