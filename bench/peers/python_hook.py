#!/usr/bin/python3
"""The Python peer of `devstream hook UserPromptSubmit` (bench/suite/40-hook.sh).

    python3 bench/peers/python_hook.py --db DB < event.json

What a Python hook script in the style of the original project does on each
prompt: start an interpreter, read the Claude Code event on stdin, open the
SQLite database (read-only), run one keyword search, print the memories as
hookSpecificOutput.additionalContext, exit 0. The search is the same FTS5
work as DevStream's keyword side (src/memory/memory_service.cpp Search and
src/memory/fts_query.cpp), query for query:

  - terms: runs of ASCII letters/digits or non-ASCII bytes, ASCII lower-cased,
    cut to 100 bytes, deduplicated, at most 64, each double-quoted, OR-joined;
  - only the rarest terms are kept, rarest first, while their document
    frequencies (fts5vocab after porter stemming, as ours) sum to at most
    1500 postings (the rarest always kept); when that one alone matches more,
    only its newest 1500 matches are scored;
  - stage 1: the top max(20*limit, 200) rows by bm25 inside FTS5, joined to
    semantic_memory with the project filter and archived = 0, superseded_by
    IS NULL, ORDER BY bm25 LIMIT limit (50, as our hook's context query:
    MemoryFilter.limit defaults to 50 and Context() asks max(limit, 20));
  - stage 2, when stage 1 gave fewer than `limit` and the kept terms match
    more rows than the slice: the exact joined query;
  - the memories formatted like AssembleContext (## Memory id · type · path ·
    age, a code fence for code formats, 1500-token budget at ~4 bytes a
    token, the last memory cut with "…[truncated]"), prefixed by the same
    "Relevant DevStream memories (ids …)" line.

Differences from ours, all of which make this peer do less work: keyword
only (ours also embeds the prompt, searches the vector index and fuses both
lists with RRF); read-only (ours also counts the access on the returned
memories, records the session and logs the injection in context_injections);
no time budget thread, no hook log. The project is DEVSTREAM_PROJECT, else
the name of the git root above the event's cwd, else the cwd's name (as
hooks/project_dir.cpp).
"""
import json
import os
import sqlite3
import sys
import time

PROMPT_BUDGET_TOKENS = 1500
MAX_PROMPT_BYTES = 2000
LIMIT = 50  # ContextQuery.filter.limit (MemoryFilter default 50; Context() takes max(limit, 20))
MAX_TERMS = 64


def utf8_prefix(b, n):
    """The longest prefix of the bytes `b` of at most n bytes ending on a character boundary."""
    if len(b) <= n:
        return b
    end = n
    while end > 0 and (b[end] & 0xC0) == 0x80:
        end -= 1
    return b[:end]


def query_terms(text):
    b = text.encode("utf-8", "surrogatepass")
    terms = []
    i, n = 0, len(b)
    while i < n and len(terms) < MAX_TERMS:
        while i < n and not (b[i] >= 0x80 or chr(b[i]).isalnum()):
            i += 1
        start = i
        while i < n and (b[i] >= 0x80 or chr(b[i]).isalnum()):
            i += 1
        if start == i:
            continue
        term = b[start:i].lower()[:100]  # bytes.lower() touches ASCII only, as ours
        t = term.decode("utf-8", "replace")
        if t not in terms:
            terms.append(t)
    return terms


def or_query(terms):
    return " OR ".join('"' + t + '"' for t in terms)


POSTING_BUDGET = 1500  # kPostingBudget in src/memory/memory_service.cpp


