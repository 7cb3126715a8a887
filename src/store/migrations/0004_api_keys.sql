-- API keys: a name is unique among live keys only, so a revoked key's name can
-- be reused when rotating ("ci" revoked, a new "ci" created). SQLite cannot
-- drop a UNIQUE constraint, hence the rebuild.
-- +migrate up
CREATE TABLE api_keys_new (
  id           TEXT PRIMARY KEY,
  name         TEXT NOT NULL,
  prefix       TEXT NOT NULL,
  hash         TEXT NOT NULL UNIQUE,
  scopes       TEXT NOT NULL DEFAULT '["read"]' CHECK (json_valid(scopes)),
  project_id   TEXT REFERENCES projects(id) ON DELETE CASCADE,
  created_at   TEXT NOT NULL,
  last_used_at TEXT,
  revoked_at   TEXT
);
INSERT INTO api_keys_new SELECT id, name, prefix, hash, scopes, project_id, created_at,
  last_used_at, revoked_at FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;
CREATE UNIQUE INDEX idx_api_keys_live_name ON api_keys(name) WHERE revoked_at IS NULL;
-- +migrate down
CREATE TABLE api_keys_old (
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
INSERT OR IGNORE INTO api_keys_old SELECT id, name, prefix, hash, scopes, project_id, created_at,
  last_used_at, revoked_at FROM api_keys ORDER BY revoked_at IS NULL DESC, created_at DESC;
DROP TABLE api_keys;
ALTER TABLE api_keys_old RENAME TO api_keys;
