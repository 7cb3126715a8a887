#include "tasks/codec.h"

#include "core/id.h"
#include "tasks/model.h"

namespace ds::tasks {
namespace {

constexpr size_t kTitleMax = 200;
constexpr size_t kTextMax = 20000;
constexpr size_t kListMax = 200;

std::optional<int64_t> ReadVersion(ObjectReader& r) {
  return r.Int("version", false, 1, INT64_MAX);
}

void ReadDependencyItem(ObjectReader& r, const json::value& item,
                        std::vector<TaskDependency>* out) {
  TaskDependency dep;
  if (item.is_string()) {
    dep.id = std::string(item.get_string());
  } else if (item.is_object()) {
    ObjectReader dr(item.get_object(), "depends_on[]");
    auto id = dr.String("id", true, 1, 64);
    auto kind = dr.Enum("kind", false, DependencyKinds());
    Status st = dr.Finish();
    if (!st.ok()) {
      r.Fail("depends_on", st.message());
      return;
    }
    dep.id = *id;
    if (kind) dep.kind = *kind;
  } else {
    r.Fail("depends_on", "items must be task ids or {\"id\", \"kind\"} objects, got " +
                             std::string(JsonKind(item)));
    return;
  }
  if (!IsValidId(dep.id, "tsk")) {
    r.Fail("depends_on", "\"" + dep.id + "\" is not a task id");
    return;
  }
  for (const auto& d : *out) {
    if (d.id == dep.id) {
      r.Fail("depends_on", "lists " + dep.id + " twice");
      return;
    }
  }
  out->push_back(std::move(dep));
}

std::optional<std::string> ReadMetadata(ObjectReader& r) {
  const json::value* v = r.Raw("metadata");
  if (!v) return std::nullopt;
  if (!v->is_object()) {
    r.Fail("metadata", "must be an object, got " + std::string(JsonKind(*v)));
    return std::nullopt;
  }
  std::string s = json::serialize(*v);
  if (s.size() > 64 * 1024) {
    r.Fail("metadata", "must serialise to at most 65536 bytes");
    return std::nullopt;
  }
  return s;
}

std::vector<std::string> ReadIdList(ObjectReader& r, std::string_view key, std::string_view prefix,
                                    bool* present = nullptr) {
  auto ids = r.StringArray(key, false, kListMax, 64);
  if (present) *present = ids.has_value();
  if (!ids) return {};
  for (size_t i = 0; i < ids->size(); ++i) {
    if (!IsValidId((*ids)[i], prefix)) {
      r.Fail(key, "\"" + (*ids)[i] + "\" is not a " + std::string(prefix) + "_… id");
      return {};
    }
    for (size_t j = 0; j < i; ++j) {
      if ((*ids)[j] == (*ids)[i]) {
        r.Fail(key, "lists " + (*ids)[i] + " twice");
        return {};
      }
    }
  }
  return *ids;
}

}  // namespace

Result<PlanInput> DecodePlanInput(const json::value& body) {
  DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "plan"));
  ObjectReader r(*obj, "plan");
  PlanInput in;
  in.project = r.String("project", false, 1, 200);
  if (auto v = r.String("title", true, 1, kTitleMax)) in.title = *v;
  if (auto v = r.String("description", false, 0, kTextMax)) in.description = *v;
  if (auto v = r.StringArray("objectives", false, kListMax, 2000)) in.objectives = *v;
  if (auto v = r.String("expected_outcome", false, 0, kTextMax)) in.expected_outcome = *v;
  if (auto v = r.Enum("status", false, {"draft", "active"})) in.status = *v;
  if (auto v = r.Int("priority", false, 1, 10)) in.priority = static_cast<int>(*v);
  in.estimated_hours = r.Number("estimated_hours", false, 0, 1e6);
  if (auto v = r.StringArray("tags", false, 50, 100)) in.tags = *v;
  if (auto v = ReadMetadata(r)) in.metadata = *v;
  DS_RETURN_IF_ERROR(r.Finish());
  return in;
}

