// `tsvision reproduce senet|mobilenet|xception`: the classification papers' central claims, measured at
// small scale on Fashion-MNIST, each written to reports/<name>/REPORT.md with a plot.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { reproduceMobilenet } from './mobilenet';
import { reproduceSenet } from './senet';
import { reproduceXception } from './xception';

export const REPRODUCTIONS = ['senet', 'mobilenet', 'xception'] as const;
export type ReproductionName = (typeof REPRODUCTIONS)[number];

export async function runReproduction(name: ReproductionName, opts: { outDir?: string; quick?: boolean; log?: (line: string) => void } = {}): Promise<{ reportPath: string }> {
  const outDir = opts.outDir ?? path.join('reports', name);
  fs.mkdirSync(outDir, { recursive: true });
  const log = opts.log ?? ((l: string) => console.error(l));
  const quick = opts.quick ?? false;
  if (name === 'senet') return reproduceSenet(outDir, quick, log);
  if (name === 'mobilenet') return reproduceMobilenet(outDir, quick, log);
  return reproduceXception(outDir, quick, log);
}
