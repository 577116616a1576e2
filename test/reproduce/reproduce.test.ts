// The reproductions' pipeline, in quick mode: each writes a report whose table shows the numbers it
// measured, and a valid PNG.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { reproduceSenet } from '../../src/reproduce/senet';
import { reproduceMobilenet, MobileNetStandardConv } from '../../src/reproduce/mobilenet';
import { MiniXception, matchedWidth, reproduceXception } from '../../src/reproduce/xception';
import { summary } from '../../src/metrics/summary';

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'tsv-repro-'));
const pct = (x: number): string => (100 * x).toFixed(2);

test('senet (quick): the report tables the accuracies measured', async () => {
  const dir = tmp();
  const r = await reproduceSenet(dir, true, () => {});
  const md = fs.readFileSync(r.reportPath, 'utf8');
  for (const v of [...r.results.plain, ...r.results.se]) assert.ok(md.includes(pct(v.top1)), `report lacks ${pct(v.top1)}`);
  assert.ok(r.results.se[0].params > r.results.plain[0].params, 'SE adds parameters');
  assert.ok(fs.readFileSync(path.join(dir, 'senet.png')).subarray(0, 8).equals(PNG));
  assert.match(md, /reproduce senet/);
});

test('mobilenet (quick): grid and separable-vs-standard numbers in the report', async () => {
  const dir = tmp();
  const r = await reproduceMobilenet(dir, true, () => {});
  const md = fs.readFileSync(r.reportPath, 'utf8');
  for (const g of r.grid) assert.ok(md.includes(`| ${g.alpha} | ${g.size} | ${pct(g.top1)} | ${(g.multAdds / 1e6).toFixed(2)} |`));
  // Standard 3x3 convolutions cost several times the separable mult-adds at the same width (paper: 8-9x).
  assert.ok(r.standard.multAdds / r.separable.multAdds > 4);
  assert.ok(fs.readFileSync(path.join(dir, 'mobilenet.png')).subarray(0, 8).equals(PNG));
});

test('xception (quick): parameter-matched widths and the measured numbers', async () => {
  const dir = tmp();
  const r = await reproduceXception(dir, true, () => {});
  const md = fs.readFileSync(r.reportPath, 'utf8');
  assert.ok(md.includes(pct(r.separable.top1)) && md.includes(pct(r.standard.top1)));
  const m = matchedWidth(r.widths[0]);
  assert.equal(m.width, r.widths[1]);
  // No other width matches the separable net's parameter count better.
  for (const w of [m.width - 1, m.width + 1]) {
    if (w < 1) continue;
    assert.ok(Math.abs(new MiniXception(w, 'standard').numParameters() - m.target) >= Math.abs(m.params - m.target));
  }
  assert.ok(fs.readFileSync(path.join(dir, 'xception.png')).subarray(0, 8).equals(PNG));
});

test('the standard-convolution MobileNet costs about 8-9x the mult-adds at full width (Table 4)', () => {
  const std = summary(new MobileNetStandardConv(1, 1000, 3), [1, 3, 28, 28]).totalMultAdds;
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { MobileNetV1 } = require('../../src/models/mobilenet') as typeof import('../../src/models/mobilenet');
  const sep = summary(new MobileNetV1({ alpha: 1, smallInput: true }), [1, 3, 28, 28]).totalMultAdds;
  const ratio = std / sep;
  assert.ok(ratio > 7 && ratio < 10, `ratio ${ratio}`);
});
