// DSD end to end on Fashion-MNIST (a few batches a phase): the phases chain through their weights, S holds
// exactly the pruned fraction, re-D restores the connections at a tenth of the learning rate, the control is
// the paper's, and a rerun reuses finished phases but refuses a folder holding other settings.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as T from '../../src/torch';
import { runDsd, runSegmentDsd } from '../../src/methods/dsd';
import { SEGMENT_RECIPES, SegmentConfig, trainSegmentation } from '../../src/train/segment';
import { fitWeights, readCheckpoint, readWeights } from '../../src/train/checkpoint';
import { countZeroParameters, prunableWeights } from '../../src/methods/prune';
import { createModel, createSegmentationModel } from '../../src/models/registry';
import { spawnSync } from 'node:child_process';
import { writeLeftRightFolder } from '../helpers/folders';
import { tmpDir } from '../helpers/tmp';

const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

const small = { widths: [8, 16] as [number, number], hidden: 32 };
const base = { model: 'cnn' as const, modelOptions: small, batchSize: 64, limitBatches: 8, threads: 1, lr: 0.05 };

function weights(file: string): Map<string, T.Tensor> {
  const m = createModel('cnn', { ...small, numClasses: 10, inChannels: 1 });
  m.loadStateDict(T.loadSafetensors(file).tensors);
  return new Map(prunableWeights(m));
}

