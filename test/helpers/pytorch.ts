// The independent reference: Debian's PyTorch (/usr/bin/python3, python3-torch), fed and read back through
// safetensors files. One Python process per call, so batch many cases into one script.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor, loadSafetensors, saveSafetensors, getNumThreads } from '../../src/torch';
import { tmpDir } from './tmp';

export const PYTHON = process.env.TSVISION_PYTHON ?? '/usr/bin/python3';
const SCRIPTS = path.resolve(__dirname, '..', '..', '..', 'scripts');

/**
 * Runs `code` in Python with `I` (a dict of the inputs as torch tensors), `torch` and `F`
 * (torch.nn.functional) in scope; the code fills the dict `O`, whose tensors come back.
 */
export function runTorch(code: string, inputs: Record<string, Tensor> = {}): Record<string, Tensor> {
  return runTorchWithMeta(code, inputs).tensors;
}

/** As runTorch; the script may also fill the dict `META` with strings (e.g. per-case errors). */
export function runTorchWithMeta(code: string, inputs: Record<string, Tensor> = {}): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  const dir = tmpDir('tsv-py-');
  try {
    const inFile = path.join(dir, 'in.safetensors');
    const outFile = path.join(dir, 'out.safetensors');
    saveSafetensors(inFile, inputs);
    const prelude = [
      'import sys, torch, torch.nn.functional as F',
      `sys.path.insert(0, ${JSON.stringify(SCRIPTS)})`,
      'import safetensors_io as st',
      `torch.set_num_threads(${getNumThreads()})`,
      `I, _ = st.load(${JSON.stringify(inFile)})`,
      'O = {}',
      'META = {}',
    ].join('\n');
    const script = `${prelude}\n${code}\nst.save(${JSON.stringify(outFile)}, O, META)\n`;
    const r = spawnSync(PYTHON, ['-c', script], { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`PyTorch reference failed:\n${r.stderr}`);
    return loadSafetensors(outFile);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** max|a-b| / max(max|b|, floor): one number that is small when a matches b. */
export function relError(a: Tensor, b: Tensor, floor = 1e-6): number {
  const x = a.to('float64').toArray() as Float64Array;
  const y = b.to('float64').toArray() as Float64Array;
  if (x.length !== y.length) return Infinity;
  let diff = 0;
  let scale = floor;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i] - y[i]);
    if (!(d <= diff)) diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
    scale = Math.max(scale, Math.abs(y[i]));
  }
  return diff / scale;
}

export function assertClose(a: Tensor, b: Tensor, tol: number, what: string): void {
  if (a.shape.join(',') !== b.shape.join(',')) throw new Error(`${what}: shape [${a.shape}] != reference [${b.shape}]`);
  const e = relError(a, b);
  if (!(e <= tol)) throw new Error(`${what}: relative error ${e.toExponential(3)} > ${tol}`);
}
