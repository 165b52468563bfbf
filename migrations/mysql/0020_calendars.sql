-- Business calendars (issue 27). Same change as migrations/sqlite/0020_calendars.sql, which
-- says what each column is for.
CREATE TABLE calendars (
    id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name       VARCHAR(128) NOT NULL,
    body       MEDIUMTEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE KEY calendars_by_name (name)
) ENGINE=InnoDB;

ALTER TABLE jobs
    ADD COLUMN calendars TEXT NULL,
    ADD COLUMN calendar_mode VARCHAR(16) NOT NULL DEFAULT 'skip';

CREATE TABLE windows (
    id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name       VARCHAR(128) NOT NULL,
    from_ms    BIGINT NULL,
    to_ms      BIGINT NULL,
    job_group  VARCHAR(128) NULL,
    job_name   VARCHAR(128) NULL,
    every      VARCHAR(255) NULL,
    for_secs   BIGINT NULL,
    timezone   VARCHAR(64) NOT NULL,
    created_by VARCHAR(255) NULL,
    created_at BIGINT NOT NULL,
    UNIQUE KEY windows_by_name (name)
) ENGINE=InnoDB;

ALTER TABLE jobs
    ADD COLUMN late_after_secs BIGINT NULL,
    ADD COLUMN deadline VARCHAR(16) NULL;
ALTER TABLE runs ADD COLUMN sla_flags BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs
    ADD KEY jobs_with_late_after (late_after_secs),
    ADD KEY jobs_with_deadline (deadline);
ALTER TABLE job_stats
    ADD COLUMN sla_late BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN sla_overdue BIGINT NOT NULL DEFAULT 0;
