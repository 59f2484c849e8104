-- webhookd schema, version 5: events, deliveries and attempts partitioned by
-- day, so that retention drops whole partitions instead of deleting rows.
--
-- The partition key is part_day, a UTC date:
--   * an event and its deliveries get the day the event was accepted;
--   * an attempt gets its delivery's part_day (the record statement copies
--     it), so a delivery, its event and all its attempts always live in
--     partitions of the same day;
--   * retention (package retention, a periodic River job) may move a row
--     that must be kept longer (a dead delivery inside WEBHOOKD_DEAD_RETENTION,
--     a pending one, one that succeeded late after a replay) forward to the
--     current day, together with its event and attempts, just before it drops
--     the old day's partitions. Rows only ever move forward, so a row's
--     part_day is never before the day encoded in its UUIDv7 id: lookups by
--     id prune with part_day >= that day.
--
-- Each table has one partition per day, created ahead by the retention job
-- (webhookd_ensure_partition), and a DEFAULT partition that catches a row
-- whose day has no partition yet (the job not running for days), so an
-- insert never fails for want of a partition; creating that day's
-- partition later moves such rows out of the default one.
--
-- A primary key on a partitioned table must include the partition key, so
-- ids are unique by construction (UUIDv7) rather than by a global index, and
-- foreign keys that pointed at events, deliveries or attempts are gone:
-- retention removes the dependent rows itself (idempotency keys, replay
-- history) when it drops a day. deliveries.webhook_id no longer references
-- webhooks either: attaching a partition would then lock webhooks (to add
-- the constraint to it) while holding the default partition, a deadlock
-- with DELETE /v1/webhooks (which updates webhooks, then deliveries).
-- Webhooks are never deleted, only marked deleted, so nothing can dangle.
--
-- The existing rows are copied into the new tables (this migration rewrites
-- them; it is quick on a young database and takes a while on a large one).

ALTER TABLE idempotency_keys DROP CONSTRAINT IF EXISTS idempotency_keys_event_id_fkey;
ALTER TABLE delivery_replays DROP CONSTRAINT IF EXISTS delivery_replays_delivery_id_fkey;
ALTER TABLE replay_batch_items DROP CONSTRAINT IF EXISTS replay_batch_items_delivery_id_fkey;

ALTER TABLE attempts RENAME TO attempts_v4;
ALTER TABLE deliveries RENAME TO deliveries_v4;
ALTER TABLE events RENAME TO events_v4;

CREATE TABLE events (
    id              text        NOT NULL,
    account_id      text        NOT NULL,
    type            text        NOT NULL,
    -- The exact envelope bytes sent on every attempt and replay.
    body            bytea       NOT NULL,
    occurred_at     timestamptz NOT NULL,
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    part_day        date        NOT NULL DEFAULT ((now() AT TIME ZONE 'UTC')::date),
    PRIMARY KEY (id, part_day)
) PARTITION BY RANGE (part_day);

CREATE TABLE deliveries (
    id              text        NOT NULL,
    event_id        text        NOT NULL,
    webhook_id      text        NOT NULL,
    account_id      text        NOT NULL,
    event_type      text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'succeeded', 'dead', 'cancelled')),
    -- Attempts counted over the delivery's whole life (the guard for recording).
    attempts        integer     NOT NULL DEFAULT 0,
    -- A replay starts a new generation of ten attempts.
    generation      integer     NOT NULL DEFAULT 1,
    gen_attempts    integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    -- The River job currently responsible for this delivery.
    job_id          bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    part_day        date        NOT NULL DEFAULT ((now() AT TIME ZONE 'UTC')::date),
    PRIMARY KEY (id, part_day)
) PARTITION BY RANGE (part_day);

CREATE SEQUENCE attempt_ids AS bigint;

CREATE TABLE attempts (
    id               bigint      NOT NULL DEFAULT nextval('attempt_ids'),
    delivery_id      text        NOT NULL,
    -- Lifetime attempt number (1, 2, ...); an interrupted attempt repeats the
    -- number of the attempt that follows it because it did not count.
    number           integer     NOT NULL,
    generation       integer     NOT NULL,
    counted          boolean     NOT NULL DEFAULT true,
    scheduled_at     timestamptz NOT NULL,
    started_at       timestamptz NOT NULL,
    duration_us      bigint      NOT NULL,
    status_code      integer,
    error_kind       text,
    error_message    text,
    response_excerpt bytea,
    signature_t      bigint      NOT NULL,
    part_day         date        NOT NULL DEFAULT ((now() AT TIME ZONE 'UTC')::date),
    PRIMARY KEY (id, part_day)
) PARTITION BY RANGE (part_day);

CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE TABLE deliveries_default PARTITION OF deliveries DEFAULT;
CREATE TABLE attempts_default PARTITION OF attempts DEFAULT;

-- webhookd_ensure_partition creates parent's partition for day (named
-- parent_pYYYYMMDD) unless it exists, moving any rows of that day out of the
-- default partition first. It reports whether it created one. Callers hold
-- the advisory lock webhookd_partitions_lock() so two never race.
CREATE FUNCTION webhookd_ensure_partition(parent text, day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text := parent || '_p' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name, parent);
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE part_day = %L RETURNING *) INSERT INTO %I SELECT * FROM moved',
                   parent || '_default', day, name);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, name, day, day + 1);
    RETURN true;
END
$$;

-- The advisory lock key that serialises partition maintenance.
CREATE FUNCTION webhookd_partitions_lock() RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT 7305320171124005 $$;

-- A partition for every day the existing rows need, and for today.
DO $$
DECLARE
    d date;
BEGIN
    FOR d IN
        SELECT (created_at AT TIME ZONE 'UTC')::date FROM events_v4
        UNION SELECT (created_at AT TIME ZONE 'UTC')::date FROM deliveries_v4
        UNION SELECT (now() AT TIME ZONE 'UTC')::date
    LOOP
        PERFORM webhookd_ensure_partition('events', d);
        PERFORM webhookd_ensure_partition('deliveries', d);
        PERFORM webhookd_ensure_partition('attempts', d);
    END LOOP;
END
$$;

-- Copy: a delivery and its attempts go to the event's day.
INSERT INTO events (id, account_id, type, body, occurred_at, idempotency_key, created_at, part_day)
SELECT id, account_id, type, body, occurred_at, idempotency_key, created_at, (created_at AT TIME ZONE 'UTC')::date
FROM events_v4;

INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, state, attempts, generation, gen_attempts,
                        next_attempt_at, job_id, created_at, updated_at, finished_at, part_day)
SELECT d.id, d.event_id, d.webhook_id, d.account_id, d.event_type, d.state, d.attempts, d.generation, d.gen_attempts,
       d.next_attempt_at, d.job_id, d.created_at, d.updated_at, d.finished_at,
       coalesce((e.created_at AT TIME ZONE 'UTC')::date, (d.created_at AT TIME ZONE 'UTC')::date)
FROM deliveries_v4 d LEFT JOIN events_v4 e ON e.id = d.event_id;

INSERT INTO attempts (id, delivery_id, number, generation, counted, scheduled_at, started_at, duration_us,
                      status_code, error_kind, error_message, response_excerpt, signature_t, part_day)
SELECT a.id, a.delivery_id, a.number, a.generation, a.counted, a.scheduled_at, a.started_at, a.duration_us,
       a.status_code, a.error_kind, a.error_message, a.response_excerpt, a.signature_t, d.part_day
FROM attempts_v4 a JOIN deliveries d ON d.id = a.delivery_id;

SELECT setval('attempt_ids', coalesce((SELECT max(id) FROM attempts_v4), 0) + 1, false);

DROP TABLE attempts_v4;
DROP TABLE deliveries_v4;
DROP TABLE events_v4;

-- The indexes of migrations 1 and 3, now on every partition. Lookups by id
-- use the primary keys (id, part_day).
CREATE INDEX events_account_idx ON events (account_id, id);

CREATE INDEX deliveries_event_idx ON deliveries (event_id);
CREATE INDEX deliveries_pending_job_idx ON deliveries (job_id) WHERE state = 'pending';
CREATE INDEX deliveries_account_state_idx ON deliveries (account_id, state, created_at, id);
CREATE INDEX deliveries_webhook_state_idx ON deliveries (webhook_id, state, created_at, id);
CREATE INDEX deliveries_account_type_idx ON deliveries (account_id, event_type, created_at, id, state, webhook_id);
CREATE INDEX deliveries_dead_created_idx ON deliveries (created_at, id, event_type) WHERE state = 'dead';

CREATE INDEX attempts_delivery_idx ON attempts (delivery_id, id);