Result<PlanPatch> DecodePlanPatch(const json::value& body) {
  DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "plan patch"));
  ObjectReader r(*obj, "plan");
  PlanPatch p;
  p.title = r.String("title", false, 1, kTitleMax);
  p.description = r.String("description", false, 0, kTextMax);
  p.expected_outcome = r.String("expected_outcome", false, 0, kTextMax);
  p.status = r.Enum("status", false, PlanStatuses());
  p.objectives = r.StringArray("objectives", false, kListMax, 2000);
  p.tags = r.StringArray("tags", false, 50, 100);
  if (auto v = r.Int("priority", false, 1, 10)) p.priority = static_cast<int>(*v);
  p.clear_estimated_hours = r.IsNull("estimated_hours");
  p.estimated_hours = r.Number("estimated_hours", false, 0, 1e6);
  p.actual_hours = r.Number("actual_hours", false, 0, 1e6);
  p.metadata = ReadMetadata(r);
  p.expected_version = ReadVersion(r);
  DS_RETURN_IF_ERROR(r.Finish());
  return p;
}

Result<PhaseInput> DecodePhaseInput(const json::value& body) {
  DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "phase"));
  ObjectReader r(*obj, "phase");
  PhaseInput in;
  if (auto v = r.String("name", true, 1, kTitleMax)) in.name = *v;
  if (auto v = r.String("description", false, 0, kTextMax)) in.description = *v;
  in.sequence_order = r.Int("sequence_order", false, 0, 1000000);
  in.estimated_minutes = r.Int("estimated_minutes", false, 0, 1000000);
  if (auto v = r.String("completion_criteria", false, 0, kTextMax)) in.completion_criteria = *v;
  in.depends_on = ReadIdList(r, "depends_on", "phs");
  DS_RETURN_IF_ERROR(r.Finish());
  return in;
}

Result<PhasePatch> DecodePhasePatch(const json::value& body) {
  DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "phase patch"));
  ObjectReader r(*obj, "phase");
  PhasePatch p;
  p.name = r.String("name", false, 1, kTitleMax);
  p.description = r.String("description", false, 0, kTextMax);
  p.completion_criteria = r.String("completion_criteria", false, 0, kTextMax);
  p.sequence_order = r.Int("sequence_order", false, 0, 1000000);
  p.estimated_minutes = r.Int("estimated_minutes", false, 0, 1000000);
  bool present = false;
  auto deps = ReadIdList(r, "depends_on", "phs", &present);
  if (present) p.depends_on = deps;
  p.expected_version = ReadVersion(r);
  DS_RETURN_IF_ERROR(r.Finish());
  return p;
}

Result<TaskInput> DecodeTaskInput(const json::value& body) {
  DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "task"));
  ObjectReader r(*obj, "task");
  TaskInput in;
  in.phase_id = r.String("phase_id", false, 1, 64);
  if (auto v = r.String("title", true, 1, kTitleMax)) in.title = *v;
  if (auto v = r.String("description", false, 0, kTextMax)) in.description = *v;
  if (auto v = r.Enum("task_type", false, TaskTypes())) in.task_type = *v;
  if (auto v = r.Int("priority", false, 1, 10)) in.priority = static_cast<int>(*v);
  if (auto v = r.Int("max_duration_minutes", false, 1, kMaxTaskMinutes)) {
    in.max_duration_minutes = static_cast<int>(*v);
  }
  if (auto v = r.Int("estimated_minutes", false, 1, kMaxTaskMinutes)) {
    in.estimated_minutes = static_cast<int>(*v);
  }
  if (auto v = r.Int("max_context_tokens", false, 1, kMaxContextTokens)) in.max_context_tokens = *v;
  in.assigned_agent = r.String("assigned_agent", false, 1, 200);
  if (auto v = r.StringArray("input_files", false, kListMax, 4096)) in.input_files = *v;
  if (auto v = r.StringArray("output_files", false, kListMax, 4096)) in.output_files = *v;
  if (auto v = r.StringArray("acceptance_criteria", false, kListMax, 2000)) {
    in.acceptance_criteria = *v;
  }
  if (auto v = r.String("notes", false, 0, kTextMax)) in.notes = *v;
  if (auto v = r.Int("max_retries", false, 0, 100)) in.max_retries = static_cast<int>(*v);
  if (const json::value* deps = r.Raw("depends_on")) {
    if (!deps->is_array()) {
      r.Fail("depends_on", "must be an array, got " + std::string(JsonKind(*deps)));
    } else if (deps->get_array().size() > kListMax) {
      r.Fail("depends_on", "must have at most " + std::to_string(kListMax) + " items");
    } else {
      for (const auto& item : deps->get_array()) {
        ReadDependencyItem(r, item, &in.depends_on);
        if (r.failed()) break;
      }
    }
  }
  if (in.estimated_minutes && *in.estimated_minutes > in.max_duration_minutes) {
    r.Fail("estimated_minutes", "must not exceed max_duration_minutes (" +
                                    std::to_string(in.max_duration_minutes) + ")");
  }
  DS_RETURN_IF_ERROR(r.Finish());
  return in;
}

