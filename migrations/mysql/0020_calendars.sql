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
