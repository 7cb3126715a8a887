#!/bin/sh
# Hooks: `devstream hook UserPromptSubmit`, end to end (process start to exit),
# relayed to a running server over 100k memories, against a Python hook that
# does the same keyword work with sqlite3 (bench/peers/python_hook.py: the
# same FTS5 query over the same database, the same output), timed together
# by hyperfine in one run. Also, for context: our hook in-process without a
# server (it opens the database and loads the vector index itself).
#
# Targets: median <= 15 ms end to end; >= 10x faster than the Python hook.
#
#   sh bench/suite/40-hook.sh     (from the repository root; bench/run.sh sets the environment)
#
# Environment: DEVSTREAM_BIN, BENCH_QUICK, BENCH_OUT, PYTHON (see bench/run.sh);
# BENCH_HOOK_MEMORIES (default 100000) to try a smaller corpus.
# Artifacts: $BENCH_OUT/hook.json (ours and the peer, hyperfine),
# $BENCH_OUT/hook-local.json (in-process), $BENCH_OUT/hook-floor.json (process
# start floors), $BENCH_OUT/hook-sample-{ours,peer}.json (one answer of each).
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
DEVSTREAM_BIN=${DEVSTREAM_BIN:-$ROOT/build/release/devstream}
BENCH_QUICK=${BENCH_QUICK:-0}
BENCH_OUT=${BENCH_OUT:-$ROOT/build/release/bench/out}
PYTHON=${PYTHON:-/usr/bin/python3}
COUNT=${BENCH_HOOK_MEMORIES:-100000}
DIM=384
mkdir -p "$BENCH_OUT"
if [ "$BENCH_QUICK" = 1 ]; then RUNS=30; LOCAL_RUNS=5; else RUNS=100; LOCAL_RUNS=15; fi

command -v hyperfine >/dev/null || { echo "hook: hyperfine is not installed" >&2; exit 1; }
[ -x "$DEVSTREAM_BIN" ] || { echo "hook: no binary at $DEVSTREAM_BIN" >&2; exit 1; }

# Nothing from the caller's DevStream settings may leak into the runs.
for v in $(env | sed -n 's/^\(DEVSTREAM_[A-Za-z0-9_]*\)=.*/\1/p'); do
  [ "$v" = DEVSTREAM_BIN ] || unset "$v"
done
export DEVSTREAM_EMBEDDING_PROVIDER=hash DEVSTREAM_EMBEDDING_DIM=$DIM DEVSTREAM_LOG_LEVEL=warn

DB=$("$PYTHON" bench/lib/seed_memories.py --devstream "$DEVSTREAM_BIN" --count "$COUNT" \
  --dim "$DIM" --out "$BENCH_OUT")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ds-hook-bench.XXXXXX")
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    n=0
    while kill -0 "$SERVER_PID" 2>/dev/null && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 2' INT TERM HUP
# The hooks' failures land here, not in ~/.local/state.
export DEVSTREAM_HOOK_LOG="$TMP/hooks.log"

DEVSTREAM_SERVICE_MODE=api "$DEVSTREAM_BIN" serve --host 127.0.0.1 --port 0 --db "$DB" \
  > "$TMP/serve.out" 2> "$TMP/serve.err" &
