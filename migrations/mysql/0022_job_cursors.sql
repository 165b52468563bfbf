-- Every instant of every job accounted for (issue 28). Same change as
-- migrations/sqlite/0022_job_cursors.sql, which says what each column holds.
CREATE TABLE job_cursors (
    job_id        BIGINT NOT NULL PRIMARY KEY,
    checked_until BIGINT NOT NULL,
    next_due      BIGINT NULL,
    KEY job_cursors_due (next_due)
) ENGINE=InnoDB;
