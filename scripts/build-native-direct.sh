#!/usr/bin/env bash
# Builds the addon with g++ directly, without node-gyp: for machines that have a compiler and libtorch but
# no node-gyp set-up (e.g. a GPU machine with PyTorch, LIBTORCH_USE_PYTORCH=1). Node's N-API headers come
# from NODE_INCLUDE (default /usr/include/node), node-addon-api's from node_modules or NAPI_INCLUDE.
set -euo pipefail
cd "$(dirname "$0")/../native"
NODE_INCLUDE=${NODE_INCLUDE:-/usr/include/node}
NAPI_INCLUDE=${NAPI_INCLUDE:-$(node -p "require('node-addon-api').include_dir" 2>/dev/null || echo ../node_modules/node-addon-api)}
mkdir -p build/Release
read -r -a INCS <<<"$(node find-libtorch.js includes)"
read -r -a DEFS <<<"$(node find-libtorch.js defines)"
read -r -a LDF <<<"$(node find-libtorch.js ldflags)"
g++ -std=c++17 -O2 -fPIC -shared -fvisibility=hidden -Wno-deprecated-declarations \
  -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DBUILDING_NODE_EXTENSION "${DEFS[@]/#/-D}" \
  -I"$NODE_INCLUDE" -I"$NAPI_INCLUDE" "${INCS[@]/#/-I}" \
  src/addon.cc src/dispatch.cc src/allocator.cc src/distributed.cc -o build/Release/tsvision.node "${LDF[@]}"
echo "built native/build/Release/tsvision.node"
