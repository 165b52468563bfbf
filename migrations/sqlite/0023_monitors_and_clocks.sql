-- One alarm per fault (issue 28). Same change as migrations/mysql/0023_monitors_and_clocks.sql.
--
-- Monitors beat too, as dispatchers do (`left_at` set by one that stopped cleanly): a monitor
-- killed is alarmed `monitor_lost` once, like the other roles.
--
-- `skew_ms` on each heartbeat row: the process's wall clock minus the store's, measured at
-- its last beat whose round trip was short enough to tell (NULL: not measured yet). The
-- monitor alarms a host whose clock is off by more than `monitor.max_clock_skew`, once per
-- host (fleet fact `clock:<host>`), and its return.
CREATE TABLE monitors (
    instance   TEXT    PRIMARY KEY,
    started_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    left_at    INTEGER,
    skew_ms    INTEGER
);
ALTER TABLE executors ADD COLUMN skew_ms INTEGER;
ALTER TABLE dispatchers ADD COLUMN skew_ms INTEGER;
