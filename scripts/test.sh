#!/usr/bin/env bash
# `npm test`: set-up if needed, then every dist/test/**/*.test.js under Node's test runner, one file at a
# time (the machine has 2 cores; parallel files would only fight over them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
mapfile -t files < <(find dist/test -name '*.test.js' | LC_ALL=C sort)
exec node --expose-gc --test --test-concurrency=1 "$@" "${files[@]}"
