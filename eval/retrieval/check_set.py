#!/usr/bin/env python3
"""Validates the retrieval evaluation set (memories.jsonl, queries.jsonl).

Checks: JSON shape and enums, unique keys/ids, unique contents, no two memories
sharing (file_path, content_type) (the service would supersede one by the
other), every relevant id exists (1-4 per query), and the no-shared-word rule
for "paraphrase" queries: the query's word set and the union of its relevant
memories' word sets (content + keywords + file_path) are disjoint, where a word
set is the lower-cased text split on non-alphanumeric characters minus
STOP_WORDS. The C++ test (tests/unit/retrieval_eval_test.cpp) applies the same
rule with the same stop-word list.

Usage: python3 eval/retrieval/check_set.py   (exit 0 = valid)
"""
import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTENT_TYPES = {"code", "documentation", "context", "output", "error", "decision", "learning"}
KINDS = {"lexical", "paraphrase", "code", "error", "decision"}
STOP_WORDS = set("""
a an the and or of to in on at by for with from as is are was were be been it its this that these
those we our us i you your my me do does did what which how why when where who not no can should
would could will there here has have had into about after before so if then than but any some all
""".split())


def words(text: str) -> set[str]:
    return {w for w in re.split(r"[^0-9a-z]+", text.lower()) if w and w not in STOP_WORDS}


def memory_words(m: dict) -> set[str]:
    return words(" ".join([m["content"], m.get("file_path") or "", *m.get("keywords", [])]))


def main() -> int:
    errors: list[str] = []
    mems = [json.loads(l) for l in (HERE / "memories.jsonl").read_text().splitlines() if l.strip()]
    qs = [json.loads(l) for l in (HERE / "queries.jsonl").read_text().splitlines() if l.strip()]
    by_key = {}
    for m in mems:
        extra = set(m) - {"key", "content", "content_type", "content_format", "file_path", "keywords"}
        if extra:
            errors.append(f"{m.get('key')}: unknown fields {extra}")
        if m["content_type"] not in CONTENT_TYPES:
            errors.append(f"{m['key']}: bad content_type {m['content_type']}")
        if m["key"] in by_key:
            errors.append(f"duplicate key {m['key']}")
        by_key[m["key"]] = m
    for c, n in Counter(m["content"] for m in mems).items():
        if n > 1:
            errors.append(f"duplicate content: {c[:60]!r}")
    fp = Counter((m["file_path"], m["content_type"]) for m in mems if m.get("file_path"))
    errors += [f"file_path+type used twice: {k}" for k, n in fp.items() if n > 1]

    ids = set()
    paraphrase_ok = 0
    for q in qs:
        if q["id"] in ids:
            errors.append(f"duplicate query id {q['id']}")
        ids.add(q["id"])
        if q["kind"] not in KINDS:
            errors.append(f"{q['id']}: bad kind {q['kind']}")
        rel = q["relevant"]
        if not 1 <= len(rel) <= 4 or len(set(rel)) != len(rel):
            errors.append(f"{q['id']}: needs 1-4 distinct relevant ids")
        missing = [r for r in rel if r not in by_key]
        if missing:
            errors.append(f"{q['id']}: unknown relevant ids {missing}")
            continue
        if q["kind"] == "paraphrase":
            shared = words(q["query"]) & set().union(*(memory_words(by_key[r]) for r in rel))
            if shared:
                errors.append(f"{q['id']}: paraphrase shares words {sorted(shared)}")
            else:
                paraphrase_ok += 1

    kinds = Counter(q["kind"] for q in qs)
    print(f"memories: {len(mems)} {dict(Counter(m['content_type'] for m in mems))}")
    print(f"queries: {len(qs)} {dict(kinds)}")
    print(f"paraphrase queries sharing no word with their relevant memories: {paraphrase_ok}")
    if len(mems) < 320:
        errors.append("fewer than 320 memories")
    if len(qs) < 70:
        errors.append("fewer than 70 queries")
    if paraphrase_ok < 22:
        errors.append("fewer than 22 verified paraphrase queries")
    for e in errors:
        print("ERROR:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
