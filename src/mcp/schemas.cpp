#include "mcp/schemas.h"

#include <cstdio>
#include <cstdlib>

#include "api/rest_api.h"

namespace ds::mcp {
namespace {

const json::object& Components() {
  static const json::object components = [] {
    auto doc = ParseJson(api::OpenApiDocument(), 256);
    if (!doc.ok()) {
      std::fprintf(stderr, "devstream: embedded OpenAPI document does not parse\n");
      std::abort();
    }
    return doc->as_object().at("components").as_object().at("schemas").as_object();
  }();
  return components;
}

json::value Inline(const json::value& v, int depth) {
  if (depth > 32) {
    std::fprintf(stderr, "devstream: OpenAPI schema references nest too deep\n");
    std::abort();
  }
  if (v.is_array()) {
    json::array out;
    for (const auto& x : v.as_array()) out.push_back(Inline(x, depth + 1));
    return out;
  }
  if (!v.is_object()) return v;
  const json::object& o = v.as_object();
  if (const auto* ref = o.if_contains("$ref"); ref && ref->is_string()) {
    std::string_view r = ref->as_string();
    constexpr std::string_view kPrefix = "#/components/schemas/";
    if (r.substr(0, kPrefix.size()) == kPrefix) {
      json::value resolved = Inline(json::value(ApiSchema(r.substr(kPrefix.size()))), depth + 1);
      // Sibling keywords (description...) refine the referenced schema.
      for (const auto& [k, val] : o) {
        if (k != "$ref") resolved.as_object()[k] = Inline(val, depth + 1);
      }
      return resolved;
    }
  }
  json::object out;
  for (const auto& [k, val] : o) out[k] = Inline(val, depth + 1);
  return out;
}

}  // namespace

json::object ApiSchema(std::string_view component) {
  const auto* found = Components().if_contains(component);
  if (!found || !found->is_object()) {
    std::fprintf(stderr, "devstream: OpenAPI document lacks schema %.*s\n",
                 static_cast<int>(component.size()), component.data());
    std::abort();
  }
  return Inline(*found, 0).as_object();
}

json::object ApiProperty(std::string_view component, std::string_view property) {
  json::object schema = ApiSchema(component);
  const auto* props = schema.if_contains("properties");
  const auto* p = props && props->is_object() ? props->as_object().if_contains(property) : nullptr;
  if (!p || !p->is_object()) {
    std::fprintf(stderr, "devstream: OpenAPI schema %.*s lacks property %.*s\n",
                 static_cast<int>(component.size()), component.data(),
                 static_cast<int>(property.size()), property.data());
    std::abort();
  }
  return p->as_object();
}

}  // namespace ds::mcp
