// A small seeded PRNG in JavaScript for shuffling and augmentation. It is separate from libtorch's generator
// on purpose: data order and augmentation then depend only on (seed, epoch, batch), so a run resumed from a
// checkpoint mid-epoch sees exactly the batches it would have seen, whatever the model consumed from
// libtorch's generator (dropout, initialization) in between.

/** Mixes 32-bit integers into one well-spread 32-bit seed (murmur3's finalizer over a running hash). */
export function deriveSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    if (!Number.isFinite(p)) throw new RangeError(`deriveSeed: parts must be finite numbers, got ${p}`);
    // Fold in both 32-bit halves so seeds above 2^32 still count.
    const lo = p >>> 0;
    const hi = Math.floor(p / 4294967296) >>> 0;
    h = Math.imul(h ^ lo, 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13) ^ hi, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** mulberry32: tiny, fast, and good enough for permutations and crop offsets (not for cryptography). */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = deriveSeed(seed);
  }

  /** A generator for one purpose, e.g. Rng.from(seed, epoch, batch). */
  static from(...parts: number[]): Rng {
    const r = new Rng(0);
    r.state = deriveSeed(...parts);
    return r;
  }

  /** Uniform on [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer uniform on [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /**
   * A generator for one purpose split off this one's current state, which it leaves where it was: a
   * transform drawing from a fork moves no draw of the transforms after it.
   */
  fork(stream: number): Rng {
    return Rng.from(this.state >>> 0, stream);
  }

  /** Standard normal (Box–Muller; one draw of the pair is used). */
  normal(): number {
    const u = 1 - this.next(); // (0, 1]: log(u) is finite
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /** Gamma(k, 1) (Marsaglia & Tsang 2000; for k < 1 boosted by U^(1/k)). */
  gamma(k: number): number {
    if (!(k > 0)) throw new RangeError(`Rng.gamma: the shape must be positive, got ${k}`);
    if (k < 1) return this.gamma(k + 1) * (1 - this.next()) ** (1 / k);
    const d = k - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      const x = this.normal();
      const v = (1 + c * x) ** 3;
      if (v <= 0) continue;
      const u = 1 - this.next();
      if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
    }
  }

  /** Beta(a, b), as Gamma(a) / (Gamma(a) + Gamma(b)). */
  beta(a: number, b: number): number {
    const x = this.gamma(a);
    return x / (x + this.gamma(b));
  }

  /** A uniformly random permutation of 0..n-1 (Fisher–Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }
}
