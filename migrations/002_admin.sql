-- webhookd schema, version 2: API keys with scopes, replays, bulk replays,
-- secret reveals.

CREATE TABLE api_keys (
    id           text        PRIMARY KEY,
    -- The first characters of the key, shown in listings.
    prefix       text        NOT NULL,
    -- SHA-256 of the whole key; keys are looked up by it.
    hash         bytea       NOT NULL UNIQUE,
    scope        text        NOT NULL CHECK (scope IN ('admin', 'account', 'events:write')),
    account_id   text,
    description  text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CHECK (scope <> 'account' OR account_id IS NOT NULL),
    CHECK (scope <> 'admin' OR account_id IS NULL)
);

CREATE INDEX api_keys_account_idx ON api_keys (account_id, id);

-- Who replayed what, and when. A replay starts generation `generation`.
CREATE TABLE delivery_replays (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id text        NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    generation  integer     NOT NULL,
    from_state  text        NOT NULL,
    key_id      text,
    batch_id    text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX delivery_replays_delivery_idx ON delivery_replays (delivery_id, id);

-- A bulk replay: the matching deliveries are fixed when it is requested and
-- replayed by a background River job.
CREATE TABLE replay_batches (
    id          text        PRIMARY KEY,
    filter      jsonb       NOT NULL,
    key_id      text,
    total       integer     NOT NULL,
    replayed    integer     NOT NULL DEFAULT 0,
    skipped     integer     NOT NULL DEFAULT 0,
    state       text        NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

CREATE TABLE replay_batch_items (
    batch_id    text    NOT NULL REFERENCES replay_batches (id) ON DELETE CASCADE,
    delivery_id text    NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    -- The delivery's generation and state when the batch was fixed: the
    -- replay only happens if they still hold, so a second batch over the
    -- same deliveries can't queue one twice.
    generation  integer NOT NULL,
    from_state  text    NOT NULL,
    -- NULL until processed; then whether it was replayed.
    replayed    boolean,
    PRIMARY KEY (batch_id, delivery_id)
);

CREATE INDEX replay_batch_items_todo_idx ON replay_batch_items (batch_id, delivery_id) WHERE replayed IS NULL;

-- The dashboard's eye: that a secret was revealed, by which key, never the value.
CREATE TABLE secret_reveals (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id text        NOT NULL REFERENCES webhooks (id),
    key_id     text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX secret_reveals_webhook_idx ON secret_reveals (webhook_id, id);
