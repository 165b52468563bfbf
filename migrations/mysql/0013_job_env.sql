-- A job's own environment variables (issue 13): jobs start from a clean environment, plus
-- these. A JSON object; values are secrets to people (shown as ***). Same change as
-- migrations/sqlite/0013_job_env.sql.

ALTER TABLE jobs ADD COLUMN env TEXT NOT NULL DEFAULT '{}';
