-- Per-job alarm channels (webhook, sms, email; comma-separated). Empty: every configured
-- channel. Same change as migrations/sqlite/0008_alarm_channels.sql.

ALTER TABLE jobs ADD COLUMN alarm_channels VARCHAR(64) NOT NULL DEFAULT '';
