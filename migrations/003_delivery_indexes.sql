---- tern: disable-tx ----
-- webhookd schema, version 3: the indexes behind GET /v1/deliveries (and
-- the bulk replay's selection).
--
-- The listing is newest first by (created_at, id) with a keyset cursor, so
-- every index ends in (created_at, id) after its equality columns, and a
-- state, a time range and the cursor all become index conditions. Every
-- index on deliveries is written on every state change (a new row version
-- for a changed state is never HOT), so there are few, each serving many
-- filter combinations:
--
--   (account_id, state, created_at, id)   account, with or without a state:
--                                          without one, the query reads one
--                                          branch per state and merges them
--   (webhook_id, state, created_at, id)   the same per webhook
--   (account_id, event_type, created_at, id, state, webhook_id)
--                                          an event type; state and webhook
--                                          are filtered inside the index
--                                          (a webhook's account is looked up
--                                          first so this index applies)
--   (created_at, id, event_type) WHERE state = 'dead'
--                                          dead deliveries of every account
--                                          (SREs), small: only dead rows
--
-- They replace migration 1's (webhook_id, id), (account_id, id) and
-- (id) WHERE dead, which ordered by id alone and could not serve a state,
-- an event type or a time range. deliveries_event_idx serves event_id.
--
-- Built CONCURRENTLY (so writes go on while they build; tern runs each
-- statement on its own). Should a build fail half-way, rerunning drops the
-- invalid index it left and builds it again.

DROP INDEX CONCURRENTLY IF EXISTS deliveries_account_state_idx;
CREATE INDEX CONCURRENTLY deliveries_account_state_idx
    ON deliveries (account_id, state, created_at, id);

DROP INDEX CONCURRENTLY IF EXISTS deliveries_webhook_state_idx;
CREATE INDEX CONCURRENTLY deliveries_webhook_state_idx
    ON deliveries (webhook_id, state, created_at, id);

DROP INDEX CONCURRENTLY IF EXISTS deliveries_account_type_idx;
CREATE INDEX CONCURRENTLY deliveries_account_type_idx
    ON deliveries (account_id, event_type, created_at, id, state, webhook_id);

DROP INDEX CONCURRENTLY IF EXISTS deliveries_dead_created_idx;
CREATE INDEX CONCURRENTLY deliveries_dead_created_idx
    ON deliveries (created_at, id, event_type) WHERE state = 'dead';

DROP INDEX CONCURRENTLY IF EXISTS deliveries_webhook_idx;
DROP INDEX CONCURRENTLY IF EXISTS deliveries_account_idx;
DROP INDEX CONCURRENTLY IF EXISTS deliveries_dead_idx;
