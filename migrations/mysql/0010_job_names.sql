-- Job names are unique whatever their case: say the case-insensitive collation explicitly,
-- rather than rely on the server's default. Same change as migrations/sqlite/0010_job_names.sql.

ALTER TABLE jobs MODIFY name VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL;
