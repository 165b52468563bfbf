-- HTTP jobs: the request an executor makes instead of running a command. Same change as
-- migrations/sqlite/0005_http_jobs.sql.

ALTER TABLE jobs
    ADD COLUMN http_method VARCHAR(16) NOT NULL DEFAULT 'GET',
    ADD COLUMN http_headers TEXT,
    ADD COLUMN http_body MEDIUMTEXT,
    ADD COLUMN http_expect_status BIGINT NOT NULL DEFAULT 0;
UPDATE jobs SET http_headers = '{}' WHERE http_headers IS NULL;