Result<TaskPatch> DecodeTaskPatch(const json::value& body) {
  DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "task patch"));
  ObjectReader r(*obj, "task");
  TaskPatch p;
  p.title = r.String("title", false, 1, kTitleMax);
  p.description = r.String("description", false, 0, kTextMax);
  p.task_type = r.Enum("task_type", false, TaskTypes());
  p.notes = r.String("notes", false, 0, kTextMax);
  if (auto v = r.Int("priority", false, 1, 10)) p.priority = static_cast<int>(*v);
  if (auto v = r.Int("max_duration_minutes", false, 1, kMaxTaskMinutes)) {
    p.max_duration_minutes = static_cast<int>(*v);
  }
  if (auto v = r.Int("estimated_minutes", false, 1, kMaxTaskMinutes)) {
    p.estimated_minutes = static_cast<int>(*v);
  }
  if (auto v = r.Int("max_retries", false, 0, 100)) p.max_retries = static_cast<int>(*v);
  p.max_context_tokens = r.Int("max_context_tokens", false, 1, kMaxContextTokens);
  p.clear_assigned_agent = r.IsNull("assigned_agent");
  p.assigned_agent = r.String("assigned_agent", false, 1, 200);
  p.input_files = r.StringArray("input_files", false, kListMax, 4096);
  p.output_files = r.StringArray("output_files", false, kListMax, 4096);
  p.acceptance_criteria = r.StringArray("acceptance_criteria", false, kListMax, 2000);
  p.expected_version = ReadVersion(r);
  if (obj->contains("status")) {
    r.Fail("status", "cannot be patched; use POST /api/v1/tasks/{id}/transition");
  }
  if (obj->contains("depends_on")) {
    r.Fail("depends_on", "cannot be patched; use POST/DELETE /api/v1/tasks/{id}/dependencies");
  }
  DS_RETURN_IF_ERROR(r.Finish());
  return p;
}

Result<TransitionInput> DecodeTransition(const json::value& body) {
  DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "transition"));
  ObjectReader r(*obj, "transition");
  TransitionInput in;
  if (auto v = r.Enum("to", true, TaskStatuses())) in.to = *v;
  if (auto v = r.String("note", false, 0, kTextMax)) in.note = *v;
  in.context_tokens_used = r.Int("context_tokens_used", false, 0, 100000000);
  in.expected_version = ReadVersion(r);
  in.actor = r.String("actor", false, 1, 200);
  if (auto v = r.Bool("force", false)) in.force = *v;
  DS_RETURN_IF_ERROR(r.Finish());
  return in;
}

