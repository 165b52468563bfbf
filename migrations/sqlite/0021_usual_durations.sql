-- Learned durations (issue 27). Same change as migrations/mysql/0021_usual_durations.sql.
--
-- Each job's recent successful durations (`recent_ms`: the last 30, milliseconds, oldest
-- first) and the band learned from them (quartiles, once there are 10: `model::usual`),
-- kept with its counts, updated in the transaction that counts each success.
ALTER TABLE job_stats ADD COLUMN recent_ms TEXT;
ALTER TABLE job_stats ADD COLUMN usual_q1_ms INTEGER;
ALTER TABLE job_stats ADD COLUMN usual_median_ms INTEGER;
ALTER TABLE job_stats ADD COLUMN usual_q3_ms INTEGER;
ALTER TABLE job_stats ADD COLUMN usual_samples INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_stats ADD COLUMN sla_slow INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_stats ADD COLUMN sla_short INTEGER NOT NULL DEFAULT 0;

-- Which of them a job raises (`both`, `slow`, `short`, `off`, with `:K` its tolerance).
ALTER TABLE jobs ADD COLUMN duration_alarm TEXT NOT NULL DEFAULT 'both';

-- Successes found short when counted, waiting for the alarm pass (which deletes the row in
-- the transaction that raises the alarm: at most one alarm per run, however many monitors).
CREATE TABLE short_runs (
    run_id      INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    under_ms    INTEGER NOT NULL,
    median_ms   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
