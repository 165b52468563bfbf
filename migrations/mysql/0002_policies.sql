-- Job policies (overlap, retries, misfire) and retry chains. Same change as
-- migrations/sqlite/0002_policies.sql.

ALTER TABLE jobs
    ADD COLUMN overlap VARCHAR(16) NOT NULL DEFAULT 'allow',
    ADD COLUMN retries BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN retry_backoff_secs BIGINT NOT NULL DEFAULT 10,
    ADD COLUMN misfire VARCHAR(16) NOT NULL DEFAULT 'skip',
    ADD COLUMN misfire_window_secs BIGINT NOT NULL DEFAULT 3600;

ALTER TABLE runs
    ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1,
    ADD COLUMN retry_of BIGINT,
    ADD COLUMN not_before BIGINT,
    DROP INDEX runs_fire_once,
    ADD UNIQUE KEY runs_fire_once (job_id, instant, target, attempt);
