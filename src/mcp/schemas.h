// JSON Schemas for MCP tools, taken from the REST API's OpenAPI document
// (components.schemas), so a tool accepts and returns exactly what the
// matching REST endpoint does: one definition of every shape. References
// ($ref to #/components/schemas/...) are inlined, because a tool schema must
// stand alone.
// Thread-safety: thread-safe (the parsed document is built once).
#pragma once

#include <string_view>

#include "core/json.h"

namespace ds::mcp {

// The named component with every $ref inlined. Aborts on a name the document
// lacks: tool definitions are code, a missing schema is a build-time bug
// caught by the tests.
json::object ApiSchema(std::string_view component);

// The named property schema of a component (inlined).
json::object ApiProperty(std::string_view component, std::string_view property);

}  // namespace ds::mcp
