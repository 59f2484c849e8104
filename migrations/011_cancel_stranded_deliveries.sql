-- webhookd schema, version 11: the deliveries of deleted webhooks that
-- deleting left behind are cancelled.
--
-- Until this version, deleting a webhook cancelled its pending deliveries
-- but not its paused ones: a paused webhook's deliveries have no job, so
-- nothing ever finished them, and retention carried them forward day after
-- day. Deleting now cancels both, and the reconciler cancels any pending or
-- paused delivery of a deleted webhook it meets (one created by an enqueue
-- that read the webhook just before the delete committed). This cancels
-- those already stranded, as the delete would have: state cancelled,
-- finished now (so they are kept for WEBHOOKD_RETENTION, like any
-- cancelled delivery), no next attempt. A pending one's job then finishes
-- without sending.
--
-- One statement on the partitioned table: it reaches every day partition
-- and the default one, and part_day does not change, so no row moves
-- between partitions. Each deleted webhook is looked up in each partition's
-- (webhook_id, state, created_at, id) index for the two states, so the cost
-- follows the deliveries it cancels, not the size of deliveries. Rerunning
-- it finds nothing left to cancel.

UPDATE deliveries d
SET state = 'cancelled', next_attempt_at = NULL, finished_at = now(), updated_at = now()
FROM webhooks w
WHERE w.deleted_at IS NOT NULL
  AND d.webhook_id = w.id
  AND d.state IN ('pending', 'paused');
