-- A job's resource limits, set on its process before exec (issue 13).
-- Same change as migrations/mysql/0016_job_limits.sql.

ALTER TABLE jobs ADD COLUMN max_open_files BIGINT NULL;
ALTER TABLE jobs ADD COLUMN max_address_space_mb BIGINT NULL;
ALTER TABLE jobs ADD COLUMN max_cpu_secs BIGINT NULL;
