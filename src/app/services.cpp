#include "app/services.h"

#include <iostream>

#include "app/store_open.h"
#include "core/log.h"
#include "core/signing.h"
#include "memory/remote_embedder.h"

namespace ds::app {

Result<std::unique_ptr<Services>> OpenServices(const std::string& db_path, int reader_pool) {
  SettingsOptions o;
  if (!db_path.empty()) o.flags["database.path"] = db_path;
  DS_ASSIGN_OR_RETURN(Settings settings, LoadSettings(o));
  return OpenServices(settings, reader_pool);
}

Result<std::unique_ptr<Services>> OpenServices(const Settings& settings,
                                               std::optional<int> reader_pool) {
  auto s = std::make_unique<Services>();
  s->settings = settings;
  // Cursors and MCP session ids this process hands out are signed with it.
  SetSigningKey(settings.secret_key);
  DS_ASSIGN_OR_RETURN(s->db, OpenMigratedDatabase(settings.database_path,
                                                  reader_pool.value_or(settings.reader_pool),
                                                  settings.busy_timeout_ms));
  DS_ASSIGN_OR_RETURN(s->embedder, memory::MakeEmbedder(settings.embedder));
  s->tasks = std::make_unique<tasks::TaskService>(*s->db);
  s->memory = std::make_unique<memory::MemoryService>(*s->db, *s->embedder, settings.index);
  s->jobs = std::make_unique<engine::JobQueue>(*s->db, settings.backoff);
  s->workflow = std::make_unique<engine::TaskWorkflow>(*s->tasks, *s->memory);
  s->sessions = std::make_unique<engine::SessionService>(*s->db, *s->memory);
  engine::JobQueue* jobs = s->jobs.get();
  s->memory->SetMissingVectorListener([jobs] {
    engine::EnqueueOptions opts;
    opts.dedup_key = "embed_memory";
    opts.delay_ms = 5'000;  // give a restarting embedder a moment
    if (auto r = jobs->Enqueue("embed_memory", json::object{}, opts); !r.ok()) {
      LogWarn("could not queue embed_memory", {{"error", r.status().message()}});
    }
  });
  return s;
}

}  // namespace ds::app
