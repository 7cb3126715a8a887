// API keys: bearer tokens for the REST API and /mcp. A token is "dsk_" and
// 64 hex characters (256 random bits), shown once when created; the table
// keeps only its BLAKE2b-256 hash (libsodium) and a short prefix to recognise
// it by, so neither a database leak nor rotating security.secret_key reveals
// or revokes a key. Scopes nest: write includes read, admin includes both.
// A key may be bound to one project, which is then all it can see.
// Names are unique among live keys (a revoked key's name can be reused).
// Thread-safety: methods may run concurrently (each is one transaction on
// the Database, which is thread-safe).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "store/database.h"

namespace ds {

enum ApiScope : uint8_t { kScopeRead = 1, kScopeWrite = 2, kScopeAdmin = 4 };

// "read,write" -> bits (with the implied lower scopes); InvalidArgument naming
// the bad item otherwise. At least one scope.
Result<uint8_t> ParseApiScopes(std::string_view csv);
// The granted scope names, lowest first: ["read", "write"].
std::vector<std::string> ApiScopeNames(uint8_t scopes);

struct ApiKey {
  std::string id;  // key_…
  std::string name;
  std::string prefix;  // the token's first 12 characters
  uint8_t scopes = 0;
  std::optional<std::string> project_id;    // bound project, if any
  std::optional<std::string> project_name;  // its name (for listings)
  std::string created_at;
  std::optional<std::string> last_used_at;
  std::optional<std::string> revoked_at;
};

struct CreatedApiKey {
  ApiKey key;
  std::string token;  // the only time it exists outside the caller's hands
};

class ApiKeyStore {
 public:
  explicit ApiKeyStore(Database& db) : db_(db) {}

  // `project`: name or id of an existing project, or a new name (created).
  // Conflict when a live key already has the name.
  Result<CreatedApiKey> Create(const std::string& name, uint8_t scopes,
                               const std::optional<std::string>& project);
  // Newest first; revoked keys only when asked.
  Result<std::vector<ApiKey>> List(bool include_revoked);
  // By id or live name. NotFound when there is no such live key.
  Result<ApiKey> Revoke(const std::string& name_or_id);
  // The live key whose hash matches `token`; Unauthorized otherwise (the
  // message never says whether the key was unknown or revoked). Records
  // last_used_at at most once a minute per key.
  Result<ApiKey> Authenticate(std::string_view token);

 private:
  Database& db_;
};

}  // namespace ds
