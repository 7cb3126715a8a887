#!/bin/sh
# Real fuzzing for `make fuzz`: builds the libFuzzer targets of tests/fuzz/
# with clang (build/fuzz, -fsanitize=fuzzer,address,undefined) and runs each
# for FUZZ_SECONDS (default 180) on a copy of its seed corpus, one target at
# a time, then prints per target the executions, exec/s, final coverage
# (libFuzzer's cov: edges and ft: features) and crashes found. Crash
# artifacts land in build/fuzz/artifacts/<target>-crash-*, full logs in
# build/fuzz/logs/. Exits 1 when any target crashed.
# Environment: FUZZ_SECONDS, FUZZ_TARGETS (space-separated names), FUZZ_CXX
# (default clang++-14), FUZZ_JOBS (build jobs, default 2).
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
build="$root/build/fuzz"
seconds="${FUZZ_SECONDS:-180}"
targets="${FUZZ_TARGETS:-http_request api_bodies mcp_jsonrpc hook_event fts_query config}"
cxx="${FUZZ_CXX:-clang++-14}"
jobs="${FUZZ_JOBS:-2}"

if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "run_fuzz.sh: $cxx not found (apt-get install clang-14)" >&2
  exit 2
fi

mkdir -p "$build"
CXX="$cxx" cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DDEVSTREAM_SANITIZE=ON -DDEVSTREAM_FUZZ=ON \
  -DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link >"$build/configure.log"
build_targets=""
for t in $targets; do build_targets="$build_targets fuzz_$t"; done
# shellcheck disable=SC2086 # one word per target
nice -n 10 ninja -C "$build" -j "$jobs" $build_targets

mkdir -p "$build/artifacts" "$build/logs" "$build/corpus"
summary="$build/summary.txt"
printf '%-14s %8s %12s %9s %7s %8s %8s\n' target seconds executions exec/s cov ft crashes >"$summary"
failed=0
for t in $targets; do
  seeds="$root/tests/fuzz/corpus/$t"
  work="$build/corpus/$t"
  log="$build/logs/$t.log"
  rm -rf "$work"
  mkdir -p "$work"
  cp "$seeds"/* "$work"/
  dict=""
  if [ -f "$root/tests/fuzz/dict/$t.dict" ]; then dict="-dict=$root/tests/fuzz/dict/$t.dict"; fi
  echo "fuzzing $t for ${seconds}s (log: $log)"
  stamp="$build/logs/$t.start"
  touch "$stamp"
  start=$(date +%s)
  status=0
  # shellcheck disable=SC2086 # $dict is empty or one option
  nice -n 10 "$build/tests/fuzz_$t" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" $dict \
    "$work" >"$log" 2>&1 || status=$?
  elapsed=$(($(date +%s) - start))
  [ "$elapsed" -gt 0 ] || elapsed=1
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  if [ -z "$execs" ]; then
    execs=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed 's/^#\([0-9]*\).*/\1/')
  fi
  execs=${execs:-0}
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
  cov=$(printf '%s\n' "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  ft=$(printf '%s\n' "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
  crashes=$(find "$build/artifacts" -name "$t-*" -newer "$stamp" | wc -l | tr -d ' ')
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
  [ "$crashes" -eq 0 ] || failed=1
  printf '%-14s %8s %12s %9s %7s %8s %8s\n' "$t" "$elapsed" "$execs" "$((execs / elapsed))" \
    "${cov:-?}" "${ft:-?}" "$crashes" >>"$summary"
  if [ "$status" -ne 0 ]; then
    echo "  $t stopped with status $status; see $log and $build/artifacts/$t-*" >&2
  fi
done
echo
cat "$summary"
if [ "$failed" -ne 0 ]; then
  echo "crashes found: minimise with <binary> -minimize_crash=1 -runs=10000 <artifact>, add the" >&2
  echo "result to tests/fuzz/corpus/<target>/crash-<what> and fix the cause" >&2
  exit 1
fi
