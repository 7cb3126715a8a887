"""The FastAPI peer of bench/suite/20-http-tasks.sh: "get task by id" and "list
tasks" over the same SQLite file, with the same SQL and the same JSON as
devstream's GET /api/v1/tasks/{id} and GET /api/v1/tasks (see
src/tasks/task_service.cpp: LoadTask, LoadTaskDeps, ListTasks; src/tasks/codec.cpp:
ToJson(Task); src/api/rest_api.cpp).

Run as a production-style app (Debian's python3-fastapi and python3-uvicorn),
uvicorn with 2 workers, log level warning, no access log:

    FASTAPI_TASKS_DB=/path/tasks.db python3 bench/peers/fastapi_tasks.py \
        --host 127.0.0.1 --port 8001 --workers 2

which is `python3 -m uvicorn fastapi_tasks:app --app-dir bench/peers --workers 2
--host 127.0.0.1 --port 8001 --log-level warning --no-access-log` with one fix:
uvicorn 0.17's `--workers N` binds the listening socket with proto 0, so
asyncio never sets TCP_NODELAY on the accepted connections and every
keep-alive response after the first waits ~40 ms for the client's delayed ACK
(uvicorn issue #3149, fixed upstream by PR #3155). Measured here that caps the
CLI-launched peer at about 64 connections / 44 ms = 1,450 req/s while its CPU
idles, which would be a strawman; a production operator would fix it the same
way (the socket is created with IPPROTO_TCP, as upstream now does).

Written the way a FastAPI user who cares about speed writes it, not as a
strawman:
  - the standard library's sqlite3, one read-only connection per thread (a
    thread-local, opened on first use and kept), with devstream's reader
    PRAGMAs (mmap_size 1 GiB, cache_size 16 MiB, temp_store memory);
  - each request reads in one transaction (BEGIN ... COMMIT), like devstream's
    Database::Read, so the task row and its dependencies are one snapshot;
  - responses are built as dicts and returned as a JSONResponse (json.dumps
    only; no pydantic response_model and no jsonable_encoder pass);
  - FASTAPI_TASKS_MODE=async (the default) runs the handlers as `async def`,
    calling sqlite3 directly on the event loop (the queries take microseconds,
    so this beats a threadpool hop); FASTAPI_TASKS_MODE=sync makes them plain
    `def` handlers that FastAPI runs in its threadpool (the textbook way),
    each thread with its own connection. Measured once here (noisy 2-vCPU box):
    GET by id at 64 connections 7,400 req/s async against 4,900 sync.

The list's next_cursor is signed exactly as devstream signs it (keyed
BLAKE2b-128 over base64url("after:" + last id), key = BLAKE2b-256 of
"devstream signing key v1\\n" + DEVSTREAM_SECRET_KEY), so the two servers
return byte-identical pages.
"""
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import threading

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse

DB_PATH = os.environ["FASTAPI_TASKS_DB"]
MODE = os.environ.get("FASTAPI_TASKS_MODE", "async")

# The same SQL as src/tasks/task_service.cpp (kTaskCols, kTaskFrom, LoadTask,
# LoadTaskDeps, ListTasks) and src/store/projects.cpp (FindProject).
TASK_COLS = (
    "t.id, t.phase_id, ph.plan_id, t.title, t.description, t.task_type, t.status, t.priority, "
    "t.max_duration_minutes, t.estimated_minutes, t.max_context_tokens, t.assigned_agent, "
    "t.input_files, t.output_files, t.acceptance_criteria, t.notes, t.error_log, t.retry_count, "
    "t.max_retries, t.lease_owner, t.lease_expires_at, t.version, t.started_at, t.completed_at, "
    "t.actual_duration_minutes, t.context_tokens_used, t.created_at, t.updated_at")
TASK_FROM = (" FROM micro_tasks t JOIN phases ph ON ph.id = t.phase_id"
             " JOIN intervention_plans pl ON pl.id = ph.plan_id")
SQL_TASK = "SELECT " + TASK_COLS + TASK_FROM + " WHERE t.id = ?"
SQL_DEPS = "SELECT depends_on, kind FROM task_dependencies WHERE task_id = ? ORDER BY depends_on"
SQL_PROJECT = "SELECT id, name, root_path, created_at FROM projects WHERE id = ?1 OR name = ?1"
SQL_LIST = ("SELECT " + TASK_COLS + TASK_FROM +
            " WHERE (?1 IS NULL OR pl.project_id = ?1) AND (?2 IS NULL OR t.status = ?2)"
            " AND (?3 IS NULL OR ph.plan_id = ?3) AND (?4 IS NULL OR t.phase_id = ?4)"
            " AND (?5 IS NULL OR t.task_type = ?5) AND (?6 IS NULL OR t.assigned_agent = ?6)"
            " AND (?7 IS NULL OR t.priority >= ?7) AND t.id > ?8 ORDER BY t.id LIMIT ?9")

_local = threading.local()


def conn():
    c = getattr(_local, "conn", None)
    if c is None:
        c = sqlite3.connect(f"file:{DB_PATH}?mode=ro", uri=True, isolation_level=None,
                            check_same_thread=False, cached_statements=64)
        c.execute("PRAGMA temp_store=MEMORY")
        c.execute("PRAGMA mmap_size=1073741824")
        c.execute("PRAGMA cache_size=-16384")
        c.execute("PRAGMA busy_timeout=5000")
        _local.conn = c
    return c


