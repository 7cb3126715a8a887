#!/bin/sh
# The benchmark suite (`make bench`, `make bench-quick`): the C++ benches of
# build/release/bench, then every bench/suite/*.sh, in name order. Each prints
# our figure beside its peer's (or the physical/analytic limit) from the same
# run, and each target as MET or MISSED. A missed target is reported, not a
# failure; a bench exits non-zero only when an answer is wrong or a run broke.
#
# Environment given to bench/suite/*.sh (run from the repository root):
#   DEVSTREAM_BIN  the release binary (absolute path)
#   BENCH_QUICK    1 for the quick subset (make bench-quick, under 5 minutes)
#   BENCH_OUT      a directory for artifacts (CSV, PNG): build/release/bench/out
#   PYTHON         /usr/bin/python3 (Debian's, which has fastapi/uvicorn/matplotlib)
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
DEVSTREAM_BIN=$(cd "$BUILD" && pwd)/devstream
BENCH_QUICK=${BENCH_QUICK:-0}
BENCH_OUT=$(mkdir -p "$BUILD/bench/out" && cd "$BUILD/bench/out" && pwd)
PYTHON=/usr/bin/python3
export DEVSTREAM_BIN BENCH_QUICK BENCH_OUT PYTHON

echo "machine: $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
if [ "$BENCH_QUICK" = 1 ]; then
  # The quick subset: exact vector search and ingest (the HNSW build and the
  # full retrieval eval take minutes).
  benches="$BUILD/bench/bench_vector_search_bench $BUILD/bench/bench_ingest_bench"
else
  benches=$(ls "$BUILD"/bench/bench_* 2>/dev/null || true)
fi
for b in $benches; do
  echo "== $b"
  "$b" || status=1
done
for s in bench/suite/*.sh; do
  [ -e "$s" ] || continue
  echo "== $s"
  sh "$s" || status=1
done
exit $status
