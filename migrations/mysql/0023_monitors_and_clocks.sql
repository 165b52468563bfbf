-- One alarm per fault (issue 28). Same change as
-- migrations/sqlite/0023_monitors_and_clocks.sql, which says what each column holds.
CREATE TABLE monitors (
    instance   VARCHAR(255) NOT NULL PRIMARY KEY,
    started_at BIGINT       NOT NULL,
    last_seen  BIGINT       NOT NULL,
    left_at    BIGINT       NULL,
    skew_ms    BIGINT       NULL
) ENGINE=InnoDB;
ALTER TABLE executors ADD COLUMN skew_ms BIGINT NULL;
ALTER TABLE dispatchers ADD COLUMN skew_ms BIGINT NULL;
