#include "api/access.h"

#include <charconv>

#include "store/projects.h"

namespace ds::api {
namespace {

constexpr int kMaxDepth = 64;

// What a request names, to be checked against a bound key's project.
struct References {
  std::vector<std::string> projects;  // names or ids
  std::vector<std::string> ids;       // prj_/pln_/phs_/tsk_/ses_ ids (others are ignored)
  std::vector<int64_t> memories;
  bool names_project = false;  // the request says which project it acts in
};

bool IdKey(std::string_view key) {
  return key == "id" || key == "depends_on" ||
         (key.size() > 3 && key.substr(key.size() - 3) == "_id");
}

void CollectJson(const json::value& v, std::string_view key, int depth, References& refs) {
  if (depth > kMaxDepth) return;
  switch (v.kind()) {
    case json::kind::string:
      if (key == "project") {
        if (v.as_string().empty()) break;  // "" means the default: not naming one
        refs.projects.emplace_back(v.as_string());
        refs.names_project = true;
      } else if (IdKey(key)) {
        refs.ids.emplace_back(v.as_string());
      }
      break;
    case json::kind::int64:
      if (key == "memory_id") refs.memories.push_back(v.as_int64());
      break;
    case json::kind::array:
      for (const auto& e : v.as_array()) CollectJson(e, key, depth + 1, refs);
      break;
    case json::kind::object:
      for (const auto& [k, e] : v.as_object()) CollectJson(e, k, depth + 1, refs);
      break;
    default:
      break;
  }
}

uint8_t ScopeFor(Access access) {
  switch (access) {
    case Access::kPublic:
      return 0;
    case Access::kRead:
      return kScopeRead;
    case Access::kWrite:
      return kScopeWrite;
    case Access::kAdmin:
      return kScopeAdmin;
  }
  return kScopeAdmin;
}

std::string ScopeList(uint8_t scopes) {
  std::string out;
  for (const auto& s : ApiScopeNames(scopes)) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "none" : out;
}

Status NeedScope(const Caller& c, uint8_t need, const std::string& what) {
  if ((c.scopes & need) == need) return Status::Ok();
  return Status::Forbidden("API key \"" + c.key_name + "\" has scope(s) " + ScopeList(c.scopes) +
                           "; " + what + " needs " + ScopeList(need));
}

Status CheckForce(const Caller& c, const json::value& body) {
  if (!body.is_object()) return Status::Ok();
  const json::value* force = body.as_object().if_contains("force");
  if (!force || !force->is_bool() || !force->as_bool()) return Status::Ok();
  return NeedScope(c, kScopeAdmin, "force (acting over another agent's lease)");
}

// NotFound unless everything `refs` names exists and belongs to `project_id`.
Status CheckWithin(Database& db, const std::string& project_id, const References& refs) {
  return db.Read([&](Connection& conn) -> Status {
    for (const auto& p : refs.projects) {
      DS_ASSIGN_OR_RETURN(auto found, FindProject(conn, p));
      if (!found || found->id != project_id) return Status::NotFound("project " + p + " not found");
    }
    for (const auto& id : refs.ids) {
      Result<std::string> owner = OwningProject(conn, id);
      if (owner.status().code() == StatusCode::kInvalidArgument) continue;  // not a resource id
      if (!owner.ok()) return owner.status();
      if (*owner != project_id) return Status::NotFound(id + " not found");
    }
    for (int64_t m : refs.memories) {
      Result<std::string> owner = OwningProjectOfMemory(conn, m);
      if (!owner.ok()) return owner.status();
      if (*owner != project_id)
        return Status::NotFound("memory " + std::to_string(m) + " not found");
    }
    return Status::Ok();
  });
}

}  // namespace

Result<Caller> AccessControl::Authenticate(const Request& req) {
  const std::string* auth = req.Header("authorization");
  if (!auth) {
    return Status::Unauthorized(
        "an API key is required: send Authorization: Bearer <key> (devstream apikey create)");
  }
  std::string_view v = *auth;
  constexpr std::string_view kScheme = "bearer ";
  bool bearer = v.size() > kScheme.size();
  for (size_t i = 0; bearer && i < kScheme.size(); ++i) {
    bearer = std::tolower(static_cast<unsigned char>(v[i])) == kScheme[i];
  }
  if (!bearer) return Status::Unauthorized("Authorization must be \"Bearer <key>\"");
  v.remove_prefix(kScheme.size());
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  DS_ASSIGN_OR_RETURN(ApiKey key, keys_.Authenticate(v));
  Caller c;
  c.key_id = key.id;
  c.key_name = key.name;
  c.scopes = key.scopes;
  c.project_id = key.project_id.value_or("");
  return c;
}

Status AccessControl::Authorize(Request& req, Access access) {
  const Caller& c = *req.caller;
  DS_RETURN_IF_ERROR(NeedScope(c, ScopeFor(access), req.method + " " + req.route));
  // /mcp carries JSON-RPC; its tool arguments are checked per call (Confine).
  bool json_body = req.route != "/mcp" && !req.body.empty();
  json::value body;
  if (json_body && (!c.project_id.empty() || req.body.find("\"force\"") != std::string::npos)) {
    // An unparsable body is the handler's to reject, with its own message.
    if (auto parsed = ParseJson(req.body); parsed.ok()) body = std::move(*parsed);
  }
  DS_RETURN_IF_ERROR(CheckForce(c, body));
  if (c.project_id.empty()) return Status::Ok();

  if (access == Access::kAdmin) {
    return Status::Forbidden("API key \"" + c.key_name + "\" is bound to one project; " +
                             req.route + " spans all projects");
  }
  if (req.method == "POST" && req.route == "/api/v1/projects") {
    return Status::Forbidden("API key \"" + c.key_name +
                             "\" is bound to one project and cannot create others");
  }
  References refs;
  bool memory_route = req.route.rfind("/api/v1/memories/{", 0) == 0;
  bool project_route = req.route.rfind("/api/v1/projects/{", 0) == 0;
  for (const auto& [name, value] : req.params) {
    if (project_route && name == "id") {
      refs.projects.push_back(value);  // a name or an id
      refs.names_project = true;
    } else if (memory_route && name == "id") {
      int64_t n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec == std::errc() && end == value.data() + value.size()) refs.memories.push_back(n);
    } else {
      refs.ids.push_back(value);
    }
  }
  for (const auto& [k, v] : req.query) {
    if (k == "project") {
      refs.projects.push_back(v);
      refs.names_project = true;
    } else if (IdKey(k)) {
      refs.ids.push_back(v);
    }
  }
  if (const std::string* h = req.Header("x-devstream-project"); h && !h->empty()) {
    refs.projects.push_back(*h);
    refs.names_project = true;
  }
  if (!body.is_null()) CollectJson(body, "", 0, refs);
  DS_RETURN_IF_ERROR(CheckWithin(db_, c.project_id, refs));
  if (!refs.names_project) req.headers.emplace_back("x-devstream-project", c.project_id);
  return Status::Ok();
}

Status AccessControl::Confine(const Caller& c, bool write, const json::object& args) {
  DS_RETURN_IF_ERROR(NeedScope(c, write ? kScopeWrite : kScopeRead, "this tool"));
  json::value v = args;
  DS_RETURN_IF_ERROR(CheckForce(c, v));
  if (c.project_id.empty()) return Status::Ok();
  References refs;
  CollectJson(v, "", 0, refs);
  return CheckWithin(db_, c.project_id, refs);
}

}  // namespace ds::api
