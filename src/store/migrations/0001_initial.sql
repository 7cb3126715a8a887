-- The whole DevStream data model (DESIGN.md §4). Timestamps are RFC 3339 UTC
-- strings with milliseconds; JSON columns hold JSON text checked by json_valid.
-- +migrate up
CREATE TABLE projects (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  root_path   TEXT UNIQUE,
  created_at  TEXT NOT NULL
);

CREATE TABLE intervention_plans (
  id               TEXT PRIMARY KEY,
  project_id       TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  title            TEXT NOT NULL,
  description      TEXT NOT NULL DEFAULT '',
  objectives       TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(objectives)),
  expected_outcome TEXT NOT NULL DEFAULT '',
  status           TEXT NOT NULL DEFAULT 'draft'
                   CHECK (status IN ('draft','active','completed','archived','cancelled')),
  priority         INTEGER NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
  estimated_hours  REAL,
  actual_hours     REAL,
  tags             TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
  metadata         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
  version          INTEGER NOT NULL DEFAULT 1,
  created_at       TEXT NOT NULL,
  updated_at       TEXT NOT NULL,
  completed_at     TEXT
);
CREATE INDEX idx_plans_project_status ON intervention_plans(project_id, status, id);

CREATE TABLE phases (
  id                  TEXT PRIMARY KEY,
  plan_id             TEXT NOT NULL REFERENCES intervention_plans(id) ON DELETE CASCADE,
  name                TEXT NOT NULL,
  description         TEXT NOT NULL DEFAULT '',
  sequence_order      INTEGER NOT NULL DEFAULT 0,
  status              TEXT NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending','active','completed','blocked','skipped')),
  estimated_minutes   INTEGER,
  actual_minutes      INTEGER,
  blocking_reason     TEXT,
  completion_criteria TEXT NOT NULL DEFAULT '',
  version             INTEGER NOT NULL DEFAULT 1,
  created_at          TEXT NOT NULL,
  updated_at          TEXT NOT NULL,
  started_at          TEXT,
  completed_at        TEXT
);
CREATE INDEX idx_phases_plan ON phases(plan_id, sequence_order, id);

CREATE TABLE phase_dependencies (
  phase_id   TEXT NOT NULL REFERENCES phases(id) ON DELETE CASCADE,
  depends_on TEXT NOT NULL REFERENCES phases(id) ON DELETE CASCADE,
  PRIMARY KEY (phase_id, depends_on),
  CHECK (phase_id <> depends_on)
) WITHOUT ROWID;
CREATE INDEX idx_phase_deps_rev ON phase_dependencies(depends_on);

CREATE TABLE micro_tasks (
  id                      TEXT PRIMARY KEY,
  phase_id                TEXT NOT NULL REFERENCES phases(id) ON DELETE CASCADE,
  title                   TEXT NOT NULL,
  description             TEXT NOT NULL DEFAULT '',
  task_type               TEXT NOT NULL
                          CHECK (task_type IN ('analysis','coding','documentation','testing','review','research')),
  status                  TEXT NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending','active','completed','failed','skipped','blocked')),
  priority                INTEGER NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
  max_duration_minutes    INTEGER NOT NULL DEFAULT 10 CHECK (max_duration_minutes BETWEEN 1 AND 10),
  estimated_minutes       INTEGER NOT NULL DEFAULT 10 CHECK (estimated_minutes BETWEEN 1 AND 10),
  max_context_tokens      INTEGER NOT NULL DEFAULT 256000 CHECK (max_context_tokens BETWEEN 1 AND 256000),
  assigned_agent          TEXT,
  input_files             TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(input_files)),
  output_files            TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(output_files)),
  acceptance_criteria     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(acceptance_criteria)),
  notes                   TEXT NOT NULL DEFAULT '',
  error_log               TEXT NOT NULL DEFAULT '',
  retry_count             INTEGER NOT NULL DEFAULT 0,
  max_retries             INTEGER NOT NULL DEFAULT 3 CHECK (max_retries BETWEEN 0 AND 100),
  lease_owner             TEXT,
  lease_expires_at        TEXT,
  version                 INTEGER NOT NULL DEFAULT 1,
  started_at              TEXT,
  completed_at            TEXT,
  actual_duration_minutes INTEGER,
  context_tokens_used     INTEGER,
  created_at              TEXT NOT NULL,
  updated_at              TEXT NOT NULL
);
CREATE INDEX idx_tasks_phase ON micro_tasks(phase_id, id);
CREATE INDEX idx_tasks_status ON micro_tasks(status, priority DESC, id);
CREATE INDEX idx_tasks_lease ON micro_tasks(lease_expires_at) WHERE lease_expires_at IS NOT NULL;

