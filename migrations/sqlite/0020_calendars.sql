-- Business calendars (issue 27). Same change as migrations/mysql/0020_calendars.sql.
--
-- A calendar made by people (`calendar add`), as written (`model::calendar`, JSON): the
-- shipped ones are in the binary and not here. A job's `calendars` (comma-separated names)
-- filter its rule's instants as `calendar_mode` says (skip, only, next-workday).
CREATE TABLE calendars (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX calendars_by_name ON calendars (name COLLATE NOCASE);

ALTER TABLE jobs ADD COLUMN calendars TEXT;
ALTER TABLE jobs ADD COLUMN calendar_mode TEXT NOT NULL DEFAULT 'skip';
