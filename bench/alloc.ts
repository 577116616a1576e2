// bench/alloc: what transparent huge pages change in the CPU allocator (native/src/allocator.cc), measured
// as the same work in fresh processes with TSVISION_HUGE_PAGES=1 and =0, alternating, medians.
//   node dist/bench/alloc.js [--rounds 3] [--no-write]
// Each process builds PSPNet (ResNet-50, OS 8) at 256×512 and times its first batch-1 inference call (every
// activation lands on fresh pages: the cold start of a server), then 3 more (steady state), then ICNet's
// batch-2 training steps (3 after one untimed); it counts minor page faults around each, and the peak RSS. No PyTorch peer: this
// compares tsvision with itself.
import { spawnSync } from 'node:child_process';
import * as T from '../src/torch';
import { createSegmentationModel } from '../src/models/registry';
import { SGD } from '../src/optim';
import { arg, machineLine, median, nowMs, writeSection } from './common';

interface Sample {
  allocator: string;
  firstMs: number;
  firstFaults: number;
  steadyMs: number;
  trainMs: number;
  trainFaults: number;
  peakRssMb: number;
}

const faults = (): number => process.resourceUsage().minorPageFault;

function child(): Sample {
  const time = (fn: () => void): [number, number] => {
    const [f0, t0] = [faults(), nowMs()];
    fn();
    return [nowMs() - t0, faults() - f0];
  };
  T.manualSeed(0);
  const psp = createSegmentationModel('pspnet', { numClasses: 19 }).eval();
  const x = T.randn([1, 3, 256, 512]).keep();
  const infer = (): void => T.tidy(() => T.noGrad(() => void psp.forward(x)));
  const [firstMs, firstFaults] = time(infer);
  const steady = [0, 1, 2].map(() => time(infer)[0]);
  const icnet = createSegmentationModel('icnet', { numClasses: 19 }).train();
  const opt = new SGD(icnet.parameters(), { lr: 0.01, momentum: 0.9 });
  const xb = T.randn([2, 3, 256, 512]).keep();
  const yb = T.randint(0, 19, [2, 256, 512]).keep();
  const step = (): void =>
    T.tidy(() => {
      const l = icnet.trainingLoss(xb, yb);
      opt.zeroGrad();
      l.backward();
      opt.step();
    });
  step();
  const steps = [0, 1, 2].map(() => time(step));
  const [trainMs, trainFaults] = [median(steps.map((s) => s[0])), median(steps.map((s) => s[1]))];
  return { allocator: T.engineInfo().allocator, firstMs, firstFaults, steadyMs: median(steady), trainMs, trainFaults, peakRssMb: process.resourceUsage().maxRSS / 1024 };
}

function main(): void {
  const rounds = Number(arg('rounds', '3'));
  const runs: Record<'1' | '0', Sample[]> = { '1': [], '0': [] };
  for (let r = 0; r < rounds; r++) {
    for (const huge of (r % 2 ? ['0', '1'] : ['1', '0']) as ('1' | '0')[]) {
      const p = spawnSync(process.execPath, [__filename, '--child'], { env: { ...process.env, TSVISION_HUGE_PAGES: huge }, encoding: 'utf8' });
      if (p.status !== 0) throw new Error(`bench/alloc child (TSVISION_HUGE_PAGES=${huge}) failed:\n${p.stderr}`);
      const s = JSON.parse(p.stdout.trim().split('\n').pop() ?? '{}') as Sample;
      runs[huge].push(s);
      console.log(`round ${r + 1}, huge pages ${huge === '1' ? 'on ' : 'off'}: PSPNet first call ${s.firstMs.toFixed(0)} ms (${s.firstFaults} faults), then ${s.steadyMs.toFixed(0)} ms; ICNet training step ${s.trainMs.toFixed(0)} ms (${s.trainFaults} faults)`);
    }
  }
  const m = (huge: '1' | '0', k: keyof Omit<Sample, 'allocator'>): number => median(runs[huge].map((s) => s[k]));
  const row = (what: string, k: keyof Omit<Sample, 'allocator'>, unit: string): string =>
    `| ${what} | ${m('1', k).toFixed(0)}${unit} | ${m('0', k).toFixed(0)}${unit} | ${(m('1', k) / m('0', k)).toFixed(2)} |`;
  const table = [
    '| what | huge pages (default) | TSVISION_HUGE_PAGES=0 | ratio |',
    '|---|---|---|---|',
    row('PSPNet 256×512 batch-1 inference, first call in a fresh process', 'firstMs', ' ms'),
    row('  its minor page faults', 'firstFaults', ''),
    row('PSPNet, the next 3 calls (median)', 'steadyMs', ' ms'),
    row('ICNet 256×512 batch-2 training step (median of 3 after 1)', 'trainMs', ' ms'),
    row('  its minor page faults', 'trainFaults', ''),
    row('peak resident memory of the process', 'peakRssMb', ' MB'),
  ].join('\n');
  console.log(table);
  const cmd = ['node dist/bench/alloc.js', ...process.argv.slice(2)].join(' ');
  writeSection(
    'alloc-cpu',
    `## CPU allocator: transparent huge pages (cpu)\n\n\`${cmd}\` — ${machineLine('cpu')}; ${rounds} rounds, each one fresh process per setting, the setting going first alternating; medians; measured ${new Date().toISOString().slice(0, 10)}. No PyTorch peer: tsvision against itself, the allocator's blocks of 2 MiB and more on transparent huge pages (${runs['1'][0]?.allocator}) or on 4 KiB pages. Ratio: huge pages over 4 KiB pages.\n\n${table}`,
  );
}

if (process.argv.includes('--child')) console.log(JSON.stringify(child()));
else main();
