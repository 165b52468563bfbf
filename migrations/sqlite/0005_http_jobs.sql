-- HTTP jobs: the request an executor makes instead of running a command. Same change as
-- migrations/mysql/0005_http_jobs.sql.

ALTER TABLE jobs ADD COLUMN http_method TEXT NOT NULL DEFAULT 'GET';
-- JSON object of header name -> value.
ALTER TABLE jobs ADD COLUMN http_headers TEXT NOT NULL DEFAULT '{}';
ALTER TABLE jobs ADD COLUMN http_body TEXT;
-- 0: any 2xx status succeeds.
ALTER TABLE jobs ADD COLUMN http_expect_status INTEGER NOT NULL DEFAULT 0;