test('DSD: dense → sparse (masks held) → re-dense at lr/10, with the control, and reruns reuse phases', async () => {
  const out = tmpDir('tsv-dsd-');
  const logs: string[] = [];
  const cfg = { base, outDir: out, sparsity: 0.5, denseEpochs: 1, sparseEpochs: 1, redenseEpochs: 1 };
  const r = await runDsd(cfg, (l) => logs.push(l));
  assert.ok(r.dense && r.control);
  assert.deepEqual([r.dense.lr, r.sparse.lr, r.redense.lr, r.control.lr], [0.05, 0.05, 0.005, 0.005]);
  assert.equal(r.control.epochs, 2, 'control: S + re-D epochs');
  const cfgOf = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')).config;
  assert.equal(cfgOf(r.sparse.dir).init, r.dense!.weights);
  assert.equal(cfgOf(r.redense.dir).init, r.sparse.weights);
  assert.equal(cfgOf(r.control.dir).init, r.dense!.weights);
  assert.equal(cfgOf(r.redense.dir).method, null);

  const [dense, sparse, redense] = [weights(r.dense.weights), weights(r.sparse.weights), weights(r.redense.weights)];
  const names = [...sparse.keys()];
  for (const [i, n] of names.entries()) {
    const zeros = (w: T.Tensor) => w.eq(0).sum().item();
    const w = sparse.get(n)!;
    if (i === 0) assert.equal(zeros(w), 0, 'first layer left dense');
    else {
      assert.equal(zeros(w), Math.floor(0.5 * w.numel()), `${n}: half of the weights exactly zero after S`);
      // The pruned set is the smaller half of the dense weights: every pruned |w| ≤ every kept one.
      const d = dense.get(n)!.abs();
      assert.ok(d.maskedSelect(w.eq(0)).max().item() <= d.maskedSelect(w.ne(0)).min().item(), `${n}: pruned by magnitude`);
      // re-D trains the pruned connections again from zero. In a convolution every weight sees input; a
      // linear layer's inputs that are always 0 here (ReLU features over Fashion-MNIST's black border) give
      // their weights no gradient, so there only "fewer zeros" can be asked.
      const z = zeros(redense.get(n)!);
      if (w.ndim === 4) assert.ok(z < 0.01 * w.numel(), `${n}: re-D brings the pruned connections back (${z} zeros)`);
      else assert.ok(z < 0.75 * zeros(w), `${n}: re-D brings most pruned connections back (${z} of ${zeros(w)} still zero)`);
    }
  }
  // What `tsvision eval` reports: the zeros of the sparse model are the pruned weights and no others.
  const sparseModel = createModel('cnn', { ...small, numClasses: 10, inChannels: 1 });
  sparseModel.loadStateDict(T.loadSafetensors(r.sparse.weights).tensors);
  assert.equal(countZeroParameters(sparseModel), names.slice(1).reduce((a, n) => a + Math.floor(0.5 * sparse.get(n)!.numel()), 0));
  const summary = fs.readFileSync(r.summary, 'utf8');
  for (const row of ['| D |', '| S |', '| re-D |', '| control |']) assert.ok(summary.includes(row), row);
  assert.ok(fs.statSync(r.curves).size > 1000);

  const again = await runDsd(cfg, (l) => logs.push(l));
  assert.ok([again.dense!, again.sparse, again.redense, again.control!].every((p) => p.reused));
  assert.equal(again.redense.testTop1, r.redense.testTop1);
  await assert.rejects(runDsd({ ...cfg, sparsity: 0.3 }, () => {}), /holds a different run \(sparse phase/);

  // Starting from a trained dense model skips D.
  const fromDense = await runDsd({ ...cfg, outDir: path.join(out, 'from-dense'), dense: r.dense!.weights, control: false }, () => {});
  assert.equal(fromDense.dense, null);
  assert.equal(fromDense.control, null);
  assert.equal(fromDense.sparse.testTop1, r.sparse.testTop1, 'same start, same S phase');
});

test('tsvision dsd takes train\'s label options: every phase weighs classes, mixes images and scores a validation split', async () => {
  const root = tmpDir('tsv-dsd-cli-');
  await writeLeftRightFolder(path.join(root, 'data'), 10, 5);
  const out = path.join(root, 'run');
  const r = spawnSync(process.execPath, [CLI, 'dsd', '--train-dir', path.join(root, 'data'), '--image-size', '16', '--opt', 'widths=4,8', '--opt', 'hidden=8', '-b', '4', '--threads', '1',
    '--dense-epochs', '1', '--sparse-epochs', '1', '--redense-epochs', '1', '--no-control', '--val-split', '0.25', '--class-weights', 'balanced', '--mixup', '0.2', '-o', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  for (const phase of ['dense', 'sparse', 'redense']) {
    const rep = JSON.parse(fs.readFileSync(path.join(out, phase, 'report.json'), 'utf8')) as { config: { classWeights: string; mixup: number; data: { valSplit: number } }; history: { valTop1?: number }[] };
    assert.deepEqual([rep.config.classWeights, rep.config.mixup, rep.config.data.valSplit], ['balanced', 0.2, 0.25], phase);
    assert.ok(rep.history.every((h) => typeof h.valTop1 === 'number'), `${phase} scores its validation images every epoch`);
    assert.ok(fs.existsSync(path.join(out, phase, 'best.safetensors')), `${phase}: best.safetensors`);
  }
  // Mimic's student fits logits, not labels: the label options are not its.
  const m = spawnSync(process.execPath, [CLI, 'mimic', '--class-weights', 'balanced'], { encoding: 'utf8' });
  assert.notEqual(m.status, 0);
  assert.match(m.stderr, /unknown option '--class-weights'/);
  fs.rmSync(root, { recursive: true, force: true });
});

test('DSD of a segmentation network: segment phases from a trained ENet, its data and recipe, masks held and checkpointed, scored by mIoU', async () => {
  const out = tmpDir('tsv-dsd-seg-');
  const scenes = { size: 64, trainCount: 48, testCount: 32, maxItems: 2 };
  const quick = { limitBatches: 3, threads: 1 };
  const dense = await trainSegmentation({ model: 'enet', scenes, epochs: 1, seed: 3, outDir: path.join(out, 'enet'), ...quick }, () => {});
  const r = await runSegmentDsd({ base: quick, dense: dense.checkpoint, outDir: path.join(out, 'dsd'), sparsity: 0.5, sparseEpochs: 1, redenseEpochs: 1 }, () => {});
  assert.equal(r.dense, null, 'D is the given run');
  assert.ok(r.control);
  const enetLr = SEGMENT_RECIPES.enet.lr;
  assert.deepEqual([r.sparse.lr, r.redense.lr, r.control.lr], [enetLr, enetLr / 10, enetLr / 10]);
  const cfgOf = (dir: string): SegmentConfig => JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')).config;
  for (const p of [r.sparse, r.redense, r.control]) {
    const c = cfgOf(p.dir);
    assert.deepEqual([c.model, c.scenes, c.seed, c.optimizer], ['enet', { ...scenes }, 3, SEGMENT_RECIPES.enet.optimizer], `${p.name}: the dense run's data and recipe`);
  }
  assert.equal(cfgOf(r.sparse.dir).init, dense.checkpoint);
  assert.equal(cfgOf(r.redense.dir).init, r.sparse.weights);
  assert.equal(cfgOf(r.redense.dir).sparse, undefined);

  const layers = (file: string): Map<string, T.Tensor> => {
    const m = createSegmentationModel('enet', { numClasses: 11, inChannels: 1 });
    fitWeights(m, readWeights(file).weights, file);
    return new Map(prunableWeights(m));
  };
  const [d, s, rd] = [layers(dense.weights), layers(r.sparse.weights), layers(r.redense.weights)];
  let pruned = 0;
  for (const [i, [n, w]] of [...s.entries()].entries()) {
    const zeros = (t: T.Tensor): number => t.eq(0).sum().item();
    if (i === 0) {
      assert.equal(zeros(w), 0, 'the initial block\'s conv left dense');
      continue;
    }
    assert.equal(zeros(w), Math.floor(0.5 * w.numel()), `${n}: half of the weights exactly zero after S`);
    const a = d.get(n)!.abs();
    assert.ok(a.maskedSelect(w.eq(0)).max().item() <= a.maskedSelect(w.ne(0)).min().item(), `${n}: pruned by magnitude of the dense weights`);
    assert.ok(zeros(rd.get(n)!) < zeros(w), `${n}: re-D trains pruned connections again`);
    pruned += zeros(w);
  }
  const total = [...s.values()].reduce((a, w) => a + w.numel(), 0);
  assert.equal(r.sparse.sparsity, pruned / total, 'the S phase\'s reported sparsity is its zeros');
  const summary = fs.readFileSync(r.summary, 'utf8');
  for (const p of [r.sparse, r.redense, r.control]) assert.ok(summary.includes(`| ${(100 * p.testMIoU).toFixed(2)}% | ${(100 * p.testPixelAccuracy).toFixed(2)}% |`), `${p.name} row: ${summary}`);
  assert.ok(fs.statSync(r.curves).size > 1000);

  // The S phase stopped after a step and resumed ends as the uninterrupted one, its masks read from the checkpoint.
  const sCfg = { ...cfgOf(r.sparse.dir), outDir: path.join(out, 's-stopped') };
  const stopped = await trainSegmentation({ ...sCfg, stopAfterSteps: 1 }, () => {});
  assert.equal(stopped.status, 'interrupted');
  assert.deepEqual(Object.keys(readCheckpoint(stopped.checkpoint).method).sort(), [...s.keys()].slice(1).sort(), 'the checkpoint holds every mask');
  const resumed = await trainSegmentation({ resume: stopped.checkpoint, outDir: sCfg.outDir, threads: 1 }, () => {});
  const [x, y] = [T.loadSafetensors(resumed.weights).tensors, T.loadSafetensors(r.sparse.weights).tensors];
  for (const k of Object.keys(y)) assert.deepEqual(x[k].toNumbers(), y[k].toNumbers(), k);

  const cli = spawnSync(process.execPath, [CLI, 'dsd', '-m', 'enet', '--augment'], { encoding: 'utf8' });
  assert.notEqual(cli.status, 0);
  assert.match(cli.stderr, /--augment: DSD of a segmentation network trains it as `tsvision segment` does, on the scenes/);
});
