-- webhookd schema, version 23: a finished delivery's River job is deleted
-- by the statement that records its last attempt (issue 30; BENCHMARKS.md,
-- "A finished delivery's job deleted where its attempt is recorded").
--
-- Until now River's completer marked the job completed (a new row version
-- and three index entries, ~600 bytes of WAL per delivery) and its cleaner
-- deleted it ten minutes later. The deliveries and attempts tables are the
-- record of a delivery; the job is only how it is worked. The worker's
-- attempt record now deletes the jobs of the deliveries it finishes
-- (succeeded or dead), unless WEBHOOKD_KEEP_FINISHED_JOBS keeps them for
-- River UI; River's completer then finds no row, which it allows.
--
-- webhookd_delete_finished_jobs deletes the given jobs that are still
-- running (one that is not, such as one a rescuer made available again,
-- is left to River), each found by its primary key whatever the statistics
-- say or when its plan was made. The worker's by-key sessions keep one
-- generic plan per statement for their whole life, with every scan
-- penalised alike (store.ByKeyPool); a plain DELETE there, planned while
-- river_job's statistics were behind, read every entry of the fetching
-- index under 'running' (each fetch leaves one, until vacuum) and filtered
-- them by id. Here index scans are the only path not penalised (the
-- function's SET), and the state test is on text, which no index serves:
-- only river_job_pkey is left (TestRecordDeletesFinishedJobsByKey).
-- STRICT: no call at all for a batch that finished nothing.
CREATE OR REPLACE FUNCTION webhookd_delete_finished_jobs(ids bigint[]) RETURNS bigint
LANGUAGE plpgsql STRICT
SET enable_indexscan = on SET enable_seqscan = off SET enable_bitmapscan = off
AS $$
DECLARE
    deleted bigint;
BEGIN
    DELETE FROM river_job WHERE id = ANY(ids) AND state::text = 'running';
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$$;
