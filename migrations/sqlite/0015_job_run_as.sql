-- The user a job runs as on a root executor, one of its executor.allowed_users (issue 13).
-- Same change as migrations/mysql/0015_job_run_as.sql.

ALTER TABLE jobs ADD COLUMN run_as VARCHAR(32) NULL;
