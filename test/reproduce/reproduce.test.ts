// The reproductions' pipeline in quick mode: each writes a REPORT.md whose tables hold exactly the numbers
// it measured (parsed back and compared with the returned results), embeds a valid PNG, and names the
// command that made it. Nothing here hard-codes an accuracy.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { getNumThreads } from '../../src/torch';
import { summary } from '../../src/metrics/summary';
import { MobileNetV1 } from '../../src/models/mobilenet';
import { REPRODUCTION_THREADS, fit, meanStd, pairedDifference, parseMarkdownTables, releaseData, seedsCell, withThreads } from '../../src/reproduce/common';
import { runReproduction } from '../../src/reproduce';
import { reproduceSenet } from '../../src/reproduce/senet';
import { MobileNetStandardConv, reproduceMobilenet } from '../../src/reproduce/mobilenet';
import { MiniXception, matchedChannels, reproduceXception } from '../../src/reproduce/xception';
import { TRANSFER_QUICK_BUDGET, TRANSFER_VARIANTS, reproduceTransfer } from '../../src/reproduce/transfer';
import { MIMIC_QUICK_BUDGET, MIMIC_VARIANTS, reproduceMimic } from '../../src/reproduce/mimic';
import { DSD_PHASES, DSD_QUICK_BUDGET, reproduceDsd } from '../../src/reproduce/dsd';
import { PSPNET_VARIANTS, reproducePspnet } from '../../src/reproduce/pspnet';
import { DEEPLABV3_VARIANTS, reproduceDeeplabv3 } from '../../src/reproduce/deeplabv3';
import { reproduceIcnet } from '../../src/reproduce/icnet';
import { tmpDir } from '../helpers/tmp';

const tmp = (): string => tmpDir('tsv-repro-');
const pct = (x: number): string => (100 * x).toFixed(2);
const millions = (x: number): string => (x / 1e6).toFixed(2);
const count = (s: string): number => Number(s.replace(/,/g, ''));
const quiet = (): void => {};

// The tests call the reproductions directly (to see their results), so they free the shared data themselves.
after(releaseData);

/** The report exists, has the command, embeds `png`, and `png` is a decodable PNG image. */
async function checkReportAndPng(dir: string, reportPath: string, name: string, png: string): Promise<string> {
  assert.equal(reportPath, path.join(dir, 'REPORT.md'));
  const md = fs.readFileSync(reportPath, 'utf8');
  assert.ok(md.includes(`node dist/src/cli/main.js reproduce ${name}`), 'report names its command');
  assert.match(md, /\d{4}-\d{2}-\d{2}/, 'report is dated');
  assert.ok(md.includes(`](${png})`), `report embeds ${png}`);
  const buf = fs.readFileSync(path.join(dir, png));
  assert.ok(buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'PNG signature');
  const meta = await sharp(buf).metadata();
  assert.equal(meta.format, 'png');
  assert.ok((meta.width ?? 0) > 100 && (meta.height ?? 0) > 100);
  return md;
}

function tableWith(md: string, firstHeader: string): { header: string[]; rows: string[][] } {
  const t = parseMarkdownTables(md).find((x) => x.header[0] === firstHeader);
  assert.ok(t, `a table whose first column is '${firstHeader}'`);
  return t;
}

test('senet (quick): the table holds the measured accuracies, params and mult-adds', async () => {
  const dir = tmp();
  const r = await withThreads(REPRODUCTION_THREADS, () => reproduceSenet(dir, true, quiet));
  const md = await checkReportAndPng(dir, r.reportPath, 'senet', 'senet.png');
  const t = tableWith(md, 'model');
  assert.equal(t.rows.length, 2);
  for (const [row, runs] of [[t.rows[0], r.results.plain], [t.rows[1], r.results.se]] as const) {
    const m = meanStd(runs.map((x) => x.top1));
    assert.equal(row[1], `${pct(m.mean)} ± ${pct(m.std)}`);
    assert.equal(row[2], runs.map((x) => pct(x.top1)).join(', '));
    assert.equal(count(row[3]), runs[0].params);
    assert.equal(row[4], millions(runs[0].multAdds));
    for (const x of runs) assert.ok(x.top1 >= 0 && x.top1 <= 1);
  }
  assert.ok(r.results.se[0].params > r.results.plain[0].params, 'SE adds parameters');
  assert.ok(r.results.se[0].multAdds >= r.results.plain[0].multAdds, 'SE adds (few) mult-adds');
});

