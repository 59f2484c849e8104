-- webhookd schema, version 8: endpoint and key lifecycle.

-- Secret rotation with overlap: the secret before the current one signs
-- too (a second v1=) until it expires.
ALTER TABLE webhooks
    ADD COLUMN previous_secret_ciphertext bytea,
    ADD COLUMN previous_secret_key_id     text,
    ADD COLUMN previous_secret_expires_at timestamptz,
    -- Event-type filters: exact names, or a prefix ending in *; empty: all.
    ADD COLUMN event_types                text[] NOT NULL DEFAULT '{}',
    -- Pause without loss: while set, deliveries wait in state paused.
    ADD COLUMN paused_at                  timestamptz,
    ADD COLUMN pause_reason               text CHECK (pause_reason IN ('manual', 'auto'));

-- Every pause and resume, by whom (an API key id; NULL for the bootstrap
-- key or webhookd itself) and how many deliveries it resumed.
CREATE TABLE webhook_pauses (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id text        NOT NULL REFERENCES webhooks (id),
    action     text        NOT NULL CHECK (action IN ('pause', 'resume')),
    reason     text        NOT NULL CHECK (reason IN ('manual', 'auto')),
    key_id     text,
    deliveries integer     NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_pauses_webhook_idx ON webhook_pauses (webhook_id, id);

-- The state check (named deliveries_state_check1 by migration 5, whose
-- old table still held the plain name then), whatever its name.
DO $$
DECLARE
    c text;
BEGIN
    FOR c IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'deliveries'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%state%'
    LOOP
        EXECUTE format('ALTER TABLE deliveries DROP CONSTRAINT %I', c);
    END LOOP;
END
$$;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
    CHECK (state IN ('pending', 'succeeded', 'dead', 'cancelled', 'paused'));

-- Resuming reads a webhook's paused deliveries in the order they were due.
CREATE INDEX deliveries_paused_idx ON deliveries (webhook_id, next_attempt_at, id) WHERE state = 'paused';

-- Endpoint health, folded in by each worker process every few seconds
-- (never on the hot path): consecutive failed attempts, the last success
-- and failure, and per-minute counts for the success rate of the last hour.
CREATE TABLE webhook_health (
    webhook_id           text        PRIMARY KEY REFERENCES webhooks (id),
    consecutive_failures integer     NOT NULL DEFAULT 0,
    last_success_at      timestamptz,
    last_failure_at      timestamptz,
    last_failure_kind    text,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_health_minutes (
    webhook_id text        NOT NULL,
    minute     timestamptz NOT NULL,
    successes  integer     NOT NULL DEFAULT 0,
    failures   integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (webhook_id, minute)
);

CREATE INDEX webhook_health_minutes_minute_idx ON webhook_health_minutes (minute);

-- API-key rotation: a rotated key keeps working until expires_at.
ALTER TABLE api_keys
    ADD COLUMN expires_at  timestamptz,
    ADD COLUMN replaced_by text;
