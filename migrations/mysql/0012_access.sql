-- Users, roles and scope (issue 12). A job belongs to a group (`job_group`; `group` is an SQL
-- keyword); users and API tokens have a role (admin, operator, viewer) and the groups they may
-- see ('' = every group). Passwords are Argon2id hashes, tokens and session ids SHA-256 hashes:
-- the store never holds a secret that lets anyone in. `audit` records every change and login;
-- `login_failures` slows down guessing, per user and per address. Same change as
-- migrations/sqlite/0012_access.sql.

ALTER TABLE jobs ADD COLUMN job_group VARCHAR(64) NOT NULL DEFAULT 'default';
CREATE INDEX jobs_by_group ON jobs (job_group);

CREATE TABLE users (
    id             BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name           VARCHAR(128)  NOT NULL,
    email          VARCHAR(255)  NULL,
    role           VARCHAR(16)   NOT NULL,
    groups_allowed VARCHAR(2048) NOT NULL DEFAULT '',
    password_hash  VARCHAR(255)  NOT NULL,
    active         TINYINT       NOT NULL DEFAULT 1,
    created_at     BIGINT        NOT NULL,
    updated_at     BIGINT        NOT NULL,
    last_login_at  BIGINT        NULL,
    UNIQUE KEY users_name_nocase (name)
) ENGINE=InnoDB;

CREATE TABLE sessions (
    id_hash    CHAR(64)     NOT NULL PRIMARY KEY,
    user_id    BIGINT       NOT NULL,
    created_at BIGINT       NOT NULL,
    last_seen  BIGINT       NOT NULL,
    expires_at BIGINT       NOT NULL,
    address    VARCHAR(64)  NULL,
    KEY sessions_by_user (user_id)
) ENGINE=InnoDB;

CREATE TABLE api_tokens (
    id             BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name           VARCHAR(128)  NOT NULL,
    token_hash     CHAR(64)      NOT NULL,
    role           VARCHAR(16)   NOT NULL,
    groups_allowed VARCHAR(2048) NOT NULL DEFAULT '',
    created_by     VARCHAR(255)  NOT NULL,
    created_at     BIGINT        NOT NULL,
    expires_at     BIGINT        NULL,
    last_used_at   BIGINT        NULL,
    revoked_at     BIGINT        NULL,
    UNIQUE KEY api_tokens_name_nocase (name),
    UNIQUE KEY api_tokens_hash (token_hash)
) ENGINE=InnoDB;

CREATE TABLE audit (
    id      BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at      BIGINT       NOT NULL,
    actor   VARCHAR(255) NOT NULL,
    address VARCHAR(64)  NULL,
    action  VARCHAR(64)  NOT NULL,
    object  VARCHAR(255) NOT NULL,
    job_id  BIGINT       NULL,
    details MEDIUMTEXT   NOT NULL,
    KEY audit_by_at (at),
    KEY audit_by_job (job_id, id)
) ENGINE=InnoDB;

CREATE TABLE login_failures (
    subject  VARCHAR(255) NOT NULL PRIMARY KEY,
    failures BIGINT       NOT NULL,
    last_at  BIGINT       NOT NULL
) ENGINE=InnoDB;
