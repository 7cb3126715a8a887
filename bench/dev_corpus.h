// Generated developer-style memory texts and queries shared by the benchmarks
// (ingest, HNSW): templates and word lists with a fixed seed, so every run and
// every machine sees the same corpus. Header-only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench_util.h"
#include "memory/model.h"

namespace ds::bench {

using Words = std::vector<std::string>;

// ---- word lists ----

inline const Words kComponents = {
    "task scheduler",    "lease reaper",     "HTTP router",      "migration runner",
    "FTS index",         "vector index",     "backup job",       "MCP server",
    "hook handler",      "rate limiter",     "config loader",    "session tracker",
    "context assembler", "embedding cache",  "retention job",    "auth middleware",
    "API key store",     "health endpoint",  "metrics exporter", "dependency graph",
    "plan roll-up",      "phase tracker",    "worker pool",      "change log replay",
    "JSON decoder",      "OpenAPI document", "CLI parser",       "deploy script",
    "nginx config",      "Docker image",     "connection pool",  "redaction filter"};
inline const Words kTechs = {"SQLite WAL",
                             "FTS5 bm25",
                             "Boost.Asio",
                             "Boost.Beast",
                             "spdlog",
                             "libsodium",
                             "AVX2 intrinsics",
                             "AVX-512",
                             "HNSW",
                             "RRF fusion",
                             "JSON Schema",
                             "std::shared_mutex",
                             "BEGIN IMMEDIATE",
                             "busy_timeout",
                             "PRAGMA data_version",
                             "prepared statements",
                             "CMake presets",
                             "Ninja",
                             "ccache",
                             "AddressSanitizer",
                             "libFuzzer",
                             "clang-tidy",
                             "GoogleTest",
                             "systemd",
                             "docker compose",
                             "token bucket",
                             "exponential backoff",
                             "ULID ids",
                             "problem+json",
                             "ETag If-Match"};
inline const Words kVerbs = {"replace", "rewrite", "split",    "cache", "batch",    "shard",
                             "inline",  "retry",   "debounce", "index", "validate", "throttle",
                             "memoise", "stream",  "pre-warm", "drop",  "simplify", "isolate"};
inline const Words kReasons = {"the p99 latency doubled under concurrent writers",
                               "SQLITE_BUSY leaked to callers during backups",
                               "the old path allocated on every request",
                               "it keeps the write transaction short",
                               "tests were flaky on the 2-core CI machine",
                               "the embedder times out when the model is cold",
                               "users paste file paths and quotes into queries",
                               "memory grew without bound on long sessions",
                               "two workers claimed the same task in a race",
                               "the hook must answer within its time budget",
                               "it avoids a second copy of every vector",
                               "the error message did not name the field",
                               "we must stay compatible with the seed's API",
                               "the migration must be reversible",
                               "operators asked for a clear health signal"};
inline const Words kErrorKinds = {"SQLITE_BUSY",       "SIGSEGV",
                                  "std::bad_alloc",    "assertion failure",
                                  "timeout",           "HTTP 500",
                                  "HTTP 409 conflict", "HTTP 422",
                                  "double free",       "use-after-free",
                                  "deadlock",          "JSON parse error",
                                  "FTS5 syntax error", "UBSan signed overflow",
                                  "connection reset"};
inline const Words kActivities = {"claiming the next task",
                                  "replaying the change log",
                                  "running migration 0003",
                                  "serialising a search response",
                                  "rotating the log file",
                                  "restoring a backup",
                                  "parsing hook input",
                                  "re-embedding a partition",
                                  "closing idle connections",
                                  "reaping expired leases",
                                  "rendering the OpenAPI document",
                                  "loading the vector index"};
inline const Words kCauses = {"a missing index on task_dependencies",
                              "an iterator invalidated by erase",
                              "a reader holding the snapshot too long",
                              "an unchecked optional",
                              "a lock order inversion between writer and pool",
                              "integer division before the cast",
                              "a stale prepared statement",
                              "the lease clock using wall time",
                              "an unescaped double quote",
                              "reading past the end of a blob"};
inline const Words kFixes = {"added the index and a regression test",
                             "switched to steady_clock",
                             "moved the call outside the transaction",
                             "quoted every term in the FTS query",
                             "bounded the retry loop",
                             "reserved the vector up front",
                             "took the locks in a fixed order",
                             "checked the blob size before memcpy",
                             "returned 409 with the allowed moves"};
inline const Words kModules = {"api", "core", "store", "memory", "tasks", "app", "hooks", "mcp"};
inline const Words kStems = {"router",  "server",   "lease",  "queue",   "index",  "embedder",
                             "fusion",  "backup",   "config", "limiter", "health", "session",
                             "context", "redactor", "codec",  "planner", "graph",  "worker"};
inline const Words kIdents = {
    "ClaimNextTask", "lease_expires_at", "applied_seq_",    "BuildFtsQuery",
    "retry_count",   "DotBatch",         "SyncIndex",       "content_hash",
    "TokenBucket",   "max_connections",  "RollUpPhase",     "superseded_by",
    "StoreBatch",    "request_timeout",  "WriteLogged",     "reader_pool_size",
    "FuseRrf",       "AssembleContext",  "ProjectForWrite", "busy_timeout_ms"};
inline const Words kCommands = {"ctest --output-on-failure",
                                "make bench",
                                "devstream health --json",
                                "sqlite3 data/devstream.db 'PRAGMA integrity_check'",
                                "make test",
                                "devstream memory search 'lease reaper'",
                                "curl -s localhost:8000/health",
                                "clang-tidy -p build/release src/api/router.cpp",
                                "ninja -C build/asan"};
inline const Words kFacts = {"serialises writers but lets readers proceed on a snapshot",
                             "needs k as a constraint because LIMIT is not pushed down",
                             "ranks lower scores as better matches",
                             "picks the widest clone the CPU supports at load time",
                             "drops the pair's second value unless you keep it",
                             "retries only when the error is transient",
                             "keeps ids sortable by creation time",
                             "copies the row on every reallocation",
                             "rejects unknown fields instead of ignoring them"};
inline const Words kFormats = {"cpp", "python", "sql", "bash", "typescript"};
inline const Words kTypes = {"code",  "documentation", "context", "output",
                             "error", "decision",      "learning"};

inline std::string Num(Rng& r, int lo, int hi) {
  return std::to_string(lo + static_cast<int>(r.Below(hi - lo + 1)));
}

// One filler sentence, for any content type.
inline std::string Sentence(Rng& r) {
  switch (r.Below(10)) {
    case 0:
      return "The " + r.Pick(kComponents) + " now uses " + r.Pick(kTechs) + " because " +
             r.Pick(kReasons) + ".";
    case 1:
      return "Measured " + Num(r, 2, 950) + " ms p99 on the " + r.Pick(kComponents) + " after we " +
             r.Pick(kVerbs) + " the " + r.Pick(kStems) + " path.";
    case 2:
      return "See " + r.Pick(kIdents) + " in src/" + r.Pick(kModules) + "/" + r.Pick(kStems) +
             ".cpp line " + Num(r, 10, 2400) + ".";
    case 3:
      return "Watch out: " + r.Pick(kTechs) + " " + r.Pick(kFacts) + ".";
    case 4:
      return "Follow-up: " + r.Pick(kVerbs) + " the " + r.Pick(kComponents) + " once " +
             r.Pick(kIdents) + " is covered by tests (" + Num(r, 1, 60) + " cases so far).";
    case 5:
      return "Reproduced with `" + r.Pick(kCommands) + "` in " + Num(r, 1, 40) + " of 50 runs.";
    case 6:
      return "Root cause was " + r.Pick(kCauses) + "; we " + r.Pick(kFixes) + ".";
    case 7:
      return "Agreed with the reviewer to " + r.Pick(kVerbs) + " " + r.Pick(kIdents) +
             " rather than the whole " + r.Pick(kComponents) + ".";
    case 8:
      return "Throughput went from " + Num(r, 100, 4000) + " to " + Num(r, 4000, 90000) +
             " ops/s on " + Num(r, 1, 8) + " cores with " + r.Pick(kTechs) + ".";
    default:
      return "Open question: does the " + r.Pick(kComponents) + " still need " + r.Pick(kTechs) +
             " when " + r.Pick(kReasons) + "?";
  }
}

inline std::string Opener(Rng& r, const std::string& type, const std::string& format) {
  if (type == "decision") {
    return "Decision: " + r.Pick(kVerbs) + " the " + r.Pick(kComponents) + " with " +
           r.Pick(kTechs) + " instead of " + r.Pick(kTechs) + ". Reason: " + r.Pick(kReasons) + ".";
  }
  if (type == "error") {
    return r.Pick(kErrorKinds) + " in src/" + r.Pick(kModules) + "/" + r.Pick(kStems) +
           ".cpp:" + Num(r, 10, 2400) + " while " + r.Pick(kActivities) +
           ". Root cause: " + r.Pick(kCauses) + ". Fix: " + r.Pick(kFixes) + ".";
  }
  if (type == "learning") {
    return "Learned: " + r.Pick(kTechs) + " " + r.Pick(kFacts) + ", which matters for the " +
           r.Pick(kComponents) + ".";
  }
  if (type == "documentation") {
    return "## " + r.Pick(kComponents) + "\nThe " + r.Pick(kComponents) + " owns " +
           r.Pick(kIdents) + " and is configured through " + r.Pick(kIdents) + " (default " +
           Num(r, 1, 500) + ").";
  }
  if (type == "context") {
    return "Working on task '" + r.Pick(kVerbs) + " " + r.Pick(kComponents) + "' (phase " +
           Num(r, 1, 9) + " of plan '" + r.Pick(kTechs) + " rollout'); touched " + r.Pick(kIdents) +
           " and " + r.Pick(kIdents) + ".";
  }
  if (type == "output") {
    return "$ " + r.Pick(kCommands) + "\n" + Num(r, 50, 900) + " tests passed, " + Num(r, 0, 5) +
           " failed, " + Num(r, 0, 3) + " skipped (" + Num(r, 2, 400) + "." + Num(r, 0, 9) + " s)";
  }
  // code
  std::string fn = r.Pick(kIdents);
  if (format == "python") {
    return "def " + fn + "(" + r.Pick(kStems) + ", timeout=" + Num(r, 1, 120) + "):\n    \"\"\"" +
           r.Pick(kVerbs) + " the " + r.Pick(kComponents) + ".\"\"\"\n    return " +
           r.Pick(kStems) + ".run(retries=" + Num(r, 0, 9) + ")";
  }
  if (format == "sql") {
    return "SELECT id, " + r.Pick(kIdents) + " FROM " + r.Pick(kStems) + "s WHERE " +
           r.Pick(kIdents) + " > ? ORDER BY id LIMIT " + Num(r, 10, 500) + ";";
  }
  if (format == "bash") {
    return "#!/bin/sh\nset -eu\n" + r.Pick(kCommands) + " | tee /tmp/" + r.Pick(kStems) + "-" +
           Num(r, 1, 999) + ".log";
  }
  if (format == "typescript") {
    return "export async function " + fn + "(req: Request): Promise<Response> {\n  const " +
           r.Pick(kStems) + " = await fetch(`/api/v1/" + r.Pick(kStems) +
           "s?limit=" + Num(r, 1, 100) + "`);\n  return " + r.Pick(kStems) + ";\n}";
  }
  return "Status " + fn + "(Connection& c, int64_t " + r.Pick(kStems) +
         "_id) {\n  DS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(\"SELECT " + r.Pick(kIdents) + " FROM " +
         r.Pick(kStems) + "s WHERE id = ?\"));\n  s.Bind(1, " + r.Pick(kStems) +
         "_id);\n  return s.Run();  // " + r.Pick(kReasons) + "\n}";
}

inline std::vector<ds::memory::MemoryInput> GenerateMemories(size_t n, uint64_t seed = 7031) {
  Rng r(seed);
  std::vector<ds::memory::MemoryInput> out;
  out.reserve(n);
  std::unordered_set<std::string> seen;
  while (out.size() < n) {
    ds::memory::MemoryInput in;
    in.content_type = r.Pick(kTypes);
    in.source = "api";
    std::string format = "text";
    if (in.content_type == "code") format = r.Pick(kFormats);
    if (in.content_type == "documentation") format = "markdown";
    in.content_format = format;
    const size_t target = 200 + r.Below(601);  // 200..800 bytes
    std::string text = Opener(r, in.content_type, format);
    const std::string sep = format == "text" || format == "markdown" ? " " : "\n// ";
    while (text.size() < target) text += (text.empty() ? "" : sep) + Sentence(r);
    if (text.size() > 800) {
      size_t cut = text.rfind(' ', 800);
      text.resize(cut == std::string::npos || cut < 200 ? 800 : cut);
    }
    if (!seen.insert(text).second) continue;  // keep every memory distinct
    in.content = std::move(text);
    size_t nk = 1 + r.Below(4);
    for (size_t k = 0; k < nk; ++k) {
      std::string kw = r.Below(2) ? r.Pick(kStems) : r.Pick(kModules);
      if (std::find(in.keywords.begin(), in.keywords.end(), kw) == in.keywords.end()) {
        in.keywords.push_back(kw);
      }
    }
    if (in.content_type == "code") {
      // Unique per memory: a shared path would supersede older snapshots.
      in.file_path = "src/" + r.Pick(kModules) + "/" + r.Pick(kStems) + "_" +
                     std::to_string(out.size()) + "." + (format == "python" ? "py" : format);
    }
    in.relevance_score = 0.3 + 0.1 * static_cast<double>(r.Below(7));
    out.push_back(std::move(in));
  }
  return out;
}

inline std::vector<std::string> GenerateQueries(size_t n, uint64_t seed = 7032) {
  Rng r(seed);
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) {
    switch (r.Below(6)) {
      case 0:
        out.push_back(r.Pick(kComponents) + " " + r.Pick(kTechs));
        break;
      case 1:
        out.push_back("why does the " + r.Pick(kComponents) + " fail with " + r.Pick(kErrorKinds) +
                      "?");
        break;
      case 2:
        out.push_back(r.Pick(kIdents));
        break;
      case 3:
        out.push_back("how to " + r.Pick(kVerbs) + " the " + r.Pick(kComponents));
        break;
      case 4:
        out.push_back("src/" + r.Pick(kModules) + "/" + r.Pick(kStems) + ".cpp");
        break;
      default:
        out.push_back(r.Pick(kCauses));
        break;
    }
  }
  return out;
}

}  // namespace ds::bench