def selective_query(c, terms):
    """The rarest terms within the posting budget (as SelectTerms), and the
    number of postings they cover. Document frequencies come from one join of
    a scratch FTS5 table (porter stemming, as the index) with fts5vocab; a
    per-invocation script has no cache across prompts (ours keeps one in the
    server)."""
    c.executescript(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.ds_stem USING fts5(x, tokenize='porter unicode61 "
        "remove_diacritics 2');"
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.ds_stem_vocab USING fts5vocab(temp, ds_stem, "
        "instance);"
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.ds_memory_vocab USING fts5vocab(main, memory_fts, "
        "row);")
    c.execute("DELETE FROM temp.ds_stem")
    c.executemany("INSERT INTO temp.ds_stem(rowid, x) VALUES(?, ?)",
                  [(i + 1, t) for i, t in enumerate(terms)])
    df = [0] * len(terms)
    for pos, n in c.execute("SELECT s.doc, max(m.doc) FROM temp.ds_stem_vocab s"
                            " JOIN temp.ds_memory_vocab m ON m.term = s.term GROUP BY s.doc"):
        if 1 <= pos <= len(terms):
            df[pos - 1] = n
    order = sorted((i for i in range(len(terms)) if df[i] > 0), key=lambda i: df[i])
    kept, postings = [], 0
    for i in order:
        if kept and postings + df[i] > POSTING_BUDGET:
            break
        kept.append(terms[i])
        postings += df[i]
    return or_query(kept), postings


def project_name(cwd):
    env = os.environ.get("DEVSTREAM_PROJECT")
    if env:
        return env
    p = os.path.realpath(cwd or ".")
    q = p
    while True:
        if os.path.exists(os.path.join(q, ".git")):
            return os.path.basename(q)
        parent = os.path.dirname(q)
        if parent == q:
            break
        q = parent
    return os.path.basename(p)


def parse_ms(ts):
    # "2026-11-26T07:18:36.351Z"
    try:
        import calendar
        secs = calendar.timegm((int(ts[0:4]), int(ts[5:7]), int(ts[8:10]),
                                int(ts[11:13]), int(ts[14:16]), int(ts[17:19]), 0, 0, 0))
    except (ValueError, IndexError):
        return None
    frac = 0
    if len(ts) > 20 and ts[19] == ".":
        digits = ts[20:23]
        if digits.isdigit():
            frac = int(digits.ljust(3, "0"))
    return secs * 1000 + frac


def age_text(created_at):
    ms = parse_ms(created_at)
    if ms is None:
        return ""
    secs = max(0, (int(time.time() * 1000) - ms) // 1000)
    if secs < 60:
        return "just now"
    if secs < 3600:
        return f"{secs // 60}m ago"
    if secs < 86400:
        return f"{secs // 3600}h ago"
    return f"{secs // 86400}d ago"


def tokens(s):
    return (len(s.encode("utf-8")) + 3) // 4


def assemble(rows, budget):
    """AssembleContext without diversity: blocks in rank order within `budget` tokens."""
    out, used, ids = [], 0, []
    for mid, content, ctype, cformat, path, created in rows:
        header = f"## Memory {mid} · {ctype}"
        if path:
            header += " · " + path
        age = age_text(created)
        if age:
            header += " · " + age
        header += "\n"
        fence = cformat not in ("text", "markdown", "md", "plain")
        longest = run = 0
        if fence:
            for ch in content:
                run = run + 1 if ch == "`" else 0
                longest = max(longest, run)
        ticks = "`" * max(3, longest + 1)
        opn = ticks + cformat + "\n" if fence else ""
        close = "\n" + ticks + "\n" if fence else "\n"
        block = header + opn + content + close + "\n"
        t = tokens(block)
        left = budget - used
        if t <= left:
            out.append(block)
            used += t
            ids.append(mid)
            continue
        if left >= 32:
            marker = "\n…[truncated]"
            room = left * 4 - (len((header + opn + close + marker).encode("utf-8")) + 1)
            if room > 0:
                cut = utf8_prefix(content.encode("utf-8"), room).decode("utf-8")
                tblock = header + opn + cut + marker + close + "\n"
                tt = tokens(tblock)
                if tt <= left:
                    out.append(tblock)
                    used += tt
                    ids.append(mid)
        break
    return "".join(out), ids


def search(c, project_id, text):
    terms = query_terms(text)
    if not terms:
        return []
    match, postings = selective_query(c, terms)
    if not match:
        return []
    where = " m.project_id = ? AND m.archived = 0 AND m.superseded_by IS NULL"
    slice_n = max(LIMIT * 20, 200)
    after = 0
    if postings > POSTING_BUDGET:  # only the newest POSTING_BUDGET matches are scored
        row = c.execute("SELECT rowid FROM memory_fts WHERE memory_fts MATCH ?"
                        " ORDER BY rowid DESC LIMIT 1 OFFSET ?", (match, POSTING_BUDGET)).fetchone()
        if row:
            after, postings = row[0], POSTING_BUDGET
    ids = [r[0] for r in c.execute(
        "SELECT m.id, t.score FROM (SELECT rowid AS id, bm25(memory_fts) AS score"
        " FROM memory_fts WHERE memory_fts MATCH ? AND rowid > ? ORDER BY score LIMIT ?) t"
        " JOIN semantic_memory m ON m.id = t.id WHERE" + where + " ORDER BY t.score LIMIT ?",
        (match, after, slice_n, project_id, LIMIT))]
    if len(ids) < LIMIT and postings > slice_n:
        ids = [r[0] for r in c.execute(
            "SELECT m.id, bm25(memory_fts) AS score FROM memory_fts"
            " JOIN semantic_memory m ON m.id = memory_fts.rowid"
            " WHERE memory_fts MATCH ? AND memory_fts.rowid > ? AND" + where +
            " ORDER BY score LIMIT ?",
            (match, after, project_id, LIMIT))]
    if not ids:
        return []
    by_id = {r[0]: r for r in c.execute(
        "SELECT id, content, content_type, content_format, file_path, created_at"
        " FROM semantic_memory WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(ids),))}
    return [by_id[i] for i in ids if i in by_id]


def main():
    db = None
    args = sys.argv[1:]
    for i, a in enumerate(args):
        if a == "--db" and i + 1 < len(args):
            db = args[i + 1]
        elif a.startswith("--db="):
            db = a[5:]
    db = db or os.environ.get("DEVSTREAM_DATABASE_PATH") or os.path.expanduser(
        "~/.local/share/devstream/devstream.db")
    try:
        event = json.loads(sys.stdin.buffer.read())
        prompt = event.get("prompt") or ""
        if not isinstance(prompt, str) or not prompt.strip(" \t\r\n"):
            return
        prompt = utf8_prefix(prompt.encode("utf-8"), MAX_PROMPT_BYTES).decode("utf-8")
        project = project_name(event.get("cwd") or os.getcwd())
        c = sqlite3.connect("file:" + db + "?mode=ro", uri=True)
        c.execute("PRAGMA busy_timeout = 5000")
        row = c.execute("SELECT id FROM projects WHERE id = ?1 OR name = ?1", (project,)).fetchone()
        if row is None:
            return
        rows = search(c, row[0], prompt)
        context, ids = assemble(rows, PROMPT_BUDGET_TOKENS)
        if not ids:
            return
        text = ("Relevant DevStream memories (ids " + ", ".join(str(i) for i in ids) +
                "; search more with devstream_search_memory):\n" + context)
        out = {"hookSpecificOutput": {"hookEventName": "UserPromptSubmit",
                                      "additionalContext": text}}
        sys.stdout.write(json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "\n")
    except Exception as e:  # a hook never fails the prompt
        print(f"python_hook: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
    sys.exit(0)
