-- Cluster targeting: with `run_at`, one run per instant on one executor ('one', round-robin)
-- or one per live executor of the target ('all'). Same change as migrations/sqlite/0006_fanout.sql.

ALTER TABLE jobs ADD COLUMN fanout VARCHAR(8) NOT NULL DEFAULT 'one';
