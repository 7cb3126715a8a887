#include "memory/codec.h"

#include "core/clock.h"
#include "core/id.h"

namespace ds::memory {

const std::vector<std::string_view>& ContentTypes() {
  static const std::vector<std::string_view> v{"code",  "documentation", "context", "output",
                                               "error", "decision",      "learning"};
  return v;
}
const std::vector<std::string_view>& MemorySources() {
  static const std::vector<std::string_view> v{"api", "mcp", "hook", "cli", "engine"};
  return v;
}
int ContentTypeIndex(std::string_view type) {
  const auto& v = ContentTypes();
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == type) return static_cast<int>(i);
  }
  return -1;
}
int EstimateTokens(std::string_view text) {
  return static_cast<int>((text.size() + 3) / 4);
}

namespace {

std::optional<std::string> ReadId(ObjectReader& r, std::string_view key, std::string_view prefix) {
  auto v = r.String(key, false, 1, 64);
  if (v && !IsValidId(*v, prefix)) {
    r.Fail(key, "\"" + *v + "\" is not a " + std::string(prefix) + "_… id");
    return std::nullopt;
  }
  return v;
}

std::optional<std::string> ReadFormat(ObjectReader& r) {
  auto v = r.String("content_format", false, 1, 32);
  if (!v) return v;
  for (char c : *v) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '#' ||
          c == '.' || c == '_')) {
      r.Fail("content_format", "must be a short name such as text, markdown, python, diff");
      return std::nullopt;
    }
  }
  return v;
}

std::optional<std::string> ReadTimestamp(ObjectReader& r, std::string_view key) {
  auto v = r.String(key, false, 1, 40);
  if (!v) return v;
  auto ms = ParseTimestamp(*v);
  if (!ms) {
    r.Fail(key, "must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z");
    return std::nullopt;
  }
  return FormatTimestamp(*ms);
}

void ReadFilter(ObjectReader& r, MemoryFilter* f, int default_limit, int max_limit) {
  f->project = r.String("project", false, 1, 200);
  if (auto v = r.StringArray("content_types", false, 7, 32)) {
    for (const auto& t : *v) {
      if (ContentTypeIndex(t) < 0) {
        r.Fail("content_types", "unknown content type \"" + t +
                                    "\"; use code, documentation, context, output, error, "
                                    "decision or learning");
        break;
      }
    }
    f->content_types = *v;
  }
  f->plan_id = ReadId(r, "plan_id", "pln");
  f->phase_id = ReadId(r, "phase_id", "phs");
  f->task_id = ReadId(r, "task_id", "tsk");
  f->session_id = r.String("session_id", false, 1, 128);
  f->file_path = r.String("file_path", false, 1, 4096);
  f->since = ReadTimestamp(r, "since");
  f->until = ReadTimestamp(r, "until");
  if (auto v = r.Bool("include_archived", false)) f->include_archived = *v;
  f->limit = default_limit;
  if (auto v = r.Int("limit", false, 1, max_limit)) f->limit = static_cast<int>(*v);
}

Result<MemoryInput> DecodeInputObject(const json::object& obj, const std::string& where) {
  ObjectReader r(obj, where);
  MemoryInput in;
  in.project = r.String("project", false, 1, 200);
  in.plan_id = ReadId(r, "plan_id", "pln");
  in.phase_id = ReadId(r, "phase_id", "phs");
  in.task_id = ReadId(r, "task_id", "tsk");
  in.session_id = r.String("session_id", false, 1, 128);
  if (auto v = r.String("content", true, 1, kMaxContentChars)) in.content = *v;
  if (!r.failed() && in.content.find_first_not_of(" \t\r\n") == std::string::npos) {
    r.Fail("content", "must not be blank");
  }
  if (auto v = r.Enum("content_type", true, ContentTypes())) in.content_type = *v;
  if (auto v = ReadFormat(r)) in.content_format = *v;
  in.source = r.Enum("source", false, MemorySources());
  in.file_path = r.String("file_path", false, 1, 4096);
  if (auto v = r.StringArray("keywords", false, 50, 100)) in.keywords = *v;
  if (auto v = r.Number("relevance_score", false, 0, 1)) in.relevance_score = *v;
  if (auto v = r.Bool("pinned", false)) in.pinned = *v;
  DS_RETURN_IF_ERROR(r.Finish());
  return in;
}

}  // namespace

