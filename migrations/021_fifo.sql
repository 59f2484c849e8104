-- webhookd schema, version 21: ordered (FIFO) delivery per webhook (issue
-- 25, part 2). See docs/architecture.md, "FIFO webhooks".
--   webhooks.ordering   'none' (the default: no order) or 'fifo'.
--   webhook_fifo        one row per FIFO webhook, never on webhooks (enqueue
--                       reads those without locks): next_seq is the last
--                       sequence number given. Enqueue takes numbers with
--                       an UPDATE of this row inside the producer's
--                       transaction, so enqueues to one FIFO webhook commit
--                       one after another, in sequence order. The row
--                       exists exactly while the webhook is FIFO: switching
--                       ordering off deletes it (waiting for enqueues that
--                       hold it), and an enqueue that finds no row gives no
--                       number.
--   deliveries.fifo_seq the delivery's place in its webhook's line; NULL for
--                       unordered deliveries (and for a dead head skipped
--                       out of the line, or a succeeded one replayed).
-- The line of a FIFO webhook is its deliveries with a fifo_seq in state
-- pending, paused or dead; its head is the lowest. Only the head is sent;
-- a dead head blocks the line until it is replayed or skipped.
ALTER TABLE webhooks ADD COLUMN ordering text NOT NULL DEFAULT 'none'
    CHECK (ordering IN ('none', 'fifo'));

CREATE TABLE webhook_fifo (
    webhook_id text PRIMARY KEY,
    next_seq   bigint NOT NULL DEFAULT 0
);

ALTER TABLE deliveries ADD COLUMN fifo_seq bigint;

CREATE INDEX deliveries_fifo_line_idx ON deliveries (webhook_id, fifo_seq)
    WHERE fifo_seq IS NOT NULL AND state IN ('pending', 'paused', 'dead');
