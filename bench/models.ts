// bench/models: batch-1 inference latency and training samples/s of MobileNet v1 α=1 (224), SE-ResNet-50
// (224) and Xception (299), 1000 classes, and the segmentation networks — ENet, DeepLab-V3, PSPNet and ICNet
// (ResNet-50) at 256×512, 19 classes, each with its paper's training loss —, and ICNet's inference at the
// full 1024×2048 of its real-time claim, tsvision vs PyTorch eager with identical architectures (the peer,
// scripts/reference_models.py, checks every state-dict key and shape), same threads, interleaved rounds, medians.
//   node dist/bench/models.js [--device cuda] [--rounds 4] [--batch 8] [--n 5] [--warmup 2]
//                             [--train-n 2] [--train-warmup 1] [--models mobilenet_v1,se_resnet50,xception,enet,deeplabv3,pspnet,icnet,icnet_full] [--bf16]
//                             [--breakdown] [--no-write]
// The peer stays alive (LivePeer) and the two sides alternate block by block: each round runs, on one side then
// on the other (the side going first alternating), `warmup` untimed and `n` timed inference calls, or
// `train-warmup` untimed and `train-n` timed training steps.
// --breakdown also times the training forward pass alone (train mode, with grad, loss included), so that
// backward + optimizer step = step − forward, on both sides; --no-write leaves BENCHMARKS.md alone.
import * as T from '../src/torch';
import { ModelName, createModel } from '../src/models/registry';
import { SegmentationNet } from '../src/models/segmentation';
import { createSegmentationModel, isSegmentationModelName } from '../src/models/registry';
import { SGD } from '../src/optim';
import { arg, LivePeer, machineLine, median, pause, timeEach, writeSection } from './common';

const flag = (name: string): boolean => process.argv.includes(`--${name}`);
const device = arg('device', 'cpu');
const rounds = Number(arg('rounds', '4'));
const batch = Number(arg('batch', '8'));
const n = Number(arg('n', '5'));
const warmup = Number(arg('warmup', '2'));
const trainN = Number(arg('train-n', '2'));
const trainWarmup = Number(arg('train-warmup', '1'));
const breakdown = flag('breakdown');
const threads = T.getNumThreads();
const sync = device !== 'cpu';

// size: [H, W]; classes: logits per image (classifiers) or per pixel (segmentation, Cityscapes' 19);
// net: the network when the entry's name is a variant; trainBatch: a smaller batch for the heavy dilated
// networks; train: false times inference only.
interface Entry {
  name: string;
  net?: string;
  size: [number, number];
  classes: number;
  label: string;
  trainBatch?: number;
  train?: boolean;
}
const ALL: Entry[] = [
  { name: 'mobilenet_v1', size: [224, 224], classes: 1000, label: 'MobileNet v1 α=1' },
  { name: 'se_resnet50', size: [224, 224], classes: 1000, label: 'SE-ResNet-50' },
  { name: 'xception', size: [299, 299], classes: 1000, label: 'Xception' },
  { name: 'enet', size: [256, 512], classes: 19, label: 'ENet' },
  { name: 'deeplabv3', size: [256, 512], classes: 19, label: 'DeepLab-V3 (ResNet-50, OS 16)', trainBatch: 2 },
  { name: 'pspnet', size: [256, 512], classes: 19, label: 'PSPNet (ResNet-50, OS 8)', trainBatch: 2 },
  { name: 'icnet', size: [256, 512], classes: 19, label: 'ICNet (ResNet-50)', trainBatch: 2 },
  { name: 'icnet_full', net: 'icnet', size: [1024, 2048], classes: 19, label: 'ICNet (ResNet-50)', train: false },
];
const wanted = arg('models', ALL.map((m) => m.name).join(',')).split(',');
const MODELS = ALL.filter((m) => wanted.includes(m.name));
if (MODELS.length === 0) throw new Error(`--models: none of ${wanted.join(', ')} is one of ${ALL.map((m) => m.name).join(', ')}`);

