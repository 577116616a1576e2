// What the README tells people to call "from code" must be reachable from `import … from 'tsvision'`: every
// identifier it names in backticks that a library module exports is looked up in the package's entry point
// (at the top level or one namespace down: `infer.gradCam`). The command line's and the reproductions'
// internals are not the library's surface.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as api from '../../src/index';

const ROOT = path.resolve(__dirname, '..', '..', '..');
/** Folders whose exports serve the command line, not the library. */
const INTERNAL = ['src/cli', 'src/reproduce'];
/** The addon's raw binding: the typed API over it is `torch`. */
const RAW = new Set(['native']);

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? sources(path.join(dir, d.name)) : d.name.endsWith('.ts') ? [path.join(dir, d.name)] : []));
}

function reachable(name: string): boolean {
  const top = api as unknown as Record<string, unknown>;
  if (name in top) return true;
  return Object.values(top).some((v) => v !== null && typeof v === 'object' && name in (v as Record<string, unknown>));
}

test('every function and class the README names from code is exported by the package', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const named = new Set([...readme.matchAll(/`([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]));
  const library = sources(path.join(ROOT, 'src')).filter((f) => !INTERNAL.some((d) => f.startsWith(path.join(ROOT, d))));
  const text = library.map((f) => fs.readFileSync(f, 'utf8')).join('\n');
  const exported = [...named].filter((n) => !RAW.has(n) && new RegExp(`export (async )?(function\\*?|class|abstract class|const|let) ${n}\\b`).test(text));
  assert.ok(exported.length > 50, `only ${exported.length} names found: the README or this test's reading of it changed`);
  const missing = exported.filter((n) => !reachable(n));
  assert.deepEqual(missing, [], `named in the README, exported by a module, but not reachable from 'tsvision': ${missing.join(', ')}`);
});