namespace {

Status RequireAgent(std::optional<std::string>* agent, const std::optional<std::string>& header,
                    std::string_view what) {
  if (!*agent) *agent = header;
  if (!*agent) {
    return Status::InvalidArgument(std::string(what) +
                                   ".agent is required (or send an X-DevStream-Agent header)")
        .WithDetail("field", "agent");
  }
  return Status::Ok();
}

}  // namespace

Result<ClaimInput> DecodeClaim(const json::value& body,
                               const std::optional<std::string>& header_agent) {
  DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "claim"));
  ObjectReader r(*obj, "claim");
  ClaimInput in;
  auto agent = r.String("agent", false, 1, 200);
  if (auto v = r.Int("lease_seconds", false, kMinLeaseSeconds, kMaxLeaseSeconds)) {
    in.lease_seconds = static_cast<int>(*v);
  }
  in.project = r.String("project", false, 1, 200);
  in.plan_id = r.String("plan_id", false, 1, 100);
  DS_RETURN_IF_ERROR(r.Finish());
  DS_RETURN_IF_ERROR(RequireAgent(&agent, header_agent, "claim"));
  in.agent = *agent;
  return in;
}

Result<HeartbeatInput> DecodeHeartbeat(const json::value& body,
                                       const std::optional<std::string>& header_agent) {
  DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "heartbeat"));
  ObjectReader r(*obj, "heartbeat");
  HeartbeatInput in;
  auto agent = r.String("agent", false, 1, 200);
  if (auto v = r.Int("lease_seconds", false, kMinLeaseSeconds, kMaxLeaseSeconds)) {
    in.lease_seconds = static_cast<int>(*v);
  }
  if (auto v = r.Bool("force", false)) in.force = *v;
  DS_RETURN_IF_ERROR(r.Finish());
  DS_RETURN_IF_ERROR(RequireAgent(&agent, header_agent, "heartbeat"));
  in.agent = *agent;
  return in;
}

Result<TaskDependency> DecodeDependency(const json::value& body) {
  DS_ASSIGN_OR_RETURN(const json::object* obj, RequireObject(body, "dependency"));
  ObjectReader r(*obj, "dependency");
  std::vector<TaskDependency> deps;
  const json::value* v = r.Raw("depends_on");
  if (!v)
    r.Fail("depends_on", "is required");
  else
    ReadDependencyItem(r, *v, &deps);
  auto kind = r.Enum("kind", false, DependencyKinds());
  DS_RETURN_IF_ERROR(r.Finish());
  if (kind) deps[0].kind = *kind;
  return deps[0];
}

json::object ToJson(const Project& p) {
  return {{"id", p.id},
          {"name", p.name},
          {"root_path", OptionalJson(p.root_path)},
          {"created_at", p.created_at}};
}

json::object ToJson(const Plan& p) {
  json::error_code ec;
  json::value metadata = json::parse(p.metadata, ec);
  if (ec) metadata = json::object();
  return {{"id", p.id},
          {"project_id", p.project_id},
          {"title", p.title},
          {"description", p.description},
          {"objectives", ToJsonArray(p.objectives)},
          {"expected_outcome", p.expected_outcome},
          {"status", p.status},
          {"priority", p.priority},
          {"estimated_hours", OptionalJson(p.estimated_hours)},
          {"actual_hours", OptionalJson(p.actual_hours)},
          {"tags", ToJsonArray(p.tags)},
          {"metadata", std::move(metadata)},
          {"version", p.version},
          {"created_at", p.created_at},
          {"updated_at", p.updated_at},
          {"completed_at", OptionalJson(p.completed_at)}};
}

json::object ToJson(const Phase& p) {
  return {{"id", p.id},
          {"plan_id", p.plan_id},
          {"name", p.name},
          {"description", p.description},
          {"sequence_order", p.sequence_order},
          {"status", p.status},
          {"estimated_minutes", OptionalJson(p.estimated_minutes)},
          {"actual_minutes", OptionalJson(p.actual_minutes)},
          {"blocking_reason", OptionalJson(p.blocking_reason)},
          {"completion_criteria", p.completion_criteria},
          {"depends_on", ToJsonArray(p.depends_on)},
          {"version", p.version},
          {"created_at", p.created_at},
          {"updated_at", p.updated_at},
          {"started_at", OptionalJson(p.started_at)},
          {"completed_at", OptionalJson(p.completed_at)}};
}

