// bench/predict: images per second from JPEG files to class probabilities, the whole path a Node server runs —
// read, decode, resize to 224×224, normalize, MobileNet v1, softmax, top-5 — with tsvision's Predictor
// (sharp decoding, the network optimized for inference) against a PyTorch peer doing the same with PIL and
// torchvision's transforms, the same weights, the same threads; batches of 1 and 8, interleaved rounds, medians.
//   node dist/bench/predict.js [--rounds 4] [--images 32] [--no-write]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import * as T from '../src/torch';
import { createModel } from '../src/models/registry';
import { Predictor } from '../src/infer/predict';
import { LivePeer, arg, machineLine, median, nowMs, pause, writeSection } from './common';

const rounds = Number(arg('rounds', '4'));
const count = Number(arg('images', '32'));
const threads = T.getNumThreads();
const BATCHES = [1, 8];
const NORMALIZATION = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** Photo-like 640×480 JPEGs: smooth colour fields with noise, each different (sharp, quality 90). */
async function writeImages(dir: string): Promise<string[]> {
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const [w, h] = [640, 480];
    const px = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const o = (y * w + x) * 3;
        px[o] = (128 + 100 * Math.sin((x + 17 * i) / 40)) & 255;
        px[o + 1] = (128 + 100 * Math.cos((y + 11 * i) / 30)) & 255;
        px[o + 2] = ((x * y) / 300 + 29 * i + (Math.random() * 40 - 20)) & 255;
      }
    }
    const f = path.join(dir, `img${i}.jpg`);
    await sharp(px, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toFile(f);
    files.push(f);
  }
  return files;
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsv-bench-predict-'));
  try {
    const files = await writeImages(dir);
    T.manualSeed(0);
    const model = createModel('mobilenet_v1', {});
    const weights = path.join(dir, 'model.safetensors');
    T.saveSafetensors(weights, model.stateDict());
    const classes = Array.from({ length: 1000 }, (_, i) => `class ${i}`);
    // smallInput false: the ImageNet stem (plain classifier weights are otherwise read as tsvision's 28×28 training builds them).
    const predictor = await Predictor.load(weights, { model: 'mobilenet_v1', opt: { smallInput: false }, size: [224, 224], normalization: NORMALIZATION, classes });
    const { peer } = await LivePeer.start<{ ready: boolean }>('predict_torch.py', { weights, files, threads, mean: NORMALIZATION.mean, std: NORMALIZATION.std });
    const rate = (seconds: number): number => files.length / seconds;
    const times: Record<number, { ours: number[]; peer: number[] }> = Object.fromEntries(BATCHES.map((b) => [b, { ours: [], peer: [] }]));
    // One untimed pass each: file cache, oneDNN primitives, and the optimized predictor's layout choice.
    for (let k = 0; k < 2; k++) for (const b of BATCHES) await predictor.classifyMany(files, { batchSize: b, topK: 5 });
    await peer.request({ batch: 1 });
    for (let r = 0; r < rounds; r++) {
      for (const b of r % 2 ? [...BATCHES].reverse() : BATCHES) {
        const ours = async (): Promise<void> => {
          const t0 = nowMs();
          await predictor.classifyMany(files, { batchSize: b, topK: 5 });
          times[b].ours.push((nowMs() - t0) / 1000);
        };
        const theirs = async (): Promise<void> => void times[b].peer.push((await peer.request<{ seconds: number }>({ batch: b })).seconds);
        for (const side of r % 2 ? [theirs, ours] : [ours, theirs]) {
          await side();
          await pause(30);
        }
      }
    }
    await peer.close();
    const rows = BATCHES.map((b) => {
      const [o, p] = [median(times[b].ours), median(times[b].peer)];
      console.log(`batch ${b}: tsvision ${rate(o).toFixed(1)} images/s, PyTorch ${rate(p).toFixed(1)} images/s`);
      return `| batch ${b} | ${rate(o).toFixed(1)} images/s | ${rate(p).toFixed(1)} images/s | ${(o / p).toFixed(2)} |`;
    });
    const table = ['| ' + `${count} JPEGs 640×480 → MobileNet v1 224×224, top-5` + ' | tsvision Predictor | PyTorch (PIL + torchvision transforms) | ratio (time) |', '|---|---|---|---|', ...rows].join('\n');
    console.log(table);
    const cmd = ['node dist/bench/predict.js', ...process.argv.slice(2)].join(' ');
    writeSection(
      'predict-cpu',
      `## Predicting on image files (cpu)\n\n\`${cmd}\` — ${machineLine('cpu')}; ${rounds} rounds, each classifying all ${count} files at each batch size on one side then the other (the side and the batch size going first alternating), after untimed passes; medians; measured ${new Date().toISOString().slice(0, 10)}. ` +
        `Both read each file, decode it, resize it to 224×224 (sharp's default resampling; PIL's bilinear), normalize, run MobileNet v1 α=1 with the same random weights (the peer loads tsvision's safetensors into scripts/reference_models.py) and take the top 5 of the softmax. tsvision: \`Predictor.classifyMany\` with \`batchSize\` (the files of a batch decoded concurrently, the network optimized for inference). PyTorch: a loop over the batch's files, \`torch.stack\`, eager inference under \`no_grad\`. The ratio is tsvision's time over PyTorch's: below 1.0 tsvision is faster.\n\n${table}`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
