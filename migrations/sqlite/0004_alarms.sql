-- Alarms: per-job settings, the record of every alarm and its delivery. Same change as
-- migrations/mysql/0004_alarms.sql.

ALTER TABLE jobs ADD COLUMN alarm_on TEXT NOT NULL DEFAULT 'failed,timed_out,lost,recovered';
ALTER TABLE jobs ADD COLUMN admin_email TEXT;
ALTER TABLE jobs ADD COLUMN admin_mobile TEXT;
-- Set while the job's latest alarmed run failed, so its next success sends "recovered".
ALTER TABLE jobs ADD COLUMN alarm_failing INTEGER NOT NULL DEFAULT 0;

-- Each final run is looked at once by one monitor; runs from before this migration count as
-- looked at, so an upgrade does not alarm the past.
ALTER TABLE runs ADD COLUMN alarm_checked INTEGER NOT NULL DEFAULT 0;
UPDATE runs SET alarm_checked = 1;
CREATE INDEX runs_alarm ON runs (alarm_checked, state);

CREATE TABLE alarms (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          INTEGER NOT NULL,
    run_id          INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    count           INTEGER NOT NULL DEFAULT 1,
    details         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL
);
CREATE INDEX alarms_due ON alarms (status, next_attempt_at);
CREATE INDEX alarms_merge ON alarms (job_id, kind, channel, recipient, created_at);
