#!/usr/bin/env bash
# Installs everything tsvision needs on a fresh Debian 12 machine, then builds it. Idempotent: each step
# is skipped when its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: libtorch (the engine), gloo (c10d on CPU), OpenBLAS (Debian's reference BLAS runs a 512³
# matmul at 3.5 GFLOP/s), mimalloc (CPU allocator), PyTorch for the parity tests, Fashion-MNIST (real data),
# the ONNX checker (an independent validation of exported files), Chromium (the browser examples are tested in
# a real browser, driven by playwright-core from npm).
PKGS=(libtorch-dev libgloo-dev libopenblas0 libmimalloc-dev python3-torch python3-torchvision python3-numpy python3-pil
      python3-onnx dataset-fashion-mnist chromium g++ make python3)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

hash_of() { find "$@" -type f 2>/dev/null | LC_ALL=C sort | xargs cat 2>/dev/null | sha1sum | cut -d' ' -f1; }
mkdir -p .setup-stamps

# npm packages, exactly as locked.
h=$(hash_of package-lock.json)
if [ ! -d node_modules ] || [ "$(cat .setup-stamps/npm 2>/dev/null)" != "$h" ]; then
  echo "setup: npm ci"
  # onnxruntime-node's install script would fetch its CUDA provider from api.nuget.org; the CPU one ships in
  # the npm package, and a machine without that host must still install.
  ONNXRUNTIME_NODE_INSTALL="${ONNXRUNTIME_NODE_INSTALL:-skip}" npm ci --no-audit --no-fund
  echo "$h" > .setup-stamps/npm
fi

# The addon, built offline against Node's own headers where the distribution ships them.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi
h=$(hash_of native/src native/binding.gyp native/find-libtorch.js; echo "${LIBTORCH:-}${LIBTORCH_USE_PYTORCH:-}")
if [ ! -f native/build/Release/tsvision.node ] || [ "$(cat .setup-stamps/native 2>/dev/null)" != "$h" ]; then
  echo "setup: building the libtorch addon (about 2 minutes on 2 cores)"
  (cd native && ../node_modules/.bin/node-gyp rebuild -j "$(nproc)" --loglevel=warn)
  echo "$h" > .setup-stamps/native
fi

# TypeScript.
h=$(hash_of src test bench tsconfig.json)
if [ ! -d dist ] || [ "$(cat .setup-stamps/ts 2>/dev/null)" != "$h" ]; then
  echo "setup: compiling TypeScript"
  ./node_modules/.bin/tsc -p tsconfig.json
  echo "$h" > .setup-stamps/ts
fi

# `npx tsvision ...` inside this checkout runs the local CLI (npx looks in node_modules/.bin first).
chmod +x dist/src/cli/main.js
ln -sf ../../dist/src/cli/main.js node_modules/.bin/tsvision
