-- Every instant of every job accounted for (issue 28). Same change as
-- migrations/mysql/0022_job_cursors.sql.
--
-- Per job, how far the monitor has found a record for each of its instants
-- (`checked_until`), and when its next instant comes due (`next_due`, NULL: none). The
-- monitor reads the cursors whose instant is due through the index, so a fleet of rare jobs
-- costs a read per instant fired, and a hole of a daily job is found within minutes, not
-- never (the span check sees only jobs with records in its last minute).
CREATE TABLE job_cursors (
    job_id        INTEGER PRIMARY KEY,
    checked_until INTEGER NOT NULL,
    next_due      INTEGER
);
CREATE INDEX job_cursors_due ON job_cursors (next_due);
