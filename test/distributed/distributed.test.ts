// Data parallelism over libtorch's c10d: real worker processes (worker.ts) in one gloo group on 127.0.0.1,
// checked against values computed by hand, against PyTorch itself as a rank of the same group, and DDP
// against single-process training on the whole batch.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor, crossEntropy, loadSafetensors, manualSeed, setNumThreads, tidy } from '../../src/torch';
import { SGD } from '../../src/optim';
import { Module } from '../../src/nn';
import { freePort, resolveInit, shardOrder } from '../../src/distributed';
import { DDP_LR, DDP_STEPS, bnNet, ddpBatch, smallNet } from './worker';
import { PYTHON } from '../helpers/pytorch';
import { evaluate, train } from '../../src/train/trainer';
import { makeLoaders } from '../../src/train/datasets';
import { loadWeights, readCheckpoint } from '../../src/train/checkpoint';
import { createModel } from '../../src/models/registry';
import { tmpDir } from '../helpers/tmp';

const WORKER = path.join(__dirname, 'worker.js');
const TORCH_RANK = path.resolve(__dirname, '..', '..', '..', 'test', 'distributed', 'torch_rank.py');
const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Runs a command to its end (killed after limitMs), one thread for libtorch: the machine has 2 cores. */
function run(cmd: string, args: string[], limitMs = 60000, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const p = spawn(cmd, args, { env: { ...process.env, OMP_NUM_THREADS: '1', ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), limitMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, seconds: (Date.now() - t0) / 1000 });
    });
  });
}

function result(r: Run, who: string): Record<string, unknown> {
  assert.equal(r.code, 0, `${who} failed:\n${r.stderr}`);
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `${who} printed no result:\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(line.slice(7));
}

const worker = (scenario: string, o: Record<string, unknown>): Promise<Run> => run(process.execPath, [WORKER, scenario, JSON.stringify(o)]);

test('sharding is PyTorch DistributedSampler: disjoint, padded from the start, covering the epoch', () => {
  const order = Int32Array.from([5, 3, 8, 0, 1, 9, 2]);
  // DistributedSampler: total 8 → padded [5 3 8 0 1 9 2 5], rank r takes [r::2].
  assert.deepEqual(Array.from(shardOrder(order, { rank: 0, worldSize: 2 })), [5, 8, 1, 2]);
  assert.deepEqual(Array.from(shardOrder(order, { rank: 1, worldSize: 2 })), [3, 0, 9, 5]);
  // Padding longer than the order repeats it (2 samples over 5 ranks).
  assert.deepEqual([0, 1, 2, 3, 4].map((r) => shardOrder(Int32Array.from([7, 6]), { rank: r, worldSize: 5 })[0]), [7, 6, 7, 6, 7]);
  // Without padding (evaluation) the shards partition the order exactly.
  const shards = [0, 1, 2].map((r) => Array.from(shardOrder(order, { rank: r, worldSize: 3, pad: false })));
  assert.deepEqual(shards.flat().sort(), Array.from(order).sort());
  assert.throws(() => shardOrder(order, { rank: 2, worldSize: 2 }), /rank must be an integer in \[0, 2\)/);
});

test('init options default from RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT as torch.distributed', () => {
  const saved = { ...process.env };
  try {
    Object.assign(process.env, { RANK: '1', WORLD_SIZE: '3', MASTER_ADDR: '10.0.0.2', MASTER_PORT: '29501' });
    assert.deepEqual(resolveInit().store, { kind: 'tcp', host: '10.0.0.2', port: 29501, isServer: false, worldSize: 3, timeoutMs: 1800000, rank: 1 });
    assert.equal(resolveInit({ initMethod: 'tcp://127.0.0.1:1234', rank: 0 }).store.kind, 'tcp');
    assert.deepEqual(resolveInit({ initMethod: 'file:///tmp/s?rank=2&world_size=4' }), {
      rank: 2,
      worldSize: 4,
      store: { kind: 'file', path: '/tmp/s', worldSize: 4, timeoutMs: 1800000 },
    });
    delete process.env.MASTER_PORT;
    assert.throws(() => resolveInit(), /environment variable MASTER_PORT expected, but not set/);
    assert.throws(() => resolveInit({ initMethod: 'udp://x:1' }), /unsupported initMethod 'udp:\/\/x:1'/);
    assert.throws(() => resolveInit({ rank: 3, worldSize: 3, initMethod: 'tcp://h:1' }), /rank must be an integer in \[0, 3\)/);
  } finally {
    for (const k of ['RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT']) if (saved[k] === undefined) delete process.env[k];
    Object.assign(process.env, saved);
  }
});

test('two tsvision ranks over a TCP store: allReduce, broadcast, allGather give the values computed by hand', async () => {
  const port = await freePort();
  const runs = await Promise.all([0, 1].map((rank) => worker('collectives', { initMethod: `tcp://127.0.0.1:${port}`, rank, worldSize: 2 })));
  for (const [rank, r] of runs.entries()) {
    const res = result(r, `rank ${rank}`);
    // Rank r held [1,2,3]·(r+1): sums 3·[1,2,3], means 1.5·[1,2,3], maxima 2·[1,2,3]; [10r, -10r] → min [0, -10].
    assert.deepEqual(res.sum, [3, 6, 9]);
    assert.deepEqual(res.avg, [1.5, 3, 4.5]);
    assert.deepEqual(res.max, [2, 4, 6]);
    assert.deepEqual(res.min, [0, -10]);
    assert.deepEqual(res.sumInt, [3]);
    assert.deepEqual(res.broadcast, [1, 1.5], 'broadcast from rank 1 = rank 1\'s [1, 1.5]');
    assert.deepEqual(res.allGather, [[0, 100], [1, 101]]);
    assert.match(String(res.stridedError), /^allReduce: needs a contiguous tensor, got a strided Tensor\[2, 2\]/);
    assert.match(String(res.avgIntError), /^allReduce: 'avg' needs a floating-point tensor, got Tensor\[1\] int64 cpu/);
    assert.deepEqual(res.afterErrors, [3, 6, 9]);
  }
});

