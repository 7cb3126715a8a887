-- How each embedding model that wrote vectors can be reached again, so that
-- after a model change the previous model can keep answering queries until
-- the new one covers every partition. API keys are never stored.
-- +migrate up
CREATE TABLE embedding_models (
  model         TEXT PRIMARY KEY,   -- the id stored in memory_vectors.model
  provider      TEXT NOT NULL CHECK (provider IN ('hash','ollama','openai')),
  base_url      TEXT NOT NULL DEFAULT '',
  model_name    TEXT NOT NULL DEFAULT '',
  dim           INTEGER NOT NULL CHECK (dim > 0),
  first_used_at TEXT NOT NULL
);
-- +migrate down
DROP TABLE embedding_models;
