// bench/infer: batch-1 CPU inference latency, as shipped and optimized for inference, tsvision vs PyTorch.
// tsvision: the network as trained, then a copy with its BatchNorms folded into the convolutions before them
// (nn.foldBatchNorm) run with activations kept in oneDNN's layout (torch.withOneDnnLayout) — what Predictor
// does. PyTorch: eager, then torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model)))
// (BatchNorm folding and oneDNN layout too, plus its fusions). Same architectures (the peer checks every
// state-dict key and shape), same threads, the two sides alternating block by block, medians. Then both in
// bfloat16 (tsvision's precision 'bfloat16'; PyTorch's model.bfloat16(), optimized as far as 1.13 allows),
// with each side's error against its own float32 output; --no-bf16 leaves that out.
//   node dist/bench/infer.js [--rounds 4] [--n 5] [--warmup 2] [--models mobilenet_v1,resnet18,...] [--no-bf16] [--no-write]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as T from '../src/torch';
import { optimizeForInference } from '../src/infer/optimize';
import { ModelName, createModel, createSegmentationModel, isSegmentationModelName } from '../src/models/registry';
import { Module } from '../src/nn';
import { arg, LivePeer, machineLine, median, pause, timeEach, writeSection } from './common';

const rounds = Number(arg('rounds', '4'));
const n = Number(arg('n', '5'));
const warmup = Number(arg('warmup', '2'));
const threads = T.getNumThreads();

interface Entry {
  name: string;
  size: [number, number];
  classes: number;
  label: string;
}
const ALL: Entry[] = [
  { name: 'mobilenet_v1', size: [224, 224], classes: 1000, label: 'MobileNet v1 α=1' },
  { name: 'se_resnet50', size: [224, 224], classes: 1000, label: 'SE-ResNet-50' },
  { name: 'xception', size: [299, 299], classes: 1000, label: 'Xception' },
  { name: 'enet', size: [256, 512], classes: 19, label: 'ENet' },
  { name: 'deeplabv3', size: [256, 512], classes: 19, label: 'DeepLab-V3 (ResNet-50, OS 16)' },
  { name: 'icnet', size: [256, 512], classes: 19, label: 'ICNet (ResNet-50)' },
];
const wanted = arg('models', ALL.map((m) => m.name).join(',')).split(',');
const MODELS = ALL.filter((m) => wanted.includes(m.name));
if (MODELS.length === 0) throw new Error(`--models: none of ${wanted.join(', ')} is one of ${ALL.map((m) => m.name).join(', ')}`);

type Net = Module & { forward(x: T.Tensor): unknown };
type Task = 'eager' | 'optimized' | 'bf16';
const withBf16 = !process.argv.includes('--no-bf16');
const TASKS: Task[] = withBf16 ? ['eager', 'optimized', 'bf16'] : ['eager', 'optimized'];
const fmtMs = (v: number): string => (v < 10 ? v.toFixed(2) : v.toFixed(1));

function build(e: Entry): Net {
  T.manualSeed(0);
  return (isSegmentationModelName(e.name) ? createSegmentationModel(e.name, { numClasses: e.classes }) : createModel(e.name as ModelName, {})) as Net;
}

