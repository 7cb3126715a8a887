#include "store/api_keys.h"

#include "core/clock.h"
#include "core/encoding.h"
#include "core/id.h"
#include "core/json.h"
#include "store/projects.h"

namespace ds {
namespace {

constexpr std::string_view kTokenPrefix = "dsk_";
constexpr size_t kTokenHexChars = 64;
constexpr int64_t kTouchEveryMs = 60'000;

bool TokenShaped(std::string_view token) {
  if (token.size() != kTokenPrefix.size() + kTokenHexChars) return false;
  if (token.substr(0, kTokenPrefix.size()) != kTokenPrefix) return false;
  for (char c : token.substr(kTokenPrefix.size())) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// A scope's bits, with the scopes it implies; 0 for an unknown name.
uint8_t ScopeBits(std::string_view name) {
  if (name == "read") return kScopeRead;
  if (name == "write") return kScopeRead | kScopeWrite;
  if (name == "admin") return kScopeRead | kScopeWrite | kScopeAdmin;
  return 0;
}

uint8_t ScopesFromJson(const std::string& text) {
  uint8_t bits = 0;
  auto parsed = ParseJson(text);
  if (!parsed.ok() || !parsed->is_array()) return 0;
  for (const auto& v : parsed->as_array()) {
    if (v.is_string()) bits |= ScopeBits(v.as_string());
  }
  return bits;
}

// Every key query: the columns ReadKey reads, with the bound project's name.
constexpr char kSelectKeys[] =
    "SELECT k.id, k.name, k.prefix, k.scopes, k.project_id, p.name, k.created_at, "
    "k.last_used_at, k.revoked_at FROM api_keys k LEFT JOIN projects p ON p.id = k.project_id ";

ApiKey ReadKey(Stmt& s) {
  ApiKey k;
  k.id = s.Text(0);
  k.name = s.Text(1);
  k.prefix = s.Text(2);
  k.scopes = ScopesFromJson(s.Text(3));
  k.project_id = s.OptText(4);
  k.project_name = s.OptText(5);
  k.created_at = s.Text(6);
  k.last_used_at = s.OptText(7);
  k.revoked_at = s.OptText(8);
  return k;
}

Status ValidateName(const std::string& name) {
  if (name.empty() || name.size() > 100 || !IsValidUtf8(name)) {
    return Status::InvalidArgument("key name must be 1..100 bytes of UTF-8")
        .WithDetail("field", "name");
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      return Status::InvalidArgument("key name must not contain control characters")
          .WithDetail("field", "name");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<uint8_t> ParseApiScopes(std::string_view csv) {
  uint8_t bits = 0;
  size_t pos = 0;
  while (pos <= csv.size()) {
    size_t end = csv.find(',', pos);
    if (end == std::string_view::npos) end = csv.size();
    std::string_view item = csv.substr(pos, end - pos);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    uint8_t item_bits = ScopeBits(item);
    if (item_bits == 0) {
      return Status::InvalidArgument("scope \"" + std::string(item) +
                                     "\" is not one of read, write, admin")
          .WithDetail("field", "scopes");
    }
    bits |= item_bits;
    pos = end + 1;
  }
  if (bits == 0) {
    return Status::InvalidArgument("at least one scope (read, write, admin) is needed")
        .WithDetail("field", "scopes");
  }
  return bits;
}

std::vector<std::string> ApiScopeNames(uint8_t scopes) {
  std::vector<std::string> out;
  if (scopes & kScopeRead) out.emplace_back("read");
  if (scopes & kScopeWrite) out.emplace_back("write");
  if (scopes & kScopeAdmin) out.emplace_back("admin");
  return out;
}

Result<CreatedApiKey> ApiKeyStore::Create(const std::string& name, uint8_t scopes,
                                          const std::optional<std::string>& project) {
  DS_RETURN_IF_ERROR(ValidateName(name));
  if (scopes == 0) return Status::InvalidArgument("at least one scope is needed");
  CreatedApiKey out;
  out.token = std::string(kTokenPrefix) + RandomHex(kTokenHexChars / 2);
  ApiKey& k = out.key;
  k.id = NewId("key");
  k.name = name;
  k.prefix = out.token.substr(0, 12);
  k.scopes = scopes;
  k.created_at = NowTimestamp();
  json::array names;
  for (const auto& n : ApiScopeNames(scopes)) names.emplace_back(n);
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Stmt taken, c.Prepare("SELECT 1 FROM api_keys WHERE name = ?1 AND "
                                              "revoked_at IS NULL"));
    taken.Bind(1, name);
    DS_ASSIGN_OR_RETURN(bool exists, taken.Step());
    if (exists) {
      return Status::Conflict("a live key is already named \"" + name +
                              "\" (revoke it first, or pick another name)")
          .WithDetail("field", "name");
    }
    if (project) {
      DS_ASSIGN_OR_RETURN(Project p, ProjectForWrite(c, project));
      k.project_id = p.id;
      k.project_name = p.name;
    }
    DS_ASSIGN_OR_RETURN(Stmt ins, c.Prepare("INSERT INTO api_keys (id, name, prefix, hash, scopes, "
                                            "project_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, "
                                            "?6, ?7)"));
    ins.Bind(1, k.id)
        .Bind(2, k.name)
        .Bind(3, k.prefix)
        .Bind(4, Blake2bHex(out.token))
        .Bind(5, ToJsonString(names))
        .Bind(6, k.project_id)
        .Bind(7, k.created_at);
    return ins.Run();
  }));
  return out;
}

Result<std::vector<ApiKey>> ApiKeyStore::List(bool include_revoked) {
  std::vector<ApiKey> out;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(
        Stmt s, c.Prepare(std::string(kSelectKeys) +
                          "WHERE ?1 OR k.revoked_at IS NULL ORDER BY k.created_at DESC, k.id"));
    s.Bind(1, include_revoked ? 1 : 0);
    while (true) {
      DS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      out.push_back(ReadKey(s));
    }
    return Status::Ok();
  }));
  return out;
}

