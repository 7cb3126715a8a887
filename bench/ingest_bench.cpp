// Batch ingest and in-process hybrid search over a fresh, migrated database:
//   - 50,000 generated developer-style memories (200-800 bytes each, seven
//     content types, built from templates and word lists with a fixed seed,
//     all distinct so dedup never short-circuits a write) stored through
//     MemoryService::StoreBatch in batches of 500 (target >= 5,000 memories/s);
//   - then semantic_memory, memory_fts and memory_vectors must each hold
//     50,000 rows (plus the FTS5 index's own docsize rows and its
//     integrity-check), and the vector index 50,000 entries;
//   - then 200 hybrid MemoryService::Search calls (record_access = false):
//     median and p99 latency.
// The embedding share of the ingest (HashEmbedder alone over the same texts)
// is timed separately, to show what bounds the write path; so is the batch
// that takes the partition to VectorIndex's hnsw_threshold (50,000 by default,
// reached by the last batch here), which builds the HNSW graph synchronously.
// Exit status 1 on errors or wrong counts, never on a missed target.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "bench_util.h"
#include "memory/embedder.h"
#include "memory/memory_service.h"
#include "store/database.h"
#include "store/migrations.h"

namespace {

using ds::bench::NowMs;
using ds::bench::Percentile;
using ds::bench::Rng;
using Words = std::vector<std::string>;

constexpr size_t kMemories = 50000;
constexpr size_t kBatch = 500;
constexpr size_t kQueries = 200;
constexpr uint64_t kSeed = 7031;
constexpr uint64_t kQuerySeed = 7032;
constexpr double kTargetPerSecond = 5000;

// ---- word lists ----

const Words kComponents = {
    "task scheduler",    "lease reaper",     "HTTP router",      "migration runner",
    "FTS index",         "vector index",     "backup job",       "MCP server",
    "hook handler",      "rate limiter",     "config loader",    "session tracker",
    "context assembler", "embedding cache",  "retention job",    "auth middleware",
    "API key store",     "health endpoint",  "metrics exporter", "dependency graph",
    "plan roll-up",      "phase tracker",    "worker pool",      "change log replay",
    "JSON decoder",      "OpenAPI document", "CLI parser",       "deploy script",
    "nginx config",      "Docker image",     "connection pool",  "redaction filter"};
const Words kTechs = {"SQLite WAL",
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
const Words kVerbs = {"replace", "rewrite", "split",    "cache", "batch",    "shard",
                      "inline",  "retry",   "debounce", "index", "validate", "throttle",
                      "memoise", "stream",  "pre-warm", "drop",  "simplify", "isolate"};
const Words kReasons = {"the p99 latency doubled under concurrent writers",
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
const Words kErrorKinds = {"SQLITE_BUSY",       "SIGSEGV",
                           "std::bad_alloc",    "assertion failure",
                           "timeout",           "HTTP 500",
                           "HTTP 409 conflict", "HTTP 422",
                           "double free",       "use-after-free",
                           "deadlock",          "JSON parse error",
                           "FTS5 syntax error", "UBSan signed overflow",
                           "connection reset"};
const Words kActivities = {"claiming the next task",
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
const Words kCauses = {"a missing index on task_dependencies",
                       "an iterator invalidated by erase",
                       "a reader holding the snapshot too long",
                       "an unchecked optional",
                       "a lock order inversion between writer and pool",
                       "integer division before the cast",
                       "a stale prepared statement",
                       "the lease clock using wall time",
                       "an unescaped double quote",
                       "reading past the end of a blob"};
const Words kFixes = {"added the index and a regression test",
                      "switched to steady_clock",
                      "moved the call outside the transaction",
                      "quoted every term in the FTS query",
                      "bounded the retry loop",
                      "reserved the vector up front",
                      "took the locks in a fixed order",
                      "checked the blob size before memcpy",
                      "returned 409 with the allowed moves"};
const Words kModules = {"api", "core", "store", "memory", "tasks", "app", "hooks", "mcp"};
const Words kStems = {"router",  "server",   "lease",  "queue",   "index",  "embedder",
                      "fusion",  "backup",   "config", "limiter", "health", "session",
                      "context", "redactor", "codec",  "planner", "graph",  "worker"};
const Words kIdents = {"ClaimNextTask", "lease_expires_at", "applied_seq_",    "BuildFtsQuery",
                       "retry_count",   "DotBatch",         "SyncIndex",       "content_hash",
                       "TokenBucket",   "max_connections",  "RollUpPhase",     "superseded_by",
                       "StoreBatch",    "request_timeout",  "WriteLogged",     "reader_pool_size",
                       "FuseRrf",       "AssembleContext",  "ProjectForWrite", "busy_timeout_ms"};
const Words kCommands = {"ctest --output-on-failure",
                         "make bench",
                         "devstream health --json",
                         "sqlite3 data/devstream.db 'PRAGMA integrity_check'",
                         "make test",
                         "devstream memory search 'lease reaper'",
                         "curl -s localhost:8000/health",
                         "clang-tidy -p build/release src/api/router.cpp",
                         "ninja -C build/asan"};
const Words kFacts = {"serialises writers but lets readers proceed on a snapshot",
                      "needs k as a constraint because LIMIT is not pushed down",
                      "ranks lower scores as better matches",
                      "picks the widest clone the CPU supports at load time",
                      "drops the pair's second value unless you keep it",
                      "retries only when the error is transient",
                      "keeps ids sortable by creation time",
                      "copies the row on every reallocation",
                      "rejects unknown fields instead of ignoring them"};
const Words kFormats = {"cpp", "python", "sql", "bash", "typescript"};
const Words kTypes = {"code",  "documentation", "context", "output",
                      "error", "decision",      "learning"};

std::string Num(Rng& r, int lo, int hi) {
  return std::to_string(lo + static_cast<int>(r.Below(hi - lo + 1)));
}

// One filler sentence, for any content type.
std::string Sentence(Rng& r) {
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

std::string Opener(Rng& r, const std::string& type, const std::string& format) {
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

std::vector<ds::memory::MemoryInput> GenerateMemories(size_t n) {
  Rng r(kSeed);
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

std::vector<std::string> GenerateQueries(size_t n) {
  Rng r(kQuerySeed);
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

int Fail(const std::string& what) {
  std::fprintf(stderr, "error: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main() {
  const auto machine = ds::bench::DescribeMachine();
  std::printf(
      "ingest_bench: %zu memories via MemoryService::StoreBatch (batches of %zu), then %zu"
      " hybrid searches; HashEmbedder 384 dims\n",
      kMemories, kBatch, kQueries);
  ds::bench::PrintMachine(machine);

  double t0 = NowMs();
  auto inputs = GenerateMemories(kMemories);
  size_t bytes = 0, min_len = SIZE_MAX, max_len = 0;
  for (const auto& in : inputs) {
    bytes += in.content.size();
    min_len = std::min(min_len, in.content.size());
    max_len = std::max(max_len, in.content.size());
  }
  std::printf("generated %zu distinct memories in %.1f s: %zu..%zu bytes, mean %.0f\n",
              inputs.size(), (NowMs() - t0) / 1000, min_len, max_len,
              static_cast<double>(bytes) / static_cast<double>(inputs.size()));
  std::printf("example (%s):\n  %s\n", inputs[1].content_type.c_str(), inputs[1].content.c_str());

  auto dir =
      std::filesystem::temp_directory_path() / ("ds_ingest_bench_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir};
  const std::string path = (dir / "ingest.db").string();
  auto db = ds::Database::Open(path, {});
  if (!db.ok()) return Fail("open: " + db.status().ToString());
  ds::Migrator migrator(**db);
  if (auto up = migrator.Up(); !up.ok()) return Fail("migrate: " + up.status().ToString());

  ds::memory::HashEmbedder embedder;
  ds::memory::MemoryService service(**db, embedder);
  if (auto st = service.LoadIndex(); !st.ok()) return Fail("LoadIndex: " + st.ToString());

  // Ingest.
  std::vector<double> batch_ms;
  size_t stored = 0, deduplicated = 0;
  const double ingest_start = NowMs();
  for (size_t i = 0; i < inputs.size(); i += kBatch) {
    std::vector<ds::memory::MemoryInput> batch(
        inputs.begin() + static_cast<std::ptrdiff_t>(i),
        inputs.begin() + static_cast<std::ptrdiff_t>(std::min(i + kBatch, inputs.size())));
    double t = NowMs();
    auto res = service.StoreBatch(batch);
    batch_ms.push_back(NowMs() - t);
    if (!res.ok()) return Fail("StoreBatch: " + res.status().ToString());
    for (const auto& r : *res) (r.deduplicated ? deduplicated : stored) += 1;
  }
  const double ingest_s = (NowMs() - ingest_start) / 1000;
  const double per_second = static_cast<double>(stored) / ingest_s;
  // The batch whose rows take the partition to VectorIndex's hnsw_threshold
  // also builds the HNSW graph inside StoreBatch: reported on its own.
  const size_t threshold = ds::memory::VectorIndexOptions{}.hnsw_threshold;
  std::optional<size_t> promotion_batch;
  if (threshold > 0 && threshold <= kMemories) promotion_batch = (threshold - 1) / kBatch;
  double flat_ms = 0;
  size_t flat_rows = 0;
  for (size_t b = 0; b < batch_ms.size(); ++b) {
    if (promotion_batch && b >= *promotion_batch) continue;
    flat_ms += batch_ms[b];
    flat_rows += std::min(kBatch, kMemories - b * kBatch);
  }

  // The embedding share: the same texts (content + keywords) through the embedder alone.
  double embed_s = 0;
  for (size_t i = 0; i < inputs.size(); i += kBatch) {
    std::vector<std::string> texts;
    for (size_t j = i; j < std::min(i + kBatch, inputs.size()); ++j) {
      std::string t = inputs[j].content;
      for (const auto& k : inputs[j].keywords) t += "\n" + k;
      texts.push_back(std::move(t));
    }
    double t = NowMs();
    auto v = embedder.Embed(texts);
    embed_s += (NowMs() - t) / 1000;
    if (!v.ok()) return Fail("Embed: " + v.status().ToString());
  }

  // Verify the three stores agree.
  int64_t n_memory = -1, n_fts = -1, n_fts_docs = -1, n_vectors = -1;
  auto st = (*db)->Read([&](ds::Connection& c) -> ds::Status {
    auto count = [&](const char* sql, int64_t* out) -> ds::Status {
      DS_ASSIGN_OR_RETURN(ds::Stmt s, c.Prepare(sql));
      DS_RETURN_IF_ERROR(s.Step().status());
      *out = s.Int(0);
      return ds::Status::Ok();
    };
    DS_RETURN_IF_ERROR(count("SELECT count(*) FROM semantic_memory", &n_memory));
    DS_RETURN_IF_ERROR(count("SELECT count(*) FROM memory_fts", &n_fts));
    // memory_fts is an external-content table: count(*) above reads
    // semantic_memory; the docsize table has one row per document actually indexed.
    DS_RETURN_IF_ERROR(count("SELECT count(*) FROM memory_fts_docsize", &n_fts_docs));
    DS_RETURN_IF_ERROR(count("SELECT count(*) FROM memory_vectors", &n_vectors));
    return ds::Status::Ok();
  });
  if (!st.ok()) return Fail("counting: " + st.ToString());
  t0 = NowMs();
  st = (*db)->Write([](ds::Connection& c) {
    return c.Exec("INSERT INTO memory_fts(memory_fts) VALUES('integrity-check')");
  });
  const double integrity_s = (NowMs() - t0) / 1000;
  auto stats = service.Stats(std::nullopt);
  if (!stats.ok()) return Fail("Stats: " + stats.status().ToString());
  const auto expect = static_cast<int64_t>(kMemories);
  const bool counts_ok = n_memory == expect && n_fts == expect && n_fts_docs == expect &&
                         n_vectors == expect && stats->indexed == expect && deduplicated == 0 &&
                         st.ok();
  std::error_code ec;
  auto db_size = std::filesystem::file_size(path, ec);
  auto wal_size = std::filesystem::file_size(path + "-wal", ec);

  // Hybrid search.
  auto queries = GenerateQueries(kQueries);
  auto run = [&](const std::string& text, size_t* hits) -> ds::Status {
    ds::memory::SearchQuery q;
    q.query = text;
    q.filter.limit = 10;
    q.mode = ds::memory::SearchMode::kHybrid;
    q.record_access = false;
    auto r = service.Search(q);
    if (!r.ok()) return r.status();
    if (r->degraded) return ds::Status::Internal("degraded search: " + r->degraded_reason);
    *hits = r->hits.size();
    return ds::Status::Ok();
  };
  size_t hits = 0, empty = 0;
  for (size_t w = 0; w < 3; ++w) {
    if (auto s = run(queries[w], &hits); !s.ok()) return Fail("Search: " + s.ToString());
  }
  std::vector<double> search_ms;
  for (const auto& q : queries) {
    double t = NowMs();
    auto s = run(q, &hits);
    search_ms.push_back(NowMs() - t);
    if (!s.ok()) return Fail("Search: " + s.ToString());
    empty += hits == 0;
  }

  std::printf("\ncounts after ingest (expect %zu each):\n", kMemories);
  std::printf(
      "  semantic_memory %lld, memory_fts %lld (docsize %lld), memory_vectors %lld,"
      " vector index %lld; deduplicated %zu; FTS integrity-check %s (%.1f s)  -> %s\n",
      static_cast<long long>(n_memory), static_cast<long long>(n_fts),
      static_cast<long long>(n_fts_docs), static_cast<long long>(n_vectors),
      static_cast<long long>(stats->indexed), deduplicated, st.ok() ? "ok" : "FAILED", integrity_s,
      counts_ok ? "OK" : "MISMATCH");
  std::printf("database %.0f MB + WAL %.0f MB\n", static_cast<double>(db_size) / 1e6,
              static_cast<double>(wal_size) / 1e6);

  std::printf("\n%-52s %12s\n", "", "figure");
  std::printf("%-52s %12.0f   (target >= %.0f/s: %s)\n",
              "ingest: memories/s (StoreBatch, 500 per batch)", per_second, kTargetPerSecond,
              ds::bench::Verdict(per_second >= kTargetPerSecond));
  std::printf("%-52s %12.2f\n", "ingest: total s", ingest_s);
  if (flat_rows > 0) {
    std::printf("%-52s %12.0f   (the first %zu memories, flat index)\n",
                "ingest: memories/s before the HNSW promotion", 1000 * flat_rows / flat_ms,
                flat_rows);
  }
  if (promotion_batch && *promotion_batch < batch_ms.size()) {
    std::printf("%-52s %12.1f   (batch %zu reaches hnsw_threshold %zu: builds the graph)\n",
                "ingest: promotion batch ms", batch_ms[*promotion_batch], *promotion_batch + 1,
                threshold);
  }
  std::printf("%-52s %12.1f\n", "ingest: batch median ms", Percentile(batch_ms, 50));
  std::printf("%-52s %12.1f\n", "ingest: batch p99 ms", Percentile(batch_ms, 99));
  std::printf("%-52s %12.2f   (%.0f texts/s; ~%.0f%% of the flat-phase time)\n",
              "embedding alone (HashEmbedder, same texts): s", embed_s,
              static_cast<double>(kMemories) / embed_s,
              flat_ms > 0
                  ? 100 * embed_s * static_cast<double>(flat_rows) / kMemories / (flat_ms / 1000)
                  : 0.0);
  std::printf("%-52s %12.2f\n", "hybrid search: median ms (in-process, limit 10)",
              Percentile(search_ms, 50));
  std::printf("%-52s %12.2f\n", "hybrid search: p99 ms", Percentile(search_ms, 99));
  std::printf("%-52s %12zu\n", "hybrid search: queries with no hit", empty);
  std::printf("(machine shared with other work: figures are from one run, noisy)\n");

  if (!counts_ok) return Fail("row counts disagree after ingest");
  return 0;
}
