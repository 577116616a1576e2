// tsvision as a dependency of someone else's project: `npm pack`, installed into a fresh project, the addon
// built by the package's own install script, then the library (JavaScript and strict TypeScript) and the
// `tsvision` command used from there. Offline: the project's lockfile is made from this repository's, so
// npm takes every dependency from the cache that set-up's `npm ci` filled.
import { before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync, SpawnSyncOptions } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tmpDir } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const TMP = tmpDir('tsv-package-');
const APP = path.join(TMP, 'app');
let tarball = '';

function sh(cmd: string, args: string[], o: SpawnSyncOptions = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 900_000, ...o });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}
const npm = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  sh('npm', [...args, '--offline', '--no-audit', '--no-fund'], { cwd: APP, env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', ...env } });

/** package.json and package-lock.json of a project whose one dependency is the tarball: the lock lists the
 * tarball and every non-dev package of this repository's lock, which are exactly tsvision's dependencies. */
function makeApp(): void {
  fs.mkdirSync(APP, { recursive: true });
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  const spec = `file:${path.relative(APP, tarball)}`;
  const packages: Record<string, unknown> = {
    '': { name: 'app', dependencies: { tsvision: spec } },
    'node_modules/tsvision': {
      version: pkg.version, resolved: spec, hasInstallScript: true, license: pkg.license,
      integrity: `sha512-${crypto.createHash('sha512').update(fs.readFileSync(tarball)).digest('base64')}`,
      dependencies: pkg.dependencies, bin: pkg.bin, engines: pkg.engines,
    },
  };
  for (const [k, v] of Object.entries(lock.packages)) if (k.startsWith('node_modules/') && !v.dev) packages[k] = v;
  // allowScripts: npm 11 runs a dependency's install script only when the project approves it (older npm
  // ignores the field and runs it anyway).
  const app = { name: 'app', private: true, dependencies: { tsvision: spec }, allowScripts: { [`file:${tarball}`]: true } };
  fs.writeFileSync(path.join(APP, 'package.json'), JSON.stringify(app, null, 2));
  fs.writeFileSync(path.join(APP, 'package-lock.json'), JSON.stringify({ name: 'app', lockfileVersion: 3, requires: true, packages }, null, 2));
}

before(() => {
  const r = sh('npm', ['pack', '--ignore-scripts', '--pack-destination', TMP], { cwd: ROOT });
  assert.equal(r.status, 0, r.out);
  tarball = path.join(TMP, fs.readdirSync(TMP).find((f) => f.endsWith('.tgz')) ?? '');
  makeApp();
});

test('the tarball holds the library, the addon sources and the browser pages, not tests or reports', () => {
  const files = sh('tar', ['tzf', tarball]).out.split('\n').map((f) => f.replace(/^package\//, ''));
  for (const f of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'native/binding.gyp', 'native/find-libtorch.js',
    'native/src/addon.cc', 'native/src/dispatch.cc', 'scripts/install-native.js', 'scripts/pth2safetensors.py',
    'examples/browser/index.html', 'LICENSE', 'README.md']) assert.ok(files.includes(f), `missing ${f}`);
  for (const f of files) assert.doesNotMatch(f, /^(test|bench|reports|runs|dist\/test|dist\/bench|native\/build)\//, f);
});

test('installed without its install script, the library says how to build the addon', () => {
  const r = npm(['ci', '--ignore-scripts']);
  assert.equal(r.status, 0, r.out);
  const q = sh(process.execPath, ['-e', "require('tsvision')"], { cwd: APP });
  assert.notEqual(q.status, 0);
  assert.match(q.out, /libtorch addon is not built/);
  assert.match(q.out, /npm rebuild tsvision/);
  assert.match(q.out, /libtorch-dev/);
});

test('a build that cannot find libtorch fails naming the package and the variables', () => {
  const r = npm(['rebuild', 'tsvision'], { LIBTORCH: path.join(TMP, 'no-libtorch') });
  assert.notEqual(r.status, 0);
  assert.match(r.out, /has no include\/ATen\/ATen\.h/);
  assert.match(r.out, /libtorch-dev/);
  assert.match(r.out, /npm rebuild tsvision/);
});

test('npm rebuild builds the addon; the library computes, from CommonJS, an ES module and strict TypeScript', () => {
  const r = npm(['rebuild', 'tsvision']);
  assert.equal(r.status, 0, r.out);
  const addon = path.join(APP, 'node_modules', 'tsvision', 'native', 'build', 'Release', 'tsvision.node');
  assert.ok(fs.existsSync(addon), r.out);

  // [[1,2],[3,4]]·[[5,6],[7,8]] = [[19,22],[43,50]]; d/dx sum(x·x) = 2x.
  const js = `const { torch } = require('tsvision');
    const a = torch.tensor([[1, 2], [3, 4]], { dtype: 'float32', requiresGrad: true });
    const p = torch.matmul(a, torch.tensor([[5, 6], [7, 8]], { dtype: 'float32' }));
    a.mul(a).sum().backward();
    console.log(JSON.stringify({ p: Array.from(p.toArray()), g: Array.from(a.grad.toArray()), addon: torch.engineInfo().addon }));`;
  const q = sh(process.execPath, ['-e', js], { cwd: APP });
  assert.equal(q.status, 0, q.out);
  const got = JSON.parse(q.out) as { p: number[]; g: number[]; addon: string };
  assert.deepEqual(got.p, [19, 22, 43, 50]);
  assert.deepEqual(got.g, [2, 4, 6, 8]);
  assert.equal(fs.realpathSync(got.addon), fs.realpathSync(addon));
  // From an ES module too: Node finds the CommonJS build's named exports. 2·3 ones sum to 6.
  fs.writeFileSync(path.join(APP, 'esm.mjs'), "import { torch } from 'tsvision';\nconsole.log(torch.ones([2, 3]).sum().item());\n");
  const esm = sh(process.execPath, ['esm.mjs'], { cwd: APP });
  assert.equal(esm.status, 0, esm.out);
  assert.equal(esm.out.trim(), '6');

  // The shipped .d.ts files type the public API: a program compiles under --strict, and a wrong argument
  // does not.
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const flags = ['--strict', '--noEmit', '--module', 'node16', '--moduleResolution', 'node16', '--target', 'es2022',
    '--types', 'node', '--typeRoots', path.join(ROOT, 'node_modules', '@types')];
  fs.writeFileSync(path.join(APP, 'good.ts'), `import { torch, models, optim, summary } from 'tsvision';
const model = models.createModel('mobilenet_v1', { alpha: 0.25, numClasses: 10 });
const opt = new optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
const y: torch.Tensor = torch.tidy(() => model.forward(torch.randn([2, 3, 32, 32])));
const params: number = summary(model, [1, 3, 32, 32]).totalParams;
console.log(y.shape, params, opt);
`);
  fs.writeFileSync(path.join(APP, 'bad.ts'), `import { optim, models } from 'tsvision';
new optim.SGD(models.createModel('cnn').parameters(), { lr: '0.05' });
`);
  const good = sh(process.execPath, [tsc, ...flags, 'good.ts'], { cwd: APP });
  assert.equal(good.status, 0, good.out);
  const bad = sh(process.execPath, [tsc, ...flags, 'bad.ts'], { cwd: APP });
  assert.notEqual(bad.status, 0);
  assert.match(bad.out, /bad\.ts\(2,.*'string' is not assignable to type 'number'/);
});

test('the tsvision command runs from the project', () => {
  const bin = path.join(APP, 'node_modules', '.bin', 'tsvision');
  const r = sh(bin, ['info'], { cwd: APP });
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /libtorch/);
  assert.ok(r.out.includes(path.join('node_modules', 'tsvision', 'native', 'build')), r.out);
});
