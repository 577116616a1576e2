#!/usr/bin/env node
// npm's `install` step: builds the libtorch addon when tsvision is installed as a dependency
// (`npm install tsvision`, or a packed tarball). In this repository's own checkout `npm ci` skips it:
// scripts/setup.sh builds the addon there, after the system packages, and remembers what it built.
//
// The build needs libtorch (Debian's libtorch-dev, LIBTORCH=/path or LIBTORCH_USE_PYTORCH=1; see
// native/find-libtorch.js), g++ and make. TSVISION_SKIP_NATIVE_BUILD=1 skips it, for an addon provided
// through TSVISION_ADDON=/path/to/tsvision.node.
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const say = (msg) => process.stderr.write(`tsvision: ${msg}\n`);

// npm runs install scripts with INIT_CWD set to where `npm install` was typed. Equal to this package's
// folder means the developer's own `npm ci` in the checkout.
const initCwd = process.env.INIT_CWD ? path.resolve(process.env.INIT_CWD) : '';
if (initCwd === root && fs.existsSync(path.join(root, 'scripts', 'setup.sh'))) process.exit(0);
if (process.env.TSVISION_SKIP_NATIVE_BUILD === '1') {
  say('TSVISION_SKIP_NATIVE_BUILD=1: not building the addon (set TSVISION_ADDON to a built tsvision.node)');
  process.exit(0);
}

// node-gyp compiles against Node's headers; on Debian's nodejs they are installed in /usr/include/node, which
// spares node-gyp a download (and makes the build work offline).
const env = { ...process.env };
if (!env.npm_config_nodedir && fs.existsSync('/usr/include/node/node_api.h')) env.npm_config_nodedir = '/usr';

// npm hands lifecycle scripts the path of its own node-gyp; a checkout has it in devDependencies.
function nodeGyp() {
  const candidates = [env.npm_config_node_gyp, path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')];
  for (const c of candidates) if (c && fs.existsSync(c)) return [process.execPath, c];
  return ['node-gyp'];
}

const jobs = String(Math.max(1, require('os').availableParallelism?.() ?? require('os').cpus().length));
const [cmd, ...pre] = nodeGyp();
say(`building the libtorch addon in ${path.join(root, 'native')}`);
const r = spawnSync(cmd, [...pre, 'rebuild', '-j', jobs, '--loglevel=warn'], {
  cwd: path.join(root, 'native'),
  env,
  stdio: 'inherit',
});
if (r.error || r.status !== 0) {
  say(
    `building the addon failed (${r.error ? r.error.message : `node-gyp exited with ${r.status}`}). It needs libtorch ` +
      '(apt-get install libtorch-dev libmimalloc-dev libgloo-dev, or LIBTORCH=/path/to/libtorch, or ' +
      'LIBTORCH_USE_PYTORCH=1), g++ and make; after installing them run `npm rebuild tsvision`.',
  );
  process.exit(1);
}
say('addon built');
