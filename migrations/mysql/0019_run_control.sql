-- Run control (issue 26): backfills and shard numbers. Same change as
-- migrations/sqlite/0019_run_control.sql, which says what each column is for.
CREATE TABLE backfills (
    id           BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    job_id       BIGINT NOT NULL,
    from_instant BIGINT NOT NULL,
    to_instant   BIGINT NOT NULL,
    parallel     BIGINT NOT NULL DEFAULT 1,
    rerun_all    BIGINT NOT NULL DEFAULT 0,
    state        VARCHAR(16) NOT NULL DEFAULT 'running',
    reached      BIGINT NOT NULL,
    total        BIGINT NOT NULL,
    queued       BIGINT NOT NULL DEFAULT 0,
    skipped      BIGINT NOT NULL DEFAULT 0,
    reason       TEXT NULL,
    created_by   VARCHAR(255) NULL,
    created_at   BIGINT NOT NULL,
    ended_at     BIGINT NULL,
    KEY backfills_by_state (state),
    KEY backfills_by_job (job_id)
) ENGINE=InnoDB;

ALTER TABLE runs
    ADD COLUMN backfill_id BIGINT NULL,
    ADD COLUMN shard_index BIGINT NULL,
    ADD COLUMN shard_total BIGINT NULL,
    ADD UNIQUE KEY runs_backfill_once (backfill_id, instant, attempt);

ALTER TABLE flows ADD KEY flows_by_state (state);
