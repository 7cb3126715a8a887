#!/usr/bin/python3
"""Creates (or reuses) the task database of bench/suite/20-http-tasks.sh.

    /usr/bin/python3 bench/lib/http_seed_tasks.py --devstream BIN --out DIR \
        [--plans 20 --phases 5 --tasks 100]     # prints the database path on stdout

Everything goes in through the real server's REST API (POST /api/v1/plans,
/api/v1/plans/{id}/phases, /api/v1/phases/{id}/tasks) over one keep-alive
connection, into the default project, so rows are exactly what production
writes. Tasks carry realistic fields (description, files, acceptance criteria,
notes) and dependencies: each task after the first of its phase depends on the
previous one (blocking), and every seventh also on a task of an earlier phase
of its plan (soft). Content comes from a fixed seed: every run and machine gets
the same corpus (ids and timestamps differ). The database is
DIR/tasks-<plans>x<phases>x<tasks>.db; a finished one (marked by the .done file
beside it) is reused. Progress goes to stderr.
"""
import argparse
import http.client
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seed_memories import seeded_db  # noqa: E402  (the shared seeding server)

VERBS = ["Add", "Fix", "Refactor", "Document", "Test", "Review", "Measure", "Harden"]
THINGS = ["the lease reaper", "the HTTP router", "the migration runner", "the FTS query parser",
          "the vector index", "the backup job", "the MCP session store", "the hook handler",
          "the rate limiter", "the config loader", "the plan roll-up", "the dependency graph",
          "the job queue", "the cursor signing", "the health endpoint", "the metrics exporter"]
FILES = ["src/tasks/task_service.cpp", "src/memory/vector_index.cpp", "src/api/router.cpp",
         "src/engine/worker.cpp", "src/store/database.cpp", "src/mcp/protocol.cpp",
         "src/hooks/hook_handler.cpp", "src/api/guard.cpp", "src/memory/fts_query.cpp",
         "tests/integration/harness.cpp", "docs/operations.md", "README.md"]
TYPES = ["analysis", "coding", "documentation", "testing", "review", "research"]
AGENTS = [None, None, "claude-1", "claude-2", "codex"]


def task_body(rng, plan_i, phase_i, task_i, prev, earlier):
    thing = rng.choice(THINGS)
    body = {
        "title": f"{rng.choice(VERBS)} {thing} (plan {plan_i}, phase {phase_i}, step {task_i})",
        "description": (f"Work on {thing}: keep the change small, run the unit tests and the "
                        f"integration harness, and note anything surprising in the task notes. "
                        f"Step {task_i} of phase {phase_i}."),
        "task_type": rng.choice(TYPES),
        "priority": rng.randint(1, 10),
        "estimated_minutes": rng.randint(1, 10),
        "input_files": rng.sample(FILES, rng.randint(1, 3)),
        "output_files": rng.sample(FILES, rng.randint(0, 2)),
        "acceptance_criteria": [f"{thing} has a test for the new behaviour",
                                "make test passes", "no new compiler warnings"][:rng.randint(1, 3)],
        "notes": rng.choice(["", "", "see the design note in docs/", "flaky on CI once"]),
    }
    agent = rng.choice(AGENTS)
    if agent:
        body["assigned_agent"] = agent
    deps = []
    if prev:
        deps.append({"id": prev, "kind": "blocking"})
    if earlier and task_i % 7 == 3:
        deps.append({"id": rng.choice(earlier), "kind": "soft"})
    if deps:
        body["depends_on"] = deps
    return body


def post(conn, path, body):
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = conn.getresponse()
    text = r.read()
    if r.status != 201:
        sys.exit(f"seed: POST {path} got {r.status}: {text[:300]!r}")
    return json.loads(text)


def seed(devstream, out_dir, plans, phases, tasks):
    db = os.path.join(out_dir, f"tasks-{plans}x{phases}x{tasks}.db")

    def fill(port):
        rng = random.Random(20261126)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        started = time.time()
        done = 0
        total = plans * phases * tasks
        for p in range(plans):
            plan = post(conn, "/api/v1/plans", {
                "title": f"Benchmark plan {p}", "status": "active",
                "description": "Seeded by bench/lib/http_seed_tasks.py",
                "objectives": ["ship it", "keep it fast"], "priority": 1 + p % 10,
                "tags": ["bench"]})
            earlier = []
            for f in range(phases):
                phase = post(conn, f"/api/v1/plans/{plan['id']}/phases",
                             {"name": f"Phase {f}", "completion_criteria": "all tasks done"})
                prev, ids = None, []
                for t in range(tasks):
                    task = post(conn, f"/api/v1/phases/{phase['id']}/tasks",
                                task_body(rng, p, f, t, prev, earlier))
                    prev = task["id"]
                    ids.append(prev)
                earlier.extend(ids)
                done += tasks
            rate = done / max(time.time() - started, 1e-9)
            print(f"seed: {done}/{total} tasks ({rate:.0f}/s)", file=sys.stderr)

    return seeded_db(devstream, db, fill)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devstream", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--plans", type=int, default=20)
    ap.add_argument("--phases", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=100)
    a = ap.parse_args()
    print(seed(a.devstream, a.out, a.plans, a.phases, a.tasks))


if __name__ == "__main__":
    main()
