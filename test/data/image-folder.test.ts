// ImageFolder on PNG and JPEG files generated with sharp in a temp dir: class discovery and order, exact
// pixels for lossless PNG, channel handling, resizing, loading through the DataLoader, and a corrupt file.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import * as T from '../../src/torch';
import { DataLoader, ImageFolder, Rng, disposeBatch } from '../../src/data';
import { tmpDir } from '../helpers/tmp';

let root = '';
// Class folders in an order that differs from creation order and is case-sensitive, as Python's sorted().
const CLASSES = ['b_shirt', 'a_shoe', 'C_bag'];
const H = 5;
const W = 4;
/** Raw HWC pixels of every RGB PNG written, by path. */
const rgbPixels = new Map<string, Uint8Array>();

async function writeRaw(file: string, pixels: Uint8Array, channels: 1 | 3, format: 'png' | 'jpeg'): Promise<void> {
  const img = sharp(Buffer.from(pixels), { raw: { width: W, height: H, channels } });
  await (format === 'png' ? img.png() : img.jpeg({ quality: 100 })).toFile(file);
}

before(async () => {
  root = tmpDir('tsv-imgfolder-');
  const rng = new Rng(17);
  for (const cls of CLASSES) {
    fs.mkdirSync(path.join(root, cls));
    for (let k = 0; k < 3; k++) {
      const px = Uint8Array.from({ length: H * W * 3 }, () => rng.int(256));
      const file = path.join(root, cls, `img${k}.png`);
      await writeRaw(file, px, 3, 'png');
      rgbPixels.set(file, px);
    }
    // A flat-colour JPEG, which survives compression almost exactly.
    await writeRaw(path.join(root, cls, 'flat.JPG'), new Uint8Array(H * W * 3).fill(100 + CLASSES.indexOf(cls) * 40), 3, 'jpeg');
    fs.writeFileSync(path.join(root, cls, 'notes.txt'), 'not an image');
  }
  fs.mkdirSync(path.join(root, '.hidden'));
  fs.writeFileSync(path.join(root, 'README'), 'a file, not a class');
});

after(() => fs.rmSync(root, { recursive: true, force: true }));

test('classes sorted by name, samples per class sorted, other files ignored', () => {
  const ds = new ImageFolder(root);
  assert.deepEqual(ds.classes, [...CLASSES].sort());
  assert.equal(ds.length, CLASSES.length * 4);
  for (const s of ds.samples) {
    assert.equal(ds.classes[s.label], path.basename(path.dirname(s.path)));
    assert.match(s.path, /\.(png|JPG)$/);
  }
  assert.deepEqual(ds.samples.slice(0, 4).map((s) => path.basename(s.path)), ['flat.JPG', 'img0.png', 'img1.png', 'img2.png'].sort());
});

test('PNG pixels come back exactly, as uint8 CHW', async () => {
  const ds = new ImageFolder(root);
  for (let i = 0; i < ds.length; i++) {
    const s = ds.samples[i];
    const want = rgbPixels.get(s.path);
    if (!want) continue;
    const { x, y } = await ds.get(i);
    assert.equal(y, s.label);
    assert.equal(x.dtype, 'uint8');
    assert.deepEqual(x.shape, [3, H, W]);
    const got = x.toNumbers();
    for (let c = 0; c < 3; c++) for (let r = 0; r < H; r++) for (let q = 0; q < W; q++) assert.equal(got[(c * H + r) * W + q], want[(r * W + q) * 3 + c], `${s.path} (${c}, ${r}, ${q})`);
    x.dispose();
  }
});