# ---- the signed pagination cursor (src/core/signing.cpp, src/core/encoding.cpp) ----

_KEY = hashlib.blake2b(("devstream signing key v1\n" +
                        os.environ.get("DEVSTREAM_SECRET_KEY", "")).encode(),
                       digest_size=32).digest()


def _b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _mac(payload):
    return hashlib.blake2b(payload.encode(), key=_KEY, digest_size=16).digest()


def encode_cursor(position):
    payload = _b64(position.encode())
    return payload + "." + _b64(_mac(payload))


def decode_cursor(cursor):
    """The position a cursor names ("" for none), or None when it is not ours."""
    if not cursor:
        return ""
    payload, dot, mac = cursor.rpartition(".")
    try:
        if not dot or len(cursor) > 512 or not hmac.compare_digest(_unb64(mac), _mac(payload)):
            return None
        raw = _unb64(payload).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not raw.startswith("after:") or len(raw) > 100:
        return None
    return raw[6:]


# ---- rows to JSON (src/tasks/codec.cpp ToJson(Task), DecodeStringList) ----

def string_list(text):
    try:
        v = json.loads(text)
    except ValueError:
        return []
    return [s for s in v if isinstance(s, str)] if isinstance(v, list) else []


def task_json(r, deps):
    return {
        "id": r[0], "phase_id": r[1], "plan_id": r[2], "title": r[3], "description": r[4],
        "task_type": r[5], "status": r[6], "priority": r[7], "max_duration_minutes": r[8],
        "estimated_minutes": r[9], "max_context_tokens": r[10], "assigned_agent": r[11],
        "input_files": string_list(r[12]), "output_files": string_list(r[13]),
        "acceptance_criteria": string_list(r[14]), "notes": r[15], "error_log": r[16],
        "retry_count": r[17], "max_retries": r[18], "lease_owner": r[19],
        "lease_expires_at": r[20],
        "depends_on": [{"id": d, "kind": k} for d, k in deps],
        "version": r[21], "started_at": r[22], "completed_at": r[23],
        "actual_duration_minutes": r[24], "context_tokens_used": r[25],
        "created_at": r[26], "updated_at": r[27],
    }


def problem(status, title, detail):
    return JSONResponse({"type": "about:blank", "title": title, "status": status,
                         "detail": detail}, status_code=status,
                        media_type="application/problem+json")


def get_task(task_id):
    c = conn()
    c.execute("BEGIN")
    try:
        row = c.execute(SQL_TASK, (task_id,)).fetchone()
        deps = c.execute(SQL_DEPS, (task_id,)).fetchall() if row else None
    finally:
        c.execute("COMMIT")
    if row is None:
        return problem(404, "Not Found", f"task {task_id} does not exist")
    return JSONResponse(task_json(row, deps), headers={"ETag": f'"{row[21]}"'})


def list_tasks(limit, cursor, project):
    after = decode_cursor(cursor)
    if after is None:
        return problem(400, "Bad Request", "cursor is not a cursor this server issued")
    key = project or "default"
    c = conn()
    c.execute("BEGIN")
    try:
        prj = c.execute(SQL_PROJECT, (key,)).fetchone()
        if prj is None:
            rows, deps = [], []
        else:
            rows = c.execute(SQL_LIST, (prj[0], None, None, None, None, None, None, after,
                                        limit + 1)).fetchall()
            deps = [c.execute(SQL_DEPS, (r[0],)).fetchall() for r in rows]
    finally:
        c.execute("COMMIT")
    if prj is None and key != "default":
        return problem(404, "Not Found", f'project "{key}" does not exist')
    next_cursor = None
    if len(rows) > limit:
        rows, deps = rows[:limit], deps[:limit]
        next_cursor = encode_cursor("after:" + rows[-1][0])
    return JSONResponse({"items": [task_json(r, d) for r, d in zip(rows, deps)],
                         "next_cursor": next_cursor})


app = FastAPI(title="fastapi-tasks peer", docs_url=None, redoc_url=None, openapi_url=None)

if MODE == "sync":
    @app.get("/api/v1/tasks/{task_id}")
    def get_task_route(task_id: str):
        return get_task(task_id)

    @app.get("/api/v1/tasks")
    def list_tasks_route(limit: int = Query(50, ge=1, le=500), cursor: str = "",
                         project: str = ""):
        return list_tasks(limit, cursor, project)
else:
    @app.get("/api/v1/tasks/{task_id}")
    async def get_task_route(task_id: str):
        return get_task(task_id)

    @app.get("/api/v1/tasks")
    async def list_tasks_route(limit: int = Query(50, ge=1, le=500), cursor: str = "",
                               project: str = ""):
        return list_tasks(limit, cursor, project)


if __name__ == "__main__":
    import argparse
    import socket

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    ap = argparse.ArgumentParser(description="the FastAPI peer of bench/suite/20-http-tasks.sh")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8001)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    config = uvicorn.Config("fastapi_tasks:app", host=a.host, port=a.port, workers=a.workers,
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config=config)
    # What uvicorn's Config.bind_socket does, but with proto IPPROTO_TCP, so the
    # accepted sockets get TCP_NODELAY from asyncio (uvicorn #3149 / #3155).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((a.host, a.port))
    sock.set_inheritable(True)
    if a.workers > 1:
        Multiprocess(config, target=server.run, sockets=[sock]).run()
    else:
        server.run(sockets=[sock])