CREATE TABLE task_dependencies (
  task_id    TEXT NOT NULL REFERENCES micro_tasks(id) ON DELETE CASCADE,
  depends_on TEXT NOT NULL REFERENCES micro_tasks(id) ON DELETE CASCADE,
  kind       TEXT NOT NULL DEFAULT 'blocking' CHECK (kind IN ('blocking','soft')),
  PRIMARY KEY (task_id, depends_on),
  CHECK (task_id <> depends_on)
) WITHOUT ROWID;
CREATE INDEX idx_task_deps_rev ON task_dependencies(depends_on);

CREATE TABLE task_events (
  id          INTEGER PRIMARY KEY,
  task_id     TEXT NOT NULL REFERENCES micro_tasks(id) ON DELETE CASCADE,
  from_status TEXT,
  to_status   TEXT NOT NULL,
  actor       TEXT NOT NULL DEFAULT '',
  note        TEXT NOT NULL DEFAULT '',
  at          TEXT NOT NULL
);
CREATE INDEX idx_task_events_task ON task_events(task_id, id);

CREATE TABLE work_sessions (
  id            TEXT PRIMARY KEY,
  project_id    TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  agent         TEXT NOT NULL DEFAULT '',
  external_id   TEXT,
  plan_id       TEXT REFERENCES intervention_plans(id) ON DELETE SET NULL,
  status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active','ended')),
  summary       TEXT NOT NULL DEFAULT '',
  started_at    TEXT NOT NULL,
  ended_at      TEXT,
  updated_at    TEXT NOT NULL
);
CREATE INDEX idx_sessions_project ON work_sessions(project_id, started_at);
CREATE UNIQUE INDEX idx_sessions_external ON work_sessions(project_id, external_id)
  WHERE external_id IS NOT NULL;

CREATE TABLE semantic_memory (
  id               INTEGER PRIMARY KEY,
  project_id       TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  plan_id          TEXT REFERENCES intervention_plans(id) ON DELETE SET NULL,
  phase_id         TEXT REFERENCES phases(id) ON DELETE SET NULL,
  task_id          TEXT REFERENCES micro_tasks(id) ON DELETE SET NULL,
  session_id       TEXT REFERENCES work_sessions(id) ON DELETE SET NULL,
  content          TEXT NOT NULL,
  content_type     TEXT NOT NULL
                   CHECK (content_type IN ('code','documentation','context','output','error','decision','learning')),
  content_format   TEXT NOT NULL DEFAULT 'text',
  source           TEXT NOT NULL DEFAULT 'api' CHECK (source IN ('api','mcp','hook','cli','engine')),
  file_path        TEXT,
  keywords         TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(keywords)),
  content_hash     TEXT NOT NULL,
  relevance_score  REAL NOT NULL DEFAULT 0.5 CHECK (relevance_score BETWEEN 0 AND 1),
  access_count     INTEGER NOT NULL DEFAULT 0,
  last_accessed_at TEXT,
  pinned           INTEGER NOT NULL DEFAULT 0 CHECK (pinned IN (0,1)),
  archived         INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0,1)),
  superseded_by    INTEGER REFERENCES semantic_memory(id) ON DELETE SET NULL,
  created_at       TEXT NOT NULL,
  updated_at       TEXT NOT NULL
);
CREATE UNIQUE INDEX idx_memory_hash ON semantic_memory(project_id, content_hash);
CREATE INDEX idx_memory_project ON semantic_memory(project_id, archived, created_at);
CREATE INDEX idx_memory_file ON semantic_memory(project_id, file_path, content_type)
  WHERE file_path IS NOT NULL;
CREATE INDEX idx_memory_task ON semantic_memory(task_id) WHERE task_id IS NOT NULL;

