-- Learned durations (issue 27). Same change as migrations/sqlite/0021_usual_durations.sql,
-- which says what each column holds.
ALTER TABLE job_stats
    ADD COLUMN recent_ms TEXT NULL,
    ADD COLUMN usual_q1_ms BIGINT NULL,
    ADD COLUMN usual_median_ms BIGINT NULL,
    ADD COLUMN usual_q3_ms BIGINT NULL,
    ADD COLUMN usual_samples BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN sla_slow BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN sla_short BIGINT NOT NULL DEFAULT 0;

ALTER TABLE jobs ADD COLUMN duration_alarm VARCHAR(16) NOT NULL DEFAULT 'both';

CREATE TABLE short_runs (
    run_id      BIGINT NOT NULL PRIMARY KEY,
    job_id      BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    under_ms    BIGINT NOT NULL,
    median_ms   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
) ENGINE=InnoDB;
