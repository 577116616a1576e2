// The command line as users run it: `node dist/src/cli/main.js ...` in a child process.
import * as assert from 'node:assert/strict';
import { SpawnSyncReturns, spawnSync } from 'node:child_process';
import { CLI } from './deploy';

/** Runs `tsvision ...args` to completion. */
export const cli = (...args: string[]): SpawnSyncReturns<string> => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

/** Each command exits non-zero with an error matching its message. */
export function assertRefused(cases: readonly (readonly [readonly string[], RegExp])[], run: (...args: string[]) => SpawnSyncReturns<string> = cli): void {
  for (const [args, message] of cases) {
    const r = run(...args);
    assert.notEqual(r.status, 0, args.join(' '));
    assert.match(r.stderr, message, args.join(' '));
  }
}
