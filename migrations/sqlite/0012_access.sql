-- Users, roles and scope (issue 12). A job belongs to a group (`job_group`; `group` is an SQL
-- keyword); users and API tokens have a role (admin, operator, viewer) and the groups they may
-- see ('' = every group). Passwords are Argon2id hashes, tokens and session ids SHA-256 hashes:
-- the store never holds a secret that lets anyone in. `audit` records every change and login;
-- `login_failures` slows down guessing, per user and per address. Same change as
-- migrations/mysql/0012_access.sql.

ALTER TABLE jobs ADD COLUMN job_group TEXT NOT NULL DEFAULT 'default';
CREATE INDEX jobs_by_group ON jobs (job_group);

CREATE TABLE users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT    NOT NULL,
    email          TEXT,
    role           TEXT    NOT NULL,
    groups_allowed TEXT    NOT NULL DEFAULT '',
    password_hash  TEXT    NOT NULL,
    active         INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    last_login_at  INTEGER
);
CREATE UNIQUE INDEX users_name_nocase ON users (name COLLATE NOCASE);

CREATE TABLE sessions (
    id_hash    TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    address    TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT    NOT NULL,
    token_hash     TEXT    NOT NULL,
    role           TEXT    NOT NULL,
    groups_allowed TEXT    NOT NULL DEFAULT '',
    created_by     TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    last_used_at   INTEGER,
    revoked_at     INTEGER
);
CREATE UNIQUE INDEX api_tokens_name_nocase ON api_tokens (name COLLATE NOCASE);
CREATE UNIQUE INDEX api_tokens_hash ON api_tokens (token_hash);

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    address TEXT,
    action  TEXT    NOT NULL,
    object  TEXT    NOT NULL,
    job_id  INTEGER,
    details TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_by_at ON audit (at);
CREATE INDEX audit_by_job ON audit (job_id, id);

CREATE TABLE login_failures (
    subject  TEXT    PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_at  INTEGER NOT NULL
);
