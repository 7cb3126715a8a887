#!/usr/bin/python3
"""Plots $BENCH_OUT/cost_growth.csv (bench/suite/50-cost-growth.sh) beside
the curves the algorithms predict, and prints measured / expected.

    /usr/bin/python3 bench/lib/cost_growth_plot.py cost_growth.csv out.png

Left: search latency against n, log-log. Each expected curve is a shape
from the algorithm with its constants either stated or fitted through
measured points (marked * in the printed table); the other points test it:
  - vector, flat exact scan: O(n), at the physical limit: it reads
    n x dim x 4 bytes per query, at BANDWIDTH_GBS (20 GB/s, the DRAM read rate
    bench_vector_search_bench's probe measures on the development machine,
    17-24 GB/s; env COST_GROWTH_BANDWIDTH_GBS overrides);
  - vector, HNSW (partitions >= hnsw_threshold = 50,000): O(log n), through
    the 100k point;
  - keyword, BM25 from the in-memory KeywordIndex: it scores the postings of
    the query's rarest terms within a budget of 1500 postings in the project
    (KeywordIndexOptions::posting_budget): the postings scored grow in
    proportion to n until the budget caps them, then only cache misses grow:
    min(O(n) through 10k, O(log n) through 100k);
  - search total: a constant (total - keyword - vector at the smallest n:
    embedding, fusion, row fetch, access write) + keyword + vector.
Right: resident memory against n: anonymous memory is expected to be
base + n x bytes-per-row (base fitted through the smallest point of each
index kind, bytes-per-row from the data layout: flat 4 x dim + 64 B of ids,
flags and id map; HNSW 4 x dim + ~330 B of links, label and id maps and
per-node locks; both + ~500 B of keyword index for the bench's ~160-byte
texts), plus the database pages SQLite's mmap has touched (RssFile).
"""
import csv
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

THRESHOLD = 50000
BANDWIDTH_GBS = float(os.environ.get("COST_GROWTH_BANDWIDTH_GBS", "20"))
FLAT_ROW_OVERHEAD = 64    # int64 id + 8 B flags + unordered_map<int64,size_t> node
HNSW_ROW_OVERHEAD = 330   # 132 B level-0 links + 8 B label + upper levels ~4 B + 40 B mutex
# KeywordIndex per memory of ~160 bytes (24 distinct terms): 12 B per term
# (posting + the document's term list), the document, its id map entry and
# vector slack; measured 49.8 MB for 100k (the server logs keyword_index_bytes).
KEYWORD_ROW_OVERHEAD = 500
                          # + level/linklist pointers 12 B + label map, live set, meta map ~130 B


def load(path):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            for k, v in r.items():
                if k in ("index", "load"):
                    continue
                r[k] = float(v) if v not in ("", None) else None
            rows.append(r)
    return rows


def series(rows, index, key):
    pts = sorted((r["n"], r[key]) for r in rows if r["index"] == index and r[key] is not None)
    return [p[0] for p in pts], [p[1] for p in pts]


def default_rows(rows):
    """The default configuration per n: flat below the threshold, HNSW above."""
    out = {}
    for r in rows:
        want = "hnsw" if r["n"] >= THRESHOLD else "flat"
        if r["index"] == want:
            out[r["n"]] = r
    return [out[n] for n in sorted(out)]


