-- cronvisor schema, MySQL/MariaDB flavour: the same tables, columns and keys as
-- migrations/sqlite/0001_init.sql. Times are milliseconds since the Unix epoch.

CREATE TABLE jobs (
    id           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name         VARCHAR(128) NOT NULL,
    schedule     VARCHAR(255) NOT NULL,
    timezone     VARCHAR(64)  NOT NULL,
    command      MEDIUMTEXT,
    http_url     TEXT,
    timeout_secs BIGINT,
    run_at       VARCHAR(255),
    paused       BIGINT       NOT NULL DEFAULT 0,
    created_at   BIGINT       NOT NULL,
    updated_at   BIGINT       NOT NULL,
    UNIQUE KEY jobs_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE job_changes (
    seq     BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    job_id  BIGINT NOT NULL,
    at      BIGINT NOT NULL
) ENGINE=InnoDB;

CREATE TABLE runs (
    id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    job_id        BIGINT       NOT NULL,
    instant       BIGINT       NOT NULL,
    target        VARCHAR(255) NOT NULL DEFAULT '',
    trigger_kind  VARCHAR(16)  NOT NULL,
    state         VARCHAR(16)  NOT NULL,
    executor      VARCHAR(255),
    pid           BIGINT,
    exit_code     BIGINT,
    error         TEXT,
    stdout        MEDIUMTEXT,
    stderr        MEDIUMTEXT,
    stdout_cut    BIGINT       NOT NULL DEFAULT 0,
    stderr_cut    BIGINT       NOT NULL DEFAULT 0,
    created_at    BIGINT       NOT NULL,
    dispatched_at BIGINT,
    started_at    BIGINT,
    ended_at      BIGINT,
    UNIQUE KEY runs_fire_once (job_id, instant, target),
    KEY runs_by_job (job_id, id),
    KEY runs_by_state (state)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
