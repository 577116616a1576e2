// bench/distributed: data-parallel training throughput, tsvision's DDP over c10d gloo against PyTorch's
// DistributedDataParallel, on this machine's cores: one process with all the threads, then one process per
// core with a thread each and the global batch split between them. ResNet-18 (torchvision's layout on both
// sides), SGD with momentum, random data; interleaved rounds, medians of rank 0's step times.
//   node dist/bench/distributed.js [--rounds 3] [--steps 8] [--warmup 3] [--batch 32] [--size 64] [--no-write]
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PYTHON, ROOT, arg, machineLine, median, writeSection } from './common';
import { RankOptions } from './distributed-rank';

const rounds = Number(arg('rounds', '3'));
const steps = Number(arg('steps', '8'));
const warmup = Number(arg('warmup', '3'));
const batch = Number(arg('batch', '32'));
const size = Number(arg('size', '64'));
const cores = os.cpus().length;
const world = Math.max(2, cores);
if (batch % world) throw new Error(`--batch ${batch} must divide among ${world} ranks`);

type Side = 'tsvision' | 'pytorch';
type Config = 'single' | 'ddp';

/** Runs one process and returns its step times (RESULT line), or throws with its stderr. */
function runProcess(side: Side, o: RankOptions): Promise<number[]> {
  const [cmd, args] = side === 'tsvision' ? [process.execPath, [path.join(__dirname, 'distributed-rank.js'), JSON.stringify(o)]] : [PYTHON, [path.join(ROOT, 'bench', 'distributed_torch.py'), JSON.stringify(o)]];
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: { ...process.env, OMP_NUM_THREADS: String(o.threads) } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => void (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => void (err += d.toString()));
    p.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) reject(new Error(`${side} ${o.mode} rank ${o.rank} exited with ${code}:\n${err}`));
      else resolve((JSON.parse(line.slice(7)) as { ms: number[] }).ms);
    });
  });
}

async function runConfig(side: Side, config: Config): Promise<number[]> {
  const base = { steps, warmup, size, initMethod: '' };
  if (config === 'single') return runProcess(side, { ...base, mode: 'single', rank: 0, world: 1, batch, threads: cores });
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tsv-bench-ddp-')), 'store');
  try {
    const ranks = Array.from({ length: world }, (_, rank) => runProcess(side, { ...base, mode: 'ddp', rank, world, batch: batch / world, threads: Math.max(1, Math.floor(cores / world)), initMethod: `file://${file}` }));
    return (await Promise.all(ranks))[0];
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const times: Record<Config, Record<Side, number[]>> = { single: { tsvision: [], pytorch: [] }, ddp: { tsvision: [], pytorch: [] } };
  for (let r = 0; r < rounds; r++) {
    for (const config of (r % 2 ? ['ddp', 'single'] : ['single', 'ddp']) as Config[]) {
      for (const side of (r % 2 ? ['pytorch', 'tsvision'] : ['tsvision', 'pytorch']) as Side[]) {
        times[config][side].push(...(await runConfig(side, config)));
      }
    }
    console.log(`round ${r + 1}/${rounds} done`);
  }
  const rate = (ms: number): string => ((batch * 1000) / ms).toFixed(1);
  const label: Record<Config, string> = {
    single: `1 process × ${cores} threads, batch ${batch}`,
    ddp: `${world} processes × ${Math.max(1, Math.floor(cores / world))} thread, DDP over gloo, ${batch / world} per rank`,
  };
  const rows = (['single', 'ddp'] as Config[]).map((c) => {
    const [t, p] = [median(times[c].tsvision), median(times[c].pytorch)];
    console.log(`${c}: tsvision ${t.toFixed(1)} ms/step (${rate(t)} samples/s), PyTorch ${p.toFixed(1)} ms/step (${rate(p)} samples/s)`);
    return `| ${label[c]} | ${rate(t)} samples/s (${t.toFixed(0)} ms/step) | ${rate(p)} samples/s (${p.toFixed(0)} ms/step) | ${(t / p).toFixed(2)} |`;
  });
  const table = ['| ResNet-18, ' + `${size}×${size}, global batch ${batch}` + ' | tsvision | PyTorch eager | ratio (time) |', '|---|---|---|---|', ...rows].join('\n');
  console.log(table);
  const cmd = ['node dist/bench/distributed.js', ...process.argv.slice(2)].join(' ');
  writeSection(
    'distributed-cpu',
    `## Data-parallel training (cpu)\n\n\`${cmd}\` — ${machineLine('cpu')}; ${rounds} rounds, each running both set-ups on both sides (order alternating), every process timing ${steps} SGD-momentum steps after ${warmup} untimed ones on its own fixed random batch; medians of rank 0's step times; measured ${new Date().toISOString().slice(0, 10)}. ` +
      `tsvision: \`distributed.ddp\` (gradients averaged in 25 MB buckets after backward) over libtorch's c10d gloo. PyTorch: \`torch.nn.parallel.DistributedDataParallel\` over gloo (its all-reduces overlap backward). Both use a file store. The ratio is tsvision's step time over PyTorch's: below 1.0 tsvision is faster.\n\n${table}`,
  );
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