type Task = 'infer' | 'train' | 'fwd' | 'train16';
// --bf16 also times the training step in bfloat16 mixed precision (torch.autocast on both sides).
const bf16 = process.argv.includes('--bf16');
const fmtMs = (v: number): string => (v < 10 ? v.toFixed(2) : v.toFixed(1));
const fmtRate = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

async function main(): Promise<void> {
  const rows: string[] = [];
  for (const { name, net = name, size, label, classes, trainBatch = batch, train = true } of MODELS) {
    T.manualSeed(0);
    const seg = isSegmentationModelName(net);
    const model: SegmentationNet | ReturnType<typeof createModel> = (seg ? createSegmentationModel(net, { numClasses: classes }) : createModel(net as ModelName, {})).to(device);
    const params = model.numParameters();
    const shapes = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, t.shape]));
    const x1 = T.randn([1, 3, ...size], { device }).keep();
    const xb = T.randn([trainBatch, 3, ...size], { device }).keep();
    const yb = T.randint(0, classes, seg ? [trainBatch, ...size] : [trainBatch], { device }).keep();
    // The paper's loss: PSPNet's auxiliary term, ICNet's cascade label guidance (the peer does the same).
    const loss = (): T.Tensor => (model instanceof SegmentationNet ? model.trainingLoss(xb, yb) : T.crossEntropy(model.forward(xb), yb));
    const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
    const ours: Record<Task, () => void> = {
      infer: () => {
        model.eval();
        T.tidy(() => T.noGrad(() => void model.forward(x1)));
      },
      // One training step in the documented tidy idiom, as bench/engine.ts.
      train: () => {
        model.train();
        T.tidy(() => {
          const l = loss();
          opt.zeroGrad();
          l.backward();
          opt.step();
        });
      },
      fwd: () => {
        model.train();
        T.tidy(() => void loss());
      },
      train16: () => {
        model.train();
        T.tidy(() => {
          const l = T.autocast(loss);
          opt.zeroGrad();
          l.backward();
          opt.step();
        });
      },
    };
    const { peer, ready } = await LivePeer.start<{ ready: boolean; bf16: string }>('models_torch.py', { model: net, params, shapes, size, classes, seg, batch: trainBatch, threads, device, bf16 });
    const times: Record<Task, { ours: number[]; peer: number[] }> = { infer: { ours: [], peer: [] }, train: { ours: [], peer: [] }, fwd: { ours: [], peer: [] }, train16: { ours: [], peer: [] } };
    const tasks: [Task, number, number][] = [['infer', n, warmup]];
    if (train) tasks.push(['train', trainN, trainWarmup]);
    if (train && breakdown) tasks.push(['fwd', trainN, trainWarmup]);
    // The peer says whether PyTorch 1.13 can take this network's step under autocast at all.
    if (train && bf16 && ready.bf16 === 'ok') tasks.push(['train16', trainN, trainWarmup]);
    for (const [task, count, warm] of tasks) {
      for (let r = 0; r < rounds; r++) {
        // Each block starts with untimed warm-up calls, so that what is timed is each side's steady state
        // (a training loop runs step after step) rather than its first call after the other side ran:
        // glibc-backed PyTorch re-faults its freed memory after a pause, and page faults are slow here.
        const runOurs = async (): Promise<void> => void times[task].ours.push(...timeEach(ours[task], count, warm, sync));
        const runPeer = async (): Promise<void> => void times[task].peer.push(...(await peer.request<{ ms: number[] }>({ task, n: count, warmup: warm })).ms);
        // Alternate who goes first; a short pause lets the other side's idle threads stop spinning.
        for (const side of r % 2 ? [runPeer, runOurs] : [runOurs, runPeer]) {
          await side();
          await pause(30);
        }
      }
      console.log(`${name} ${task}: ${fmtMs(median(times[task].ours))} vs ${fmtMs(median(times[task].peer))} ms (tsvision vs PyTorch, medians of ${times[task].ours.length})`);
    }
    await peer.close();
    const [ti, pi] = [median(times.infer.ours), median(times.infer.peer)];
    const [tt, pt] = [median(times.train.ours), median(times.train.peer)];
    const head = `${label} ${size[0]}×${size[1]} (${(params / 1e6).toFixed(2)}M params)`;
    rows.push(`| ${head} | batch-1 inference latency (${fmtRate(1000 / ti)} vs ${fmtRate(1000 / pi)} fps) | ${fmtMs(ti)} ms | ${fmtMs(pi)} ms | ${(ti / pi).toFixed(2)} |`);
    // Samples/s: higher is better; the ratio stays tsvision's time over PyTorch's (= PyTorch's rate over ours).
    if (train) rows.push(`| | training samples/s, batch ${trainBatch} (step ${fmtMs(tt)} vs ${fmtMs(pt)} ms) | ${fmtRate((trainBatch * 1000) / tt)} | ${fmtRate((trainBatch * 1000) / pt)} | ${(tt / pt).toFixed(2)} |`);
    if (train && bf16) {
      const [t16, p16] = [median(times.train16.ours), median(times.train16.peer)];
      rows.push(
        ready.bf16 === 'ok'
          ? `| | training samples/s, batch ${trainBatch}, bfloat16 autocast (step ${fmtMs(t16)} vs ${fmtMs(p16)} ms; ${(t16 / tt).toFixed(2)}× and ${(p16 / pt).toFixed(2)}× of float32) | ${fmtRate((trainBatch * 1000) / t16)} | ${fmtRate((trainBatch * 1000) / p16)} | ${(t16 / p16).toFixed(2)} |`
          : `| | training in bfloat16 autocast | — | fails in PyTorch 1.13: ${ready.bf16} | — |`,
      );
    }
    if (train && breakdown) {
      const [tf, pf] = [median(times.fwd.ours), median(times.fwd.peer)];
      rows.push(`| | training forward + loss, batch ${batch} | ${fmtMs(tf)} ms | ${fmtMs(pf)} ms | ${(tf / pf).toFixed(2)} |`);
      rows.push(`| | backward + SGD step (step − forward) | ${fmtMs(tt - tf)} ms | ${fmtMs(pt - pf)} ms | ${((tt - tf) / (pt - pf)).toFixed(2)} |`);
    }
    for (const t of [x1, xb, yb]) t.dispose();
  }

  const table = ['| model | what | tsvision | PyTorch eager | ratio tsvision/PyTorch (time) |', '|---|---|---|---|---|', ...rows].join('\n');
  console.log(table);
  // The exact command line of this run (the flags it was given, in order).
  const cmd = ['node dist/bench/models.js', ...process.argv.slice(2)].join(' ');
  // A run of some of the models gets its own section, so it does not replace the full table.
  const subset = MODELS.length < ALL.length ? `-${MODELS.map((m) => m.name).join('-')}` : '';
  writeSection(
    (device === 'cpu' ? 'models-cpu' : 'models-cuda') + subset,
    `## Models (${device})${subset ? `: ${MODELS.map((m) => m.label).join(', ')}` : ''}\n\n\`${cmd}\` — ${machineLine(device)}; ${rounds} rounds alternating with a live PyTorch peer process, each timing ` +
      `${n} batch-1 inference calls (eval mode, no grad) after ${warmup} untimed ones, or ${trainN} SGD-momentum training step${trainN > 1 ? 's' : ''} (train mode, cross-entropy — per pixel for segmentation, with PSPNet's auxiliary and ICNet's cascade terms) after ${trainWarmup} untimed${bf16 ? ' (with --bf16 also under torch.autocast in bfloat16 on both sides)' : ''}, ` +
      `on one side then the other, the side going first alternating; medians; measured ${new Date().toISOString().slice(0, 10)}. The peer builds the same architectures in PyTorch (scripts/reference_models.py, whose forward and gradients the tests match against tsvision's) and checks every state-dict key and shape against tsvision's. ` +
      `Ratios are tsvision's time over PyTorch's (for samples/s, PyTorch's rate over tsvision's): below 1.0 tsvision is faster.\n\n${table}`,
  );
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
