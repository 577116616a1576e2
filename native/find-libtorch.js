#!/usr/bin/env node
// Finds libtorch the way the Rust binding tch-rs does, and prints compiler/linker flags for binding.gyp
// and scripts/build-native-direct.sh:
//   LIBTORCH=/path        a libtorch folder with include/ and lib/ (LIBTORCH_CXX11_ABI=0|1, default 1)
//   LIBTORCH_USE_PYTORCH=1 the libtorch inside the PyTorch of `python3` (or $PYTHON) — how CUDA arrives
//   otherwise             Debian's libtorch-dev in the system paths
// Usage: node find-libtorch.js includes|libdirs|libs|defines|ldflags|json
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

function fail(msg) {
  process.stderr.write(
    `tsvision: ${msg}\n` +
      '  Install Debian\'s libtorch: apt-get install libtorch-dev (scripts/setup.sh does this),\n' +
      '  or set LIBTORCH=/path/to/libtorch (a folder with include/ and lib/),\n' +
      '  or set LIBTORCH_USE_PYTORCH=1 to use the libtorch inside an installed PyTorch.\n',
  );
  process.exit(1);
}

function locate() {
  if (process.env.LIBTORCH) {
    const root = path.resolve(process.env.LIBTORCH);
    const inc = path.join(root, 'include');
    const lib = path.join(root, 'lib');
    if (!fs.existsSync(path.join(inc, 'ATen', 'ATen.h'))) fail(`LIBTORCH=${root} has no include/ATen/ATen.h`);
    return { source: 'LIBTORCH', includes: [inc, path.join(inc, 'torch/csrc/api/include')], libdir: lib, abi: process.env.LIBTORCH_CXX11_ABI ?? '1' };
  }
  if (process.env.LIBTORCH_USE_PYTORCH === '1') {
    const py = process.env.PYTHON || 'python3';
    let out;
    try {
      out = execFileSync(py, ['-c', 'import torch,os;print(os.path.dirname(torch.__file__));print(int(torch._C._GLIBCXX_USE_CXX11_ABI))'], { encoding: 'utf8' });
    } catch {
      fail(`LIBTORCH_USE_PYTORCH=1 but '${py} -c "import torch"' failed`);
    }
    const [dir, abi] = out.trim().split('\n');
    const inc = path.join(dir, 'include');
    return { source: 'pytorch', includes: [inc, path.join(inc, 'torch/csrc/api/include')], libdir: path.join(dir, 'lib'), abi };
  }
  const multiarch = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib'];
  const libdir = multiarch.find((d) => fs.existsSync(path.join(d, 'libtorch.so')));
  if (!fs.existsSync('/usr/include/ATen/ATen.h') || !libdir) fail('libtorch was not found in the system paths');
  return { source: 'debian', includes: ['/usr/include/torch/csrc/api/include'], libdir, abi: '1' };
}

const t = locate();
const has = (name) => fs.existsSync(path.join(t.libdir, name));
const libs = ['torch', 'torch_cpu', 'c10'];
if (has('libtorch_cuda.so')) libs.push('torch_cuda');
if (has('libc10_cuda.so')) libs.push('c10_cuda');
const mimalloc = fs.existsSync('/usr/include/mimalloc.h') && ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib'].find((d) => fs.existsSync(path.join(d, 'libmimalloc.so')));
const defines = [`_GLIBCXX_USE_CXX11_ABI=${t.abi}`];
if (mimalloc) defines.push('TSV_MIMALLOC=1');
// NCCL process groups (distributed.cc) only where libtorch has CUDA and the compiler sees ProcessGroupNCCL.hpp,
// nccl.h and CUDA's runtime headers; gloo is always there.
const headerDirs = [...t.includes, '/usr/include', ...(process.env.CPATH || '').split(':').filter(Boolean)];
const sees = (f) => headerDirs.some((d) => fs.existsSync(path.join(d, f)));
if (libs.includes('torch_cuda') && sees('torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp') && sees('nccl.h') && sees('cuda_runtime_api.h')) defines.push('TSV_NCCL=1');
// --no-as-needed: nothing references libtorch_cuda's symbols directly, yet loading it is what registers the
// CUDA kernels; with --as-needed the linker would drop it and tensors would silently stay on the CPU.
const ldflags = [`-L${t.libdir}`, `-Wl,-rpath,${t.libdir}`, '-Wl,--no-as-needed', ...libs.map((l) => `-l${l}`), ...(mimalloc ? ['-lmimalloc'] : []), '-Wl,--as-needed'];

const what = process.argv[2] || 'json';
const print = (a) => process.stdout.write(a.join(' ') + '\n');
if (what === 'includes') print(t.includes);
else if (what === 'defines') print(defines);
else if (what === 'ldflags') print(ldflags);
else process.stdout.write(JSON.stringify({ ...t, libs, defines, ldflags, mimalloc: Boolean(mimalloc) }, null, 2) + '\n');
