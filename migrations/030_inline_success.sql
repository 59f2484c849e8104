-- webhookd schema, version 30: a delivery's first success is recorded in its
-- own row, not as a row of attempts (issue 30; BENCHMARKS.md, "The first
-- success in the delivery's row").
--
-- Most deliveries succeed on their first attempt, and a success already
-- rewrites the delivery's row (its state). Recording the attempt as a row
-- of attempts too cost a heap row and an entry in attempts' primary key:
-- ~340 bytes of WAL per delivery in a drain, a sixth of the whole, and
-- ~250 bytes on disk for as long as the delivery is kept. The ok_* columns
-- hold that attempt instead (~60 bytes more in the row's new version; none
-- at intake, where they are null and the row's null bitmap keeps its size).
--
-- Only the delivery's first success goes there: a success after a replay
-- finds ok_attempt_id set and is a row of attempts as before, so nothing
-- is ever overwritten. Failures, dead ends, interrupted and test-send
-- attempts are rows of attempts as before. The id comes from the same
-- sequence (attempt_ids), so a delivery's attempts keep their order.
--
-- attempt_log is every attempt, wherever it is recorded: read it, not
-- attempts. A success's inline attempt moves with its row (retention, a
-- day's partition) and goes with it.
--
-- Instant on a live database: adding nullable columns without a default
-- rewrites nothing, and the view is new.
ALTER TABLE deliveries
    ADD COLUMN IF NOT EXISTS ok_attempt_id bigint,
    ADD COLUMN IF NOT EXISTS ok_number integer,
    ADD COLUMN IF NOT EXISTS ok_generation integer,
    ADD COLUMN IF NOT EXISTS ok_scheduled_at timestamptz,
    ADD COLUMN IF NOT EXISTS ok_started_at timestamptz,
    ADD COLUMN IF NOT EXISTS ok_duration_us bigint,
    ADD COLUMN IF NOT EXISTS ok_signature_t bigint,
    ADD COLUMN IF NOT EXISTS ok_status_code integer,
    ADD COLUMN IF NOT EXISTS ok_response_excerpt bytea;

CREATE OR REPLACE VIEW attempt_log AS
    SELECT id, delivery_id, number, generation, counted, scheduled_at, started_at, duration_us,
           status_code, error_kind, error_message, response_excerpt, signature_t, part_day
    FROM attempts
    UNION ALL
    SELECT ok_attempt_id, id, ok_number, ok_generation, true, ok_scheduled_at, ok_started_at, ok_duration_us,
           ok_status_code, NULL::text, NULL::text, ok_response_excerpt, ok_signature_t, part_day
    FROM deliveries
    WHERE ok_attempt_id IS NOT NULL;
