-- What a job is for, in words (a crontab import keeps each line's file and number here).
-- Same change as migrations/mysql/0014_job_description.sql.

ALTER TABLE jobs ADD COLUMN description TEXT NULL;
