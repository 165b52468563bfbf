-- cronvisor schema, SQLite flavour. migrations/mysql/0001_init.sql is the same schema for
-- MySQL/MariaDB; times are milliseconds since the Unix epoch in both.

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL UNIQUE,
    schedule     TEXT    NOT NULL,
    timezone     TEXT    NOT NULL,
    command      TEXT,
    http_url     TEXT,
    timeout_secs INTEGER,
    run_at       TEXT,
    paused       INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- Every change to a job appends a row; dispatchers follow this log to pick up changes without
-- a restart. The monitor prunes old rows; a dispatcher that falls behind resynchronises fully.
CREATE TABLE job_changes (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  INTEGER NOT NULL,
    at      INTEGER NOT NULL
);

CREATE TABLE runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id        INTEGER NOT NULL,
    instant       INTEGER NOT NULL,
    target        TEXT    NOT NULL DEFAULT '',
    trigger_kind  TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    executor      TEXT,
    pid           INTEGER,
    exit_code     INTEGER,
    error         TEXT,
    stdout        TEXT,
    stderr        TEXT,
    stdout_cut    INTEGER NOT NULL DEFAULT 0,
    stderr_cut    INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    dispatched_at INTEGER,
    started_at    INTEGER,
    ended_at      INTEGER
);

-- The fence: one run per (job, scheduled instant, target), whatever the dispatchers do.
CREATE UNIQUE INDEX runs_fire_once ON runs (job_id, instant, target);
CREATE INDEX runs_by_job ON runs (job_id, id);
CREATE INDEX runs_by_state ON runs (state);
