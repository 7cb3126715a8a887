-- The task engine's bookkeeping: when each periodic job kind is next due (the
-- scheduler enqueues a kind only when it moves this row forward, inside one
-- write transaction, so replicas never double-enqueue), what each worker is
-- doing, and an index for session summaries (completions in a time range).
-- +migrate up
CREATE TABLE job_schedules (
  kind          TEXT PRIMARY KEY,
  interval_ms   INTEGER NOT NULL CHECK (interval_ms > 0),
  next_run_at   TEXT NOT NULL,
  last_job_id   TEXT,
  updated_at    TEXT NOT NULL
);
ALTER TABLE workers ADD COLUMN current_job TEXT;
ALTER TABLE workers ADD COLUMN jobs_done INTEGER NOT NULL DEFAULT 0;
ALTER TABLE work_sessions ADD COLUMN summary_memory_id INTEGER;
CREATE INDEX idx_task_events_status_at ON task_events(to_status, at);
-- +migrate down
DROP INDEX idx_task_events_status_at;
ALTER TABLE work_sessions DROP COLUMN summary_memory_id;
ALTER TABLE workers DROP COLUMN jobs_done;
ALTER TABLE workers DROP COLUMN current_job;
DROP TABLE job_schedules;