Result<ApiKey> ApiKeyStore::Revoke(const std::string& name_or_id) {
  ApiKey k;
  DS_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(Stmt s,
                        c.Prepare(std::string(kSelectKeys) +
                                  "WHERE (k.id = ?1 OR k.name = ?1) AND k.revoked_at IS NULL"));
    s.Bind(1, name_or_id);
    DS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return Status::NotFound("no live API key named or with id \"" + name_or_id + "\"");
    k = ReadKey(s);
    k.revoked_at = NowTimestamp();
    DS_ASSIGN_OR_RETURN(Stmt u, c.Prepare("UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1"));
    u.Bind(1, k.id).Bind(2, *k.revoked_at);
    return u.Run();
  }));
  return k;
}

Result<ApiKey> ApiKeyStore::Authenticate(std::string_view token) {
  static const Status kRefused = Status::Unauthorized("invalid or revoked API key");
  if (!TokenShaped(token)) return kRefused;
  std::string hash = Blake2bHex(token);
  std::optional<ApiKey> found;
  DS_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    DS_ASSIGN_OR_RETURN(
        Stmt s, c.Prepare(std::string(kSelectKeys) + "WHERE k.hash = ?1 AND k.revoked_at IS NULL"));
    s.Bind(1, hash);
    DS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) found = ReadKey(s);
    return Status::Ok();
  }));
  if (!found) return kRefused;
  int64_t now = NowMillis();
  bool stale = !found->last_used_at;
  if (found->last_used_at) {
    auto used = ParseTimestamp(*found->last_used_at);
    stale = !used || now - *used >= kTouchEveryMs;
  }
  if (stale) {
    // Bookkeeping only: a busy database must not turn a valid key away.
    db_.Write([&](Connection& c) -> Status {
         DS_ASSIGN_OR_RETURN(Stmt u,
                             c.Prepare("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1"));
         u.Bind(1, found->id).Bind(2, FormatTimestamp(now));
         return u.Run();
       })
        .ok();
  }
  return *found;
}

}  // namespace ds