test('mobilenet (quick): grid and separable-vs-standard tables hold the measured numbers', async () => {
  const dir = tmp();
  const r = await withThreads(REPRODUCTION_THREADS, () => reproduceMobilenet(dir, true, quiet));
  const md = await checkReportAndPng(dir, r.reportPath, 'mobilenet', 'mobilenet.png');
  const grid = tableWith(md, 'α');
  assert.equal(grid.rows.length, r.grid.length);
  r.grid.forEach((g, i) => {
    const row = grid.rows[i];
    assert.deepEqual([Number(row[0]), Number(row[1]), row[3], row[4], count(row[5])], [g.alpha, g.size, pct(g.top1), millions(g.multAdds), g.params]);
  });
  // Mult-adds fall with α and with resolution (the arithmetic half of the trade-off).
  for (const g of r.grid) for (const h of r.grid) if (g.alpha >= h.alpha && g.size >= h.size && (g.alpha > h.alpha || g.size > h.size)) assert.ok(g.multAdds > h.multAdds);
  const cmp = tableWith(md, 'convolutions');
  assert.deepEqual(cmp.rows.map((row) => [row[1], row[2], count(row[3])]), [r.separable, r.standard].map((x) => [pct(x.top1), millions(x.multAdds), x.params]));
  assert.ok(r.standard.multAdds / r.separable.multAdds > 4, 'standard convolutions cost several times more');
});

test('xception (quick): parameter-matched widths, and the table holds the measured numbers', async () => {
  const dir = tmp();
  const r = await withThreads(REPRODUCTION_THREADS, () => reproduceXception(dir, true, quiet));
  const md = await checkReportAndPng(dir, r.reportPath, 'xception', 'xception.png');
  const t = tableWith(md, 'convolutions');
  for (const [row, runs] of [[t.rows[0], r.separable], [t.rows[1], r.standard]] as const) {
    const m = meanStd(runs.map((x) => x.top1));
    assert.equal(count(row[2]), runs[0].params);
    assert.equal(row[3], millions(runs[0].multAdds));
    assert.equal(row[4], `${pct(m.mean)} ± ${pct(m.std)}`);
    assert.equal(row[5], runs.map((x) => pct(x.top1)).join(', '));
  }
  const m = matchedChannels(r.channels.separable);
  assert.equal(m.channels, r.channels.standard);
  assert.equal(m.params, r.standard[0].params);
  // No other width matches the separable net's parameter count better.
  for (let c = 1; c <= r.channels.separable; c++) {
    assert.ok(Math.abs(new MiniXception(c, 'standard').numParameters() - m.target) >= Math.abs(m.params - m.target));
  }
});

test('transfer (quick): PNG folders of tasks A and B for both splits, the base networks, and a table of the measured accuracies', async () => {
  const dir = tmp();
  const r = await withThreads(REPRODUCTION_THREADS, () => reproduceTransfer(dir, true, quiet));
  const md = await checkReportAndPng(dir, r.reportPath, 'transfer', 'transfer.png');
  assert.ok(md.includes('A = T-shirt/top, Pullover, Coat, Shirt, Bag; B = Trouser, Dress, Sandal, Sneaker, Ankle boot'), 'the dissimilar split by name');
  assert.ok(md.includes(`${pct(r.studies.similar.baseTop1)}% (similar) and ${pct(r.studies.dissimilar.baseTop1)}% (dissimilar)`), 'the base networks\' measured accuracies');
  const t = tableWith(md, 'split');
  const splits = ['similar', 'dissimilar'] as const;
  assert.equal(t.rows.length, splits.length * TRANSFER_QUICK_BUDGET.targets.length);
  splits.forEach((sp, i) => {
    assert.deepEqual(t.rows[i].slice(0, 2), [sp, String(TRANSFER_QUICK_BUDGET.targets[0].images)]);
    TRANSFER_VARIANTS.forEach((v, k) => {
      const runs = r.studies[sp].results[v];
      const m = meanStd(runs.map((x) => x.top1));
      assert.equal(t.rows[i][k + 2], `${pct(m.mean)} ± ${pct(m.std)} (${runs.map((x) => pct(x.top1)).join(', ')})`);
    });
  });
  // The work folders (PNGs, runs) are gone; only the report and its plot remain.
  assert.deepEqual(fs.readdirSync(dir).sort(), ['REPORT.md', 'transfer.png']);
});

