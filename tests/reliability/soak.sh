#!/bin/sh
# Soak run of the reliability tests (crash rounds, load, multi-process) from
# the ASan build: long load and multi-process phases and many kill -9 rounds.
# DEVSTREAM_SOAK_SECONDS (default 600), DEVSTREAM_CRASH_ROUNDS (default 200)
# and DEVSTREAM_CRASH_SEED (default: the current time, printed) override.
# Usage: sh tests/reliability/soak.sh [extra GoogleTest flags]
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
bin="${DEVSTREAM_SOAK_BUILD:-$root/build/asan}/tests/reliability_tests"
if [ ! -x "$bin" ]; then
  echo "soak: $bin not found; run make build-asan first" >&2
  exit 1
fi

DEVSTREAM_SOAK_SECONDS="${DEVSTREAM_SOAK_SECONDS:-600}"
DEVSTREAM_CRASH_ROUNDS="${DEVSTREAM_CRASH_ROUNDS:-200}"
DEVSTREAM_CRASH_SEED="${DEVSTREAM_CRASH_SEED:-$(date +%s)}"
export DEVSTREAM_SOAK_SECONDS DEVSTREAM_CRASH_ROUNDS DEVSTREAM_CRASH_SEED

echo "soak: DEVSTREAM_SOAK_SECONDS=$DEVSTREAM_SOAK_SECONDS" \
  "DEVSTREAM_CRASH_ROUNDS=$DEVSTREAM_CRASH_ROUNDS DEVSTREAM_CRASH_SEED=$DEVSTREAM_CRASH_SEED"
exec "$bin" --gtest_color=no "$@"
