-- webhookd schema, version 22: less WAL per delivery update (issue 30).
-- See BENCHMARKS.md, "WAL per delivery: an index audit".
--
-- A delivery's row is updated by every attempt. An update is HOT (no new
-- index entries, the new row version on the same page) only when no column
-- any index mentions changes and the page has room; otherwise every index
-- of deliveries gets an entry (five for a success: the primary key, event,
-- account/state, webhook/state and account/type indexes). A success changes
-- state, which the listing indexes need, so it is never HOT; a retry
-- (pending stays pending; attempts, next_attempt_at and updated_at change)
-- can be, and so can rescheduling a rate-limited or dead-notice delivery,
-- once next_attempt_at is in no index:
--
--   deliveries_paused_idx  was (webhook_id, next_attempt_at, id) WHERE
--                          paused; now (webhook_id, created_at, id) WHERE
--                          paused. Resuming reads a webhook's paused
--                          deliveries by creation, not due time: each gets a
--                          job scheduled at its due time, and River works
--                          jobs in due (scheduled_at) order whatever order
--                          they were inserted in (store.PausedDeliveries).
--   fillfactor 90          on every deliveries partition, present and
--                          future (webhookd_ensure_partition): room on each
--                          page for new row versions, so a retry's stays on
--                          its page (HOT) and a success's new version more
--                          often does too (no lock record for the old one).
--                          Existing pages fill as before; new ones leave the
--                          room.
--
-- Safe on a live database: ALTER TABLE ... SET (fillfactor) takes a lock
-- that writes don't wait for; the new paused index is built like migrations
-- 8, 17 and 21 built theirs (on the partitioned table, which can't build
-- CONCURRENTLY on PostgreSQL 15: writes to deliveries wait while it scans,
-- 2.5 s for 2 million rows in cache on the project's 2-core machine, so
-- plan ~1 – 2 s per million, more when they must be read from disk). On a
-- large table, build it first without blocking, one partition at a time
-- (docs/operators.md, "Migrations and upgrades"): the statement below
-- then attaches those instead of building. The old index goes after the
-- new one is in place, so resuming is never without one.
CREATE INDEX IF NOT EXISTS deliveries_paused_created_idx ON deliveries (webhook_id, created_at, id) WHERE state = 'paused';
DROP INDEX IF EXISTS deliveries_paused_idx;

DO $$
DECLARE
    p regclass;
BEGIN
    FOR p IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'deliveries'::regclass LOOP
        EXECUTE format('ALTER TABLE %s SET (fillfactor = 90)', p);
    END LOOP;
END
$$;

-- As migration 5's, but a deliveries partition is made with fillfactor 90.
CREATE OR REPLACE FUNCTION webhookd_ensure_partition(parent text, day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text := parent || '_p' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)%s', name, parent,
                   CASE parent WHEN 'deliveries' THEN ' WITH (fillfactor = 90)' ELSE '' END);
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE part_day = %L RETURNING *) INSERT INTO %I SELECT * FROM moved',
                   parent || '_default', day, name);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, name, day, day + 1);
    RETURN true;
END
$$;
