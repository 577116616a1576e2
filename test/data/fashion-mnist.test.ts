// The IDX reader and Fashion-MNIST, checked against Python reading the same gzip files with gzip + struct,
// plus the errors a truncated, corrupt or inconsistent file must give.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD, FASHION_MNIST_ROOT, loadFashionMNIST, readIdxImages, readIdxLabels } from '../../src/data';
import { tidy } from '../../src/torch';
import { PYTHON } from '../helpers/pytorch';
import { tmpDir } from '../helpers/tmp';

const ROOT = FASHION_MNIST_ROOT;
// Sample indices and pixel positions to compare; spread over the file so offsets are exercised.
const PICKS = { train: [0, 1, 777, 31415, 59999], test: [0, 5000, 9999] };
const PIXELS: [number, number][] = [[0, 0], [14, 14], [10, 20], [27, 27], [5, 13]];

interface PyFacts {
  dims: number[];
  nLabels: number;
  labels: number[];
  pixels: number[][];
  counts: number[];
  sums: number[];
}

/** Python's own reading of the files: header via struct, bytes via gzip, no numpy or torch involved. */
function pythonFacts(stem: string, picks: number[]): PyFacts {
  const code = `
import gzip, struct, json, sys
root, stem, picks, pixels = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
img = gzip.open(f"{root}/{stem}-images-idx3-ubyte.gz").read()
lab = gzip.open(f"{root}/{stem}-labels-idx1-ubyte.gz").read()
magic, n, h, w = struct.unpack(">IIII", img[:16])
lmagic, ln = struct.unpack(">II", lab[:8])
assert magic == 0x803 and lmagic == 0x801
labels = lab[8:]
counts = [0] * 10
for v in labels: counts[v] += 1
out = {"dims": [n, h, w], "nLabels": ln, "labels": [labels[i] for i in picks],
       "pixels": [[img[16 + i*h*w + r*w + c] for (r, c) in pixels] for i in picks],
       "counts": counts, "sums": [sum(img[16 + i*h*w: 16 + (i+1)*h*w]) for i in picks]}
print(json.dumps(out))
`;
  const r = spawnSync(PYTHON, ['-c', code, ROOT, stem, JSON.stringify(picks), JSON.stringify(PIXELS)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as PyFacts;
}

for (const split of ['train', 'test'] as const) {
  test(`Fashion-MNIST ${split} matches Python's reading of the gzip files`, () => {
    const py = pythonFacts(split === 'train' ? 'train' : 't10k', PICKS[split]);
    const ds = loadFashionMNIST({ split });
    try {
      assert.equal(ds.length, split === 'train' ? 60000 : 10000);
      assert.deepEqual(ds.images.shape, [py.dims[0], 1, py.dims[1], py.dims[2]]);
      assert.equal(ds.images.dtype, 'uint8');
      assert.equal(ds.labels.dtype, 'int64');
      assert.deepEqual(ds.labels.shape, [py.nLabels]);
      assert.deepEqual(ds.classes, FASHION_MNIST_CLASSES);
      tidy(() => {
        PICKS[split].forEach((i, k) => {
          assert.equal(ds.labels.select(0, i).item(), py.labels[k], `label ${i}`);
          const img = ds.images.select(0, i).select(0, 0);
          PIXELS.forEach(([r, c], j) => assert.equal(img.select(0, r).select(0, c).item(), py.pixels[k][j], `pixel ${i} (${r}, ${c})`));
          assert.equal(img.sum().item(), py.sums[k], `pixel sum of image ${i}`);
        });
        // Class balance, counted in JavaScript from our labels and in Python from the raw bytes.
        const counts = new Array<number>(10).fill(0);
        for (const v of ds.labels.toNumbers()) counts[v]++;
        assert.deepEqual(counts, py.counts);
        if (split === 'train') assert.ok(counts.every((c) => c === 6000), `train classes are balanced: ${counts}`);
      });
    } finally {
      ds.dispose();
    }
  });
}

test('FASHION_MNIST_MEAN/STD agree with the training pixels', () => {
  const ds = loadFashionMNIST({ split: 'train' });
  tidy(() => {
    const x = ds.images.to('float64').div(255);
    assert.ok(Math.abs(x.mean().item() - FASHION_MNIST_MEAN) < 5e-4);
    assert.ok(Math.abs(x.std().item() - FASHION_MNIST_STD) < 5e-4);
  });
  ds.dispose();
});

// ---- errors, on small files written to a temp dir -------------------------------------------------------

function tmpdir(): string {
  return tmpDir('tsv-idx-');
}

function idxBytes(magic: number, dims: number[], data: Uint8Array): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, data]);
}

