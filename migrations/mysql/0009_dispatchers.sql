-- Dispatchers heartbeat like executors, so that the monitor can tell "no dispatcher is running"
-- (nothing fires) and alarm it once. A dispatcher that stops cleanly sets `left_at`: it still counts
-- until its heartbeat ages out (a reload or a shutdown is not an outage) and is then forgotten
-- without an alarm. `fleet_state` holds facts several monitors agree on through a conditional
-- update, so that one of them raises each alarm. Same change as migrations/sqlite/0009_dispatchers.sql.

CREATE TABLE dispatchers (
    instance   VARCHAR(255) NOT NULL PRIMARY KEY,
    started_at BIGINT       NOT NULL,
    last_seen  BIGINT       NOT NULL,
    left_at    BIGINT       NULL
) ENGINE=InnoDB;

CREATE TABLE fleet_state (
    name  VARCHAR(64) NOT NULL PRIMARY KEY,
    state VARCHAR(16) NOT NULL,
    since BIGINT      NOT NULL
) ENGINE=InnoDB;

INSERT INTO fleet_state (name, state, since) VALUES ('dispatchers', 'up', 0);