test('a tsvision rank and a PyTorch rank share one process group and agree with PyTorch', async () => {
  const port = await freePort();
  const init = `tcp://127.0.0.1:${port}`;
  // tsvision is rank 0 (it hosts the TCP store); PyTorch's init_process_group joins as rank 1.
  const [node, py] = await Promise.all([worker('interop', { initMethod: init, rank: 0, worldSize: 2 }), run(PYTHON, [TORCH_RANK, init, '1', '2'])]);
  const a = result(node, 'tsvision rank 0');
  const b = result(py, 'PyTorch rank 1');
  const expected = { sum: [3, 6, 9], max: [2, 4, 6], broadcast: [1, 1.5], allGather: [[0, 100], [1, 101]] };
  for (const [k, v] of Object.entries(expected)) {
    assert.deepEqual(b[k], v, `PyTorch ${k}`);
    assert.deepEqual(a[k], v, `tsvision ${k}`);
  }
});

/**
 * The single-process reference of the DDP tests: rank 0's initial weights (seed 100), DDP_STEPS SGD steps on
 * the whole batch with the mean loss. Returns the model and its initial state.
 */
function referenceSteps(make: () => Module & { forward(x: Tensor): Tensor }): { model: Module; initial: Record<string, Tensor> } {
  setNumThreads(1);
  const { x, y } = ddpBatch();
  manualSeed(100);
  const model = make();
  const initial = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, t.clone().keep()]));
  const opt = new SGD(model.parameters(), { lr: DDP_LR, momentum: 0.9 });
  for (let s = 0; s < DDP_STEPS; s++) {
    tidy(() => {
      const loss = crossEntropy(model.forward(x), y);
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
  }
  return { model, initial };
}

const maxDiff = (a: Tensor, b: Tensor): number => tidy(() => a.sub(b).abs().max().item());

test('DDP over a file store: 2 ranks on half batches take the same steps as one process on the whole batch', async () => {
  const dir = tmpDir('tsv-ddp-');
  try {
    const out = (r: number): string => path.join(dir, `rank${r}.safetensors`);
    const runs = await Promise.all([0, 1].map((rank) => worker('ddp', { initMethod: `file://${dir}/store`, rank, worldSize: 2, out: out(rank) })));
    runs.forEach((r, rank) => result(r, `rank ${rank}`));

    const { model, initial } = referenceSteps(smallNet);
    for (const rank of [0, 1]) {
      const got = loadSafetensors(out(rank)).tensors;
      for (const [k, want] of Object.entries(model.stateDict())) {
        assert.ok(maxDiff(got[k], want) <= 1e-5, `rank ${rank} ${k}: max |diff| ${maxDiff(got[k], want)}`);
        // The comparison can fail: training moved every tensor far more than the tolerance.
        assert.ok(maxDiff(initial[k], want) > 1e-3, `${k} barely moved`);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SyncBatchNorm: 2 ranks on half batches equal one process with BatchNorm on the whole batch (statistics and steps); without it they do not', async () => {
  const dir = tmpDir('tsv-syncbn-');
  try {
    const out = (tag: string, r: number): string => path.join(dir, `${tag}${r}.safetensors`);
    const both = async (tag: string, sync: boolean): Promise<void> => {
      const runs = await Promise.all([0, 1].map((rank) => worker('syncbn', { initMethod: `file://${dir}/store-${tag}`, rank, worldSize: 2, out: out(tag, rank), sync })));
      runs.forEach((r, rank) => {
        const res = result(r, `${tag} rank ${rank}`);
        if (sync) assert.equal(res.converted, 2);
      });
    };
    await both('sync', true);
    await both('local', false);
    const { model } = referenceSteps(bnNet);
    const want = model.stateDict();
    for (const rank of [0, 1]) {
      const got = loadSafetensors(out('sync', rank)).tensors;
      for (const [k, w] of Object.entries(want)) assert.ok(maxDiff(got[k], w) <= 1e-5, `rank ${rank} ${k}: max |diff| ${maxDiff(got[k], w)}`);
    }
    // The control: each rank normalizing its own half moves the statistics and the weights elsewhere.
    const local = loadSafetensors(out('local', 0)).tensors;
    assert.ok(maxDiff(local['1.running_var'], want['1.running_var']) > 1e-3, 'per-rank statistics differ from the global ones');
    assert.ok(maxDiff(local['0.weight'], want['0.weight']) > 1e-4, 'and so do the steps');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a rank that cannot reach the store fails within its timeout, naming the rank and the address', async () => {
  const port = await freePort(); // nobody listens there
  const r = await worker('collectives', { initMethod: `tcp://127.0.0.1:${port}`, rank: 1, worldSize: 2, timeoutMs: 2000 });
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`rank 1 could not reach the store at 127\\.0\\.0\\.1:${port} within 2 s`));
  assert.ok(r.seconds < 20, `took ${r.seconds} s`);
});

test('tsvision launch stops every rank when one fails and exits non-zero naming it', async () => {
  const r = await run(process.execPath, [CLI, 'launch', '--nproc', '2', '--script', WORKER, '--', 'fail', '{}']);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /\[rank 1\] rank 1 fails on purpose/);
  assert.match(r.stderr, /tsvision launch: rank 1 failed \(exit code 3\); stopping the other ranks/);
  assert.ok(r.seconds < 30, `rank 0 was not stopped (took ${r.seconds} s)`);
});

test('tsvision launch --nproc 2 -- train: rank 0 reports the global test accuracy and alone writes the outputs', async () => {
  const dir = tmpDir('tsv-launch-');
  try {
    const r = await run(process.execPath, [CLI, 'launch', '--nproc', '2', '--', 'train', '--epochs', '1', '--limit-batches', '2', '--batch-size', '64', '-o', dir], 120000);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /× 2 processes \(32 samples each\)/);
    assert.equal((r.stdout.match(/test accuracy: top-1/g) ?? []).length, 1, 'printed once, by rank 0');
    assert.doesNotMatch(r.stdout + r.stderr, /\[rank 1\]/, 'rank 1 stays quiet');
    const report = JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8'));
    assert.equal(report.history.length, 1);
    for (const f of ['checkpoint.safetensors', 'model.safetensors', 'curves.png']) assert.ok(fs.existsSync(path.join(dir, f)), f);
    // Global, not rank 0's half: each rank evaluated 2 batches of 500 of its shard (every other image), so
    // together the first 2,000 test images — which one process evaluates here with the saved weights.
    setNumThreads(1);
    const { test: loader, numClasses, inChannels } = makeLoaders({ kind: 'fashion-mnist' }, { batchSize: 64, seed: 0, augment: false });
    const model = createModel('cnn', { numClasses, inChannels, smallInput: true });
    loadWeights(path.join(dir, 'model.safetensors'), model);
    const ev = await evaluate(model, loader, 4);
    assert.equal(ev.count, 2000);
    assert.equal(report.history[0].testTop1, ev.top1);
    assert.ok(Math.abs(report.history[0].testLoss - ev.loss) < 1e-5, `test loss ${report.history[0].testLoss} vs ${ev.loss}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('tsvision launch across two "machines" (two launchers, --nnodes 2, one rank each): global ranks, one world, node 0 reports and writes', async () => {
  const dir = tmpDir('tsv-launch-nodes-');
  try {
    const port = await freePort();
    const node = (rank: number) => run(process.execPath, [CLI, 'launch', '--nnodes', '2', '--node-rank', String(rank), '--master-addr', '127.0.0.1', '--master-port', String(port), '--nproc', '1', '--', 'train', '--epochs', '1', '--limit-batches', '2', '--batch-size', '64', '-o', dir], 120000);
    const [n0, n1] = await Promise.all([node(0), node(1)]);
    assert.equal(n0.code, 0, n0.stderr);
    assert.equal(n1.code, 0, n1.stderr);
    // One world of two processes: the global batch split in two, the accuracy printed once, by node 0.
    assert.match(n0.stderr, /× 2 processes \(32 samples each\)/);
    assert.equal((n0.stdout.match(/test accuracy: top-1/g) ?? []).length, 1);
    assert.doesNotMatch(n1.stdout, /test accuracy/);
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')).history.length, 1);
    const bad = await run(process.execPath, [CLI, 'launch', '--nnodes', '2', '--nproc', '1', '--', 'train']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /with 2 nodes every launcher needs node 0's address and one port, the same on all: give --master-addr and --master-port/);
    const outside = await run(process.execPath, [CLI, 'launch', '--nnodes', '2', '--node-rank', '2', '--master-addr', '127.0.0.1', '--master-port', String(port), '--nproc', '1', '--', 'train']);
    assert.match(outside.stderr, /node rank must be an integer in \[0, 1\], got 2/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a rank failing on one machine stops the ranks on the other: their collective fails and both launchers exit non-zero', async () => {
  const port = await freePort();
  const node = (rank: number) =>
    run(process.execPath, [CLI, 'launch', '--nnodes', '2', '--node-rank', String(rank), '--master-addr', '127.0.0.1', '--master-port', String(port), '--nproc', '1', '--script', WORKER, '--', 'fail-in-collectives', '{}'], 90000);
  const [n0, n1] = await Promise.all([node(0), node(1)]);
  assert.equal(n1.code, 3, n1.stderr);
  assert.match(n1.stderr, /tsvision launch: rank 1 failed \(exit code 3\); stopping the other ranks on this machine/);
  // Node 0's rank 0 learns of it from gloo, not from a launcher: its all-reduce fails and it exits non-zero.
  assert.notEqual(n0.code, 0, n0.stderr);
  assert.match(n0.stderr, /tsvision launch: rank 0 failed \(exit code \d+\)/);
  assert.ok(n0.seconds < 60, `rank 0 kept waiting (${n0.seconds} s)`);
});

test('SIGTERM to tsvision launch (a job system stopping it): the ranks end on the same step, rank 0 checkpoints it, exit code 143', async () => {
  const dir = tmpDir('tsv-launch-term-');
  try {
    const p = spawn(process.execPath, [CLI, 'launch', '--nproc', '2', '--', 'train', '--epochs', '1', '--batch-size', '16', '-o', dir], { env: { ...process.env, OMP_NUM_THREADS: '1' } });
    let stderr = '';
    const timer = setTimeout(() => p.kill('SIGKILL'), 120000);
    const code = await new Promise<number | null>((resolve) => {
      p.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        // Once training is under way (rank 0's progress line).
        if (/\[\s*\d+\/\d+\]/.test(stderr) && !p.killed) p.kill('SIGTERM');
      });
      p.on('close', (c) => resolve(c));
    });
    clearTimeout(timer);
    assert.equal(code, 143, stderr.slice(-800));
    assert.match(stderr, /tsvision launch: stopped by SIGTERM/);
    assert.doesNotMatch(stderr, /failed/);
    const state = readCheckpoint(path.join(dir, 'checkpoint.safetensors')).state;
    assert.equal(state.epoch, 0);
    assert.ok(state.batch > 0 && state.batch < 1875, `batch ${state.batch}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('tsvision launch --nproc 2 -- dsd, -- mimic and -- prune: every phase trains data-parallel, rank 0 alone writes, and each phase\'s losses are one process\'s on the whole batch', async () => {
  const dir = tmpDir('tsv-ddp-phases-');
  try {
    setNumThreads(1);
    const teacher = await train({ model: 'cnn', modelOptions: { widths: [4, 8], hidden: 16 }, data: { kind: 'fashion-mnist', labelled: 300 }, epochs: 1, batchSize: 50, limitBatches: 2, threads: 1, outDir: path.join(dir, 'teacher') }, () => {});
    // `shallow` has neither BatchNorm nor dropout, so half batches on two ranks are the whole batch exactly.
    const commands: Record<string, (out: string) => string[]> = {
      dsd: (out) => ['dsd', '-m', 'shallow', '--opt', 'conv=4', '--opt', 'hidden=16', '--dense-epochs', '1', '--sparse-epochs', '1', '--redense-epochs', '1', '--limit-batches', '2', '--batch-size', '64', '--threads', '1', '-o', out],
      mimic: (out) => ['mimic', '-t', teacher.checkpoint, '--opt', 'conv=4', '--opt', 'hidden=16', '--labelled', '300', '--unlabelled-rest', '--epochs', '1', '--limit-batches', '2', '--batch-size', '64', '--threads', '1', '-o', out],
    };
    // The training loss of every epoch of every phase, in order. (Not the test loss: with --limit-batches each
    // rank scores the first batches of its own shard, other images than one process's first batches.)
    const losses = (r: Run): number[] => [...r.stderr.matchAll(/train loss ([\d.]+), test loss/g)].map((m) => Number(m[1]));
    for (const [name, args] of Object.entries(commands)) {
      const [par, one] = await Promise.all([
        run(process.execPath, [CLI, 'launch', '--nproc', '2', '--', ...args(path.join(dir, `${name}-par`))], 240000),
        run(process.execPath, [CLI, ...args(path.join(dir, `${name}-one`))], 240000),
      ]);
      assert.equal(par.code, 0, par.stderr);
      assert.equal(one.code, 0, one.stderr);
      // DSD: D, S, re-D and the control's 2 epochs; mimic: the student by mimicry and its control.
      const [phases, epochs] = name === 'dsd' ? [4, 5] : [2, 2];
      assert.equal(par.stderr.match(/× 2 processes \(32 samples each\)/g)?.length, phases, `${name}: every phase data-parallel`);
      assert.doesNotMatch(par.stdout + par.stderr, /\[rank 1\]/, 'rank 1 stays quiet');
      assert.equal(par.stdout.match(/^summary: /gm)?.length, 1, 'rank 0 alone prints');
      const [p, q] = [losses(par), losses(one)];
      assert.equal(p.length, epochs);
      p.forEach((x, i) => assert.ok(Math.abs(x - q[i]) <= 2e-4 * Math.max(1, q[i]), `${name}: ${p} vs ${q}`));
      const files = (d: string): string[] => fs.readdirSync(path.join(dir, d)).sort();
      assert.deepEqual(files(`${name}-par`), files(`${name}-one`));
      assert.ok(files(`${name}-par`).includes('SUMMARY.md'));
    }
    // The teacher and the students' fidelity are scored on the ranks' shares of the test set, added up: with
    // --limit-batches 2 (batches of 500) each rank scored every other image of the first 2,000, one process
    // the first 1,000; the teacher's top-1 is one process's on those 2,000.
    const mimicReport = (d: string) => JSON.parse(fs.readFileSync(path.join(dir, d, 'report.json'), 'utf8')) as { teacher: { testTop1: number }; fidelity: { mimic: { images: number } } };
    const [mpar, mone] = [mimicReport('mimic-par'), mimicReport('mimic-one')];
    assert.deepEqual([mpar.fidelity.mimic.images, mone.fidelity.mimic.images], [2000, 1000]);
    const { test: testLoader } = makeLoaders({ kind: 'fashion-mnist' }, { batchSize: 500, seed: 0, augment: false });
    const onFirst2000 = await evaluate(teacher.model, testLoader, 4);
    assert.ok(Math.abs(mpar.teacher.testTop1 - onFirst2000.top1) < 1e-12, `${mpar.teacher.testTop1} vs ${onFirst2000.top1}`);

    // Filter pruning: the fine-tuning data-parallel; rank 0 alone writes the pruned weights, times and reports.
    const prune = await run(process.execPath, [CLI, 'launch', '--nproc', '2', '--', 'prune', '-c', teacher.checkpoint, '--finetune-epochs', '1', '--limit-batches', '2', '--threads', '1', '-o', path.join(dir, 'prune')], 240000);
    assert.equal(prune.code, 0, prune.stderr);
    assert.equal(prune.stderr.match(/× 2 processes \(25 samples each\)/g)?.length, 1, "the fine-tuning is data-parallel, in the original run's batch of 50");
    assert.equal(prune.stdout.match(/^summary: /gm)?.length, 1);
    assert.doesNotMatch(prune.stdout + prune.stderr, /\[rank 1\]/);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'prune')).sort(), ['SUMMARY.md', 'curves.png', 'finetune', 'pruned.safetensors', 'report.json']);
    const measured = JSON.parse(fs.readFileSync(path.join(dir, 'prune', 'report.json'), 'utf8')) as { original: { ms: number } };
    assert.ok(measured.original.ms > 0, 'rank 0 timed the networks');

    const refused = await run(process.execPath, [CLI, 'launch', '--nproc', '2', '--', 'eval', teacher.checkpoint]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /eval does not train data-parallel; launch runs train, segment, dsd, mimic or prune/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('tsvision launch --nproc 2 -- segment: rank 0 alone writes; the first step and the score match one process on the whole batch', async () => {
  const dir = tmpDir('tsv-ddp-seg-');
  try {
    // No dropout (each rank would draw its own masks), no class weights (a weighted mean per share is not the
    // weighted mean of the batch), SGD (Adam's first step is ±lr wherever a gradient is near zero). One step:
    // exactness over many steps is the worker test's; here ENet's max-pooling meets exact ties on the scenes'
    // flat backgrounds, which last-bit differences (other conv kernels for a batch of 4 than of 8, the
    // synchronized BatchNorm's own arithmetic) break differently, so later steps drift apart even between
    // two single-process runs with the two BatchNorm implementations.
    const args = (out: string): string[] => ['segment', '--opt', 'dropout=0', '--opt', 'dropoutStage1=0', '--class-weights', 'none', '--optimizer', 'sgd', '--lr', '0.01', '--epochs', '1', '--limit-batches', '1', '--size', '32', '--train-scenes', '48', '--test-scenes', '20', '--batch-size', '8', '--threads', '1', '-o', out];
    const [par, one] = await Promise.all([
      run(process.execPath, [CLI, 'launch', '--nproc', '2', '--', ...args(path.join(dir, 'par'))], 240000),
      run(process.execPath, [CLI, ...args(path.join(dir, 'one'))], 240000),
    ]);
    assert.equal(par.code, 0, par.stderr);
    assert.equal(one.code, 0, one.stderr);
    assert.match(par.stderr, /data parallel: 2 processes × 4 images, BatchNorm synchronized/);
    assert.equal(par.stdout.match(/test: mIoU/g)?.length, 1, 'rank 0 alone prints');
    assert.deepEqual(fs.readdirSync(path.join(dir, 'par')).sort(), ['checkpoint.safetensors', 'curves.png', 'model.safetensors', 'overlays.png', 'report.json']);
    // The first loss is the mean over the whole batch of 8 (averaged from the two shares of 4).
    const firstLoss = (r: Run): string => /\[1\/1\] loss ([\d.]+)/.exec(r.stderr)![1];
    assert.equal(firstLoss(par), firstLoss(one));
    const weights = (d: string): Record<string, Tensor> => loadSafetensors(path.join(dir, d, 'model.safetensors')).tensors;
    const [a, b] = [weights('par'), weights('one')];
    let worst = 0;
    for (const [k, t] of Object.entries(b)) worst = Math.max(worst, tidy(() => a[k].to('float64').sub(t.to('float64')).abs().max().item()));
    assert.ok(worst < 1e-3, `max |difference| of the weights ${worst}`);
    // The test score summed over the ranks' shards is the whole test set's.
    const report = (d: string): { history: { testLoss: number; testPixelAccuracy: number }[] } => JSON.parse(fs.readFileSync(path.join(dir, d, 'report.json'), 'utf8'));
    const [p, q] = [report('par').history[0], report('one').history[0]];
    for (const k of ['testLoss', 'testPixelAccuracy'] as const) assert.ok(Math.abs(p[k] - q[k]) < 1e-3, `${k}: ${p[k]} vs ${q[k]}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('launch -- segment on folders: each rank counts its share of the masks, and every rank gets the whole set\'s ENet class weights', async () => {
  const dir = tmpDir('tsv-ddp-fold-');
  try {
    // Seven pairs (an odd count: the shares differ in size), labels 0–2 drawn unevenly so the weights differ.
    const sharp = (await import('sharp')).default;
    let seed = 7;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (const split of ['train', 'test']) {
      for (const sub of ['images', 'masks']) fs.mkdirSync(path.join(dir, split, sub), { recursive: true });
      for (let i = 0; i < 7; i++) {
        const img = Buffer.from(Array.from({ length: 16 * 16 * 3 }, () => Math.floor(rand() * 256)));
        const mask = Buffer.from(Array.from({ length: 16 * 16 }, () => (rand() < 0.7 ? 0 : rand() < 0.8 ? 1 : 2)));
        await sharp(img, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(path.join(dir, split, 'images', `p${i}.png`));
        await sharp(mask, { raw: { width: 16, height: 16, channels: 1 } }).png().toFile(path.join(dir, split, 'masks', `p${i}.png`));
      }
    }
    const args = (out: string): string[] => ['segment', '--train-dir', path.join(dir, 'train'), '--test-dir', path.join(dir, 'test'), '--num-classes', '3', '--no-augment', '--epochs', '1', '--limit-batches', '1', '--batch-size', '2', '--threads', '1', '-o', out];
    const [par, one] = await Promise.all([
      run(process.execPath, [CLI, 'launch', '--nproc', '2', '--', ...args(path.join(dir, 'par'))], 240000),
      run(process.execPath, [CLI, ...args(path.join(dir, 'one'))], 240000),
    ]);
    assert.equal(par.code, 0, par.stderr);
    assert.equal(one.code, 0, one.stderr);
    const weights = (d: string): number[] => JSON.parse(fs.readFileSync(path.join(dir, d, 'report.json'), 'utf8')).classWeights;
    // ENet's 1 / ln(1.02 + p) over the whole training set's pixel frequencies, counted by hand here.
    const counts = [0, 0, 0];
    for (let i = 0; i < 7; i++) {
      const { data } = await sharp(path.join(dir, 'train', 'masks', `p${i}.png`)).raw().toBuffer({ resolveWithObject: true });
      for (const v of data) counts[v]++;
    }
    const total = counts.reduce((a, b) => a + b);
    const want = counts.map((c) => 1 / Math.log(1.02 + c / total));
    for (const w of [weights('par'), weights('one')]) want.forEach((v, k) => assert.ok(Math.abs(w[k] - v) < 1e-5, `class ${k}: ${w[k]} vs ${v}`));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
