"""Helpers shared by the HTTP benches (bench/suite/30, 35, 50): start a
`devstream serve` on a seeded database, time it to ready, read its RSS and
its /metrics histograms, run a sequential search client, stop it.

Every server started here is registered and killed at exit (also on SIGTERM,
SIGINT and SIGHUP), so a bench that breaks leaves no server behind.
"""
import atexit
import glob
import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time

_SERVERS = []


def _cleanup():
    for proc in _SERVERS:
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass


def _on_signal(signum, _frame):
    _cleanup()
    sys.exit(128 + signum)


atexit.register(_cleanup)
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_config(out_dir):
    """A config file that turns the access log off, and lets a stop wait for an
    HNSW build to finish and be saved (neither has a variable): ensure_sidecar
    builds graphs that way (1M x 384 takes about 20 minutes)."""
    path = os.path.join(out_dir, "bench-server.yml")
    with open(path, "w") as f:
        f.write("logging:\n  access_log: false\nserver:\n  drain_timeout_s: 3600\n")
    return path


def server_env(out_dir, dim, extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVSTREAM_")}
    env.update({"DEVSTREAM_SERVICE_MODE": "api", "DEVSTREAM_LOG_LEVEL": "warn",
                "DEVSTREAM_MAX_CONNECTIONS": "1000", "DEVSTREAM_RATE_LIMIT_PER_MINUTE": "0",
                "DEVSTREAM_EMBEDDING_PROVIDER": "hash", "DEVSTREAM_EMBEDDING_DIM": str(dim),
                "DEVSTREAM_CONFIG": bench_config(out_dir)})
    env.update(extra or {})
    return env


class Server:
    """`devstream serve` on a fixed free port; start() returns once ready."""

    def __init__(self, devstream, db, dim, out_dir, extra_env=None, log_name=None):
        self.devstream, self.db, self.dim = devstream, db, dim
        self.env = server_env(out_dir, dim, extra_env)
        self.log_path = os.path.join(out_dir, log_name or (os.path.basename(db) + ".server.log"))
        self.proc = None
        self.port = None
        self.ready_s = None
        self.listening_s = None

    def start(self, timeout=600, poll=0.005):
        """Spawns the server and polls GET /health/ready every `poll` s until 200.
        Sets ready_s (spawn to the first 200)."""
        self.port = free_port()
        log = open(self.log_path, "a")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [self.devstream, "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--db", self.db], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=log, env=self.env)
        _SERVERS.append(self.proc)
        log.close()
        deadline = t0 + timeout
        while True:
            now = time.perf_counter()
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode} before ready "
                                   f"(log: {self.log_path})")
            if now > deadline:
                raise RuntimeError(f"the server was not ready after {timeout} s")
            status = self._probe("/health/ready")
            if status is not None and self.listening_s is None:
                self.listening_s = time.perf_counter() - t0
            if status == 200:
                self.ready_s = time.perf_counter() - t0
                return self
            time.sleep(poll)

    def _probe(self, path):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            return r.status
        except OSError:
            return None

    def status(self):
        return proc_status(self.proc.pid)

    def cpu_s(self):
        return proc_cpu_s(self.proc.pid)

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        if r.status != 200:
            raise RuntimeError(f"GET {path}: {r.status} {body[:200]!r}")
        return body.decode()

    def metrics(self):
        return parse_metrics(self.get("/metrics"))

    def stop(self, timeout=7200, watch=None):
        """SIGTERM and wait (the server saves HNSW sidecars on the way out,
        after any graph build that finishes within server.drain_timeout_s). `watch(status)` is called every 0.2 s with
        /proc/PID/status while it drains. Returns seconds to exit."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        while True:
            try:
                self.proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if time.perf_counter() - t0 > timeout:
                    self.proc.kill()
                    self.proc.wait()
                    raise RuntimeError(f"the server did not stop within {timeout} s")
                if watch:
                    st = proc_status(self.proc.pid)
                    if st:
                        watch(st)
        if self.proc.returncode != 0:
            raise RuntimeError(f"the server exited with {self.proc.returncode} "
                               f"(log: {self.log_path})")
        return time.perf_counter() - t0

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def proc_status(pid):
    """VmRSS, VmHWM, RssAnon, RssFile, VmSize in bytes (empty if gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "VmSize"):
                    out[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return out


def proc_cpu_s(pid):
    """User + system CPU seconds the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mib(b):
    return b / 1048576


# ---------------------------------------------------------------- /metrics

_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels)): value}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        labels = frozenset(_LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def histogram(metrics, name, **labels):
    """(count, sum, [(le, cumulative count), ...]) of one labelled histogram."""
    want = set(labels.items())
    count = total = 0.0
    buckets = []
    for (n, ls), v in metrics.items():
        d = dict(ls)
        if not want <= set(d.items()):
            continue
        if n == name + "_count":
            count = v
        elif n == name + "_sum":
            total = v
        elif n == name + "_bucket":
            buckets.append((float("inf") if d["le"] == "+Inf" else float(d["le"]), v))
    buckets.sort()
    return count, total, buckets


def hist_delta(after, before):
    ca, sa, ba = after
    cb, sb, bb = before
    prev = dict(bb)
    return ca - cb, sa - sb, [(le, v - prev.get(le, 0.0)) for le, v in ba]


def hist_quantile(h, q):
    """Quantile by linear interpolation inside the bucket (as PromQL's
    histogram_quantile); None without observations."""
    count, _, buckets = h
    if count <= 0:
        return None
    rank = q * count
    lo_le, lo_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return lo_le
            if c == lo_c:
                return le
            return lo_le + (le - lo_le) * (rank - lo_c) / (c - lo_c)
        lo_le, lo_c = le, c
    return lo_le


STAGES = ("total", "embed", "keyword", "vector", "fusion")


def stage_split(before, after):
    """Per stage: count, mean, p50, p99 (seconds) of the searches between two scrapes."""
    out = {}
    for st in STAGES:
        h = hist_delta(histogram(after, "devstream_search_duration_seconds", stage=st),
                       histogram(before, "devstream_search_duration_seconds", stage=st))
        n = h[0]
        out[st] = {"count": n, "mean": h[1] / n if n else None,
                   "p50": hist_quantile(h, 0.5), "p99": hist_quantile(h, 0.99)}
    h = hist_delta(histogram(after, "devstream_http_request_duration_seconds",
                             route="/api/v1/search", method="POST"),
                   histogram(before, "devstream_http_request_duration_seconds",
                             route="/api/v1/search", method="POST"))
    n = h[0]
    out["http"] = {"count": n, "mean": h[1] / n if n else None,
                   "p50": hist_quantile(h, 0.5), "p99": hist_quantile(h, 0.99)}
    return out


def fmt_ms(s):
    return "n/a" if s is None else f"{s * 1000:.2f}"


def print_stage_split(split, prefix="  "):
    print(f"{prefix}server side (from /metrics; p50/p99 interpolated in the histogram buckets "
          f"0.5/1/2.5/5/10/25/50/100 ms):")
    names = {"http": "HTTP handler (whole request)", "total": "search total",
             "embed": "  embed (hash)", "keyword": "  keyword (BM25)",
             "vector": "  vector (index)", "fusion": "  fusion + row fetch + access write"}
    for st in ("http",) + STAGES:
        d = split[st]
        print(f"{prefix}  {names[st]:<36} n={d['count']:.0f}  mean {fmt_ms(d['mean'])} ms  "
              f"p50 ~{fmt_ms(d['p50'])} ms  p99 ~{fmt_ms(d['p99'])} ms")


# ---------------------------------------------------------------- searches

def search_body(query, limit=10, project="bench"):
    return json.dumps({"query": query, "limit": limit, "project": project})


def sequential_searches(port, queries, warmup=10, limit=10):
    """Runs the queries one after another on one keep-alive connection;
    returns client-side latencies in seconds (warm-up excluded)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    hdr = {"Content-Type": "application/json"}
    lat = []
    for i, q in enumerate(list(queries[:warmup]) + list(queries)):
        body = search_body(q, limit)
        t = time.perf_counter()
        conn.request("POST", "/api/v1/search", body, hdr)
        r = conn.getresponse()
        data = r.read()
        dt = time.perf_counter() - t
        if r.status != 200:
            raise RuntimeError(f"search {q!r}: {r.status} {data[:300]!r}")
        if i >= warmup:
            lat.append(dt)
    conn.close()
    return lat


WRK_LUA = """
local i = 0
local threads = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function setup(thread) thread:set("offset", threads * 97); threads = threads + 1 end
function init(args) i = offset or 0 end
function request()
  i = i + 1
  return wrk.format(nil, nil, nil, bodies[(i % #bodies) + 1])
end
function done(summary, latency, requests)
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"status_errors":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%f,"max_us":%d}\\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max))
end
"""


def write_wrk_script(path, queries, limit=10):
    """A wrk script that rotates over one POST /api/v1/search body per query
    (each wrk thread starts at another offset) and prints a WRKJSON summary line."""
    with open(path, "w") as f:
        f.write("bodies = {\n")
        for q in queries:
            f.write("  [==[" + search_body(q, limit) + "]==],\n")
        f.write("}\n" + WRK_LUA)
    return path


def run_wrk(script, port, seconds, connections=8, threads=2):
    """wrk --latency against POST /api/v1/search; returns (summary dict, stdout).
    summary adds rps and errors (non-2xx/3xx statuses + socket errors)."""
    r = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
                        "--timeout", "10s", "-s", script,
                        f"http://127.0.0.1:{port}/api/v1/search"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"wrk failed ({r.returncode}): {r.stderr.strip()[:500]}")
    line = next((l for l in r.stdout.splitlines() if l.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {r.stdout[-500:]}")
    res = json.loads(line[8:])
    res["rps"] = res["requests"] / max(res["duration_us"] / 1e6, 1e-9)
    res["errors"] = sum(res[k] for k in ("status_errors", "connect", "read", "write", "timeout"))
    return res, r.stdout


def quantile(xs, q):
    s = sorted(xs)
    if not s:
        return None
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


# ---------------------------------------------------------------- database facts

def db_facts(db):
    """count, total text bytes of the memories, vector count/dim, file sizes."""
    con = sqlite3.connect(db)
    try:
        n, text = con.execute("SELECT count(*), coalesce(sum(length(CAST(content AS BLOB))), 0)"
                              " FROM semantic_memory").fetchone()
        kw = con.execute("SELECT coalesce(sum(length(CAST(keywords AS BLOB))), 0)"
                         " FROM semantic_memory").fetchone()[0]
        vecs, vbytes = con.execute("SELECT count(*), coalesce(sum(length(vec)), 0)"
                                   " FROM memory_vectors").fetchone()
    finally:
        con.close()
    size = sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p))
    return {"count": n, "text_bytes": text, "keyword_bytes": kw, "vectors": vecs,
            "vector_bytes": vbytes, "db_bytes": size}


