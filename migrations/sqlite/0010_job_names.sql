-- Job names are unique whatever their case (`Backup` and `backup` are one job to a person).
-- MySQL/MariaDB compare names with a case-insensitive collation already; SQLite needs NOCASE.
-- Same change as migrations/mysql/0010_job_names.sql.

CREATE UNIQUE INDEX jobs_name_nocase ON jobs (name COLLATE NOCASE);
