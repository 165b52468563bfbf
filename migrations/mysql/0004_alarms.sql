-- Alarms: per-job settings, the record of every alarm and its delivery. Same change as
-- migrations/sqlite/0004_alarms.sql.

ALTER TABLE jobs
    ADD COLUMN alarm_on VARCHAR(255) NOT NULL DEFAULT 'failed,timed_out,lost,recovered',
    ADD COLUMN admin_email TEXT,
    ADD COLUMN admin_mobile TEXT,
    ADD COLUMN alarm_failing BIGINT NOT NULL DEFAULT 0;

ALTER TABLE runs
    ADD COLUMN alarm_checked BIGINT NOT NULL DEFAULT 0,
    ADD KEY runs_alarm (alarm_checked, state);
UPDATE runs SET alarm_checked = 1;

CREATE TABLE alarms (
    id              BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    job_id          BIGINT       NOT NULL,
    run_id          BIGINT       NOT NULL,
    kind            VARCHAR(16)  NOT NULL,
    channel         VARCHAR(16)  NOT NULL,
    recipient       VARCHAR(255) NOT NULL,
    status          VARCHAR(16)  NOT NULL,
    attempts        BIGINT       NOT NULL DEFAULT 0,
    last_error      TEXT,
    count           BIGINT       NOT NULL DEFAULT 1,
    details         MEDIUMTEXT   NOT NULL,
    created_at      BIGINT       NOT NULL,
    updated_at      BIGINT       NOT NULL,
    next_attempt_at BIGINT       NOT NULL,
    KEY alarms_due (status, next_attempt_at),
    KEY alarms_merge (job_id, kind, channel, recipient, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