test('mimic (quick): two teachers, five students through runMimic, and a table and conclusion of the measured numbers', async () => {
  const dir = tmp();
  const lines: string[] = [];
  const r = await withThreads(REPRODUCTION_THREADS, () => reproduceMimic(dir, true, (l) => lines.push(l)));
  const md = await checkReportAndPng(dir, r.reportPath, 'mimic', 'mimic.png');
  assert.ok(md.includes(`test top-1 **${pct(r.teachers.strong)}%**`) && md.includes(`**${pct(r.teachers.weak)}%**`), 'both teachers\' measured accuracies');
  assert.ok(md.includes(`\`--labelled ${MIMIC_QUICK_BUDGET.labelled}\``));
  const t = tableWith(md, 'student learns from');
  assert.equal(t.rows.length, MIMIC_VARIANTS.length);
  MIMIC_VARIANTS.forEach((v, k) => {
    const [run] = r.results[v];
    assert.equal(r.results[v].length, 1, 'one seed in quick mode');
    assert.deepEqual(t.rows[k].slice(1), [`${pct(run.top1)} ± 0.00 (${pct(run.top1)})`, `${pct(run.agreement)} ± 0.00 (${pct(run.agreement)})`]);
    assert.ok(run.top1 > 0 && run.top1 < 1 && run.agreement > 0 && run.agreement <= 1);
  });
  // The conclusion's paired differences, recomputed from the results.
  const d = (a: string, b: string): string => {
    const x = r.results[a as (typeof MIMIC_VARIANTS)[number]][0].top1 - r.results[b as (typeof MIMIC_VARIANTS)[number]][0].top1;
    return `${x > 0 ? '+' : ''}${pct(x)} ± 0.00 points (above for ${x > 0 ? 1 : 0} of 1 seed)`;
  };
  assert.ok(md.includes(`the student scores\n${d('mimic', 'labels')} against the labels`), md);
  assert.ok(md.includes(`with the transfer set: ${d('weak-transfer', 'labels')}.`));
  assert.equal(lines.filter((l) => l.startsWith('  seed 0, ')).length, MIMIC_VARIANTS.length);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['REPORT.md', 'mimic.png'], 'the teachers and students are gone with their work folder');
});

test('dsd (quick): D, S, re-D and the control through runDsd, and a table and conclusion of the measured numbers', async () => {
  const dir = tmp();
  const lines: string[] = [];
  const r = await withThreads(REPRODUCTION_THREADS, () => reproduceDsd(dir, true, (l) => lines.push(l)));
  const md = await checkReportAndPng(dir, r.reportPath, 'dsd', 'dsd.png');
  const t = tableWith(md, 'phase');
  assert.deepEqual(t.rows.map((row) => row[0]), ['D', 'S', 're-D', 'control']);
  // The epochs and learning rates as runDsd schedules them: the control spends S + re-D's epochs at lr/10.
  const b = DSD_QUICK_BUDGET;
  assert.deepEqual(t.rows.map((row) => [row[1], row[2]]), [[String(b.denseEpochs), '0.05'], [String(b.sparseEpochs), '0.05'], [String(b.redenseEpochs), '0.005'], [String(b.sparseEpochs + b.redenseEpochs), '0.005']]);
  DSD_PHASES.forEach((p, k) => {
    const [run] = r.results[p];
    assert.equal(r.results[p].length, 1, 'one seed in quick mode');
    assert.deepEqual(t.rows[k].slice(4), [`${pct(run.top1)} ± 0.00 (${pct(run.top1)})`, `${run.testLoss.toFixed(4)} ± 0.0000 (${run.testLoss.toFixed(4)})`]);
    assert.ok(run.top1 > 0 && run.top1 < 1 && run.testLoss > 0);
  });
  // S zeroed about the asked share: every layer but the first (a small one) loses 30% of its weights.
  assert.ok(r.sparsity[0] > 0.27 && r.sparsity[0] <= 0.3, String(r.sparsity[0]));
  assert.ok(md.includes(`zeroed\n${pct(r.sparsity[0])}% of all conv and linear weights`), md);
  // The conclusion's paired differences, recomputed from the results.
  const d = (a: (typeof DSD_PHASES)[number], b: (typeof DSD_PHASES)[number]): string => {
    const x = r.results[a][0].top1 - r.results[b][0].top1;
    return `${x > 0 ? '+' : ''}${pct(x)} ± 0.00 points (above for ${x > 0 ? 1 : 0} of 1 seed)`;
  };
  assert.ok(md.includes(`re-D against the control (LLR): ${d('redense', 'control')}; re-D against D: ${d('redense', 'dense')};`), md);
  assert.equal(lines.filter((l) => l.startsWith('  seed 0: D ')).length, 1);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['REPORT.md', 'dsd.png'], 'the phases are gone with their work folder');
});

