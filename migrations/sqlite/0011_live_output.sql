-- Live output and kill from the console: an executor records the address of its RPC (the monitor
-- reads a running run's output from there) and what it serves (groups, version) for the fleet
-- page; `kill_requested` asks whichever executor holds a run to stop it, even one the monitor
-- cannot reach (behind NAT, or draining after a reload). The console's overview counts runs by
-- scheduled instant (`runs_by_instant`), a run page shows its retry chain (`runs_by_retry_of`).
-- Same change as
-- migrations/mysql/0011_live_output.sql.

ALTER TABLE executors ADD COLUMN url TEXT;
ALTER TABLE executors ADD COLUMN groups_served TEXT;
ALTER TABLE executors ADD COLUMN version TEXT;
ALTER TABLE runs ADD COLUMN kill_requested INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_by_instant ON runs (instant);
CREATE INDEX runs_by_retry_of ON runs (retry_of);
