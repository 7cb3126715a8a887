#!/bin/sh
# Cost growth: hybrid search latency and resident memory at 10k, 100k and 1M
# memories (384 dims, hash embedder), beside the curves the algorithms
# predict. For each size the server is started on a seeded database
# ($BENCH_OUT/memories-<n>-384.db, shared with the other suites) and timed to
# ready; then 200 fixed queries run one after another (one keep-alive
# client, after 10 warm-up queries), and /metrics gives the stage split of
# exactly those searches. Two index configurations per size:
#   default: hnsw_threshold 50000, so 10k is a flat exact scan and 100k / 1M
#            are HNSW graphs (loaded from their sidecars, built once);
#   flat:    hnsw_threshold 2^40, the exact SIMD scan at every size.
# Output: $BENCH_OUT/cost_growth.csv and cost-growth.png
# (bench/lib/cost_growth_plot.py), copied to docs/img/cost-growth.png by a
# full run. BENCH_QUICK=1: 10k and 100k only (1M
# takes ~4 min to seed and ~10 min to build its graph the first time).
# COST_GROWTH_SIZES (e.g. "10000 100000") overrides the sizes.
# Exit non-zero only when a run breaks.
set -eu
: "${DEVSTREAM_BIN:?}" "${BENCH_OUT:?}"
PYTHON=${PYTHON:-/usr/bin/python3}
BENCH_QUICK=${BENCH_QUICK:-0}
export DEVSTREAM_BIN BENCH_OUT BENCH_QUICK
"$PYTHON" - "$(pwd)/bench/lib" <<'EOF'
import csv, os, sys
sys.path.insert(0, sys.argv[1])
import server_probe as sp

BIN, OUT = os.environ["DEVSTREAM_BIN"], os.environ["BENCH_OUT"]
QUICK = os.environ.get("BENCH_QUICK") == "1"
DIM = 384
THRESHOLD = 50000  # memory.index.hnsw_threshold default
SIZES = [int(x) for x in os.environ.get("COST_GROWTH_SIZES", "").split()] or (
    [10000, 100000] if QUICK else [10000, 100000, 1000000])
NQ, WARMUP = 200, 10
M = 1048576
queries = sp.queries(NQ)

print(f"cost growth: hybrid search and RSS at {', '.join(f'{n:,}' for n in SIZES)} memories x {DIM} "
      f"dims; {NQ} sequential queries each; load {sp.loadavg()}")
rows = []
for n in SIZES:
    db, seeded = sp.seed(BIN, OUT, n, DIM)
    if seeded:
        print(f"  seeded {os.path.basename(db)} in {seeded:.1f} s ({n / seeded:.0f} memories/s)")
    configs = [("hnsw" if n >= THRESHOLD else "flat", {})]
    build_s = 0.0
    if n >= THRESHOLD:
        if QUICK and not sp.sidecars(db, DIM):
            # The graph takes minutes to build: quick mode measures flat only.
            print(f"  {n:,}: no HNSW sidecar yet; quick mode measures the flat scan only")
            configs = []
        else:
            build_s = sp.ensure_sidecar(BIN, db, DIM, OUT)
        configs.append(("flat", {"DEVSTREAM_HNSW_THRESHOLD": str(1 << 40)}))
    facts = sp.db_facts(db)
    for index, env in configs:
        srv = sp.Server(BIN, db, DIM, OUT, extra_env=env,
                        log_name=f"cost-growth-{n}-{index}.server.log").start()
        try:
            st_ready = srv.status()
            before = srv.metrics()
            load0 = sp.loadavg()
            lat = sp.sequential_searches(srv.port, queries, warmup=WARMUP)
            after = srv.metrics()
            st_after = srv.status()
            srv.stop()
        finally:
            srv.kill()
        split = sp.stage_split(before, after)
        row = {"n": n, "dim": DIM, "index": index, "ready_s": round(srv.ready_s, 4),
               "client_p50_ms": round(sp.quantile(lat, 0.5) * 1000, 3),
               "client_p99_ms": round(sp.quantile(lat, 0.99) * 1000, 3),
               "client_mean_ms": round(sum(lat) / len(lat) * 1000, 3)}
        for stage in sp.STAGES + ("http",):
            d = split[stage]
            row[f"{stage}_mean_ms"] = round(d["mean"] * 1000, 4) if d["mean"] is not None else ""
            row[f"{stage}_p50_ms"] = round(d["p50"] * 1000, 4) if d["p50"] is not None else ""
        for k in ("VmRSS", "RssAnon", "RssFile"):
            row[f"ready_{k}_mib"] = round(st_ready.get(k, 0) / M, 1)
            row[f"after_{k}_mib"] = round(st_after.get(k, 0) / M, 1)
        row["VmHWM_mib"] = round(st_after.get("VmHWM", 0) / M, 1)
        row.update({"db_mib": round(facts["db_bytes"] / M, 1),
                    "text_bytes": facts["text_bytes"], "vector_bytes": facts["count"] * DIM * 4,
                    "graph_build_s": round(build_s, 1), "load": load0})
        rows.append(row)
        print(f"  {n:>9,} {index:<4}: ready {srv.ready_s:6.2f} s | client median {row['client_p50_ms']:8.2f} ms, "
              f"p99 {row['client_p99_ms']:8.2f} ms | server mean: total {row['total_mean_ms']} = "
              f"embed {row['embed_mean_ms']} + keyword {row['keyword_mean_ms']} + vector "
              f"{row['vector_mean_ms']} + fusion {row['fusion_mean_ms']} ms | RSS {row['after_VmRSS_mib']:.0f} MiB "
              f"(anon {row['after_RssAnon_mib']:.0f}, file {row['after_RssFile_mib']:.0f}), "
              f"vectors {facts['count'] * DIM * 4 / M:.0f} MiB | load {load0}")

path = os.path.join(OUT, "cost_growth.csv")
with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
    w.writeheader()
    w.writerows(rows)
print(f"  wrote {path}")
EOF
# The figure in the docs is redrawn only by a full run over all three sizes.
"$PYTHON" bench/lib/cost_growth_plot.py "$BENCH_OUT/cost_growth.csv" "$BENCH_OUT/cost-growth.png"
if [ "$BENCH_QUICK" != 1 ] && [ -z "${COST_GROWTH_SIZES:-}" ]; then
  mkdir -p docs/img
  cp "$BENCH_OUT/cost-growth.png" docs/img/cost-growth.png
  echo "  copied to docs/img/cost-growth.png"
fi
