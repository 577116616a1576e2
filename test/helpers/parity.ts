// Batched forward+gradient parity against PyTorch: every case runs in tsvision and, in one Python process,
// in PyTorch on the same inputs; outputs and input gradients are compared.
import { test } from 'node:test';
import { Tensor, isFloating, randn, manualSeed, noGrad } from '../../src/torch';
import { assertClose, runTorchWithMeta } from './pytorch';

export interface Case {
  name: string;
  /** Inputs, made fresh and random for each run. */
  inputs: () => Record<string, Tensor>;
  /** The tsvision computation; a list means several outputs (gradients flow from the first). */
  ts: (i: Record<string, Tensor>) => Tensor | Tensor[];
  /** A Python expression over the same input names (torch and F in scope). */
  py: string;
  /** Which inputs to differentiate; default: every floating input. [] = forward only. */
  grad?: string[];
  tol?: number;
  /** Seed both sides right before the call (random ops such as dropout). */
  seed?: number;
}

const key = (c: number, n: string): string => `c${c}.${n}`;

/** Registers one node:test per case, all backed by a single PyTorch run. */
export function parity(cases: Case[], defaultTol = 1e-5): void {
  const inputs: Record<string, Tensor> = {};
  const prepared = cases.map((c, ci) => {
    const ins = c.inputs();
    const gradNames = c.grad ?? Object.keys(ins).filter((n) => isFloating(ins[n].dtype));
    for (const [n, t] of Object.entries(ins)) inputs[key(ci, n)] = t.keep();
    return { c, ins, gradNames };
  });
  // Python: one block per case, failures captured per case so one bad case does not hide the rest.
  const py: string[] = ['import traceback', 'ERR = {}'];
  prepared.forEach(({ c, ins, gradNames }, ci) => {
    const lines: string[] = [];
    for (const n of Object.keys(ins)) {
      const req = gradNames.includes(n) ? '.requires_grad_()' : '';
      lines.push(`${n} = I[${JSON.stringify(key(ci, n))}].clone()${req}`);
    }
    if (c.seed !== undefined) lines.push(`torch.manual_seed(${c.seed})`);
    lines.push(`out = ${c.py}`);
    lines.push('outs = list(out) if isinstance(out, (tuple, list)) else [out]');
    lines.push(`for k, o in enumerate(outs): O[${JSON.stringify(key(ci, 'out'))} + str(k)] = o.detach()`);
    if (gradNames.length) {
      lines.push(`g = I[${JSON.stringify(key(ci, '__cot'))}]`);
      lines.push('(outs[0] * g).sum().backward()');
      for (const n of gradNames) lines.push(`O[${JSON.stringify(key(ci, 'grad.' + n))}] = ${n}.grad`);
    }
    py.push('try:', ...lines.map((l) => '    ' + l), 'except Exception:', `    META["c${ci}"] = traceback.format_exc(limit=1)`);
  });
  // Cotangents need the output shape: compute the tsvision forward once to size them.
  const tsResults = prepared.map(({ c, ins, gradNames }) => {
    const copies: Record<string, Tensor> = {};
    for (const [n, t] of Object.entries(ins)) copies[n] = noGrad(() => t.clone()).requiresGrad_(gradNames.includes(n)).keep();
    try {
      if (c.seed !== undefined) manualSeed(c.seed);
      const out = c.ts(copies);
      const outs = (Array.isArray(out) ? out : [out]).map((t) => t.keep());
      return { outs, copies, error: null as Error | null };
    } catch (e) {
      return { outs: [] as Tensor[], copies, error: e as Error };
    }
  });
  prepared.forEach(({ gradNames }, ci) => {
    const r = tsResults[ci];
    if (gradNames.length && r.outs.length) inputs[key(ci, '__cot')] = randn(r.outs[0].shape, { dtype: r.outs[0].dtype }).keep();
  });
  let ref: Record<string, Tensor> = {};
  let refErrors: Record<string, string> = {};
  let refError: Error | null = null;
  try {
    ({ tensors: ref, metadata: refErrors } = runTorchWithMeta(py.join('\n'), inputs));
  } catch (e) {
    refError = e as Error;
  }

  prepared.forEach(({ c, gradNames }, ci) => {
    test(c.name, () => {
      if (refError) throw refError;
      const r = tsResults[ci];
      if (r.error) throw r.error;
      const tol = c.tol ?? defaultTol;
      r.outs.forEach((o, k) => {
        const want = ref[key(ci, 'out') + k];
        if (!want) throw new Error(`PyTorch produced no output ${k}: ${refErrors['c' + ci] ?? 'no error recorded'}`);
        assertClose(o, want, tol, `output ${k}`);
      });
      if (gradNames.length) {
        r.outs[0].backward(inputs[key(ci, '__cot')]);
        for (const n of gradNames) {
          const g = r.copies[n].grad;
          const want = ref[key(ci, 'grad.' + n)];
          if (!g || !want) throw new Error(`gradient of ${n}: ${g ? 'missing in PyTorch' : 'missing in tsvision'}`);
          assertClose(g, want, tol, `gradient of ${n}`);
        }
      }
    });
  });
}
