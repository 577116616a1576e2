// bench/data: the segmentation data pipeline on Cityscapes-sized pairs — decode a 512×1024 PNG image and its
// mask, normalize, the papers' random scale (0.5–2) / crop (512×512) / mirror, collate batches of 4 —,
// tsvision (SegmentationFiles: sharp decodes in libuv's threads while the previous batch is augmented in
// libtorch) vs a PyTorch peer doing the same work in one process (PIL decode, the same affine grid and
// grid_sample per image: bench/data_torch.py). Same files, same libtorch threads, interleaved rounds, medians.
//   node dist/bench/data.js [--rounds 5] [--pairs 24] [--dir <folder to keep the pairs in>]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import * as T from '../src/torch';
import { DataLoader, IMAGENET, SegmentationFiles, compose, disposeBatch, normalize, segmentationAugment, toFloat } from '../src/data';
import { arg, LivePeer, machineLine, median, nowMs, writeSection } from './common';

const rounds = Number(arg('rounds', '5'));
const pairs = Number(arg('pairs', '24'));
const [H, W] = [512, 1024];
const CROP = 512;
const BATCH = 4;

/** Street-scene-like pairs: smooth colour ramps with mild noise (PNG compresses them as it does photos) and 19 block classes. */
async function writePairs(root: string): Promise<void> {
  for (const sub of ['images', 'masks']) fs.mkdirSync(path.join(root, sub), { recursive: true });
  fs.writeFileSync(path.join(root, 'classes.txt'), Array.from({ length: 19 }, (_, i) => `c${i}`).join('\n'));
  let s = 7;
  const rnd = (k: number): number => ((s = (s * 1103515245 + 12345) % 2 ** 31), s % k);
  for (let i = 0; i < pairs; i++) {
    const img = Buffer.alloc(H * W * 3);
    const mask = Buffer.alloc(H * W);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const p = y * W + x;
        mask[p] = ((y >> 6) * 16 + (x >> 6) + i) % 19;
        for (let c = 0; c < 3; c++) img[3 * p + c] = (((x + 3 * y + 40 * c + 9 * i) >> 2) & 255) ^ rnd(8);
      }
    }
    const name = `frame${String(i).padStart(3, '0')}.png`;
    await sharp(img, { raw: { width: W, height: H, channels: 3 } }).png().toFile(path.join(root, 'images', name));
    await sharp(mask, { raw: { width: W, height: H, channels: 1 } }).toColourspace('b-w').png().toFile(path.join(root, 'masks', name));
  }
}

async function ours(root: string, seed: number): Promise<number> {
  const files = SegmentationFiles.open(root);
  const sampleTransform = compose(toFloat(), normalize(IMAGENET.mean, IMAGENET.std), segmentationAugment({ crop: CROP }));
  const loader = new DataLoader(files, { batchSize: BATCH, shuffle: true, seed, sampleTransform, transform: (b) => b });
  const t0 = nowMs();
  for await (const b of loader.epoch(0)) disposeBatch(b);
  return (nowMs() - t0) / 1000;
}

(async () => {
  // libvips' operation cache would serve a repeated file from memory: a real data set is far larger than it.
  sharp.cache(false);
  // --dir keeps the generated pairs there (and reuses them); by default they go to a temporary folder.
  const kept = arg('dir', '');
  const root = kept || fs.mkdtempSync(path.join(os.tmpdir(), 'tsv-bench-data-'));
  try {
    if (!fs.existsSync(path.join(root, 'classes.txt'))) await writePairs(root);
    // Both sides stay alive; one untimed epoch each first (allocator, libvips and PIL warm-up), then the
    // timed epochs alternate, the side going first alternating too.
    const { peer } = await LivePeer.start<{ ready: boolean }>('data_torch.py', { root, threads: T.getNumThreads(), batch: BATCH, crop: CROP, ...IMAGENET });
    const theirs = async (seed: number): Promise<number> => (await peer.request<{ seconds: number }>({ task: 'epoch', seed })).seconds;
    await ours(root, 100);
    await theirs(100);
    const a: number[] = [];
    const p: number[] = [];
    try {
      for (let r = 0; r < rounds; r++) {
        if (r % 2) {
          p.push(await theirs(r));
          a.push(await ours(root, r));
        } else {
          a.push(await ours(root, r));
          p.push(await theirs(r));
        }
        console.log(`round ${r + 1}: tsvision ${a[r].toFixed(2)} s, PyTorch ${p[r].toFixed(2)} s`);
      }
    } finally {
      await peer.close();
    }
    const rate = (s: number): string => (pairs / s).toFixed(1);
    const table = [
      '| what | tsvision | PyTorch eager | ratio |',
      '|---|---|---|---|',
      `| ${pairs} pairs of ${H}×${W} PNG image + mask: decode, normalize, random scale 0.5–2 / crop ${CROP}×${CROP} / mirror, batches of ${BATCH} | ${median(a).toFixed(2)} s (${rate(median(a))} pairs/s) | ${median(p).toFixed(2)} s (${rate(median(p))} pairs/s) | ${(median(a) / median(p)).toFixed(2)} |`,
    ].join('\n');
    console.log(table);
    writeSection('data-cpu', `## Segmentation data pipeline (cpu)\n\n\`node dist/bench/data.js --rounds ${rounds} --pairs ${pairs}\` — ${machineLine('cpu')}; one untimed epoch each, then ${rounds} interleaved rounds, medians; measured ${new Date().toISOString().slice(0, 10)}. The peer (bench/data_torch.py, kept alive) does the same work in one PyTorch process: PIL decodes, the same per-image affine grid and grid_sample (bilinear image, nearest labels), torch.stack.\n\n${table}`);
  } finally {
    if (!kept) fs.rmSync(root, { recursive: true, force: true });
  }
})();
