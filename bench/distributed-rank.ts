// One process of bench/distributed: a ResNet-18 training loop, alone (`single`) or as one rank of a gloo group
// (`ddp`), printing its per-step times. Run by bench/distributed.ts:  node distributed-rank.js <json options>
import { crossEntropy, manualSeed, randint, randn, setNumThreads, tidy } from '../src/torch';
import { createModel } from '../src/models/registry';
import { SGD } from '../src/optim';
import * as dist from '../src/distributed';
import { nowMs } from './common';

export interface RankOptions {
  mode: 'single' | 'ddp';
  rank: number;
  world: number;
  initMethod: string;
  /** This process's batch (its share of the global batch under ddp). */
  batch: number;
  size: number;
  threads: number;
  steps: number;
  warmup: number;
}

async function main(): Promise<void> {
  const o = JSON.parse(process.argv[2]) as RankOptions;
  setNumThreads(o.threads);
  if (o.mode === 'ddp') await dist.initProcessGroup({ backend: 'gloo', initMethod: o.initMethod, rank: o.rank, worldSize: o.world });
  manualSeed(0);
  const model = createModel('resnet18', { numClasses: 10 });
  const wrapped = o.mode === 'ddp' ? dist.ddp(model) : null;
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  manualSeed(1 + o.rank);
  const x = randn([o.batch, 3, o.size, o.size]).keep();
  const y = randint(0, 10, [o.batch]).keep();
  const ms: number[] = [];
  for (let i = 0; i < o.warmup + o.steps; i++) {
    const t0 = nowMs();
    tidy(() => {
      const loss = crossEntropy(wrapped ? wrapped.forward(x) : model.forward(x), y);
      opt.zeroGrad();
      loss.backward();
      wrapped?.syncGradients();
      opt.step();
    });
    if (i >= o.warmup) ms.push(nowMs() - t0);
  }
  if (o.mode === 'ddp') dist.destroyProcessGroup();
  console.log(`RESULT ${JSON.stringify({ ms })}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