test('pspnet (quick): the dilated FCN, + pyramid pooling, + the auxiliary loss, and a table and conclusion of the measured numbers', async () => {
  const dir = tmp();
  const r = await withThreads(REPRODUCTION_THREADS, () => reproducePspnet(dir, true, quiet));
  const md = await checkReportAndPng(dir, r.reportPath, 'pspnet', 'pspnet.png');
  const t = tableWith(md, 'network');
  assert.deepEqual(t.rows.map((row) => row[1]), ['`--opt ppm=false --opt auxWeight=0`', '`--opt auxWeight=0`', '(defaults)']);
  PSPNET_VARIANTS.forEach((v, k) => {
    const [run] = r.results[v];
    assert.equal(r.results[v].length, 1, 'one seed in quick mode');
    assert.deepEqual(t.rows[k].slice(4), [`${pct(run.mIoU)} ± 0.00 (${pct(run.mIoU)})`, `${pct(run.pixelAccuracy)} ± 0.00 (${pct(run.pixelAccuracy)})`]);
    assert.ok(run.mIoU > 0 && run.mIoU < 1 && run.pixelAccuracy > 0 && run.pixelAccuracy <= 1);
  });
  // By hand, for the recipe's dilated ResNet-18 at width 32 (256 feature channels) and a 128-filter head: the
  // pyramid adds four stages of a 1×1 conv 256→64 with BN (4 · (16,384 + 128)) and 256 more input channels to
  // the head's 3×3 conv (256 · 128 · 9); the auxiliary head is a 3×3 conv 128→64 with BN and a 1×1 conv to 11
  // classes with bias (73,728 + 128 + 704 + 11), none of it used at test time.
  assert.equal(r.cost.ppm.parameters - r.cost.fcn.parameters, 4 * (256 * 64 + 128) + 256 * 128 * 9);
  assert.deepEqual([r.cost.fcn.trainingParameters, r.cost.ppm.trainingParameters, r.cost['ppm-aux'].trainingParameters], [0, 0, 128 * 64 * 9 + 128 + 64 * 11 + 11]);
  assert.equal(r.cost['ppm-aux'].parameters, r.cost.ppm.parameters);
  assert.equal(r.cost['ppm-aux'].multAdds, r.cost.ppm.multAdds, 'the auxiliary head costs nothing at test time');
  assert.equal(t.rows[2][2], `${r.cost.ppm.parameters.toLocaleString('en-US')} (+ 74,571 in training)`);
  const d = (a: (typeof PSPNET_VARIANTS)[number], b: (typeof PSPNET_VARIANTS)[number]): string => {
    const x = r.results[a][0].mIoU - r.results[b][0].mIoU;
    return `${x > 0 ? '+' : ''}${pct(x)} ± 0.00 points of mIoU (above for ${x > 0 ? 1 : 0} of 1 seed)`;
  };
  assert.ok(md.includes(`pyramid pooling against the dilated FCN: ${d('ppm', 'fcn')};`), md);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['REPORT.md', 'pspnet.png'], 'the runs are gone with their work folder');
});

