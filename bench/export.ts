// bench/export: batch-1 inference latency of the same network four ways — tsvision (libtorch, eval, no grad),
// onnxruntime-node running tsvision's ONNX export, onnxruntime-web running it in Chromium (wasm, the page of
// `tsvision serve`, so as many threads as the others where the machine has at most 4 cores), and PyTorch
// eager (the live peer of bench/models.ts, with the same architecture from scripts/reference_models.py,
// state-dict keys and shapes checked) — in one run, block by block in turns (the side going first rotating),
// medians. Without Chromium (/usr/bin/chromium or TSVISION_CHROMIUM) the browser column is left out. The two
// runtimes also run the int8 file of `export --int8` (QDQ, calibrated here on random inputs: timing only).
//   node dist/bench/export.js [--models mobilenet_v1,enet,deeplabv3] [--rounds 4] [--n 5] [--warmup 2] [--no-write]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Browser, Page } from 'playwright-core';
import * as T from '../src/torch';
import { ModelName, createModel, createSegmentationModel, isSegmentationModelName } from '../src/models/registry';
import { exportOnnx, modelCard, toOnnx, writeCard } from '../src/export';
import { encodeModel } from '../src/export/protobuf';
import { calibrate, quantizeModel } from '../src/export/quantize';
import { foldBatchNorm } from '../src/nn';
import { writeFileAtomic } from '../src/util/fs';
import { serveModel } from '../src/cli/serve';
import { optimizeForInference } from '../src/infer/optimize';
import { arg, LivePeer, machineLine, median, nowMs, pause, timeEach, writeSection } from './common';

const rounds = Number(arg('rounds', '4'));
const n = Number(arg('n', '5'));
const warmup = Number(arg('warmup', '2'));
const threads = T.getNumThreads();

const ALL = [
  { name: 'mobilenet_v1', size: [224, 224], classes: 1000, label: 'MobileNet v1 α=1' },
  { name: 'enet', size: [256, 512], classes: 19, label: 'ENet' },
  { name: 'deeplabv3', size: [256, 256], classes: 19, label: 'DeepLab-V3 (ResNet-50, OS 16)' },
];
const wanted = arg('models', ALL.map((m) => m.name).join(',')).split(',');
const MODELS = ALL.filter((m) => wanted.includes(m.name));
if (MODELS.length === 0) throw new Error(`--models: none of ${wanted.join(', ')} is one of ${ALL.map((m) => m.name).join(', ')}`);

const fmtMs = (v: number): string => (v < 10 ? v.toFixed(2) : v.toFixed(1));
const CHROMIUM = process.env.TSVISION_CHROMIUM ?? '/usr/bin/chromium';
const webVersion = (): string => (JSON.parse(fs.readFileSync(path.join(path.dirname(require.resolve('onnxruntime-web')), '..', 'package.json'), 'utf8')) as { version: string }).version;

/** The exported file in `tsvision serve`'s page, with a timing function beside the page's own code. */
async function browserSide(browser: Browser, file: string, shape: number[]): Promise<{ page: Page; threads: number; time(n: number, warmup: number): Promise<number[]>; close(): Promise<void> }> {
  const served = await serveModel(file, { port: 0, host: '127.0.0.1' });
  const page = await browser.newPage();
  await page.goto(served.url);
  await page.waitForFunction(`/loaded|Could not/.test(document.getElementById('status').textContent)`, null, { timeout: 120_000 });
  const status = (await page.textContent('#status')) ?? '';
  if (!/loaded/.test(status)) throw new Error(`browser: ${status}`);
  await page.evaluate(`(async () => { window.benchSession = await ort.InferenceSession.create('/model.onnx', { executionProviders: ['wasm'] }); })()`);
  return {
    page,
    threads: (await page.evaluate('ort.env.wasm.numThreads')) as number,
    time: (n, warmup) =>
      page.evaluate(`(async () => {
        const shape = ${JSON.stringify(shape)};
        const x = new ort.Tensor('float32', Float32Array.from({ length: shape.reduce((a, b) => a * b) }, () => Math.random() - 0.5), shape);
        const ms = [];
        for (let i = 0; i < ${warmup} + ${n}; i++) {
          const t0 = performance.now();
          await window.benchSession.run({ input: x });
          if (i >= ${warmup}) ms.push(performance.now() - t0);
        }
        return ms;
      })()`) as Promise<number[]>,
    close: async () => {
      await page.close();
      await served.close();
    },
  };
}

