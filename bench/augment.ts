// bench/augment: the classification augmentations of torchvision's current recipe on a batch of 64 —
// TrivialAugmentWide on 32×32 and 224×224 uint8 images, RandomErasing on normalized 224×224 images, and
// RandomResizedCrop (antialiased) of 300×400 photos to 224 — tsvision (data/autoaugment.ts, transforms.ts)
// vs torchvision on the same tensors, one image at a time as its DataLoader workers apply them (a LivePeer:
// bench/augment_torch.py; for TrivialAugment it applies the very operations tsvision drew, so that both do the
// same work). Same libtorch threads, interleaved passes, medians.
//   node dist/bench/augment.js [--rounds 7]
import * as T from '../src/torch';
import { BatchTransform, Rng, TrivialAugmentOp, drawTrivialAugment, randomErasing, randomResizedCrop, trivialAugment } from '../src/data';
import { arg, LivePeer, machineLine, median, nowMs, writeSection } from './common';

const rounds = Number(arg('rounds', '7'));
const BATCH = 64;
const CROP = 224;

(async () => {
  const seed = 3;
  T.manualSeed(seed);
  // The peer draws the same tensors from the same seed (libtorch's generator on both sides).
  const small = T.keep(T.tidy(() => T.rand([BATCH, 3, 32, 32]).mul(255).floor().to('uint8')));
  const large = T.keep(T.tidy(() => T.rand([BATCH, 3, 224, 224]).mul(255).floor().to('uint8')));
  const photo = T.keep(T.tidy(() => T.rand([BATCH, 3, 300, 400]).mul(255).floor().to('uint8')));
  const normalized = T.keep(T.randn([BATCH, 3, 224, 224]));
  const crop = randomResizedCrop(CROP);
  // RandomResizedCrop is the loader's per-sample transform: each image alone (they differ in size in a real set).
  const perSample: BatchTransform = (b, ctx) => ({ x: T.cat(Array.from({ length: BATCH }, (_, i) => crop({ x: b.x.narrow(0, i, 1), y: b.y }, ctx).x), 0), y: b.y });
  const work: Record<string, { x: T.Tensor; t: BatchTransform; what: string }> = {
    ta32: { x: small, t: trivialAugment(), what: `TrivialAugmentWide, ${BATCH} uint8 images 3×32×32` },
    ta224: { x: large, t: trivialAugment(), what: `TrivialAugmentWide, ${BATCH} uint8 images 3×224×224` },
    erase: { x: normalized, t: randomErasing({ p: 0.5 }), what: `RandomErasing (p 0.5), ${BATCH} normalized images 3×224×224` },
    rrc: { x: photo, t: perSample, what: `RandomResizedCrop to ${CROP} (antialiased), ${BATCH} uint8 images 3×300×400` },
  };
  const ours = (task: string, round: number): number => {
    const { x, t } = work[task];
    const t0 = nowMs();
    T.tidy(() => t({ x, y: x }, { epoch: 0, index: round, rng: Rng.from(seed, round) }));
    return (nowMs() - t0) / 1000;
  };
  const { peer } = await LivePeer.start<{ ready: boolean }>('augment_torch.py', { threads: T.getNumThreads(), batch: BATCH, crop: CROP, seed });
  // The draws trivialAugment makes in pass `round` (its Rng is the batch's), by torchvision's names.
  const TV: Record<TrivialAugmentOp, string> = { identity: 'Identity', shearX: 'ShearX', shearY: 'ShearY', translateX: 'TranslateX', translateY: 'TranslateY', rotate: 'Rotate', brightness: 'Brightness', color: 'Color', contrast: 'Contrast', sharpness: 'Sharpness', posterize: 'Posterize', solarize: 'Solarize', autoContrast: 'AutoContrast', equalize: 'Equalize' };
  const draws = (round: number): [string, number][] => {
    const rng = Rng.from(seed, round);
    return Array.from({ length: BATCH }, () => drawTrivialAugment(rng)).map((d) => [TV[d.op], d.magnitude]);
  };
  const theirs = async (task: string, round: number): Promise<number> => (await peer.request<{ seconds: number }>({ task, draws: task.startsWith('ta') ? draws(round) : [] })).seconds;
  const a: Record<string, number[]> = {};
  const p: Record<string, number[]> = {};
  try {
    for (const task of Object.keys(work)) {
      ours(task, 100);
      await theirs(task, 100);
      [a[task], p[task]] = [[], []];
      for (let r = 0; r < rounds; r++) {
        if (r % 2) {
          p[task].push(await theirs(task, r));
          a[task].push(ours(task, r));
        } else {
          a[task].push(ours(task, r));
          p[task].push(await theirs(task, r));
        }
      }
      console.log(`${task}: tsvision ${(1000 * median(a[task])).toFixed(1)} ms, torchvision ${(1000 * median(p[task])).toFixed(1)} ms`);
    }
  } finally {
    await peer.close();
  }
  const rate = (s: number): string => `${(BATCH / s).toFixed(0)} images/s`;
  const table = [
    '| what | tsvision | torchvision (PyTorch eager) | ratio |',
    '|---|---|---|---|',
    ...Object.entries(work).map(([task, { what }]) => {
      const [t, q] = [median(a[task]), median(p[task])];
      return `| ${what} | ${(1000 * t).toFixed(1)} ms (${rate(t)}) | ${(1000 * q).toFixed(1)} ms (${rate(q)}) | ${(t / q).toFixed(2)} |`;
    }),
  ].join('\n');
  console.log(table);
  writeSection('augment-cpu', `## Classification augmentation (cpu)\n\n\`node dist/bench/augment.js --rounds ${rounds}\` — ${machineLine('cpu')}; one untimed pass each, then ${rounds} interleaved passes per transform, medians; measured ${new Date().toISOString().slice(0, 10)}. The peer (bench/augment_torch.py, kept alive) applies torchvision 0.14's transforms to the same tensors one image at a time, as its DataLoader workers do, and stacks them. For TrivialAugment the peer does per image what TrivialAugmentWide.forward does — builds its operation space, then applies the operation with torchvision's _apply_op — but with the operation and strength tsvision drew for that image, so that both sides do the same 64 operations.\n\n${table}`);
  for (const t of [small, large, photo, normalized]) t.dispose();
})();