test('deeplabv3 (quick): ASPP alone, + multi-grid, + image-level features, with the flags and sizes of each', async () => {
  const dir = tmp();
  const r = await withThreads(REPRODUCTION_THREADS, () => reproduceDeeplabv3(dir, true, quiet));
  const md = await checkReportAndPng(dir, r.reportPath, 'deeplabv3', 'deeplabv3.png');
  const t = tableWith(md, 'network');
  assert.deepEqual(t.rows.map((row) => row[1]), ['`--opt multiGrid=1,1 --opt imagePooling=false`', '`--opt imagePooling=false`', '(defaults)']);
  DEEPLABV3_VARIANTS.forEach((v, k) => {
    const [run] = r.results[v];
    assert.deepEqual(t.rows[k].slice(4), [`${pct(run.mIoU)} ± 0.00 (${pct(run.mIoU)})`, `${pct(run.pixelAccuracy)} ± 0.00 (${pct(run.pixelAccuracy)})`]);
  });
  // By hand, for the recipe's 256 feature channels and 128-filter ASPP: the image-level branch is a 1×1 conv
  // 256→128 with BN (32,768 + 256), and the projection reads its 128 channels (128 · 128); multi-grid
  // changes rates only.
  assert.equal(r.cost.deeplabv3.parameters - r.cost.multigrid.parameters, 256 * 128 + 2 * 128 + 128 * 128);
  assert.deepEqual([r.cost.multigrid.parameters, r.cost.multigrid.multAdds], [r.cost.aspp.parameters, r.cost.aspp.multAdds]);
  assert.ok(DEEPLABV3_VARIANTS.every((v) => r.cost[v].trainingParameters === 0), 'no training-only layers');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['REPORT.md', 'deeplabv3.png']);
});

test('icnet (quick): the loss ablation, the cut cascades scored from the runs\' checkpoints, and the paper-sized costs', async () => {
  const dir = tmp();
  const r = await withThreads(REPRODUCTION_THREADS, () => reproduceIcnet(dir, true, quiet));
  const md = await checkReportAndPng(dir, r.reportPath, 'icnet', 'icnet.png');
  const t = tableWith(md, 'network');
  assert.deepEqual(t.rows.map((row) => row[1]), ['`--opt lambdas=0,0,1`', '(defaults)']);
  const [final] = r.results.final;
  const [clg] = r.results.clg;
  assert.deepEqual(t.rows[1].slice(4), [`${pct(clg.mIoU)} ± 0.00 (${pct(clg.mIoU)})`, `${pct(clg.pixelAccuracy)} ± 0.00 (${pct(clg.pixelAccuracy)})`]);
  assert.equal(final.extra, undefined, 'no guidance, so no cut cascades to score');
  // The whole cascade scored again from the run's checkpoint, as `eval` does, is the run's own final score.
  assert.ok(Math.abs(clg.extra!.sub124.mIoU - clg.mIoU) < 1e-12 && Math.abs(clg.extra!.sub124.pixelAccuracy - clg.pixelAccuracy) < 1e-12, JSON.stringify(clg));
  const cuts = tableWith(md, 'prediction');
  assert.deepEqual(cuts.rows.map((row) => row[1]), ['`--opt output=sub4`', '`--opt output=sub24`', '(defaults)']);
  (['sub4', 'sub24', 'sub124'] as const).forEach((c, k) => assert.equal(cuts.rows[k][3], `${pct(clg.extra![c].mIoU)} ± 0.00 (${pct(clg.extra![c].mIoU)})`));
  const cost = tableWith(md, `network at ${r.timing.size.join('×')}`);
  assert.equal(cost.rows.length, 4);
  const used = r.cost1024.map((c) => c.parameters);
  assert.deepEqual(cost.rows.map((row) => count(row[1])), used);
  // By hand: sub24 adds CFF24's 3×3 dilated conv 256→128 and 1×1 conv 512→128, each with BN, and CFF12's
  // classifier 128→19 instead of CFF24's 256→19; sub124 adds the full-resolution branch (3×3 convs 3→32,
  // 32→32, 32→64 with BN) and CFF12's 3×3 conv 128→128 and 1×1 conv 64→128 with BN, and the final
  // classifier 128→19 instead of CFF12's.
  assert.equal(used[1] - used[0], 256 * 128 * 9 + 256 + 512 * 128 + 256 + (128 - 256) * 19);
  assert.equal(used[2] - used[1], 3 * 32 * 9 + 64 + 32 * 32 * 9 + 64 + 32 * 64 * 9 + 128 + 128 * 128 * 9 + 256 + 64 * 128 + 256);
  assert.ok(r.cost1024[2].multAdds < r.cost1024[3].multAdds / 10, 'ICNet runs its heavy layers on the 1/4 image');
  assert.ok(r.cost1024.every((c) => c.ms > 0));
  const full = r.cost1024[2];
  assert.ok(md.includes(`and ICNet takes ${pct(full.ms / r.cost1024[3].ms)}% of PSPNet's time (${pct(full.multAdds / r.cost1024[3].multAdds)}% of its mult-adds)`), md);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['REPORT.md', 'icnet.png'], 'the runs are gone with their work folder');
});

