// Temporary folders for tests, removed when the test file's process exits: a full `npm test` writes about
// half a gigabyte of checkpoints, images and exports, which would otherwise pile up in /tmp run after run.
// KEEP_TEST_DIRS=1 keeps them, to look at what a failing test wrote.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const made: string[] = [];

/** A fresh folder under the system's temporary directory, its name starting with `prefix`. */
export function tmpDir(prefix = 'tsv-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

process.on('exit', () => {
  if (process.env.KEEP_TEST_DIRS) return;
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});
