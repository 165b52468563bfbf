-- Workflows (issue 25): a job may run after other jobs. Same change as
-- migrations/mysql/0018_flows.sql.
--
-- `job_edges`: job `job_id` runs after `upstream_id` ended as `on_kind` says (success, failure,
-- end). By id, so a rename keeps its edges; the store refuses cycles and deletes.
CREATE TABLE job_edges (
    job_id      INTEGER NOT NULL,
    upstream_id INTEGER NOT NULL,
    on_kind     TEXT    NOT NULL DEFAULT 'success',
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (job_id, upstream_id)
);
CREATE INDEX job_edges_by_upstream ON job_edges (upstream_id);

-- A job that keeps its schedule may require another job's success within a window before
-- each of its instants (by name: a rename of the required job renames it here too).
ALTER TABLE jobs ADD COLUMN requires_job TEXT;
ALTER TABLE jobs ADD COLUMN requires_within_secs INTEGER;

-- Declared parameters (JSON: name, default, choices, secret), and a run's values: `params` as
-- it runs with them, `params_shown` with secret ones masked (what people read).
ALTER TABLE jobs ADD COLUMN params TEXT;
ALTER TABLE runs ADD COLUMN params TEXT;
ALTER TABLE runs ADD COLUMN params_shown TEXT;

-- A run released by upstream runs belongs to the flow of (flow_root, instant): the root job
-- and the root's instant, which every run of the flow carries. `flow_round` counts the reruns
-- of a flow. The fence gains both, so each (job, flow, round) has at most one run however
-- many dispatchers release it. `released` marks an ended run whose dependents were decided.
ALTER TABLE runs ADD COLUMN flow_root INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN flow_round INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN flow_run INTEGER;
ALTER TABLE runs ADD COLUMN upstream_runs TEXT;
ALTER TABLE runs ADD COLUMN rerun_of INTEGER;
ALTER TABLE runs ADD COLUMN released INTEGER NOT NULL DEFAULT 0;
DROP INDEX runs_fire_once;
CREATE UNIQUE INDEX runs_fire_once ON runs (job_id, instant, target, attempt, flow_root, flow_round);
CREATE INDEX runs_to_release ON runs (released, job_id);
CREATE INDEX runs_by_flow ON runs (flow_root, instant);

-- One row per flow once its root has ended: its overall state when every node has, and
-- whether its alarm was raised (once per flow, or per rerun of it).
CREATE TABLE flows (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    root_job_id INTEGER NOT NULL,
    instant     INTEGER NOT NULL,
    root_run    INTEGER NOT NULL,
    flow_round  INTEGER NOT NULL DEFAULT 0,
    state       TEXT    NOT NULL DEFAULT 'running',
    failed      TEXT,
    created_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    alarm_checked INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX flows_once ON flows (root_job_id, instant);
CREATE INDEX flows_by_created ON flows (created_at);