test('SIGTERM during a reproduction removes its work folder at once and exits with code 143, writing no report', async () => {
  const { spawn } = await import('node:child_process');
  const tmpdir = tmp();
  const out = tmp();
  const child = spawn(process.execPath, [path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js'), 'reproduce', 'dsd', '--quick', '-o', out], { env: { ...process.env, TMPDIR: tmpdir }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const work = (): string[] => fs.readdirSync(tmpdir).filter((f) => f.startsWith('tsv-dsd-'));
  // Once the work folder holds a run (training is under way), stop it as a job system would.
  const poll = setInterval(() => {
    const w = work();
    if (w.length && fs.readdirSync(path.join(tmpdir, w[0])).length && !child.killed) child.kill('SIGTERM');
  }, 100);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearInterval(poll);
  assert.equal(code, 143, err.slice(-500));
  assert.match(err, /SIGTERM: stopped; removed the work folder .*tsv-dsd-/);
  assert.deepEqual(work(), []);
  assert.equal(fs.existsSync(path.join(out, 'REPORT.md')), false);
});

test('seedsCell and pairedDifference by hand: mean ± sample std, the sign, a zero that reads 0.00, the count above', () => {
  assert.equal(seedsCell([0.5, 0.6, 0.7]), '60.00 ± 10.00 (50.00, 60.00, 70.00)');
  assert.equal(seedsCell([0.25, 0.35], (x) => x.toFixed(3)), '0.300 ± 0.071 (0.250, 0.350)');
  // Differences 0.1 and 0: mean 5 points, std √(2 · 5²) = 7.07.
  assert.equal(pairedDifference([0.5, 0.6], [0.4, 0.6]), '+5.00 ± 7.07 points (above for 1 of 2 seeds)');
  assert.equal(pairedDifference([0.4], [0.45], { unit: 'of mIoU', than: 'scratch' }), '-5.00 ± 0.00 points of mIoU (above scratch for 0 of 1 seed)');
  assert.equal(pairedDifference([0.50001], [0.50002]), '0.00 ± 0.00 points (above for 0 of 1 seed)');
});

test('matched parameters at the full-run width are within 2%', () => {
  const m = matchedChannels(128);
  assert.ok(Math.abs(m.params / m.target - 1) < 0.02, `${m.params} vs ${m.target}`);
});

test('fit is deterministic: the same seed gives the same accuracy, bit for bit', async () => {
  const b = { trainSamples: 256, testSamples: 250, epochs: 1, batchSize: 64, lr: 0.1 };
  const make = () => new MobileNetV1({ alpha: 0.25, numClasses: 10, inChannels: 1, smallInput: true, dropout: 0 });
  const [x, y] = await withThreads(REPRODUCTION_THREADS, async () => [await fit(make, b, 7, 20), await fit(make, b, 7, 20)]);
  assert.equal(x.top1, y.top1);
  assert.equal(x.multAdds, y.multAdds);
});

test('runReproduction rejects an unknown name and restores the thread count', async () => {
  const before = getNumThreads();
  await assert.rejects(runReproduction('nope' as unknown as 'senet', { outDir: tmp(), log: quiet }), /unknown reproduction/);
  assert.equal(getNumThreads(), before);
});

test('the standard-convolution MobileNet costs 8-9x the mult-adds at full width (Table 4)', () => {
  const std = summary(new MobileNetStandardConv(1, 1000, 3), [1, 3, 28, 28]).totalMultAdds;
  const sep = summary(new MobileNetV1({ alpha: 1, smallInput: true }), [1, 3, 28, 28]).totalMultAdds;
  const ratio = std / sep;
  assert.ok(ratio > 7 && ratio < 10, `ratio ${ratio}`);
});