async function main(): Promise<void> {
  const rows: string[] = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsv-bench-export-'));
  let browser: Browser | null = null;
  if (fs.existsSync(CHROMIUM)) {
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  } else console.log(`no Chromium at ${CHROMIUM}: the browser column is left out`);
  let webThreads = 0;
  const chromiumVersion = browser?.version() ?? '';
  for (const { name, size, classes, label } of MODELS) {
    T.manualSeed(0);
    const seg = isSegmentationModelName(name);
    const model = seg ? createSegmentationModel(name, { numClasses: classes }) : createModel(name as ModelName, {});
    model.eval();
    const shape = [1, 3, ...size];
    const x = T.randn(shape).keep();
    const file = path.join(tmp, `${name}.onnx`);
    exportOnnx(model, file, { inputShape: shape });
    const card = modelCard({ name, segmentation: seg, normalization: { mean: [0, 0, 0], std: [1, 1, 1] }, classes: Array.from({ length: classes }, (_, i) => `class ${i}`) }, shape, { input: 'input', output: 'output' });
    writeCard(file, card);
    // The int8 file: BatchNorm folded into a copy, calibrated on a few random inputs (ranges matter for
    // accuracy, not for speed), quantized as `export --int8` does.
    const int8File = path.join(tmp, `${name}.int8.onnx`);
    const folded = seg ? createSegmentationModel(name, { numClasses: classes }) : createModel(name as ModelName, {});
    folded.loadStateDict(model.stateDict());
    T.tidy(() => foldBatchNorm(folded, x));
    const floatGraph = toOnnx(folded, { inputShape: shape }).model;
    const calibration = Array.from({ length: 4 }, () => ({ input: new ort.Tensor('float32', T.tidy(() => T.randn(shape).toArray() as Float32Array), shape) }));
    writeFileAtomic(int8File, encodeModel(quantizeModel(floatGraph, await calibrate(ort, floatGraph, calibration)).model));
    writeCard(int8File, card);
    const weightsFile = path.join(tmp, `${name}.int8w.onnx`); // --int8 --weights-only
    writeFileAtomic(weightsFile, encodeModel(quantizeModel(floatGraph, null).model));
    const web = browser ? await browserSide(browser, file, shape) : null;
    const web8 = browser ? await browserSide(browser, int8File, shape) : null;
    webThreads = web?.threads ?? 0;
    const sessionOptions = { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' } as const;
    const session = await ort.InferenceSession.create(file, sessionOptions);
    const session8 = await ort.InferenceSession.create(int8File, sessionOptions);
    const session8w = await ort.InferenceSession.create(weightsFile, sessionOptions);
    const feeds = { input: new ort.Tensor('float32', x.toArray() as Float32Array, shape) };
    const shapes = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, t.shape]));
    const { peer } = await LivePeer.start<{ ready: boolean }>('models_torch.py', { model: name, params: model.numParameters(), shapes, size, classes, seg, batch: 1, threads, device: 'cpu' });
    // The same weights optimized for inference, as Predictor runs them; 'auto' picks its layout first.
    const twin = seg ? createSegmentationModel(name, { numClasses: classes }) : createModel(name as ModelName, {});
    twin.loadStateDict(model.stateDict());
    const fast = optimizeForInference(twin, x);
    const layout = fast.settle(x); // 'auto' chooses before anything is timed
    const times = { tsvision: [] as number[], fast: [] as number[], ort: [] as number[], ort8: [] as number[], ort8w: [] as number[], web: [] as number[], web8: [] as number[], torch: [] as number[] };
    const timeOrt = (s: ort.InferenceSession, into: number[]) => async () => {
      for (let i = 0; i < warmup; i++) await s.run(feeds);
      for (let i = 0; i < n; i++) {
        const t0 = nowMs();
        await s.run(feeds);
        into.push(nowMs() - t0);
      }
    };
    type Side = [keyof typeof times, () => Promise<void>];
    const sides: Side[] = [
      ['tsvision', async () => void times.tsvision.push(...timeEach(() => T.tidy(() => T.noGrad(() => void model.forward(x))), n, warmup))],
      ['fast', async () => void times.fast.push(...timeEach(() => T.tidy(() => T.noGrad(() => void fast.forward(x))), n, warmup))],
      ['ort', timeOrt(session, times.ort)],
      ['ort8', timeOrt(session8, times.ort8)],
      ['ort8w', timeOrt(session8w, times.ort8w)],
      ['torch', async () => void times.torch.push(...(await peer.request<{ ms: number[] }>({ task: 'infer', n, warmup })).ms)],
      ...(web && web8 ? ([['web', async () => void times.web.push(...(await web.time(n, warmup)))], ['web8', async () => void times.web8.push(...(await web8.time(n, warmup)))]] as Side[]) : []),
    ];
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < sides.length; i++) {
        const [side, run] = sides[(i + r) % sides.length];
        await run();
        // Lets the previous side's idle threads stop spinning. Chromium keeps the cores busy for longer after
        // its turn: without the browser, the optimized MobileNet ran 0.66× plain; with it and 30 ms, 1.1×.
        await pause(side === 'web' || side === 'web8' ? 1000 : 30);
      }
    }
    await peer.close();
    await web?.close();
    await web8?.close();
    await session.release();
    await session8.release();
    await session8w.release();
    x.dispose();
    const [ts, tf, on, o8, o8w, pt] = [median(times.tsvision), median(times.fast), median(times.ort), median(times.ort8), median(times.ort8w), median(times.torch)];
    const [wb, w8] = web ? [median(times.web), median(times.web8)] : [NaN, NaN];
    const int8 = (v: number, float: number): string => `${fmtMs(v)} ms (${(v / float).toFixed(2)}× float)`;
    console.log(`${name}: tsvision ${fmtMs(ts)} ms, optimized ${fmtMs(tf)} ms (${layout} layout), onnxruntime-node ${fmtMs(on)} ms, int8 ${int8(o8, on)}, int8 weights only ${int8(o8w, on)},${web ? ` onnxruntime-web in Chromium ${fmtMs(wb)} ms, int8 ${int8(w8, wb)},` : ''} PyTorch eager ${fmtMs(pt)} ms (medians of ${times.ort.length})`);
    rows.push(`| ${label} ${size[0]}×${size[1]} | ${fmtMs(ts)} ms | ${fmtMs(tf)} ms (${layout} layout) | ${fmtMs(on)} ms | ${int8(o8, on)} | ${int8(o8w, on)} |${web ? ` ${fmtMs(wb)} ms | ${int8(w8, wb)} |` : ''} ${fmtMs(pt)} ms |`);
  }
  await browser?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
  const webHead = browser ? ` onnxruntime-web in Chromium (wasm, ${webThreads} thread${webThreads === 1 ? '' : 's'}) | onnxruntime-web, int8 |` : '';
  const table = [`| model, batch 1 | tsvision | tsvision optimized (as Predictor runs it) | onnxruntime-node (tsvision's ONNX export) | onnxruntime-node, int8 (\`export --int8\`) | onnxruntime-node, int8 weights only (\`--int8 --weights-only\`) |${webHead} PyTorch eager |`, `|---|---|---|---|---|---|${browser ? '---|---|' : ''}---|`, ...rows].join('\n');
  console.log(table);
  const cmd = ['node dist/bench/export.js', ...process.argv.slice(2)].join(' ');
  writeSection(
    'export-cpu',
    `## Inference after ONNX export (cpu)\n\n\`${cmd}\` — ${machineLine('cpu')}, onnxruntime-node ${ort.env.versions.node ?? ''} with the same intra-op threads${chromiumVersion ? `, onnxruntime-web ${webVersion()} in headless Chromium ${chromiumVersion} (the page of \`tsvision serve\`, wasm threads as the page sets them)` : ''}; ${rounds} rounds, each timing ` +
      `${n} batch-1 calls after ${warmup} untimed ones on each side in turn (the side going first rotating); medians; measured ${new Date().toISOString().slice(0, 10)}.\n\n${table}`,
  );
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
