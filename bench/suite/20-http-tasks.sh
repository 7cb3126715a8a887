#!/bin/sh
# HTTP: devstream against the seed's intended stack, a minimal FastAPI + uvicorn
# app (Debian's python3-fastapi 0.92 and python3-uvicorn 0.17;
# bench/peers/fastapi_tasks.py) serving the same "get task by id" and "list 20
# tasks" with the same SQL from the same SQLite file; load from wrk on loopback.
#
# Target: GET /api/v1/tasks/{id} throughput >= 5x the FastAPI peer at equal
# concurrency, and its p99 <= 5 ms at 64 connections.
#
#   1. seeds (or reuses) $BENCH_OUT/tasks-20x5x100.db through devstream's REST
#      API: 20 plans x 5 phases x 100 tasks = 10,000 tasks with dependencies
#      (bench/lib/http_seed_tasks.py);
#   2. starts devstream (api mode, access log off, 1000 connections allowed,
#      default threads and reader pool) and the peer (uvicorn, 2 workers as
#      there are cores, log level warning, no access log; TCP_NODELAY on, see
#      PEER_LAUNCH below) on the same file;
#   3. checks that both answer the same: a sample of task ids and the first
#      two list pages, as parsed JSON (key order ignored) plus the ETag;
#   4. runs wrk (2 threads) for each endpoint at 64 and 8 connections, ours and
#      the peer's alternately (so both see the same machine load; the order
#      flips each round), after a warm-up; GET by id rotates over all 10,000
#      ids (bench/lib/wrk_task_ids.lua). Full: 7 rounds of 4 s, for each
#      endpoint and concurrency the round with the median ratio reported;
#      quick (BENCH_QUICK=1): 1 round of 3 s. Short rounds, because this
#      machine's speed drifts within seconds: one server's CPU time per GET
#      went 28, 33, 36, 30, 27 us in consecutive 3 s windows, and the peer's
#      throughput moved as much. A pair's two runs must be close in time to
#      see the same machine, and more pairs give the median more to discard;
#      the total time per server is about what 3 rounds of 10 s took;
#   5. prints the table, the ratios and the targets, and writes every run to
#      $BENCH_OUT/http_tasks.csv.
# wrk runs on the same 2 cores as the server it loads, so each server gets the
# share of the CPU that wrk leaves it; the report also gives each server's and
# each wrk's CPU time per request (/proc and GNU time), which do not depend on
# that share, and the throughput ratio they allow.
# Exits non-zero when the answers differ, a server does not start, or a run
# has non-2xx responses or socket errors; a missed target is only reported.
set -eu
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/usr/bin/python3}
BENCH_QUICK=${BENCH_QUICK:-0}
DEVSTREAM_BIN=${DEVSTREAM_BIN:-$PWD/build/release/devstream}
BENCH_OUT=${BENCH_OUT:-$PWD/build/release/bench/out}
mkdir -p "$BENCH_OUT"
CSV=$BENCH_OUT/http_tasks.csv
# The peer's handler style: async (the default: async def, sqlite3 on the event
# loop) or sync (def handlers in FastAPI's threadpool); see the peer's header.
FASTAPI_TASKS_MODE=${FASTAPI_TASKS_MODE:-async}
# How the peer is started: fixed (the default: bench/peers/fastapi_tasks.py runs
# uvicorn's 2-worker supervisor on a listening socket made with IPPROTO_TCP) or
# cli (`python3 -m uvicorn ... --workers 2` as is, whose connections lack
# TCP_NODELAY, so each keep-alive response waits ~40 ms for a delayed ACK:
# uvicorn issue #3149; only for showing that effect).
PEER_LAUNCH=${PEER_LAUNCH:-fixed}
WRK_TIMEOUT=${WRK_TIMEOUT:-2s}

if [ "$BENCH_QUICK" = 1 ]; then
  ROUNDS=1 DURATION=3 WARMUP=1
else
  ROUNDS=7 DURATION=4 WARMUP=2
fi
CONNS="64 8"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/http-tasks.XXXXXX")
OURS_PID='' PEER_PID='' PEER_KIDS=''