async function main(): Promise<void> {
  const rows: string[] = [];
  const bf16Rows: string[] = [];
  for (const e of MODELS) {
    const model = build(e).eval();
    const params = model.numParameters();
    const shapes = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, t.shape]));
    const x = T.randn([1, 3, ...e.size]).keep();
    // The optimized copy: the same weights, folded (foldBatchNorm changes the network it is given).
    const copy = (): Net => {
      const net = build(e);
      net.loadStateDict(model.stateDict());
      return net;
    };
    const optimized = optimizeForInference(copy(), x);
    const folded = optimized.folded;
    const layout = optimized.settle(x); // 'auto' chooses before anything is timed
    // The bfloat16 copy (the same weights, folded then rounded), only when asked.
    const bf16 = withBf16 ? optimizeForInference(copy(), x, { precision: 'bfloat16' }) : null;
    const bf16Layout = bf16?.settle(x) ?? null;
    // Relative RMS error of bfloat16 against float32, as the peer reports its own.
    const bf16Error = bf16 ? T.tidy(() => T.noGrad(() => {
      // Eval-mode forward passes of these networks return one tensor.
      const want = model.forward(x) as T.Tensor;
      return (bf16.forward(x) as T.Tensor).sub(want).norm().item() / want.norm().item();
    })) : NaN;
    const ours: Record<Task, () => void> = {
      eager: () => T.tidy(() => T.noGrad(() => void model.forward(x))),
      optimized: () => T.tidy(() => T.noGrad(() => void optimized.forward(x))),
      bf16: () => T.tidy(() => T.noGrad(() => void bf16?.forward(x))),
    };
    // The peer runs these very weights and this input, so that both sides' bfloat16 errors are of one network.
    const weights = path.join(os.tmpdir(), `tsvision-infer-${process.pid}.safetensors`);
    T.saveSafetensors(weights, { ...model.stateDict(), 'input.x': x });
    const { peer, ready } = await LivePeer.start<{ ready: boolean; optimized: string; bf16: string; bf16_error: number }>('infer_torch.py', { model: e.name, params, shapes, size: e.size, classes: e.classes, threads, bf16: withBf16, weights });
    const times: Record<Task, { ours: number[]; peer: number[] }> = { eager: { ours: [], peer: [] }, optimized: { ours: [], peer: [] }, bf16: { ours: [], peer: [] } };
    // Every round times every variant on both sides, so that a slow spell hits them alike.
    for (let r = 0; r < rounds; r++) {
      for (const task of r % 2 ? [...TASKS].reverse() : TASKS) {
        const runOurs = async (): Promise<void> => void times[task].ours.push(...timeEach(ours[task], n, warmup));
        const runPeer = async (): Promise<void> => void times[task].peer.push(...(await peer.request<{ ms: number[] }>({ task, n, warmup })).ms);
        for (const side of r % 2 ? [runPeer, runOurs] : [runOurs, runPeer]) {
          await side();
          await pause(30);
        }
      }
    }
    await peer.close();
    fs.rmSync(weights, { force: true });
    const m = (t: Task, side: 'ours' | 'peer'): number => median(times[t][side]);
    console.log(`${e.name}: tsvision ${fmtMs(m('eager', 'ours'))} → ${fmtMs(m('optimized', 'ours'))} ms (${folded.folded} BatchNorms folded, ${layout} layout), PyTorch ${fmtMs(m('eager', 'peer'))} → ${fmtMs(m('optimized', 'peer'))} ms (${ready.optimized})`);
    rows.push(
      `| ${e.label} ${e.size[0]}×${e.size[1]} | ${fmtMs(m('eager', 'ours'))} ms | ${fmtMs(m('optimized', 'ours'))} ms (${(m('optimized', 'ours') / m('eager', 'ours')).toFixed(2)}×, ${layout} layout) | ` +
        `${fmtMs(m('eager', 'peer'))} ms | ${fmtMs(m('optimized', 'peer'))} ms${ready.optimized === 'optimize_for_inference' ? '' : ' (jit.freeze only: optimize_for_inference fails on it in 1.13)'} | ${(m('optimized', 'ours') / m('optimized', 'peer')).toFixed(2)} |`,
    );
    if (withBf16) {
      console.log(`${e.name} bfloat16: tsvision ${fmtMs(m('bf16', 'ours'))} ms (${bf16Layout} layout, error ${bf16Error.toExponential(1)}), PyTorch ${fmtMs(m('bf16', 'peer'))} ms (${ready.bf16}, error ${ready.bf16_error.toExponential(1)})`);
      bf16Rows.push(
        `| ${e.label} ${e.size[0]}×${e.size[1]} | ${fmtMs(m('optimized', 'ours'))} ms | ${fmtMs(m('bf16', 'ours'))} ms (${(m('bf16', 'ours') / m('optimized', 'ours')).toFixed(2)}×, ${bf16Layout} layout) | ${bf16Error.toExponential(1)} | ` +
          `${fmtMs(m('bf16', 'peer'))} ms (${ready.bf16}) | ${ready.bf16_error.toExponential(1)} | ${(m('bf16', 'ours') / m('bf16', 'peer')).toFixed(2)} |`,
      );
    }
    x.dispose();
  }
  const table = ['| model, batch 1 | tsvision | tsvision optimized (BatchNorm folded; the layout auto chose) | PyTorch eager | PyTorch optimize_for_inference | ratio optimized tsvision/PyTorch |', '|---|---|---|---|---|---|', ...rows].join('\n');
  console.log(table);
  const bf16Table = withBf16
    ? `\n\nIn bfloat16 (${T.engineInfo().bfloat16 === 'native' ? 'this CPU has AVX-512 BF16 instructions' : 'this CPU has no bfloat16 instructions: oneDNN emulates them'}). tsvision: \`optimizeForInference(model, x, { precision: 'bfloat16' })\` (\`predict --bf16\`); PyTorch: \`model.bfloat16()\` run eager, through \`jit.freeze\` or \`optimize_for_inference\`, whichever of those that keep the answer is fastest (timed on 3 calls). Error: ‖y_bf16 − y_fp32‖ / ‖y_fp32‖ of the output, each side against its own float32. ENet's transposed convolutions and max-unpooling run in float32 on both sides (libtorch 1.13 gets the first wrong in bfloat16 and lacks the second).\n\n` +
      ['| model, batch 1 | tsvision optimized, float32 | tsvision optimized, bfloat16 | error | PyTorch bfloat16 | error | ratio bfloat16 tsvision/PyTorch |', '|---|---|---|---|---|---|---|', ...bf16Rows].join('\n')
    : '';
  console.log(bf16Table);
  const cmd = ['node dist/bench/infer.js', ...process.argv.slice(2)].join(' ');
  const subset = MODELS.length < ALL.length ? `-${MODELS.map((m) => m.name).join('-')}` : '';
  writeSection(
    `infer-cpu${subset}`,
    `## Inference optimized for deployment (cpu)\n\n\`${cmd}\` — ${machineLine('cpu')}; ${rounds} rounds with a live PyTorch peer process, each timing ${n} batch-1 calls after ${warmup} untimed ones of every variant on each side, the variant and the side going first alternating; medians; measured ${new Date().toISOString().slice(0, 10)}. ` +
      `tsvision optimized: \`optimizeForInference\` (\`nn.foldBatchNorm\`, then forward passes in oneDNN's layout or the ordinary one, whichever its first calls found faster: layout 'auto', what \`Predictor\` runs). PyTorch optimized: \`torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model)))\`, which also folds BatchNorm and keeps oneDNN's layout, and fuses further. The ratio is optimized tsvision's time over optimized PyTorch's: below 1.0 tsvision is faster.\n\n${table}${bf16Table}`,
  );
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
