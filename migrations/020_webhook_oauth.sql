-- webhookd schema, version 20: per-webhook OAuth2 client credentials
-- (issue 24). One row per webhook that has the setting; the client secret
-- is encrypted (secret_ciphertext under secret_key_id) and never returned.
-- Tokens are never stored: each process caches them in memory.
CREATE TABLE webhook_oauth (
    webhook_id        text PRIMARY KEY REFERENCES webhooks (id),
    token_url         text NOT NULL,
    client_id         text NOT NULL,
    secret_ciphertext bytea NOT NULL,
    secret_key_id     text NOT NULL,
    scopes            text[] NOT NULL DEFAULT '{}',
    audience          text NOT NULL DEFAULT '',
    auth_style        text NOT NULL CHECK (auth_style IN ('header', 'body')),
    updated_at        timestamptz NOT NULL
);
