// Shared benchmark plumbing: timing, medians, PyTorch peer runs, and BENCHMARKS.md sections.
import { ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import * as readline from 'node:readline';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomic } from '../src/util/fs';
import { cuda, engineInfo } from '../src/torch';

export const ROOT = path.resolve(__dirname, '..', '..');
export const PYTHON = process.env.TSVISION_PYTHON ?? '/usr/bin/python3';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** The value after `--name` on the command line, or `dflt`. */
export function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

/** Times fn `n` times after `warmup` calls; returns per-call milliseconds. */
export function timeEach(fn: () => void, n: number, warmup: number, sync = false): number[] {
  for (let i = 0; i < warmup; i++) fn();
  if (sync) cuda.synchronize();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = nowMs();
    fn();
    if (sync) cuda.synchronize();
    out.push(nowMs() - t0);
  }
  return out;
}

/** Runs a bench/*.py peer script with JSON arguments; it prints one JSON object on its last line. */
export function runPeer<R>(script: string, args: Record<string, unknown>): R {
  const r = spawnSync(PYTHON, [path.join(ROOT, 'bench', script), JSON.stringify(args)], { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`${script} failed:\n${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as R;
}

/**
 * A PyTorch peer that stays alive, so that both sides can be timed in alternating small blocks: on a noisy
 * shared machine, block-level interleaving exposes both to the same background load, where one block per
 * side (a process per round) lets a burst of load land on one side only. The script prints one JSON line when
 * ready and answers each JSON request line with one JSON line; {"task": "quit"} ends it.
 */
export class LivePeer {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterableIterator<string>;
  private stderr = '';

  private constructor(script: string, args: Record<string, unknown>) {
    this.proc = spawn(PYTHON, [path.join(ROOT, 'bench', script), JSON.stringify(args)]);
    this.proc.stderr.on('data', (d: Buffer) => void (this.stderr += d.toString()));
    this.lines = readline.createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
  }

  static async start<R>(script: string, args: Record<string, unknown>): Promise<{ peer: LivePeer; ready: R }> {
    const peer = new LivePeer(script, args);
    return { peer, ready: await peer.read<R>(script) };
  }

  private async read<R>(what: string): Promise<R> {
    const { value, done } = await this.lines.next();
    if (done) {
      if (this.proc.exitCode === null && this.proc.signalCode === null) await once(this.proc, 'close');
      throw new Error(`${what}: the PyTorch peer exited:\n${this.stderr}`);
    }
    return JSON.parse(value as string) as R;
  }

  async request<R>(req: Record<string, unknown>): Promise<R> {
    this.proc.stdin.write(`${JSON.stringify(req)}\n`);
    return this.read<R>(JSON.stringify(req));
  }

  async close(): Promise<void> {
    const closed = this.proc.exitCode === null && this.proc.signalCode === null ? once(this.proc, 'close') : Promise.resolve();
    this.proc.stdin.end(`${JSON.stringify({ task: 'quit' })}\n`);
    await closed;
  }
}

export const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function machineLine(device: string): string {
  const e = engineInfo();
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  if (device.startsWith('cuda')) {
    const smi = spawnSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], { encoding: 'utf8' });
    const gpu = smi.status === 0 ? smi.stdout.trim().split('\n')[0] : 'GPU';
    return `${gpu} (${device}), libtorch ${e.libtorchVersion} from PyTorch (LIBTORCH_USE_PYTORCH=1), peer PyTorch ${e.libtorchVersion}`;
  }
  // The instruction sets decide bfloat16's and int8's kernels (tsvision info): numbers from another host differ.
  const isa = `${{ native: 'AVX-512 with BF16', emulated: 'AVX-512', slow: 'AVX2, no AVX-512' }[e.bfloat16]}${e.int8 === 'vnni' ? ', VNNI' : ''}`;
  return `${cpu} (${isa}), ${os.cpus().length} cores, ${e.threads} threads for both, libtorch ${e.libtorchVersion}, allocator ${e.allocator}`;
}

/**
 * Replaces (or appends) the section between <!-- name:start --> and <!-- name:end --> in BENCHMARKS.md;
 * every bench given --no-write leaves the file alone.
 */
export function writeSection(name: string, body: string): void {
  if (process.argv.includes('--no-write')) return;
  const file = path.join(ROOT, 'BENCHMARKS.md');
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  let text = fs.existsSync(file)
    ? fs.readFileSync(file, 'utf8')
    : '# Benchmarks\n\nEvery number here was measured by the command shown beside it, tsvision and its PyTorch-eager peer in the same run, interleaved, medians. Ratios below 1.0 mean tsvision is faster.\n';
  const block = `${start}\n${body.trim()}\n${end}`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  text = i >= 0 && j > i ? text.slice(0, i) + block + text.slice(j + end.length) : `${text.trimEnd()}\n\n${block}\n`;
  writeFileAtomic(file, text);
}