Result<MemoryInput> DecodeMemoryInput(const json::value& body) {
  DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "memory"));
  return DecodeInputObject(*obj, "memory");
}

Result<std::vector<MemoryInput>> DecodeMemoryBatch(const json::value& body) {
  DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "batch"));
  ObjectReader r(*obj, "batch");
  const json::value* items = r.Raw("memories");
  if (!items) r.Fail("memories", "is required");
  DS_RETURN_IF_ERROR(r.Finish());
  if (!items->is_array() || items->get_array().empty() || items->get_array().size() > 1000) {
    return Status::InvalidArgument("batch.memories must be an array of 1..1000 memories")
        .WithDetail("field", "memories");
  }
  std::vector<MemoryInput> out;
  out.reserve(items->get_array().size());
  size_t i = 0;
  for (const auto& item : items->get_array()) {
    std::string where = "memories[" + std::to_string(i++) + "]";
    if (!item.is_object()) {
      return Status::InvalidArgument(where + " must be an object")
          .WithDetail("field", json::string(where));
    }
    DS_ASSIGN_OR_RETURN(auto in, DecodeInputObject(item.get_object(), where));
    out.push_back(std::move(in));
  }
  return out;
}

Result<MemoryPatch> DecodeMemoryPatch(const json::value& body) {
  DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "memory patch"));
  ObjectReader r(*obj, "memory");
  MemoryPatch p;
  p.content = r.String("content", false, 1, kMaxContentChars);
  if (p.content && p.content->find_first_not_of(" \t\r\n") == std::string::npos) {
    r.Fail("content", "must not be blank");
  }
  p.content_type = r.Enum("content_type", false, ContentTypes());
  p.content_format = ReadFormat(r);
  p.keywords = r.StringArray("keywords", false, 50, 100);
  p.relevance_score = r.Number("relevance_score", false, 0, 1);
  p.pinned = r.Bool("pinned", false);
  p.archived = r.Bool("archived", false);
  DS_RETURN_IF_ERROR(r.Finish());
  return p;
}

Result<SearchQuery> DecodeSearchQuery(const json::value& body) {
  DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "search"));
  ObjectReader r(*obj, "search");
  SearchQuery q;
  if (auto v = r.String("query", true, 1, 10000)) q.query = *v;
  ReadFilter(r, &q.filter, 10, 100);
  r.Ignore("cursor");
  if (obj->contains("cursor")) r.Fail("cursor", "search results are not paginated; raise limit");
  if (auto m = r.Enum("mode", false, {"hybrid", "vector", "keyword"})) {
    q.mode = *m == "vector"    ? SearchMode::kVector
             : *m == "keyword" ? SearchMode::kKeyword
                               : SearchMode::kHybrid;
  }
  q.min_similarity = r.Number("min_similarity", false, -1, 1);
  if (auto v = r.Number("importance_boost", false, 0, 1)) q.importance_boost = *v;
  if (auto v = r.Number("recency_boost", false, 0, 1)) q.recency_boost = *v;
  if (auto v = r.Number("recency_half_life_days", false, 0.01, 3650)) q.recency_half_life_days = *v;
  if (const json::value* w = r.Raw("weights")) {
    if (!w->is_object()) {
      r.Fail("weights", "must be an object {\"keyword\": n, \"vector\": n}");
    } else {
      ObjectReader wr(w->get_object(), "search.weights");
      if (auto k = wr.Number("keyword", false, 0, 10)) q.keyword_weight = *k;
      q.vector_weight = wr.Number("vector", false, 0, 10);
      Status st = wr.Finish();
      if (!st.ok()) r.Fail("weights", st.message());
    }
  }
  DS_RETURN_IF_ERROR(r.Finish());
  return q;
}

