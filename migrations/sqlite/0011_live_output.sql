-- Live output and kill from the console: an executor records the address of its RPC (the monitor
-- reads a running run's output from there) and what it serves (groups, version) for the fleet
-- page; `kill_requested` asks whichever executor holds a run to stop it, even one the monitor
-- cannot reach (behind NAT, or draining after a reload). Same change as
-- migrations/mysql/0011_live_output.sql.

ALTER TABLE executors ADD COLUMN url TEXT;
ALTER TABLE executors ADD COLUMN groups_served TEXT;
ALTER TABLE executors ADD COLUMN version TEXT;
ALTER TABLE runs ADD COLUMN kill_requested INTEGER NOT NULL DEFAULT 0;
