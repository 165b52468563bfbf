-- Each job's runs counted by final state, its last success and end, and a histogram of its
-- run durations (issue 14): the monitor adds a run here in the transaction that claims the
-- run for its alarm check, so every final run counts once whatever the number of monitors,
-- and the counts outlive the runs' retention. /metrics reads one row per job.
-- Same change as migrations/sqlite/0017_job_stats.sql.

CREATE TABLE job_stats (
    job_id          BIGINT NOT NULL PRIMARY KEY,
    succeeded       BIGINT NOT NULL DEFAULT 0,
    failed          BIGINT NOT NULL DEFAULT 0,
    timed_out       BIGINT NOT NULL DEFAULT 0,
    killed          BIGINT NOT NULL DEFAULT 0,
    lost            BIGINT NOT NULL DEFAULT 0,
    skipped         BIGINT NOT NULL DEFAULT 0,
    missed          BIGINT NOT NULL DEFAULT 0,
    last_success_at BIGINT NULL,
    last_end_at     BIGINT NULL,
    -- Runs that started and ended, by duration: at most 0.1, 1, 5, 10, 30, 60, 300, 900,
    -- 3600 and 14400 seconds, and longer (each run in one bucket; /metrics sums them up).
    d0 BIGINT NOT NULL DEFAULT 0,
    d1 BIGINT NOT NULL DEFAULT 0,
    d2 BIGINT NOT NULL DEFAULT 0,
    d3 BIGINT NOT NULL DEFAULT 0,
    d4 BIGINT NOT NULL DEFAULT 0,
    d5 BIGINT NOT NULL DEFAULT 0,
    d6 BIGINT NOT NULL DEFAULT 0,
    d7 BIGINT NOT NULL DEFAULT 0,
    d8 BIGINT NOT NULL DEFAULT 0,
    d9 BIGINT NOT NULL DEFAULT 0,
    d_inf BIGINT NOT NULL DEFAULT 0,
    duration_ms_sum BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB;