test('JPEG decodes close to its source; grey and resized outputs have the asked shape', async () => {
  const ds = new ImageFolder(root);
  const jpegs = ds.samples.map((s, i) => ({ s, i })).filter(({ s }) => s.path.endsWith('.JPG'));
  assert.equal(jpegs.length, CLASSES.length);
  for (const { s, i } of jpegs) {
    const { x } = await ds.get(i);
    const v = 100 + CLASSES.indexOf(path.basename(path.dirname(s.path))) * 40;
    assert.ok(x.toNumbers().every((p) => Math.abs(p - v) <= 2), `${s.path} ≈ ${v}`);
  }
  // A flat grey-valued RGB image stays that value in one channel; resizing a flat image keeps it flat.
  const grey = new ImageFolder(root, { channels: 1, size: [7, 3] });
  const first = jpegs[0];
  const v0 = 100 + CLASSES.indexOf(path.basename(path.dirname(first.s.path))) * 40;
  const { x } = await grey.get(first.i);
  assert.deepEqual(x.shape, [1, 7, 3]);
  assert.ok(x.toNumbers().every((p) => Math.abs(p - v0) <= 2), `grey ${x.toNumbers()} ≈ ${v0}`);
  // A greyscale PNG read as RGB repeats its channel.
  const dir = tmpDir('tsv-grey-');
  try {
    fs.mkdirSync(path.join(dir, 'only'));
    const px = Uint8Array.from({ length: H * W }, (_, k) => k * 11);
    await writeRaw(path.join(dir, 'only', 'g.png'), px, 1, 'png');
    const rgb = await new ImageFolder(dir, { channels: 3 }).get(0);
    assert.deepEqual(rgb.x.shape, [3, H, W]);
    assert.deepEqual(rgb.x.toNumbers(), [...px, ...px, ...px]);
    const one = await new ImageFolder(dir, { channels: 1 }).get(0);
    assert.deepEqual(one.x.toNumbers(), Array.from(px));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('DataLoader over ImageFolder: every image once, float batches, next batch decoded during the step', async () => {
  const ds = new ImageFolder(root, { size: [8, 8] });
  const loader = new DataLoader(ds, { batchSize: 5, shuffle: true, seed: 3 });
  const seen: number[] = [];
  for await (const b of loader.epoch(1)) {
    assert.equal(b.x.dtype, 'float32');
    assert.deepEqual(b.x.shape.slice(1), [3, 8, 8]);
    // A scope open across an await while sharp decodes the next batch.
    const s = T.scope();
    try {
      b.x.mul(2);
      await new Promise((r) => setTimeout(r, 5));
    } finally {
      s.dispose();
    }
    assert.ok(b.x.max().item() <= 1 && b.x.min().item() >= 0);
    const ys = b.y.toNumbers();
    seen.push(...ys);
    disposeBatch(b);
  }
  assert.equal(seen.length, ds.length);
  const perClass = CLASSES.map((_, c) => seen.filter((y) => y === c).length);
  assert.deepEqual(perClass, [4, 4, 4]);
  assert.equal(T.scopeDepth(), 0);
});

test('a corrupt image names the file, from get() and through the loader', async () => {
  const dir = tmpDir('tsv-corrupt-');
  try {
    fs.mkdirSync(path.join(dir, 'k'));
    const good = path.join(dir, 'k', 'a.png');
    await writeRaw(good, new Uint8Array(H * W * 3).fill(9), 3, 'png');
    // A real PNG cut in half, and bytes that are no image at all.
    const png = fs.readFileSync(good);
    const cut = path.join(dir, 'k', 'b.png');
    fs.writeFileSync(cut, png.subarray(0, Math.floor(png.length / 2)));
    const junk = path.join(dir, 'k', 'c.jpg');
    fs.writeFileSync(junk, 'definitely not a jpeg');
    const ds = new ImageFolder(dir);
    await assert.rejects(ds.get(1), (e: Error) => e.message.includes(cut) && /cannot decode/.test(e.message));
    await assert.rejects(ds.get(2), (e: Error) => e.message.includes(junk) && /cannot decode/.test(e.message));
    await assert.rejects(async () => {
      for await (const b of new DataLoader(ds, { batchSize: 3 }).epoch(0)) disposeBatch(b);
    }, (e: Error) => e.message.includes('cannot decode'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(() => new ImageFolder(path.join(os.tmpdir(), 'tsv-no-such-dir')), /cannot read/);
});
