-- Executors announce themselves with a heartbeat; the monitor marks the runs of an executor
-- that stopped heartbeating `lost`. Same change as migrations/mysql/0003_executors.sql.

CREATE TABLE executors (
    instance   TEXT    PRIMARY KEY,
    started_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
);