CREATE VIRTUAL TABLE memory_fts USING fts5(
  content, keywords, content='semantic_memory', content_rowid='id',
  tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER memory_fts_ai AFTER INSERT ON semantic_memory BEGIN
  INSERT INTO memory_fts(rowid, content, keywords) VALUES (new.id, new.content, new.keywords);
END;
CREATE TRIGGER memory_fts_ad AFTER DELETE ON semantic_memory BEGIN
  INSERT INTO memory_fts(memory_fts, rowid, content, keywords)
    VALUES ('delete', old.id, old.content, old.keywords);
END;
CREATE TRIGGER memory_fts_au AFTER UPDATE OF content, keywords ON semantic_memory BEGIN
  INSERT INTO memory_fts(memory_fts, rowid, content, keywords)
    VALUES ('delete', old.id, old.content, old.keywords);
  INSERT INTO memory_fts(rowid, content, keywords) VALUES (new.id, new.content, new.keywords);
END;

-- One vector per (memory, model): after a model change the old model's
-- vectors stay until the new model covers the partition. A rowid table (not
-- WITHOUT ROWID) because its rows are large blobs: measured 103 MB vs 234 MB
-- for 50k 384-d vectors.
CREATE TABLE memory_vectors (
  id        INTEGER PRIMARY KEY,
  memory_id INTEGER NOT NULL REFERENCES semantic_memory(id) ON DELETE CASCADE,
  model     TEXT NOT NULL,
  dim       INTEGER NOT NULL CHECK (dim > 0),
  vec       BLOB NOT NULL CHECK (length(vec) = 4 * dim),
  UNIQUE (memory_id, model)
);
CREATE INDEX idx_vectors_model ON memory_vectors(model, memory_id);

CREATE TABLE memory_changes (
  seq       INTEGER PRIMARY KEY AUTOINCREMENT,
  memory_id INTEGER NOT NULL,
  op        TEXT NOT NULL CHECK (op IN ('insert','update','delete','archive'))
);
CREATE TRIGGER memory_changes_ai AFTER INSERT ON semantic_memory BEGIN
  INSERT INTO memory_changes(memory_id, op) VALUES (new.id, 'insert');
END;
CREATE TRIGGER memory_changes_ad AFTER DELETE ON semantic_memory BEGIN
  INSERT INTO memory_changes(memory_id, op) VALUES (old.id, 'delete');
END;
-- Access bookkeeping (access_count, last_accessed_at) is not a change other
-- processes' indexes need to replay, so only these columns are logged.
CREATE TRIGGER memory_changes_au AFTER UPDATE OF content, keywords, content_type, archived,
  superseded_by, project_id, pinned, relevance_score ON semantic_memory
  WHEN new.archived = old.archived OR new.archived = 0 BEGIN
  INSERT INTO memory_changes(memory_id, op) VALUES (new.id, 'update');
END;
CREATE TRIGGER memory_changes_archive AFTER UPDATE OF archived ON semantic_memory
  WHEN new.archived = 1 AND old.archived = 0 BEGIN
  INSERT INTO memory_changes(memory_id, op) VALUES (new.id, 'archive');
END;

-- A new or replaced vector (re-embedding) is a change other processes' indexes replay.
CREATE TRIGGER memory_vectors_ai AFTER INSERT ON memory_vectors BEGIN
  INSERT INTO memory_changes(memory_id, op) VALUES (new.memory_id, 'update');
END;
CREATE TRIGGER memory_vectors_au AFTER UPDATE ON memory_vectors BEGIN
  INSERT INTO memory_changes(memory_id, op) VALUES (new.memory_id, 'update');
END;

CREATE TABLE context_injections (
  id          INTEGER PRIMARY KEY,
  session_id  TEXT REFERENCES work_sessions(id) ON DELETE CASCADE,
  project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  query       TEXT NOT NULL,
  memory_ids  TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(memory_ids)),
  tokens      INTEGER NOT NULL DEFAULT 0,
  created_at  TEXT NOT NULL
);
CREATE INDEX idx_injections_session ON context_injections(session_id, id);

CREATE TABLE jobs (
  id               TEXT PRIMARY KEY,
  kind             TEXT NOT NULL,
  payload          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),
  state            TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued','running','done','failed','dead')),
  priority         INTEGER NOT NULL DEFAULT 5,
  attempts         INTEGER NOT NULL DEFAULT 0,
  max_attempts     INTEGER NOT NULL DEFAULT 5,
  run_at           TEXT NOT NULL,
  lease_owner      TEXT,
  lease_expires_at TEXT,
  last_error       TEXT,
  dedup_key        TEXT,
  created_at       TEXT NOT NULL,
  updated_at       TEXT NOT NULL,
  finished_at      TEXT
);
CREATE INDEX idx_jobs_ready ON jobs(state, run_at, priority DESC);
CREATE UNIQUE INDEX idx_jobs_dedup ON jobs(dedup_key) WHERE dedup_key IS NOT NULL AND state IN ('queued','running');

CREATE TABLE workers (
  id           TEXT PRIMARY KEY,
  host         TEXT NOT NULL,
  pid          INTEGER NOT NULL,
  mode         TEXT NOT NULL,
  started_at   TEXT NOT NULL,
  heartbeat_at TEXT NOT NULL
);

CREATE TABLE api_keys (
  id           TEXT PRIMARY KEY,
  name         TEXT NOT NULL UNIQUE,
  prefix       TEXT NOT NULL,
  hash         TEXT NOT NULL UNIQUE,
  scopes       TEXT NOT NULL DEFAULT '["read"]' CHECK (json_valid(scopes)),
  project_id   TEXT REFERENCES projects(id) ON DELETE CASCADE,
  created_at   TEXT NOT NULL,
  last_used_at TEXT,
  revoked_at   TEXT
);
-- +migrate down
DROP TABLE api_keys;
DROP TABLE workers;
DROP TABLE jobs;
DROP TABLE context_injections;
DROP TABLE memory_vectors;
DROP TABLE memory_fts;
DROP TABLE semantic_memory;
DROP TABLE memory_changes;
DROP TABLE work_sessions;
DROP TABLE task_events;
DROP TABLE task_dependencies;
DROP TABLE micro_tasks;
DROP TABLE phase_dependencies;
DROP TABLE phases;
DROP TABLE intervention_plans;
DROP TABLE projects;
