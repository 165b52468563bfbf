-- Dispatchers heartbeat like executors, so that the monitor can tell "no dispatcher is running"
-- (nothing fires) and alarm it once. A dispatcher that stops cleanly sets `left_at`: it still counts
-- until its heartbeat ages out (a reload or a shutdown is not an outage) and is then forgotten
-- without an alarm. `fleet_state` holds facts several monitors agree on through a conditional
-- update, so that one of them raises each alarm. Same change as migrations/mysql/0009_dispatchers.sql.

CREATE TABLE dispatchers (
    instance   TEXT    PRIMARY KEY,
    started_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    left_at    INTEGER
);

CREATE TABLE fleet_state (
    name  TEXT    PRIMARY KEY,
    state TEXT    NOT NULL,
    since INTEGER NOT NULL
);

INSERT INTO fleet_state (name, state, since) VALUES ('dispatchers', 'up', 0);
