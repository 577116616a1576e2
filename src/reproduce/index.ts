// `tsvision reproduce senet|mobilenet|xception|transfer|mimic|dsd|pspnet|deeplabv3|icnet`: nine papers' central claims,
// measured at small scale on Fashion-MNIST (PSPNet's, DeepLab-V3's and ICNet's on its scenes), each written to <outDir>/REPORT.md with a PNG plot.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Log, REPRODUCTION_THREADS, releaseData, withThreads } from './common';
import { reproduceMobilenet } from './mobilenet';
import { reproduceSenet } from './senet';
import { reproduceXception } from './xception';
import { reproduceTransfer } from './transfer';
import { reproduceMimic } from './mimic';
import { reproduceDsd } from './dsd';
import { reproducePspnet } from './pspnet';
import { reproduceDeeplabv3 } from './deeplabv3';
import { reproduceIcnet } from './icnet';

export const REPRODUCTIONS = ['senet', 'mobilenet', 'xception', 'transfer', 'mimic', 'dsd', 'pspnet', 'deeplabv3', 'icnet'] as const;
export type ReproductionName = (typeof REPRODUCTIONS)[number];

export interface ReproductionOptions {
  /** Where REPORT.md and the PNG go; default reports/<name>. */
  outDir?: string;
  /** A tiny budget (seconds to a minute) that checks the pipeline, not the claim. */
  quick?: boolean;
  /** Progress lines; default stderr. */
  log?: (line: string) => void;
  /**
   * libtorch threads while it runs (restored afterwards). Default REPRODUCTION_THREADS (1): the committed
   * reports were produced with it, and other counts may change the last digits.
   */
  threads?: number;
}

export async function runReproduction(name: ReproductionName, opts: ReproductionOptions = {}): Promise<{ reportPath: string }> {
  const outDir = opts.outDir ?? path.join('reports', name);
  fs.mkdirSync(outDir, { recursive: true });
  const log: Log = opts.log ?? ((l: string) => console.error(l));
  const quick = opts.quick ?? false;
  try {
    return await withThreads(opts.threads ?? REPRODUCTION_THREADS, async () => {
      if (name === 'senet') return reproduceSenet(outDir, quick, log);
      if (name === 'mobilenet') return reproduceMobilenet(outDir, quick, log);
      if (name === 'xception') return reproduceXception(outDir, quick, log);
      if (name === 'transfer') return reproduceTransfer(outDir, quick, log);
      if (name === 'mimic') return reproduceMimic(outDir, quick, log);
      if (name === 'dsd') return reproduceDsd(outDir, quick, log);
      if (name === 'pspnet') return reproducePspnet(outDir, quick, log);
      if (name === 'deeplabv3') return reproduceDeeplabv3(outDir, quick, log);
      if (name === 'icnet') return reproduceIcnet(outDir, quick, log);
      throw new Error(`runReproduction: unknown reproduction '${String(name)}'; known: ${REPRODUCTIONS.join(', ')}`);
    });
  } finally {
    releaseData();
  }
}

export { parseMarkdownTables } from './common';
