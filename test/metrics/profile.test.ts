// Per-layer timing (src/metrics/profile.ts) against work of known length: layers that busy-wait a set time,
// and a wait between layers that no module holds.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as T from '../../src/torch';
import { Conv2d, Module, ReLU } from '../../src/nn';
import { formatProfile, profileLayers } from '../../src/metrics/profile';

const busy = (ms: number): void => {
  const end = process.hrtime.bigint() + BigInt(Math.round(ms * 1e6));
  while (process.hrtime.bigint() < end);
};

// Waits long enough that no real layer of this tiny network comes near, even on a loaded machine.
const SLOW_MS = 30;
const BETWEEN_MS = 15;

class Slow extends Module {
  forward(x: T.Tensor): T.Tensor {
    busy(SLOW_MS);
    return x.relu();
  }
}

class Net extends Module {
  conv = new Conv2d(1, 4, 3, { padding: 1 });
  act = new ReLU();
  slow = new Slow();
  forward(x: T.Tensor): T.Tensor {
    const y = this.act.forward(this.conv.forward(x));
    busy(BETWEEN_MS); // between layers: in no module
    return this.act.forward(this.slow.forward(y));
  }
}

test('profileLayers times each layer call, per type and between the layers, and leaves the network as it was', () => {
  const net = new Net();
  const x = T.randn([2, 1, 10, 12]);
  const expected = net.forward(x).detach();
  const p = profileLayers(net, x, { passes: 3, warmup: 1 });
  // A module called twice (the shared ReLU) has a row per call, in execution order.
  assert.deepEqual(p.layers.map((l) => `${l.name} ${l.type}`), ['conv Conv2d', 'act ReLU', 'slow Slow', 'act#2 ReLU']);
  const slow = p.layers.find((l) => l.name === 'slow')!;
  assert.ok(slow.ms >= SLOW_MS, `the ${SLOW_MS} ms layer measured ${slow.ms} ms`);
  assert.ok(p.layers.every((l) => l === slow || l.ms < slow.ms), 'the busy layer is the slowest');
  assert.ok(p.betweenMs >= BETWEEN_MS && p.betweenMs < p.ms - SLOW_MS, `${BETWEEN_MS} ms between the layers, measured ${p.betweenMs} of ${p.ms} ms`);
  assert.ok(p.ms >= SLOW_MS + BETWEEN_MS, `a pass holds ${SLOW_MS + BETWEEN_MS} ms of waiting, measured ${p.ms}`);
  // Mult-adds for the batch: 2 images × 10·12 pixels × 4 filters × 1·3·3 taps.
  assert.equal(p.layers[0].multAdds, 2 * 10 * 12 * 4 * 9);
  assert.deepEqual(p.layers[0].outputShape, [2, 4, 10, 12]);
  assert.deepEqual(p.byType.map((t) => [t.type, t.calls]), [['Slow', 1], ...p.byType.slice(1).map((t) => [t.type, t.type === 'ReLU' ? 2 : 1])]);
  assert.equal(p.byType.find((t) => t.type === 'ReLU')!.ms, p.layers.filter((l) => l.type === 'ReLU').reduce((a, l) => a + l.ms, 0));
  // Restored: training mode, the prototype's forward, the same answer.
  assert.equal(net.training, true);
  for (const m of net.modules()) assert.equal(Object.prototype.hasOwnProperty.call(m, 'forward'), false);
  assert.equal(net.forward(x).sub(expected).abs().max().item(), 0);
  const text = formatProfile(p, { top: 2 });
  assert.match(text, /the 2 slowest of 4 layer calls:/);
  assert.match(text.split('\n').find((l) => l.includes('(Slow)'))!, /^slow \(Slow\) +\[2, 4, 10, 12\] +\d+\.\d{3} +\d+\.\d%/);
  assert.match(text, /\(between layers\) +\d+\.\d{3}/);
  assert.throws(() => profileLayers(net, x, { passes: 0 }), /passes must be a positive integer, got 0/);
});

test('summary --profile on the command line', () => {
  const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  const r = run('summary', 'cnn', '--input', '1,1,28,28', '--profile', '--passes', '2', '--top', '3', '--threads', '1');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /time per layer of the network as built: eval mode, batch 1, medians of 2 passes/);
  assert.match(r.stdout, /the 3 slowest of \d+ layer calls:/);
  assert.match(r.stdout, /^Conv2d +\d+ +\d+\.\d{3} +\d+\.\d% +\d+\.\d$/m);
  for (const flag of ['--passes', '--top']) assert.match(run('summary', 'cnn', flag, '3').stderr, new RegExp(`${flag} sets the profile: give --profile too`));
  // The network as Predictor runs it (optimizeForInference's wrapper holds it as `network`).
  const o = run('summary', 'cnn', '--input', '1,1,28,28', '--profile', 'optimized', '--passes', '2', '--top', '0', '--threads', '1');
  assert.equal(o.status, 0, o.stderr);
  assert.match(o.stdout, /time per layer of the network optimized \((oneDNN's|the ordinary) layout\): eval mode/);
  assert.match(o.stdout, /^network\.features\.0\.0 \(Conv2d\)/m);
  assert.match(run('summary', 'cnn', '--profile', 'fast').stderr, /--profile takes 'built', 'optimized', 'bfloat16', 'ops' or 'train', got 'fast'/);
  // Per libtorch operator, a training step: the CNN's 4 convolutions forward and backward, per pass.
  const t = run('summary', 'cnn', '--input', '2,1,28,28', '--profile', 'train', '--passes', '2', '--top', '0', '--threads', '1');
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /time per operator of a training step \(train mode, forward and backward\): [\d.]+ ms wall, [\d.]+ ms in operators per pass \(2 passes\)/);
  assert.match(t.stdout, /^aten::conv2d +4 +[\d.]+ +[\d.]+% +[\d.]+$/m);
  assert.match(t.stdout, /^ConvolutionBackward0 +4 /m);
});
