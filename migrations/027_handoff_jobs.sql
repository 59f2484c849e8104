-- webhookd schema, version 27: a handed-off delivery's job is deleted with
-- its last attempt too (issue 30).
--
-- The process that accepts an event makes its deliveries' first attempts
-- itself (engine.Handoffs, WEBHOOKD_HANDOFFS); their jobs wait meanwhile in
-- state scheduled, a lease ahead, instead of running. The statement that
-- records a delivery's last attempt deletes its job (migration 23) when it
-- is running, and now also when it is scheduled: the job is then the
-- delivery's, as the attempt's guard checked (the delivery names it).
--
-- Safe on a live database: it replaces a function, instantly. Older
-- processes delete as before; a newer one's handed-off job that an older
-- function left behind is River's at the end of its lease, finds its
-- delivery finished and sends nothing.
CREATE OR REPLACE FUNCTION webhookd_delete_finished_jobs(ids bigint[]) RETURNS bigint
LANGUAGE plpgsql STRICT
SET enable_indexscan = on SET enable_seqscan = off SET enable_bitmapscan = off
AS $$
DECLARE
    deleted bigint;
BEGIN
    DELETE FROM river_job WHERE id = ANY(ids) AND state::text IN ('running', 'scheduled');
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$$;