def main():
    csv_path, png_path = sys.argv[1], sys.argv[2]
    rows = load(csv_path)
    dim = int(rows[0]["dim"])
    ns = sorted({r["n"] for r in rows})
    base = min(ns)
    b = next(r for r in rows if r["n"] == base and r["index"] == "flat")
    hn = [r for r in rows if r["index"] == "hnsw"]
    h0 = min(hn, key=lambda r: r["n"]) if hn else None
    grid = [base * (10 ** (i / 20)) for i in range(int(20 * math.log10(max(ns) / base)) + 1)]
    if grid[-1] < max(ns):
        grid.append(max(ns))

    def exp_flat_vec(n):
        return n * dim * 4 / (BANDWIDTH_GBS * 1e9) * 1000

    # Keyword: the query keeps its rarest terms within a posting budget (1500
    # postings in the project), so the postings scored grow with n only until
    # the budget caps them; past that only cache misses grow.
    kw = [(r["n"], r["keyword_mean_ms"]) for r in default_rows(rows)] or sorted(
        (r["n"], r["keyword_mean_ms"]) for r in rows if r["index"] == "flat")
    kw_small = kw[0]
    kw_large = next(((n, t) for n, t in kw if n >= 100000), kw[-1])
    kw_fit = {kw_small[0], kw_large[0]}

    def exp_kw(n):
        return min(kw_small[1] * n / kw_small[0],
                   kw_large[1] * math.log(n) / math.log(kw_large[0]))

    def exp_hnsw_vec(n):
        return h0["vector_mean_ms"] * math.log(n) / math.log(h0["n"]) if h0 else None

    # Everything but the two rankings (embed, fusion, the project lookup and
    # index sync): constant in n, taken from the smallest size.
    const = b["total_mean_ms"] - b["keyword_mean_ms"] - b["vector_mean_ms"]

    def exp_total(n, index):
        v = exp_hnsw_vec(n) if index == "hnsw" and n >= THRESHOLD and h0 else exp_flat_vec(n)
        return const + exp_kw(n) + v

    # ---- the text table
    print(f"  measured / expected (fitted through the points marked *; flat scan at "
          f"{BANDWIDTH_GBS:g} GB/s; keyword min(O(n) through {int(kw_small[0]):,}, O(log n) through "
          f"{int(kw_large[0]):,})):")
    print(f"  {'n':>9} {'index':<5} {'keyword ms':>19} {'vector ms':>19} {'total ms':>19} "
          f"{'client p50':>10} {'RssAnon MiB':>21}")
    anon_base = {}
    for idx in ("flat", "hnsw"):
        r0 = b if idx == "flat" else h0
        if r0 is None:
            continue
        per_row = 4 * dim + KEYWORD_ROW_OVERHEAD + (
            FLAT_ROW_OVERHEAD if idx == "flat" else HNSW_ROW_OVERHEAD)
        anon_base[idx] = (r0["after_RssAnon_mib"] * 1048576 - r0["n"] * per_row, per_row, r0["n"])

    def exp_anon(n, idx):
        base_b, per_row, _ = anon_base[idx]
        return (base_b + n * per_row) / 1048576

    for r in sorted(rows, key=lambda r: (r["n"], r["index"])):
        n, idx = r["n"], r["index"]
        ev = exp_hnsw_vec(n) if idx == "hnsw" else exp_flat_vec(n)
        default_idx = "hnsw" if n >= THRESHOLD and h0 else "flat"
        star_k = "*" if n in kw_fit and idx == default_idx else " "
        star_v = "*" if h0 and idx == "hnsw" and n == h0["n"] else " "
        ea = exp_anon(n, idx) if idx in anon_base else float("nan")
        print(f"  {int(n):>9,} {idx:<5} {r['keyword_mean_ms']:8.2f} / {exp_kw(n):8.2f}{star_k} "
              f"{r['vector_mean_ms']:8.3f} / {ev:8.3f}{star_v} "
              f"{r['total_mean_ms']:8.2f} / {exp_total(n, idx):8.2f}  {r['client_p50_ms']:10.2f} "
              f"{r['after_RssAnon_mib']:9.0f} / {ea:9.0f}{'*' if r is b or r is h0 else ' '}")

    # ---- the figure
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.4), gridspec_kw={"height_ratios": [3.2, 1.5]})
    (ax, ax2), (lg, lg2) = axes
    d = default_rows(rows)
    dn = [r["n"] for r in d]
    c_total, c_kw, c_vec, c_flat, c_client = "black", "tab:blue", "tab:green", "tab:orange", "tab:gray"
    ax.plot(dn, [r["client_p50_ms"] for r in d], "s-", color=c_client, alpha=0.7,
            label="client median, HTTP, default index")
    ax.plot(dn, [r["total_mean_ms"] for r in d], "o-", color=c_total,
            label="search total (server mean), default index")
    ax.plot(grid, [exp_total(n, "hnsw") for n in grid], "--", color=c_total, alpha=0.6,
            label="expected total: const + keyword + vector (default index)")
    x, y = series(rows, "flat", "keyword_mean_ms")
    ax.plot(dn, [r["keyword_mean_ms"] for r in d], "o-", color=c_kw, label="keyword stage (BM25)")
    ax.plot(grid, [exp_kw(n) for n in grid], "--", color=c_kw, alpha=0.6,
            label=f"expected min(O(n), O(log n)): 1500-posting budget "
                  f"(fitted at {', '.join(f'{int(n):,}' for n in sorted(kw_fit))})")
    x, y = series(rows, "flat", "vector_mean_ms")
    ax.plot(x, y, "o-", color=c_flat, label="vector stage, flat exact scan (threshold 2^40)")
    ax.plot(grid, [exp_flat_vec(n) for n in grid], "--", color=c_flat, alpha=0.6,
            label=f"physical limit O(n): n x {dim * 4} B at {BANDWIDTH_GBS:g} GB/s")
    if h0:
        x, y = series(rows, "hnsw", "vector_mean_ms")
        ax.plot(x, y, "^-", color=c_vec, label="vector stage, HNSW (default above 50k)")
        g2 = [n for n in grid if n >= THRESHOLD]
        ax.plot(g2, [exp_hnsw_vec(n) for n in g2], "--", color=c_vec, alpha=0.6,
                label=f"expected O(log n) through {int(h0['n']):,}")
    ax.axvline(THRESHOLD, color="gray", lw=0.8, ls=":")
    ax.text(THRESHOLD * 1.05, 0.02, "hnsw_threshold\n50,000", fontsize=7, color="gray",
            transform=ax.get_xaxis_transform())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("memories in the project (n)")
    ax.set_ylabel("ms per search (mean; client: median)")
    ax.set_title(f"Hybrid search latency, {dim} dims, limit 10, sequential")
    ax.grid(True, which="both", alpha=0.25)
    lg.axis("off")
    lg.legend(*ax.get_legend_handles_labels(), fontsize=7.5, loc="upper left", ncol=1,
              frameon=False)

    x, y = series(rows, "hnsw", "after_VmRSS_mib")
    d_rss = [r["after_VmRSS_mib"] for r in d]
    ax2.plot(dn, d_rss, "s-", color=c_total, label="VmRSS, default index")
    ax2.plot(dn, [r["after_RssAnon_mib"] for r in d], "o-", color=c_vec,
             label="RssAnon (heap: index, caches), default index")
    x, y = series(rows, "flat", "after_RssAnon_mib")
    ax2.plot(x, y, "o-", color=c_flat, label="RssAnon, flat index")
    for idx, col in (("flat", c_flat), ("hnsw", c_vec)):
        if idx not in anon_base:
            continue
        _, per_row, n0 = anon_base[idx]
        g = [n for n in grid if idx == "flat" or n >= THRESHOLD]
        ax2.plot(g, [exp_anon(n, idx) for n in g], "--", color=col, alpha=0.6,
                 label=f"expected: base + n x {per_row} B ({idx}; through {int(n0):,})")
    avg_text = b["text_bytes"] / b["n"]
    ax2.plot(grid, [n * (4 * dim + avg_text) / 1048576 for n in grid], ":", color="red",
             label=f"one copy: n x ({4 * dim} B vector + {avg_text:.0f} B text)")
    ax2.plot(grid, [1.5 * n * (4 * dim + avg_text) / 1048576 for n in grid], ":", color="red",
             alpha=0.4, label="1.5x one copy (the RSS target's bound)")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("memories in the project (n)")
    ax2.set_ylabel("MiB resident after the searches")
    ax2.set_title("Resident memory")
    ax2.grid(True, which="both", alpha=0.25)
    lg2.axis("off")
    lg2.legend(*ax2.get_legend_handles_labels(), fontsize=7.5, loc="upper left", ncol=1,
               frameon=False)
    loads = sorted({r["load"] for r in rows})
    fig.text(0.01, 0.005, f"2 shared vCPUs; load average during the runs {loads[0]} ... {loads[-1]}; "
             "hash embedder; dashed: the algorithm's curve, constants stated or fitted through marked points (see bench/lib/cost_growth_plot.py)", fontsize=7,
             color="gray")
    fig.subplots_adjust(left=0.06, right=0.98, top=0.95, bottom=0.03, wspace=0.18, hspace=0.22)
    fig.savefig(png_path, dpi=110)
    print(f"  wrote {png_path}")


if __name__ == "__main__":
    main()
