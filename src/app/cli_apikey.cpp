// `devstream apikey create|list|revoke`: API keys for the REST API and /mcp
// (store/api_keys.h). The key itself is printed once, by create.
#include <iostream>

#include "app/cli_support.h"
#include "store/api_keys.h"

namespace ds::app {
namespace {

json::object KeyJson(const ApiKey& k) {
  json::array scopes;
  for (const auto& s : ApiScopeNames(k.scopes)) scopes.emplace_back(s);
  return json::object{{"id", k.id},
                      {"name", k.name},
                      {"prefix", k.prefix},
                      {"scopes", std::move(scopes)},
                      {"project_id", OptionalJson(k.project_id)},
                      {"project", OptionalJson(k.project_name)},
                      {"created_at", k.created_at},
                      {"last_used_at", OptionalJson(k.last_used_at)},
                      {"revoked_at", OptionalJson(k.revoked_at)}};
}

void DefineApiKey(CLI::App* apikey, Ctx& ctx, Action& action) {
  static std::string name, scopes = "read", project, which;
  static bool all = false;
  apikey->require_subcommand(1);

  auto* create = apikey->add_subcommand(
      "create", "Create a key; it is printed once — store it (DEVSTREAM_API_KEY for clients)");
  create->add_option("--name", name, "A unique name for the key (e.g. ci, laptop)")->required();
  create
      ->add_option("--scopes", scopes,
                   "Comma-separated: read, write, admin (write includes read, admin both)")
      ->capture_default_str();
  create->add_option("--project", project,
                     "Bind the key to this project (name or id; created if new): it sees "
                     "nothing else");
  AddDbOption(create, ctx);
  create->callback([&] {
    action = WithServices(ctx, [&](Services& sv) {
      auto bits = ParseApiScopes(scopes);
      if (!bits.ok()) return Fail(bits.status());
      ApiKeyStore keys(*sv.db);
      std::optional<std::string> bound;
      if (!project.empty()) bound = project;
      auto created = keys.Create(name, *bits, bound);
      if (!created.ok()) return Fail(created.status());
      json::object out = KeyJson(created->key);
      out["key"] = created->token;
      ctx.out.Object(out);
      if (!ctx.out.json) {
        std::cerr << "Store this key now: it is not shown again (only its hash is kept).\n";
      }
      return 0;
    });
  });

  auto* list = apikey->add_subcommand("list", "Keys (never the keys themselves), newest first");
  list->add_flag("--all", all, "Include revoked keys");
  AddDbOption(list, ctx);
  list->callback([&] {
    action = WithServices(ctx, [&](Services& sv) {
      ApiKeyStore keys(*sv.db);
      auto found = keys.List(all);
      if (!found.ok()) return Fail(found.status());
      json::array items;
      for (const auto& k : *found) items.push_back(KeyJson(k));
      ctx.out.List(items,
                   {"id", "name", "prefix", "scopes", "project", "last_used_at", "revoked_at"});
      return 0;
    });
  });

  auto* revoke = apikey->add_subcommand("revoke", "Revoke a key at once (by name or id)");
  revoke->add_option("key", which, "The key's name or id")->required();
  AddDbOption(revoke, ctx);
  revoke->callback([&] {
    action = WithServices(ctx, [&](Services& sv) {
      ApiKeyStore keys(*sv.db);
      auto gone = keys.Revoke(which);
      if (!gone.ok()) return Fail(gone.status());
      ctx.out.Message("revoked " + gone->name + " (" + gone->id + ")");
      return 0;
    });
  });
}

}  // namespace

std::vector<CommandDef> ApiKeyCommands() {
  return {{"apikey", "API keys for the REST API and /mcp (used when security.auth_enabled)",
           DefineApiKey}};
}

}  // namespace ds::app