Result<ContextQuery> DecodeContextQuery(const json::value& body) {
  DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "context"));
  ObjectReader r(*obj, "context");
  ContextQuery q;
  if (auto v = r.String("query", true, 1, 10000)) q.query = *v;
  ReadFilter(r, &q.filter, 20, 100);
  if (auto v = r.Int("token_budget", false, 1, 200000)) q.token_budget = static_cast<int>(*v);
  if (auto v = r.Bool("diversity", false)) q.diversity = *v;
  DS_RETURN_IF_ERROR(r.Finish());
  return q;
}

json::object ToJson(const Memory& m) {
  return {{"id", m.id},
          {"project_id", m.project_id},
          {"plan_id", OptionalJson(m.plan_id)},
          {"phase_id", OptionalJson(m.phase_id)},
          {"task_id", OptionalJson(m.task_id)},
          {"session_id", OptionalJson(m.session_id)},
          {"content", m.content},
          {"content_type", m.content_type},
          {"content_format", m.content_format},
          {"source", m.source},
          {"file_path", OptionalJson(m.file_path)},
          {"keywords", ToJsonArray(m.keywords)},
          {"content_hash", m.content_hash},
          {"relevance_score", JsonNumber(m.relevance_score)},
          {"access_count", m.access_count},
          {"last_accessed_at", OptionalJson(m.last_accessed_at)},
          {"pinned", m.pinned},
          {"archived", m.archived},
          {"superseded_by", OptionalJson(m.superseded_by)},
          {"created_at", m.created_at},
          {"updated_at", m.updated_at}};
}

json::object ToJson(const StoreResult& r) {
  json::object o = ToJson(r.memory);
  o["deduplicated"] = r.deduplicated;
  o["redactions"] = r.redactions;
  json::array sup;
  for (auto id : r.superseded) sup.emplace_back(id);
  o["superseded"] = std::move(sup);
  return o;
}

json::object ToJson(const SearchHit& h) {
  json::object o = ToJson(h.memory);
  o["score"] = JsonNumber(h.score);
  o["keyword_rank"] = h.keyword_rank ? json::value(*h.keyword_rank) : json::value(nullptr);
  o["vector_rank"] = h.vector_rank ? json::value(*h.vector_rank) : json::value(nullptr);
  o["similarity"] = h.similarity ? JsonNumber(*h.similarity) : json::value(nullptr);
  o["bm25"] = h.bm25 ? JsonNumber(*h.bm25) : json::value(nullptr);
  return o;
}

json::object ToJson(const SearchResult& r) {
  json::array results;
  for (const auto& h : r.hits) results.push_back(ToJson(h));
  json::object o{
      {"results", std::move(results)},
      {"vector_model", r.vector_model.empty() ? json::value(nullptr) : json::value(r.vector_model)},
      {"degraded", r.degraded},
      {"took_ms", JsonNumber(r.took_ms)}};
  if (r.degraded) o["degraded_reason"] = r.degraded_reason;
  return o;
}

json::object ToJson(const ContextResult& r) {
  json::array ids;
  for (auto id : r.memory_ids) ids.emplace_back(id);
  return {{"context", r.context},
          {"memory_ids", std::move(ids)},
          {"tokens", r.tokens},
          {"truncated", r.truncated},
          {"degraded", r.degraded}};
}

json::object ToJson(const MemoryStats& s) {
  return {{"memories", s.memories},     {"archived", s.archived},
          {"superseded", s.superseded}, {"vectors", s.vectors},
          {"model", s.model},           {"dim", s.dim},
          {"indexed", s.indexed},       {"vector_bytes", s.vector_bytes}};
}

}  // namespace ds::memory
