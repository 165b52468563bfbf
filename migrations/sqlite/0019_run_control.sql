-- Run control (issue 26): backfills and shard numbers. Same change as
-- migrations/mysql/0019_run_control.sql.
--
-- A backfill runs a job once for each instant of its rule in [from_instant, to_instant],
-- oldest first, at most `parallel` at a time. `reached` is the last instant handed out (a
-- dispatcher moves it in the transaction that records the runs, holding the row: a kill
-- anywhere leaves both consistent). `total` instants were counted when it was asked for;
-- `queued` were recorded to run, `skipped` already had a succeeded run (unless `rerun_all`).
CREATE TABLE backfills (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id       INTEGER NOT NULL,
    from_instant INTEGER NOT NULL,
    to_instant   INTEGER NOT NULL,
    parallel     INTEGER NOT NULL DEFAULT 1,
    rerun_all    INTEGER NOT NULL DEFAULT 0,
    state        TEXT    NOT NULL DEFAULT 'running',
    reached      INTEGER NOT NULL,
    total        INTEGER NOT NULL,
    queued       INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    reason       TEXT,
    created_by   TEXT,
    created_at   INTEGER NOT NULL,
    ended_at     INTEGER
);
CREATE INDEX backfills_by_state ON backfills (state);
CREATE INDEX backfills_by_job ON backfills (job_id);

-- A run of a backfill carries its id; each (backfill, instant, attempt) has at most one run,
-- whoever drives the backfill. Other runs leave it NULL (NULLs never collide).
ALTER TABLE runs ADD COLUMN backfill_id INTEGER;
CREATE UNIQUE INDEX runs_backfill_once ON runs (backfill_id, instant, attempt);

-- A `fanout = all` run's shard (0-based index, total) of its instant, kept for its retries.
ALTER TABLE runs ADD COLUMN shard_index INTEGER;
ALTER TABLE runs ADD COLUMN shard_total INTEGER;

-- Flows still running, read by a backfill of a flow's root on every pass.
CREATE INDEX flows_by_state ON flows (state);