SERVER_PID=$!
PORT=
i=0
while [ $i -lt 6000 ]; do  # up to 10 minutes (a sanitizer build loads the index slowly)
  PORT=$(sed -n 's/.*DevStream listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/serve.out")
  [ -n "$PORT" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "hook: the server exited:" >&2; cat "$TMP/serve.err" >&2; exit 1; }
  sleep 0.1
  i=$((i + 1))
done
[ -n "$PORT" ] || { echo "hook: the server did not start" >&2; cat "$TMP/serve.err" >&2; exit 1; }
URL="http://127.0.0.1:$PORT"

# Claude Code runs the hook in the project directory: a checkout named
# "bench" (the seeded project; the hook maps cwd to the git root's name).
WORK="$TMP/bench"
mkdir -p "$WORK/.git"
"$PYTHON" - "$TMP" "$WORK" <<'EOF'
import json, sys
sys.path.insert(0, "bench/lib")
from seed_memories import queries
tmp, work = sys.argv[1], sys.argv[2]
q = queries(3)
prompts = [
    f"Seeing {q[0]} again. What did we learn last time, and which files did we touch?",
    f"{q[1][0].upper()}{q[1][1:]}? I need the decision and the follow-up before I change it.",
    f"Last week we {q[2]} somewhere; find where and why, then apply it to the worker pool.",
]
for i, p in enumerate(prompts, 1):
    ev = {"session_id": f"5f0c2d3e-bench-{i}", "transcript_path": f"{work}/transcript.jsonl",
          "cwd": work, "permission_mode": "default", "hook_event_name": "UserPromptSubmit",
          "prompt": p}
    with open(f"{tmp}/ev{i}.json", "w") as f:
        json.dump(ev, f)
    print(f"prompt {i}: {p}")
EOF

OURS="DEVSTREAM_URL=$URL '$DEVSTREAM_BIN' hook UserPromptSubmit < '$TMP/ev{ev}.json'"
PEER="'$PYTHON' '$ROOT/bench/peers/python_hook.py' --db '$DB' < '$TMP/ev{ev}.json'"
LOCAL="DEVSTREAM_DATABASE_PATH='$DB' '$DEVSTREAM_BIN' hook UserPromptSubmit < '$TMP/ev1.json'"

# A hook that injects nothing is not a measurement: every variant must
# answer every prompt with memories, and the peer's must be comparable.
for ev in 1 2 3; do
  sh -c "$(echo "$OURS" | sed "s/{ev}/$ev/g")" > "$TMP/ours$ev.out"
  sh -c "$(echo "$PEER" | sed "s/{ev}/$ev/g")" > "$TMP/peer$ev.out"
done
sh -c "$LOCAL" > "$TMP/local1.out"
cp "$TMP/ours1.out" "$BENCH_OUT/hook-sample-ours.json"
cp "$TMP/peer1.out" "$BENCH_OUT/hook-sample-peer.json"
"$PYTHON" - "$TMP" <<'EOF' || { echo "hook: hook log:" >&2; cat "$TMP/hooks.log" >&2 2>/dev/null; exit 1; }
import json, re, sys
tmp = sys.argv[1]
def ids(path):
    try:
        with open(path) as f:
            o = json.load(f)["hookSpecificOutput"]
        assert o["hookEventName"] == "UserPromptSubmit"
        text = o["additionalContext"]
        return [int(x) for x in re.search(r"ids ([0-9, ]+);", text).group(1).split(", ")], text
    except Exception as e:
        sys.exit(f"hook: {path}: no additionalContext with memories ({e!r})")
for ev in (1, 2, 3):
    a, ta = ids(f"{tmp}/ours{ev}.out")
    b, tb = ids(f"{tmp}/peer{ev}.out")
    common = len(set(a) & set(b))
    top = len(set(a[:5]) & set(b[:5]))
    print(f"check prompt {ev}: ours {len(a)} memories / {len(ta.encode())} bytes, "
          f"peer {len(b)} memories / {len(tb.encode())} bytes; {common} in both, top-5 overlap {top}/5")
    if common == 0:
        sys.exit(f"hook: prompt {ev}: the peer's memories share nothing with ours; not the same work")
a, ta = ids(f"{tmp}/local1.out")
print(f"check in-process (prompt 1): {len(a)} memories / {len(ta.encode())} bytes")
EOF

metrics() {
  "$PYTHON" -c "import http.client, sys
c = http.client.HTTPConnection('127.0.0.1', $PORT, timeout=30)
c.request('GET', '/metrics')
sys.stdout.write(c.getresponse().read().decode())" > "$1"
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
metrics "$TMP/metrics0"
cat "/proc/$SERVER_PID/stat" > "$TMP/stat0"
# hyperfine 1.15 has no --input: each command runs under sh -c with a stdin
# redirect, and hyperfine subtracts the measured shell spawn time.
set --
for ev in 1 2 3; do
  set -- "$@" -n "ours (relayed) prompt $ev" "$(echo "$OURS" | sed "s/{ev}/$ev/g")" \
    -n "python peer prompt $ev" "$(echo "$PEER" | sed "s/{ev}/$ev/g")"
done
hyperfine --style basic --warmup 5 --runs "$RUNS" "$@" \
  --export-json "$BENCH_OUT/hook.json" > "$TMP/hyperfine.log" 2>&1 \
  || { cat "$TMP/hyperfine.log" >&2; exit 1; }
metrics "$TMP/metrics1"
cat "/proc/$SERVER_PID/stat" > "$TMP/stat1"
hyperfine --style basic --warmup 1 --runs "$LOCAL_RUNS" \
  -n "ours in-process (no server) prompt 1" "$LOCAL" \
  --export-json "$BENCH_OUT/hook-local.json" > "$TMP/hyperfine-local.log" 2>&1 \
  || { cat "$TMP/hyperfine-local.log" >&2; exit 1; }
hyperfine --style basic -N --warmup 3 --runs "$RUNS" \
  -n "shell spawn (sh -c true, subtracted by hyperfine)" "sh -c true" \
  -n "floor: devstream version" "$DEVSTREAM_BIN version" \
  -n "floor: python3 -c 'import json, sqlite3'" "$PYTHON -c 'import json, sqlite3'" \
  --export-json "$BENCH_OUT/hook-floor.json" > "$TMP/hyperfine-floor.log" 2>&1 \
  || { cat "$TMP/hyperfine-floor.log" >&2; exit 1; }
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -s "$TMP/hooks.log" ]; then
  echo "hook: the hooks logged failures during the runs:" >&2
  cat "$TMP/hooks.log" >&2
  exit 1
fi

"$PYTHON" - "$BENCH_OUT" "$TMP" "$COUNT" <<'EOF'
import json, re, statistics, sys
out, tmp, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
res = json.load(open(f"{out}/hook.json"))["results"]
res += json.load(open(f"{out}/hook-local.json"))["results"]
res += json.load(open(f"{out}/hook-floor.json"))["results"]
ms = lambda s: s * 1000.0
print(f"{'command':58s} {'median':>9s} {'mean':>9s} {'stddev':>9s} {'min':>9s}   runs")
pooled = {}
for r in res:
    print(f"{r['command']:58s} {ms(r['median']):7.2f}ms {ms(r['mean']):7.2f}ms "
          f"{ms(r['stddev'] or 0):7.2f}ms {ms(r['min']):7.2f}ms   {len(r['times'])}")
    key = re.sub(r" prompt \d+$", "", r["command"])
    pooled.setdefault(key, []).extend(r["times"])
ours = statistics.median(pooled["ours (relayed)"])
peer = statistics.median(pooled["python peer"])
local = statistics.median(pooled["ours in-process (no server)"])
print(f"all prompts: ours (relayed) median {ms(ours):.2f} ms, python peer {ms(peer):.2f} ms, "
      f"ours in-process {ms(local):.1f} ms (prompt 1)")

# Server-side time per relayed hook, from /metrics over the timed runs.
def scrape(path):
    vals = {}
    for line in open(path):
        m = re.match(r'(devstream_(?:http_request|search)_duration_seconds_(?:sum|count))\{(.*)\} (\S+)$', line)
        if m and ("hooks" in m.group(2) or "stage=" in m.group(2)) and "le=" not in m.group(2):
            vals[(m.group(1), m.group(2))] = float(m.group(3))
    return vals
a, b = scrape(f"{tmp}/metrics0"), scrape(f"{tmp}/metrics1")
def per_call(metric, labels_has):
    s = [b[k] - a.get(k, 0) for k in b if k[0] == metric + "_sum" and labels_has in k[1]]
    c = [b[k] - a.get(k, 0) for k in b if k[0] == metric + "_count" and labels_has in k[1]]
    return (sum(s) / sum(c) * 1000, int(sum(c))) if c and sum(c) else (None, 0)
route, n = per_call("devstream_http_request_duration_seconds", "hooks")
stages = []
for st in ("embed", "keyword", "vector", "fusion", "total"):
    v, _ = per_call("devstream_search_duration_seconds", f'stage="{st}"')
    if v is not None:
        stages.append(f"{st} {v:.2f}")
if route is not None:
    print(f"server side per relayed hook (mean of {n}): {route:.2f} ms in the handler"
          f" (search stages, ms: {', '.join(stages)}); the rest of ours is process start,"
          f" reading the event, HTTP connect and the reply")

# CPU time per hook (less sensitive to a loaded machine than wall time):
# ours = the hook process (hyperfine user+system) + the server's CPU per
# relayed hook (/proc/PID/stat over the timed runs; the peer never calls it).
import os
def cpu(path):
    f = open(path).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
cpu_mean = lambda key: statistics.mean(
    r["user"] + r["system"] for r in res if re.sub(r" prompt \d+$", "", r["command"]) == key)
if n:
    server_cpu = (cpu(f"{tmp}/stat1") - cpu(f"{tmp}/stat0")) / n
    ours_cpu = cpu_mean("ours (relayed)")
    peer_cpu = cpu_mean("python peer")
    print(f"CPU per hook (mean): ours {ms(ours_cpu):.1f} ms in the hook process + "
          f"{ms(server_cpu):.1f} ms in the server = {ms(ours_cpu + server_cpu):.1f} ms; "
          f"python peer {ms(peer_cpu):.1f} ms; ratio {peer_cpu / (ours_cpu + server_cpu):.1f}×")

print(f"peer: {'keyword only (same FTS5 query, bm25, project and archived filters, limit 50)'}, "
      f"read-only sqlite3, same output format and 1500-token budget; ours also embeds the prompt, "
      f"searches the vector index, fuses with RRF, and records access, session and injection "
      f"(ours does more work)")
print(f"corpus: {count} memories, dim 384, hash embedder")
verdict = lambda ok: "MET" if ok else "MISSED"
print(f"target: hook end to end median ≤ 15 ms: {ms(ours):.1f} ms -> {verdict(ms(ours) <= 15)}")
ratio = peer / ours
print(f"target: ≥ 10× faster than the Python hook: {ratio:.1f}× -> {verdict(ratio >= 10)}")
print(f"context: in-process without a server (loads the index per call): {ms(local):.1f} ms, "
      f"{local / ours:.1f}× the relayed hook")
EOF
