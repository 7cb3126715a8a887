// AccessControl: who a request comes from and what it may touch, when API
// keys are on (security.auth_enabled).
//   Authenticate  `Authorization: Bearer <key>` -> the Caller; Unauthorized
//                 (401) when absent, unknown or revoked.
//   Authorize     the route's Access against the key's scopes (403); `force`
//                 (acting over another agent's lease) needs admin. A key
//                 bound to a project is confined to it: every project and
//                 resource id the request names — path parameters, query
//                 parameters, X-DevStream-Project, and body members named
//                 "project", "id", "*_id" or "depends_on" at any depth — must
//                 belong to that project, else NotFound (404) exactly as if
//                 it did not exist; a request naming no project gets the
//                 key's (X-DevStream-Project is set). What spans projects —
//                 admin routes (jobs), creating projects — is Forbidden to a
//                 bound key.
//   Confine       the same confinement for MCP tool arguments.
// Thread-safety: all methods may run concurrently (reads go through the
// Database's reader pool).
#pragma once

#include "api/http.h"
#include "api/router.h"
#include "core/json.h"
#include "core/status.h"
#include "store/api_keys.h"

namespace ds::api {

class AccessControl {
 public:
  explicit AccessControl(Database& db) : db_(db), keys_(db) {}

  Result<Caller> Authenticate(const Request& req);
  // Checks req.caller (set) against the matched route; may set the
  // X-DevStream-Project header of a bound caller's request.
  Status Authorize(Request& req, Access access);
  // For a tool call: `write` when the tool changes data. A bound caller's
  // calls that name no project act in its project through the transport's
  // default project (the X-DevStream-Project header Authorize set).
  Status Confine(const Caller& caller, bool write, const json::object& args);

 private:
  Database& db_;
  ApiKeyStore keys_;
};

// True when the caller may see everything (no key binding, or auth off).
inline bool Unconfined(const Request& req) {
  return !req.caller || req.caller->project_id.empty();
}

}  // namespace ds::api
