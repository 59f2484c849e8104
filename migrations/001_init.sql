-- webhookd schema, version 1. River's own tables are created by rivermigrate.

CREATE TABLE webhooks (
    id                text        PRIMARY KEY,
    account_id        text        NOT NULL,
    url               text        NOT NULL,
    url_normalized    text        NOT NULL,
    description       text        NOT NULL DEFAULT '',
    secret_ciphertext bytea       NOT NULL,
    secret_key_id     text        NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz
);

-- One live webhook per (account, URL); a deleted one frees the URL again.
CREATE UNIQUE INDEX webhooks_account_url_live_idx
    ON webhooks (account_id, url_normalized) WHERE deleted_at IS NULL;
CREATE INDEX webhooks_account_live_idx
    ON webhooks (account_id, id) WHERE deleted_at IS NULL;

CREATE TABLE events (
    id              text        PRIMARY KEY,
    account_id      text        NOT NULL,
    type            text        NOT NULL,
    -- The exact envelope bytes sent on every attempt and replay.
    body            bytea       NOT NULL,
    occurred_at     timestamptz NOT NULL,
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX events_account_idx ON events (account_id, id);

CREATE TABLE idempotency_keys (
    account_id   text        NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    event_id     text        NOT NULL REFERENCES events (id) ON DELETE CASCADE
                             DEFERRABLE INITIALLY DEFERRED,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);

CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

CREATE TABLE deliveries (
    id              text        PRIMARY KEY,
    event_id        text        NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    webhook_id      text        NOT NULL REFERENCES webhooks (id),
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
    finished_at     timestamptz
);

CREATE INDEX deliveries_event_idx ON deliveries (event_id);
CREATE INDEX deliveries_webhook_idx ON deliveries (webhook_id, id DESC);
CREATE INDEX deliveries_account_idx ON deliveries (account_id, id DESC);
-- Partial indexes on the states that are listed or scanned, so updates of
-- pending rows (the hot path) only touch them when the state changes.
CREATE INDEX deliveries_dead_idx ON deliveries (id DESC) WHERE state = 'dead';
CREATE INDEX deliveries_pending_job_idx ON deliveries (job_id) WHERE state = 'pending';

CREATE TABLE attempts (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      text        NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
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
    signature_t      bigint      NOT NULL
);

CREATE INDEX attempts_delivery_idx ON attempts (delivery_id, id);