# Stops one process: SIGTERM, up to 10 s, then SIGKILL.
stop_pid() {
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || return 0
  n=0
  while kill -0 "$1" 2>/dev/null && [ $n -lt 100 ]; do
    sleep 0.1
    n=$((n + 1))
  done
  kill -KILL "$1" 2>/dev/null || true
}
cleanup() {
  stop_pid "$OURS_PID"
  stop_pid "$PEER_PID"
  for k in $PEER_KIDS; do stop_pid "$k"; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

fail() {
  echo "http-tasks: FAILED: $*" >&2
  exit 1
}

echo "http-tasks: devstream vs FastAPI $($PYTHON -c 'import fastapi; print(fastapi.__version__)') + uvicorn $($PYTHON -c 'import uvicorn; print(uvicorn.__version__)') (peer: $FASTAPI_TASKS_MODE handlers, 2 workers, launch $PEER_LAUNCH), wrk 2 threads, $ROUNDS round(s) of ${DURATION}s"
echo "http-tasks: machine $(nproc) CPU(s), load at start $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- 1. the database ----
DB=$($PYTHON bench/lib/http_seed_tasks.py --devstream "$DEVSTREAM_BIN" --out "$BENCH_OUT")
[ -f "$DB" ] || fail "seeding gave no database"
$PYTHON - "$DB" "$WORK/ids.txt" <<'EOF'
import random, sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
ids = [r[0] for r in c.execute("SELECT id FROM micro_tasks ORDER BY id")]
deps = c.execute("SELECT count(*) FROM task_dependencies").fetchone()[0]
random.Random(20261126).shuffle(ids)
open(sys.argv[2], "w").write("\n".join(ids) + "\n")
print(f"http-tasks: database {sys.argv[1]}: {len(ids)} tasks, {deps} dependencies")
EOF

# ---- 2. the servers ----
printf 'logging:\n  access_log: false\n' >"$WORK/devstream.yml"
env DEVSTREAM_SERVICE_MODE=api DEVSTREAM_LOG_LEVEL=warn DEVSTREAM_MAX_CONNECTIONS=1000 \
  "$DEVSTREAM_BIN" --config "$WORK/devstream.yml" serve --host 127.0.0.1 --port 0 --db "$DB" \
  >"$WORK/ours.out" 2>"$WORK/ours.err" &
OURS_PID=$!

PEER_PORT=$($PYTHON -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if [ "$PEER_LAUNCH" = cli ]; then
  env FASTAPI_TASKS_DB="$DB" FASTAPI_TASKS_MODE="$FASTAPI_TASKS_MODE" \
    "$PYTHON" -m uvicorn fastapi_tasks:app --app-dir bench/peers --workers 2 \
    --host 127.0.0.1 --port "$PEER_PORT" --log-level warning --no-access-log \
    >"$WORK/peer.out" 2>&1 &
else
  env FASTAPI_TASKS_DB="$DB" FASTAPI_TASKS_MODE="$FASTAPI_TASKS_MODE" \
    "$PYTHON" bench/peers/fastapi_tasks.py --workers 2 --host 127.0.0.1 --port "$PEER_PORT" \
    >"$WORK/peer.out" 2>&1 &
fi
PEER_PID=$!

OURS_PORT=''
n=0
while [ -z "$OURS_PORT" ]; do
  kill -0 "$OURS_PID" 2>/dev/null || { cat "$WORK/ours.err" >&2; fail "devstream did not start"; }
  [ $n -lt 300 ] || fail "devstream did not print its port in 30 s"
  OURS_PORT=$(sed -n 's|.*http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$WORK/ours.out" | head -n 1)
  sleep 0.1
  n=$((n + 1))
done
# The peer is up when both workers exist and it answers.
n=0
while :; do
  kill -0 "$PEER_PID" 2>/dev/null || { cat "$WORK/peer.out" >&2; fail "uvicorn did not start"; }
  [ $n -lt 300 ] || { cat "$WORK/peer.out" >&2; fail "uvicorn did not answer in 30 s"; }
  PEER_KIDS=$(pgrep -P "$PEER_PID" || true)
  # shellcheck disable=SC2086 # (a list of pids)
  if [ "$(echo $PEER_KIDS | wc -w)" -ge 2 ] &&
    curl -sf -o /dev/null "http://127.0.0.1:$PEER_PORT/api/v1/tasks?limit=1"; then
    break
  fi
  sleep 0.1
  n=$((n + 1))
done
PEER_KIDS=$(pgrep -P "$PEER_PID" || true)
curl -sf -o /dev/null "http://127.0.0.1:$OURS_PORT/api/v1/tasks?limit=1" || fail "devstream does not answer"

# ---- 3. the same answers ----
$PYTHON - "$OURS_PORT" "$PEER_PORT" "$WORK/ids.txt" <<'EOF' || fail "the two servers answer differently"
import http.client, json, sys
ours, peer, ids_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ids = open(ids_file).read().split()
conns = {"ours": http.client.HTTPConnection("127.0.0.1", ours, timeout=30),
         "peer": http.client.HTTPConnection("127.0.0.1", peer, timeout=30)}
def get(who, path):
    c = conns[who]
    c.request("GET", path)
    r = c.getresponse()
    return r.status, r.getheader("ETag"), json.loads(r.read())
bad = 0
sample = ids[:50]
with_deps = 0
for i in sample:
    a, b = get("ours", f"/api/v1/tasks/{i}"), get("peer", f"/api/v1/tasks/{i}")
    with_deps += bool(a[2].get("depends_on"))
    if a != b:
        bad += 1
        print(f"http-tasks: GET /api/v1/tasks/{i} differs:\n  ours {a}\n  peer {b}", file=sys.stderr)
a, b = get("ours", "/api/v1/tasks/tsk_00000000000000000000000000"), get("peer", "/api/v1/tasks/tsk_00000000000000000000000000")
if a[0] != 404 or b[0] != 404:
    bad += 1
    print(f"http-tasks: an unknown id gave {a[0]} (ours) and {b[0]} (peer), not 404", file=sys.stderr)
cursors = []
for page in (1, 2):
    pa = get("ours", "/api/v1/tasks?limit=20" + (f"&cursor={cursors[-1][0]}" if cursors else ""))
    pb = get("peer", "/api/v1/tasks?limit=20" + (f"&cursor={cursors[-1][1]}" if cursors else ""))
    if pa[0] != 200 or pb[0] != 200 or len(pa[2]["items"]) != 20 or pa[2]["items"] != pb[2]["items"]:
        bad += 1
        print(f"http-tasks: list page {page} differs:\n  ours {pa}\n  peer {pb}", file=sys.stderr)
    cursors.append((pa[2]["next_cursor"], pb[2]["next_cursor"]))
same_cursor = all(x == y for x, y in cursors)
print(f"http-tasks: same answers: {len(sample)} task ids ({with_deps} with dependencies) "
      f"compared as JSON with their ETag, an unknown id (404 both), list pages 1-2 of 20 items; "
      f"next_cursor {'identical' if same_cursor else 'differs (ours ' + str(cursors[0][0]) + ', peer ' + str(cursors[0][1]) + '; each server follows its own)'}")
sys.exit(1 if bad else 0)
EOF

# ---- 4. the load ----
CLK_TCK=$(getconf CLK_TCK)
# CPU ticks (user + system) of the given processes.
cpu_ticks() {
  t=0
  for p in "$@"; do
    v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
    t=$((t + v))
  done
  echo $t
}
echo "round,endpoint,connections,server,requests,duration_s,requests_per_s,p50_ms,p75_ms,p90_ms,p99_ms,max_ms,non_2xx,socket_errors,server_cpu_s,server_cpu_us_per_req,wrk_cpu_s,wrk_cpu_us_per_req" >"$CSV"

# run_wrk ROUND ENDPOINT CONNS SERVER DURATION [record]
run_wrk() {
  round=$1 ep=$2 c=$3 who=$4 dur=$5
  if [ "$who" = ours ]; then port=$OURS_PORT pids=$OURS_PID; else port=$PEER_PORT pids=$PEER_KIDS; fi
  if [ "$ep" = get ]; then
    set -- -s bench/lib/wrk_task_ids.lua "http://127.0.0.1:$port" -- "$WORK/ids.txt"
  else
    set -- "http://127.0.0.1:$port/api/v1/tasks?limit=20"
  fi
  # shellcheck disable=SC2086 # (a list of pids)
  t0=$(cpu_ticks $pids)
  echo 0 0 >"$WORK/wrk.cpu"
  set -- wrk -t2 -c"$c" -d"${dur}s" --timeout "$WRK_TIMEOUT" --latency "$@"
  # wrk's own CPU time, when GNU time is there.
  [ -x /usr/bin/time ] && set -- /usr/bin/time -f '%U %S' -o "$WORK/wrk.cpu" "$@"
  "$@" >"$WORK/wrk.txt" 2>&1 ||
    { cat "$WORK/wrk.txt" >&2; fail "wrk failed ($ep, $c connections, $who)"; }
  # shellcheck disable=SC2086 # (a list of pids)
  t1=$(cpu_ticks $pids)
  [ "$round" = warmup ] && return 0
  cat "$WORK/wrk.txt" >>"$WORK/wrk.log"
  wrk_cpu=$(awk 'NR == 1 { print $1 + $2 }' "$WORK/wrk.cpu")
  line=$(awk -v round="$round" -v ep="$ep" -v c="$c" -v who="$who" -v cpu=$((t1 - t0)) -v tck="$CLK_TCK" \
    -v wcpu="$wrk_cpu" '
    function ms(v) {
      if (v ~ /us$/) return v / 1000
      if (v ~ /ms$/) return v + 0
      if (v ~ /m$/) return v * 60000
      if (v ~ /s$/) return v * 1000
      return v + 0
    }
    /^ +Latency / && !lat { max = ms($4); lat = 1 }
    /^ +50% / { p50 = ms($2) } /^ +75% / { p75 = ms($2) } /^ +90% / { p90 = ms($2) } /^ +99% / { p99 = ms($2) }
    / requests in / { reqs = $1; dur = $4; sub(/s,$/, "", dur) }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { non2xx = $5 }
    /Socket errors:/ { gsub(/,/, ""); sock = $4 + $6 + $8 + $10 }
    END {
      cpus = cpu / tck
      printf "%s,%s,%s,%s,%d,%s,%.1f,%.3f,%.3f,%.3f,%.3f,%.3f,%d,%d,%.2f,%.1f,%.2f,%.1f\n", round, ep, c, who, reqs, dur,
        rps, p50, p75, p90, p99, max, non2xx, sock, cpus, (reqs > 0 ? cpus * 1e6 / reqs : 0),
        wcpu, (reqs > 0 ? wcpu * 1e6 / reqs : 0)
    }' "$WORK/wrk.txt")
  echo "$line" >>"$CSV"
  echo "http-tasks:   $line"
  [ "$(echo "$line" | cut -d, -f13,14)" = 0,0 ] ||
    { cat "$WORK/wrk.txt" >&2; fail "a run with errors (non-2xx responses or socket errors): $line"; }
}

echo "http-tasks: warm-up (${WARMUP}s each)"
for ep in get list; do
  run_wrk warmup "$ep" 64 ours "$WARMUP"
  run_wrk warmup "$ep" 64 peer "$WARMUP"
done
echo "http-tasks: runs (round,endpoint,connections,server,requests,duration_s,req/s,p50,p75,p90,p99,max ms,non-2xx,socket errors,server CPU s,server CPU us/req,wrk CPU s,wrk CPU us/req)"
r=1
while [ $r -le "$ROUNDS" ]; do
  for ep in get list; do
    for c in $CONNS; do
      if [ $((r % 2)) = 1 ]; then order="ours peer"; else order="peer ours"; fi
      for who in $order; do run_wrk "$r" "$ep" "$c" "$who" "$DURATION"; done
    done
  done
  r=$((r + 1))
done
kill -0 "$OURS_PID" 2>/dev/null || fail "devstream exited during the runs"
kill -0 "$PEER_PID" 2>/dev/null || fail "uvicorn exited during the runs"

# ---- 5. the report ----
echo "http-tasks: load at end $(cut -d' ' -f1-3 /proc/loadavg)"
$PYTHON - "$CSV" "$ROUNDS" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
rounds = int(sys.argv[2])
names = {"get": "GET /api/v1/tasks/{id}", "list": "GET /api/v1/tasks?limit=20"}
def f(r, k):
    return float(r[k])
def median_round(ep, c):
    """Ours and the peer's runs of the round whose ratio is the median (ours and the peer
    ran back to back in each round, so a round's pair saw the same machine load)."""
    pairs = []
    for rnd in sorted({r["round"] for r in rows}):
        o = [r for r in rows if (r["round"], r["endpoint"], r["connections"], r["server"]) == (rnd, ep, c, "ours")]
        p = [r for r in rows if (r["round"], r["endpoint"], r["connections"], r["server"]) == (rnd, ep, c, "peer")]
        if o and p:
            pairs.append((f(o[0], "requests_per_s") / max(f(p[0], "requests_per_s"), 1e-9), o[0], p[0]))
    pairs.sort(key=lambda x: x[0])
    return pairs[(len(pairs) - 1) // 2]  # the lower middle of an even count
print(f"\nHTTP tasks: devstream vs FastAPI+uvicorn, same SQLite file, SQL and JSON "
      f"({'the median of %d rounds by ratio' % rounds if rounds > 1 else '1 round'}; latency in ms)")
hdr = (f"{'endpoint':28} {'conns':>5} {'ours req/s':>11} {'peer req/s':>11} {'ratio':>7} "
       f"{'ours p50/p99':>15} {'peer p50/p99':>15}")
print(hdr)
print("-" * len(hdr))
res = {}
for ep in ("get", "list"):
    for c in ("64", "8"):
        ratio, o, p = median_round(ep, c)
        res[(ep, c)] = (o, p, ratio)
        print(f"{names[ep]:28} {c:>5} {f(o, 'requests_per_s'):>11.0f} {f(p, 'requests_per_s'):>11.0f} "
              f"{ratio:>6.1f}x {f(o, 'p50_ms'):>6.2f}/{f(o, 'p99_ms'):<8.2f} "
              f"{f(p, 'p50_ms'):>6.1f}/{f(p, 'p99_ms'):<8.1f}")
print("\nCPU time per request (us, same runs): the server's, and that of the wrk which loaded it "
      "(on the same 2 cores)")
hdr = (f"{'endpoint':28} {'conns':>5} {'ours':>7} {'its wrk':>8} {'peer':>7} {'its wrk':>8} "
       f"{'server ratio':>12} {'ceiling':>8}")
print(hdr)
print("-" * len(hdr))
for (ep, c), (o, p, _) in res.items():
    oc, ow = f(o, "server_cpu_us_per_req"), f(o, "wrk_cpu_us_per_req")
    pc, pw = f(p, "server_cpu_us_per_req"), f(p, "wrk_cpu_us_per_req")
    print(f"{names[ep]:28} {c:>5} {oc:>7.0f} {ow:>8.0f} {pc:>7.0f} {pw:>8.0f} "
          f"{pc / max(oc, 1e-9):>11.1f}x {(pc + pw) / max(oc + ow, 1e-9):>7.1f}x")
print("(server ratio = the peer's CPU per request / ours; ceiling = (peer + its wrk) / (ours + its wrk), "
      "the throughput ratio to expect when each server and its wrk have the 2 cores to themselves; "
      "CPU time is read in 10 ms ticks)")
o, p, ratio = res[("get", "64")]
print(f"target: GET /api/v1/tasks/{{id}} throughput ≥ 5× FastAPI at 64 connections: {ratio:.1f}× -> "
      f"{'MET' if ratio >= 5 else 'MISSED'}")
p99 = f(o, "p99_ms")
print(f"target: GET /api/v1/tasks/{{id}} p99 ≤ 5 ms at 64 connections: {p99:.2f} ms -> "
      f"{'MET' if p99 <= 5 else 'MISSED'}")
EOF
echo "http-tasks: raw runs in $CSV"
