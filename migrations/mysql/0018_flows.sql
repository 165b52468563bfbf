-- Workflows (issue 25): a job may run after other jobs. Same change as
-- migrations/sqlite/0018_flows.sql, which says what each column is for.
CREATE TABLE job_edges (
    job_id      BIGINT NOT NULL,
    upstream_id BIGINT NOT NULL,
    on_kind     VARCHAR(16) NOT NULL DEFAULT 'success',
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (job_id, upstream_id),
    KEY job_edges_by_upstream (upstream_id)
) ENGINE=InnoDB;

ALTER TABLE jobs
    ADD COLUMN requires_job VARCHAR(128) NULL,
    ADD COLUMN requires_within_secs BIGINT NULL,
    ADD COLUMN params TEXT NULL;

ALTER TABLE runs
    ADD COLUMN params TEXT NULL,
    ADD COLUMN params_shown TEXT NULL,
    ADD COLUMN flow_root BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN flow_round BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN flow_run BIGINT NULL,
    ADD COLUMN upstream_runs TEXT NULL,
    ADD COLUMN rerun_of BIGINT NULL,
    ADD COLUMN released TINYINT NOT NULL DEFAULT 0,
    DROP INDEX runs_fire_once,
    ADD UNIQUE KEY runs_fire_once (job_id, instant, target, attempt, flow_root, flow_round),
    ADD KEY runs_to_release (released, job_id),
    ADD KEY runs_by_flow (flow_root, instant);

CREATE TABLE flows (
    id          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    root_job_id BIGINT NOT NULL,
    instant     BIGINT NOT NULL,
    root_run    BIGINT NOT NULL,
    flow_round  BIGINT NOT NULL DEFAULT 0,
    state       VARCHAR(16) NOT NULL DEFAULT 'running',
    failed      TEXT NULL,
    created_at  BIGINT NOT NULL,
    ended_at    BIGINT NULL,
    alarm_checked TINYINT NOT NULL DEFAULT 0,
    UNIQUE KEY flows_once (root_job_id, instant),
    KEY flows_by_created (created_at)
) ENGINE=InnoDB;
