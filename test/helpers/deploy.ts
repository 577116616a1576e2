// Shared by the deployment tests (browser pages, the example server): checkpoints exported the way users
// export them, servers started the way users start them.
import * as assert from 'node:assert/strict';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as T from '../../src/torch';
import { Module } from '../../src/nn';
import { saveCheckpoint } from '../../src/train/checkpoint';

export const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

/** A checkpoint whose config says how it was trained, and its `tsvision export` (.onnx + card) in `dir`; `args` adds export flags. */
export function exportCheckpoint(dir: string, name: string, model: Module, config: Record<string, unknown>, args: readonly string[] = []): { ckpt: string; onnx: string } {
  const ckpt = path.join(dir, `${name}.safetensors`);
  saveCheckpoint(ckpt, model, null, { epoch: 1, batch: 0, step: 1, config });
  const onnx = path.join(dir, `${name}.onnx`);
  const r = spawnSync(process.execPath, [CLI, 'export', ckpt, '-o', onnx, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stderr}\n${r.stdout}`);
  return { ckpt, onnx };
}

/** Random BatchNorm statistics, so that how inputs are normalized shows in the output. */
export function randomizeBatchNorm(model: Module): void {
  for (const [k, t] of Object.entries(model.stateDict())) {
    if (k.endsWith('running_mean')) t.copy_(T.randn(t.shape).mul(0.1));
    if (k.endsWith('running_var')) t.copy_(T.rand(t.shape).add(0.5));
  }
}

/** Starts `node <args>` and resolves to the first match of `ready` in its output (e.g. its URL). */
export function startServer(args: string[], ready: RegExp, children: ChildProcess[]): Promise<string> {
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(p);
  let out = '';
  return new Promise((resolve, reject) => {
    p.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m) resolve(m[1]);
    });
    p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => reject(new Error(`${args.join(' ')} exited (${code}): ${out}`)));
  });
}
