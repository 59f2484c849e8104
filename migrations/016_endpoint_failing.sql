-- webhookd schema, version 16: endpoint.failing's hysteresis (issue 23).
-- Set when the endpoint.failing notification was written for the webhook's
-- current run of failures; cleared once an attempt has succeeded since.
ALTER TABLE webhook_health ADD COLUMN failing_notified_at timestamptz;
