-- Business calendars and maintenance windows (issue 27). Same change as
-- migrations/mysql/0020_calendars.sql.
--
-- A calendar made by people (`calendar add`), as written (`model::calendar`, JSON): the
-- shipped ones are in the binary and not here. A job's `calendars` (comma-separated names)
-- filter its rule's instants as `calendar_mode` says (skip, only, next-workday).
CREATE TABLE calendars (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX calendars_by_name ON calendars (name COLLATE NOCASE);

ALTER TABLE jobs ADD COLUMN calendars TEXT;
ALTER TABLE jobs ADD COLUMN calendar_mode TEXT NOT NULL DEFAULT 'skip';

-- Maintenance windows: spans in which the scheduled instants of every job, a group's or one
-- job's are recorded `skipped` (`model::window`): once (`from_ms`, `to_ms`), or each time
-- `every` comes for `for_secs` (then `from_ms`/`to_ms` bound the series, if set).
CREATE TABLE windows (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    from_ms    INTEGER,
    to_ms      INTEGER,
    job_group  TEXT,
    job_name   TEXT,
    every      TEXT,
    for_secs   INTEGER,
    timezone   TEXT    NOT NULL,
    created_by TEXT,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX windows_by_name ON windows (name COLLATE NOCASE);

-- SLAs: a run not started `late_after_secs` past its instant raises `late`; an instant not
-- ended successfully by its `deadline` (seconds after it, or `HH:MM` in the job's zone; a flow's
-- root: the flow) raises `overdue`. Each
-- once per run: a bit of `sla_flags` (1 late, 2 overdue), claimed with the alarm.
ALTER TABLE jobs ADD COLUMN late_after_secs INTEGER;
ALTER TABLE jobs ADD COLUMN deadline TEXT;
ALTER TABLE runs ADD COLUMN sla_flags INTEGER NOT NULL DEFAULT 0;
-- Most jobs have no SLA: the monitor finds those that do through these (NULLs aside).
CREATE INDEX jobs_with_late_after ON jobs (late_after_secs);
CREATE INDEX jobs_with_deadline ON jobs (deadline);
-- SLA breaches per job for Prometheus, counted with the alarm's claim (never going down).
ALTER TABLE job_stats ADD COLUMN sla_late INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_stats ADD COLUMN sla_overdue INTEGER NOT NULL DEFAULT 0;