namespace {

// The one list of a task's members, in response order, for both outputs
// below: a json::object (ToJson) and direct text (WriteJson).
template <typename Out>
void EmitTask(const Task& t, Out& out) {
  out.Member("id", t.id);
  out.Member("phase_id", t.phase_id);
  out.Member("plan_id", t.plan_id);
  out.Member("title", t.title);
  out.Member("description", t.description);
  out.Member("task_type", t.task_type);
  out.Member("status", t.status);
  out.Member("priority", t.priority);
  out.Member("max_duration_minutes", t.max_duration_minutes);
  out.Member("estimated_minutes", t.estimated_minutes);
  out.Member("max_context_tokens", t.max_context_tokens);
  out.Member("assigned_agent", t.assigned_agent);
  out.Member("input_files", t.input_files);
  out.Member("output_files", t.output_files);
  out.Member("acceptance_criteria", t.acceptance_criteria);
  out.Member("notes", t.notes);
  out.Member("error_log", t.error_log);
  out.Member("retry_count", t.retry_count);
  out.Member("max_retries", t.max_retries);
  out.Member("lease_owner", t.lease_owner);
  out.Member("lease_expires_at", t.lease_expires_at);
  out.Member("depends_on", t.depends_on);
  out.Member("version", t.version);
  out.Member("started_at", t.started_at);
  out.Member("completed_at", t.completed_at);
  out.Member("actual_duration_minutes", t.actual_duration_minutes);
  out.Member("context_tokens_used", t.context_tokens_used);
  out.Member("created_at", t.created_at);
  out.Member("updated_at", t.updated_at);
}

json::value ValueOf(const std::string& s) {
  return json::string(s);
}
json::value ValueOf(int64_t v) {
  return v;
}
json::value ValueOf(const std::vector<std::string>& v) {
  return ToJsonArray(v);
}
template <typename T>
json::value ValueOf(const std::optional<T>& v) {
  return OptionalJson(v);
}
json::value ValueOf(const std::vector<TaskDependency>& deps) {
  json::array a;
  a.reserve(deps.size());
  for (const auto& d : deps) a.push_back(json::object{{"id", d.id}, {"kind", d.kind}});
  return a;
}

struct ObjectOut {
  json::object obj;
  template <typename T>
  void Member(std::string_view key, const T& value) {
    obj.emplace(key, ValueOf(value));
  }
};

struct WriterOut {
  JsonWriter& w;
  template <typename T>
  void Member(std::string_view key, const T& value) {
    w.Member(key, value);
  }
  void Member(std::string_view key, const std::vector<TaskDependency>& deps) {
    w.Key(key);
    w.BeginArray();
    for (const auto& d : deps) {
      w.BeginObject();
      w.Member("id", d.id);
      w.Member("kind", d.kind);
      w.EndObject();
    }
    w.EndArray();
  }
};

}  // namespace

json::object ToJson(const Task& t) {
  ObjectOut out;
  out.obj.reserve(29);  // EmitTask writes 29 members; no rehash while they go in
  EmitTask(t, out);
  return std::move(out.obj);
}

void WriteJsonMembers(const Task& t, JsonWriter& w) {
  WriterOut out{w};
  EmitTask(t, out);
}

void WriteJson(const Task& t, JsonWriter& w) {
  w.BeginObject();
  WriteJsonMembers(t, w);
  w.EndObject();
}

json::object ToJson(const TaskEvent& e) {
  return {{"id", e.id},        {"task_id", e.task_id}, {"from", OptionalJson(e.from_status)},
          {"to", e.to_status}, {"actor", e.actor},     {"note", e.note},
          {"at", e.at}};
}

}  // namespace ds::tasks