def sidecars(db, dim):
    return sorted(p for p in glob.glob(os.path.join(db + ".index", "*.hnsw"))
                  if json.load(open(p + ".json")).get("dim") == dim)


def ensure_sidecar(devstream, db, dim, out_dir, note=print, extra_env=None):
    """A database with a partition over the HNSW threshold (default 50,000)
    gets its graph built once and saved: start the server (it builds in the
    background from the flat rows), then SIGTERM (shutdown waits for the
    build and writes <db>.index/). Returns the seconds spent, 0 if present."""
    if sidecars(db, dim):
        return 0.0
    note(f"  building the HNSW sidecar of {os.path.basename(db)} (start, build, save at stop)...")
    t0 = time.perf_counter()
    s = Server(devstream, db, dim, out_dir, extra_env=extra_env,
               log_name=os.path.basename(db) + ".build.log").start()
    s.stop()
    dt = time.perf_counter() - t0
    if not sidecars(db, dim):
        raise RuntimeError(f"no sidecar under {db}.index after the build (log: {s.log_path})")
    note(f"  built and saved in {dt:.1f} s")
    return dt


def seed(devstream, out_dir, count, dim, extra_env=None):
    """seed_memories.seed with a flat index while seeding (fast ingest; the
    graph is built once afterwards by ensure_sidecar). `extra_env`: more
    settings for the seeding server (another embedder)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import seed_memories
    done = os.path.exists(os.path.join(out_dir, f"memories-{count}-{dim}.db.done"))
    t0 = time.perf_counter()
    env = {"DEVSTREAM_HNSW_THRESHOLD": str(1 << 40)}
    env.update(extra_env or {})
    db = seed_memories.seed(devstream, out_dir, count, dim, server_env=env)
    return db, (0.0 if done else time.perf_counter() - t0)


class FakeOllama:
    """An ollama-compatible embedding server (POST /api/embed) on loopback,
    so a suite measures a 768-dim corpus through the remote-embedder path a
    real deployment uses (ollama's default model). Vectors are lexical like
    the hash embedder's: the sum of one fixed random Gaussian vector per
    word and per word bigram (seeded by the feature's CRC32), so similar
    texts get similar vectors; DevStream normalises them. Deterministic.
    Runs in a daemon thread of this process.

        with FakeOllama(768) as emb:
            env = emb.env()   # DEVSTREAM_EMBEDDING_PROVIDER=ollama, URL, DIM
    """

    def __init__(self, dim):
        import numpy as np
        import threading
        import zlib
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        self.dim = dim
        cache = {}
        lock = threading.Lock()

        def feature(f):
            v = cache.get(f)
            if v is None:
                v = np.random.default_rng(zlib.crc32(f.encode())).standard_normal(dim).astype(
                    np.float32)
                with lock:
                    cache[f] = v
            return v

        def embed(text):
            words = re.findall(r"\w+", text.lower())
            acc = np.zeros(dim, dtype=np.float32)
            for w in words:
                acc += feature(w)
            for a, b in zip(words, words[1:]):
                acc += 0.5 * feature(a + " " + b)
            n = float(np.linalg.norm(acc)) or 1.0
            return (acc / n).astype(np.float64).round(5).tolist()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                out = json.dumps({"model": body.get("model", ""),
                                  "embeddings": [embed(t) for t in texts]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def env(self):
        """Server settings: ollama's default model embeddinggemma:300m (768 dims) by name."""
        return {"DEVSTREAM_EMBEDDING_PROVIDER": "ollama",
                "DEVSTREAM_EMBEDDING_URL": f"http://127.0.0.1:{self.port}",
                "DEVSTREAM_EMBEDDING_MODEL": "embeddinggemma:300m",
                "DEVSTREAM_EMBEDDING_DIM": str(self.dim)}


def queries(n):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import seed_memories
    return seed_memories.queries(n)