/** A tiny Fashion-MNIST-shaped test split: n images 4×4 and the given labels. */
function writeSplit(dir: string, labels: number[], gzip = true): void {
  const n = labels.length;
  const pixels = Uint8Array.from({ length: n * 16 }, (_, i) => (i * 7) % 256);
  const imgs = idxBytes(0x803, [n, 4, 4], pixels);
  const labs = idxBytes(0x801, [n], Uint8Array.from(labels));
  fs.writeFileSync(path.join(dir, `t10k-images-idx3-ubyte${gzip ? '.gz' : ''}`), gzip ? zlib.gzipSync(imgs) : imgs);
  fs.writeFileSync(path.join(dir, `t10k-labels-idx1-ubyte${gzip ? '.gz' : ''}`), gzip ? zlib.gzipSync(labs) : labs);
}

test('small synthetic split loads, gzipped or raw, with the right values', () => {
  for (const gzip of [true, false]) {
    const dir = tmpdir();
    try {
      writeSplit(dir, [3, 1, 4, 1, 5], gzip);
      const ds = loadFashionMNIST({ root: dir, split: 'test' });
      assert.deepEqual(ds.images.shape, [5, 1, 4, 4]);
      assert.deepEqual(ds.labels.toNumbers(), [3, 1, 4, 1, 5]);
      assert.deepEqual(ds.images.toNumbers(), Array.from({ length: 80 }, (_, i) => (i * 7) % 256));
      ds.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('a truncated copy of the real gzip file names the file and the problem', () => {
  const dir = tmpdir();
  try {
    const full = fs.readFileSync(path.join(ROOT, 't10k-images-idx3-ubyte.gz'));
    const cut = path.join(dir, 't10k-images-idx3-ubyte.gz');
    fs.writeFileSync(cut, full.subarray(0, Math.floor(full.length / 2)));
    assert.throws(() => readIdxImages(cut), (e: Error) => e.message.includes(cut) && /truncated gzip/.test(e.message));
    // Decompressed, then cut short: the gzip is valid but the data are fewer than the header declares.
    const raw = zlib.gunzipSync(full);
    const short = path.join(dir, 'short.gz');
    fs.writeFileSync(short, zlib.gzipSync(raw.subarray(0, raw.length - 100)));
    assert.throws(() => readIdxImages(short), (e: Error) => e.message.includes(short) && /truncated/.test(e.message) && e.message.includes(String(raw.length - 16)));
    // Garbage after a gzip signature.
    const bad = path.join(dir, 'bad.gz');
    fs.writeFileSync(bad, Buffer.from([0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    assert.throws(() => readIdxLabels(bad), (e: Error) => e.message.includes(bad) && /gzip/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('wrong magic (labels read as images, or garbage) names the file and both numbers', () => {
  const dir = tmpdir();
  try {
    writeSplit(dir, [0, 1]);
    const labels = path.join(dir, 't10k-labels-idx1-ubyte.gz');
    assert.throws(() => readIdxImages(labels), (e: Error) => e.message.includes(labels) && /wrong magic number 0x00000801, expected 0x00000803/.test(e.message));
    const junk = path.join(dir, 'junk');
    fs.writeFileSync(junk, Buffer.from('not an idx file at all'));
    assert.throws(() => readIdxLabels(junk), (e: Error) => e.message.includes(junk) && /wrong magic/.test(e.message));
    const tiny = path.join(dir, 'tiny');
    fs.writeFileSync(tiny, Buffer.from([0, 0]));
    assert.throws(() => readIdxLabels(tiny), (e: Error) => e.message.includes(tiny) && /too short/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a label out of range names the file and the first bad index', () => {
  const dir = tmpdir();
  try {
    writeSplit(dir, [0, 9, 2, 10, 11, 3]);
    assert.throws(
      () => loadFashionMNIST({ root: dir, split: 'test' }),
      (e: Error) => e.message.includes('t10k-labels-idx1-ubyte.gz') && /label 10 at index 3 is outside \[0, 10\)/.test(e.message),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('image and label counts must agree', () => {
  const dir = tmpdir();
  try {
    writeSplit(dir, [0, 1, 2]);
    fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte.gz'), zlib.gzipSync(idxBytes(0x801, [2], Uint8Array.from([0, 1]))));
    assert.throws(() => loadFashionMNIST({ root: dir, split: 'test' }), /has 3 images but .* has 2 labels/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing dataset says which Debian package to install', () => {
  const dir = tmpdir();
  try {
    assert.throws(
      () => loadFashionMNIST({ root: path.join(dir, 'nowhere'), split: 'train' }),
      (e: Error) => /dataset-fashion-mnist/.test(e.message) && /scripts\/setup\.sh/.test(e.message) && e.message.includes('train-images-idx3-ubyte'),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
