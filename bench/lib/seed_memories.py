#!/usr/bin/python3
"""Creates (or reuses) a benchmark database of N developer-style memories.

    /usr/bin/python3 bench/lib/seed_memories.py --devstream BIN --count 100000 --dim 384 \
        --out DIR            # prints the database path on stdout

The memories go in through the real server (POST /api/v1/memories/batch,
1000 per request) with the built-in hash embedder of the given dimension, so
FTS rows and vectors are made exactly as in production. The texts are
generated from word lists with a fixed seed: every run and machine gets the
same corpus. The database is DIR/memories-<count>-<dim>.db; a finished one
(marked by DIR/memories-<count>-<dim>.db.done) is reused, so several benches
share one seeding. Progress goes to stderr.

Also importable: `queries(n)` gives n search queries drawn from the same
vocabulary (some match many memories, some few).
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

COMPONENTS = ["task scheduler", "lease reaper", "HTTP router", "migration runner", "FTS index",
              "vector index", "backup job", "MCP server", "hook handler", "rate limiter",
              "config loader", "session tracker", "context assembler", "embedding cache",
              "retention job", "auth middleware", "API key store", "health endpoint",
              "metrics exporter", "dependency graph", "plan roll-up", "phase tracker",
              "worker pool", "change log replay", "JSON decoder", "OpenAPI document",
              "CLI parser", "deploy script", "nginx config", "Docker image",
              "connection pool", "redaction filter"]
TECHS = ["SQLite WAL", "FTS5 bm25", "Boost.Asio", "Boost.Beast", "spdlog", "libsodium",
         "AVX2 intrinsics", "HNSW", "RRF fusion", "JSON Schema", "std::shared_mutex",
         "BEGIN IMMEDIATE", "prepared statements", "token bucket", "keyed BLAKE2b",
         "Prometheus histograms", "SSE streams", "systemd units", "TLS 1.3", "gzip"]
PROBLEMS = ["deadlock under load", "slow cold start", "lost update", "memory leak",
            "stale cache entry", "off-by-one in pagination", "busy timeout", "race on shutdown",
            "wrong error code", "unbounded queue", "N+1 queries", "missing index",
            "double free", "integer overflow", "invalid UTF-8", "timezone bug"]
FIXES = ["moved the write into one transaction", "added a covering index",
         "cached the prepared statement", "bounded the queue and shed load",
         "switched to a shared lock for readers", "validated the input at the edge",
         "retried with jittered backoff", "batched the inserts", "checkpointed the WAL",
         "precomputed the norms", "streamed the response", "reused the connection"]
FILES = ["src/tasks/task_service.cpp", "src/memory/vector_index.cpp", "src/api/router.cpp",
         "src/engine/worker.cpp", "src/store/database.cpp", "src/mcp/protocol.cpp",
         "src/hooks/hook_handler.cpp", "src/api/guard.cpp", "src/memory/fts_query.cpp",
         "deployment/nginx/nginx.conf", "docs/operations.md", "tests/integration/harness.cpp"]
TYPES = ["code", "documentation", "context", "output", "error", "decision", "learning"]


def memory_text(rng):
    c, t, p, f = rng.choice(COMPONENTS), rng.choice(TECHS), rng.choice(PROBLEMS), rng.choice(FIXES)
    path = rng.choice(FILES)
    n = rng.randrange(2, 9000)
    style = rng.randrange(4)
    if style == 0:
        return f"The {c} hit a {p} when using {t}; we {f}. See {path} around line {n}."
    if style == 1:
        return (f"Decision: the {c} uses {t} because the alternative caused a {p}. "
                f"Follow-up: {f} (ticket {n}).")
    if style == 2:
        return (f"Learning from {path}: a {p} in the {c} is avoided when we {f}. "
                f"{t} made it visible after {n} requests.")
    return (f"Error log {n}: {p} in {c} ({t}). Resolution: {f}. "
            f"Files touched: {path}, {rng.choice(FILES)}.")


def queries(n, seed=7):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            out.append(f"{rng.choice(PROBLEMS)} in the {rng.choice(COMPONENTS)}")
        elif kind == 1:
            out.append(f"how did we fix the {rng.choice(COMPONENTS)} with {rng.choice(TECHS)}")
        else:
            out.append(rng.choice(FIXES))
    return out


def start_server(devstream, db, log, env_overrides=None):
    """`devstream serve` (mode api) on `db` at a free loopback port, with no
    inherited DEVSTREAM_* settings; returns (process, port)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVSTREAM_")}
    env.update({"DEVSTREAM_SERVICE_MODE": "api", "DEVSTREAM_LOG_LEVEL": "warn",
                "DEVSTREAM_MAX_CONNECTIONS": "1000"})
    env.update(env_overrides or {})
    proc = subprocess.Popen([devstream, "serve", "--host", "127.0.0.1", "--port", "0", "--db", db],
                            stdout=subprocess.PIPE, stderr=log, env=env, text=True)
    line = proc.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        sys.exit(f"seed: the server did not start: {line!r}")
    return proc, int(m.group(1))


def seeded_db(devstream, db, fill, env_overrides=None):
    """`db` when a finished seeding marked it (db.done); else removes any
    partial one, starts a server on it, calls fill(port), stops the server and
    marks it finished. The server's stderr goes to db.seed.log."""
    if os.path.exists(db + ".done"):
        return db
    os.makedirs(os.path.dirname(db) or ".", exist_ok=True)
    for suffix in ("", "-wal", "-shm", ".done"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    shutil.rmtree(db + ".index", ignore_errors=True)
    with open(db + ".seed.log", "w") as log:
        proc, port = start_server(devstream, db, log, env_overrides)
        try:
            fill(port)
        finally:
            proc.terminate()
            proc.wait(timeout=120)
    open(db + ".done", "w").close()
    return db


def seed(devstream, out_dir, count, dim, project="bench", server_env=None):
    """`server_env`: extra DEVSTREAM_* settings for the seeding server only
    (e.g. DEVSTREAM_HNSW_THRESHOLD to keep the index flat while ingesting);
    they do not change the stored rows."""
    db = os.path.join(out_dir, f"memories-{count}-{dim}.db")

    def fill(port):
        rng = random.Random(20261126)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        started = time.time()
        done = 0
        while done < count:
            n = min(1000, count - done)
            items = [{"content": memory_text(rng), "content_type": TYPES[(done + i) % len(TYPES)]}
                     for i in range(n)]
            body = json.dumps({"memories": items})
            conn.request("POST", f"/api/v1/memories/batch?project={project}", body,
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            text = r.read()
            if r.status not in (200, 201):
                sys.exit(f"seed: batch at {done} got {r.status}: {text[:300]!r}")
            done += n
            if done % 50000 == 0 or done == count:
                rate = done / max(time.time() - started, 1e-9)
                print(f"seed: {done}/{count} memories ({rate:.0f}/s)", file=sys.stderr)

    env = {"DEVSTREAM_EMBEDDING_PROVIDER": "hash", "DEVSTREAM_EMBEDDING_DIM": str(dim)}
    env.update(server_env or {})
    return seeded_db(devstream, db, fill, env)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devstream", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--out", required=True)
    ap.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra setting for the seeding server (repeatable)")
    a = ap.parse_args()
    extra = dict(kv.split("=", 1) for kv in a.server_env)
    print(seed(a.devstream, a.out, a.count, a.dim, server_env=extra))


if __name__ == "__main__":
    main()
