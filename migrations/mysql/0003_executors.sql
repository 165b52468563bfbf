-- Executors announce themselves with a heartbeat; the monitor marks the runs of an executor
-- that stopped heartbeating `lost`. Same change as migrations/sqlite/0003_executors.sql.

CREATE TABLE executors (
    instance   VARCHAR(255) NOT NULL PRIMARY KEY,
    started_at BIGINT       NOT NULL,
    last_seen  BIGINT       NOT NULL
) ENGINE=InnoDB;
