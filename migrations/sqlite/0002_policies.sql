-- Job policies (overlap, retries, misfire) and retry chains. Same change as
-- migrations/mysql/0002_policies.sql.

ALTER TABLE jobs ADD COLUMN overlap TEXT NOT NULL DEFAULT 'allow';
ALTER TABLE jobs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN retry_backoff_secs INTEGER NOT NULL DEFAULT 10;
ALTER TABLE jobs ADD COLUMN misfire TEXT NOT NULL DEFAULT 'skip';
ALTER TABLE jobs ADD COLUMN misfire_window_secs INTEGER NOT NULL DEFAULT 3600;

-- A retry is its own run of the same (job, instant, target), one attempt further, linked to the
-- first run of its chain, and not dispatched before `not_before`.
ALTER TABLE runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
ALTER TABLE runs ADD COLUMN retry_of INTEGER;
ALTER TABLE runs ADD COLUMN not_before INTEGER;

DROP INDEX runs_fire_once;
CREATE UNIQUE INDEX runs_fire_once ON runs (job_id, instant, target, attempt);
