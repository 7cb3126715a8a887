#include "engine/job_handlers.h"

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "core/log.h"
#include "store/backup.h"

namespace ds::engine {
namespace {

// A worker silent this long is gone; its row only confuses operators.
constexpr int64_t kDeadWorkerMs = 3'600'000;

Status RunEmbed(memory::MemoryService& memory, JobContext& ctx) {
  bool complete = false;
  DS_RETURN_IF_ERROR(memory.Reembed(256, &ctx.stopping, &complete).status());
  if (!complete) return ctx.GiveBack();
  return Status::Ok();
}

}  // namespace

const std::vector<std::string>& StandardJobKinds() {
  static const std::vector<std::string> kinds = {"backup",         "embed_memory", "lease_reaper",
                                                 "reembed_all",    "retention",    "rollup",
                                                 "session_summary"};
  return kinds;
}

namespace {

bool IsBackupName(std::string_view n) {
  if (n.empty() || n.size() > 128 || n[0] == '.') return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

}  // namespace

Status ValidateJobPayload(const std::string& kind, const json::object& payload) {
  ObjectReader r(payload, "payload");
  if (kind == "backup") {
    if (auto name = r.String("name", false, 1, 128); name && !IsBackupName(*name)) {
      r.Fail("name",
             "must be a file name (letters, digits, '.', '_', '-'; not starting with '.'); "
             "backups are written only into the backup directory");
    }
  } else if (kind == "retention") {
    r.Bool("optimize", false);
  } else if (kind == "session_summary") {
    r.String("session_id", true, 1, 128);
  }
  return r.Finish();
}

void RegisterJobHandlers(Worker& worker, EngineServices& sv) {
  memory::MemoryService& memory = sv.workflow.memory();
  tasks::TaskService& tasks = sv.workflow.tasks();

  worker.Register("embed_memory", [&memory](JobContext& ctx) { return RunEmbed(memory, ctx); });
  worker.Register("reembed_all", [&memory](JobContext& ctx) { return RunEmbed(memory, ctx); });

  worker.Register("backup", [&sv](JobContext& ctx) -> Status {
    DS_RETURN_IF_ERROR(ValidateJobPayload("backup", ctx.payload));
    std::string dest;
    bool scheduled = true;
    if (auto it = ctx.payload.find("name"); it != ctx.payload.end() && it->value().is_string()) {
      dest = sv.settings.backup_dir + "/" + std::string(it->value().as_string());
      scheduled = false;
    } else {
      dest = sv.settings.backup_dir + "/devstream-" + ctx.job.id + ".db";
    }
    auto info = OnlineBackup(sv.db.path(), dest);
    if (!info.ok()) return info.status();
    LogInfo("backup written to " + info->path,
            {{"job_id", ctx.job.id}, {"path", info->path}, {"bytes", info->bytes}});
    if (scheduled) {
      for (const auto& gone : PruneBackups(sv.settings.backup_dir, sv.settings.backup_keep,
                                           sv.settings.backup_keep_days)) {
        LogInfo("old backup pruned", {{"path", gone}});
      }
    }
    return Status::Ok();
  });

  worker.Register("retention", [&memory, &sv](JobContext& ctx) -> Status {
    DS_RETURN_IF_ERROR(ValidateJobPayload("retention", ctx.payload));
    bool optimize = false;
    if (auto it = ctx.payload.find("optimize"); it != ctx.payload.end()) {
      optimize = it->value().is_bool() && it->value().as_bool();
    }
    auto r = memory.ApplyRetention(sv.settings.retention, optimize);
    if (!r.ok()) return r.status();
    if (r->archived > 0) {
      LogInfo("retention archived stale memories", {{"archived", r->archived}});
    }
    return Status::Ok();
  });

  worker.Register("lease_reaper", [&tasks, &sv](JobContext&) -> Status {
    auto reaped = tasks.ReapExpiredLeases();
    if (!reaped.ok()) return reaped.status();
    auto requeued = sv.jobs.RequeueExpired();
    if (!requeued.ok()) return requeued.status();
    DS_RETURN_IF_ERROR(PruneDeadWorkers(sv.db, kDeadWorkerMs).status());
    return sv.jobs.PruneFinished(sv.settings.keep_finished_jobs_ms).status();
  });

  worker.Register("rollup", [&tasks, &sv](JobContext& ctx) -> Status {
    DS_RETURN_IF_ERROR(tasks.RecomputeRollups().status());
    if (ctx.stopping) return ctx.GiveBack();
    return sv.workflow.BackfillCompletionMemories().status();
  });

  worker.Register("session_summary", [&sv](JobContext& ctx) -> Status {
    DS_RETURN_IF_ERROR(ValidateJobPayload("session_summary", ctx.payload));
    return sv.sessions.Summarize(std::string(ctx.payload.at("session_id").as_string())).status();
  });
}

}  // namespace ds::engine
