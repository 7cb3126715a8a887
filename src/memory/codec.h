// JSON <-> memory model, shared by REST, MCP and the CLI: decoders validate
// (types, ranges, enums, unknown fields) and encoders produce the API shape.
// Stateless; thread-safe.
#pragma once

#include "core/json.h"
#include "memory/model.h"

namespace ds::memory {

inline constexpr size_t kMaxContentChars = 500000;

Result<MemoryInput> DecodeMemoryInput(const json::value& body);
// {"memories": [...]} with 1..1000 items.
Result<std::vector<MemoryInput>> DecodeMemoryBatch(const json::value& body);
Result<MemoryPatch> DecodeMemoryPatch(const json::value& body);
Result<SearchQuery> DecodeSearchQuery(const json::value& body);
Result<ContextQuery> DecodeContextQuery(const json::value& body);

json::object ToJson(const Memory& m);
json::object ToJson(const StoreResult& r);
json::object ToJson(const SearchHit& h);
json::object ToJson(const SearchResult& r);
json::object ToJson(const ContextResult& r);
json::object ToJson(const MemoryStats& s);

}  // namespace ds::memory
