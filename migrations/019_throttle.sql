-- webhookd schema, version 19: per-webhook rate limits (issue 25, part 1).
-- rate_limit_per_second is the webhook's setting (NULL: no limit). The
-- coordination lives in a table of its own, never on webhooks (enqueue
-- reads those rows without locks, and a hot update there would be one per
-- attempt): one row per limited webhook that has been attempted.
--   next_at    the first start time not reserved yet; a reservation takes
--              greatest(next_at, now) and moves next_at on by interval_us.
--   last_start the last attempt start claimed; a claim needs
--              last_start <= now - interval_us, so recorded starts are at
--              least 1/N s apart (at most N in any second) whatever the
--              lateness of the jobs holding reservations.
-- Both are HOT updates of a one-row-per-webhook table with no index but
-- its key.
ALTER TABLE webhooks ADD COLUMN rate_limit_per_second integer
    CHECK (rate_limit_per_second BETWEEN 1 AND 100);

CREATE TABLE webhook_throttle (
    webhook_id  text PRIMARY KEY,
    interval_us bigint NOT NULL,
    next_at     timestamptz NOT NULL,
    last_start  timestamptz NOT NULL
) WITH (fillfactor = 50);

-- The slot a throttled delivery was given (its next_attempt_at is set to
-- the same time): its job, run again at the slot, claims its start
-- instead of reserving again. Only meaningful while it equals
-- next_attempt_at.
ALTER TABLE deliveries ADD COLUMN throttle_slot timestamptz;
