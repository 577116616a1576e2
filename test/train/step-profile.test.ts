// --profile-steps (src/train/step-profile.ts): libtorch's operator profile of the steps after the first few,
// counted per step; cut short by the epoch's end; never left running; and from the command line.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as T from '../../src/torch';
import { PROFILE_AFTER_STEPS, StepProfiler } from '../../src/train/step-profile';
import { tmpDir } from '../helpers/tmp';

/** Runs `steps` fake steps, each one aten::exp, through the profiler; returns what it reported. */
function run(profileSteps: number, steps: number, end: 'finish' | 'close'): { profile: T.OpProfile; steps: number }[] {
  const reports: { profile: T.OpProfile; steps: number }[] = [];
  const p = new StepProfiler(profileSteps, (profile, n) => reports.push({ profile, steps: n }));
  for (let i = 0; i < steps; i++) {
    p.beforeStep();
    T.tidy(() => void T.randn([4]).exp());
    p.afterStep();
  }
  if (end === 'finish') p.finish();
  else p.close();
  return reports;
}

test('the profile holds the steps after the first few, one report, cut short by an early end, and none after an error', () => {
  const exps = (r: { profile: T.OpProfile }): number | undefined => r.profile.ops.find((o) => o.name === 'aten::exp')?.calls;
  const full = run(3, PROFILE_AFTER_STEPS + 10, 'finish');
  assert.equal(full.length, 1);
  assert.equal(full[0].steps, 3);
  assert.equal(exps(full[0]), 3, 'steps 6–8 only');
  const short = run(5, PROFILE_AFTER_STEPS + 2, 'finish');
  assert.deepEqual(short.map((r) => [r.steps, exps(r)]), [[2, 2]], 'the epoch ended two steps in');
  assert.deepEqual(run(3, PROFILE_AFTER_STEPS, 'finish'), [], 'never started');
  assert.deepEqual(run(3, PROFILE_AFTER_STEPS + 1, 'close'), [], 'an error: no report');
  assert.equal(T.profileOps(() => 7).result, 7, 'and the profiler is off again');
});

test('train --profile-steps: every operator of the profiled steps in <out>/ops.txt, per step; the recipe unchanged', () => {
  const dir = tmpDir('tsv-profile-steps-');
  const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
  const r = spawnSync(process.execPath, [CLI, 'train', '--epochs', '1', '--limit-batches', '9', '--batch-size', '32', '--profile-steps', '2', '--threads', '1', '-o', dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const ops = fs.readFileSync(path.join(dir, 'ops.txt'), 'utf8');
  assert.match(ops, new RegExp(`time per operator of a training step \\(steps ${PROFILE_AFTER_STEPS + 1}–${PROFILE_AFTER_STEPS + 2} of this run, their batches' loading included\\): [\\d.]+ ms wall, [\\d.]+ ms in operators per step \\(2 steps\\); by self time, all \\d+ operators:`));
  // The CNN: 4 convolutions per step, forward and backward.
  assert.match(ops, /^aten::conv2d +4 /m);
  assert.match(ops, /^ConvolutionBackward0 +4 /m);
  assert.match(r.stderr + r.stdout, /\(every operator: .*ops\.txt\)/);
  assert.equal('profileSteps' in JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')).config, false);
});
