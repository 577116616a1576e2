#!/usr/bin/env bash
# One prepared run on a lent GPU machine (see ../shared/GPU.md): build the addon against the PyTorch there
# (LIBTORCH_USE_PYTORCH=1 brings CUDA), check CUDA ops against the CPU, and run bench/engine on CUDA.
# Expects, carried from the development machine: .gpu/node.xz, .gpu/include (Node + node-addon-api headers),
# dist/ (compiled TypeScript), node_modules/commander (for the CLI). Results land in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node
mkdir -p /tmp/nodebin && ln -sf /tmp/node /tmp/nodebin/node
export PATH=/tmp/nodebin:$PATH
export LIBTORCH_USE_PYTORCH=1 NODE_INCLUDE=$PWD/.gpu/include NAPI_INCLUDE=$PWD/.gpu/include TSVISION_PYTHON=python3
{
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda)'
  time bash scripts/build-native-direct.sh
  node dist/src/cli/main.js info
  node dist/bench/cuda-check.js
} > "$OUT/gpu.log" 2>&1
echo "build+check rc=$?" >> "$OUT/gpu.log"
node dist/bench/engine.js --device cuda --rounds 3 --steps 100 >> "$OUT/gpu.log" 2>&1
echo "bench rc=$?" >> "$OUT/gpu.log"
if [ -f dist/bench/models.js ]; then
  node dist/bench/models.js --device cuda >> "$OUT/gpu.log" 2>&1
  echo "models bench rc=$?" >> "$OUT/gpu.log"
fi
cp BENCHMARKS.md "$OUT/" 2>/dev/null
tail -40 "$OUT/gpu.log"
