-- Which dispatcher call recorded a run (host/pid/start/counter): lets a burst be recorded with
-- one multi-row insert and its own rows found again by this token. Same change as
-- migrations/mysql/0007_fired_by.sql.

ALTER TABLE runs ADD COLUMN fired_by TEXT;
