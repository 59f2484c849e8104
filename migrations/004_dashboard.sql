-- webhookd schema, version 4: dashboard sessions.
--
-- A browser signs in to /dashboard with an API key (admin or account
-- scope) and gets a session, kept here so that any API replica serves it.
-- The cookie holds a random token; only its SHA-256 is stored, so reading
-- this table does not let anyone sign in. A session acts as its key: it
-- ends when the key is revoked (the key is looked up on every request) or
-- deleted (ON DELETE CASCADE), when it expires, or when it is signed out.
-- The bootstrap admin key has no api_keys row: key_id is NULL and key_hash
-- must still be the configured bootstrap key's, so changing
-- WEBHOOKD_BOOTSTRAP_ADMIN_KEY ends its sessions.

CREATE TABLE dashboard_sessions (
    token_hash bytea       PRIMARY KEY,
    key_id     text        REFERENCES api_keys (id) ON DELETE CASCADE,
    -- SHA-256 of the API key the session signed in with (api_keys.hash).
    key_hash   bytea       NOT NULL,
    -- The session's CSRF token: every state-changing form sends it back.
    csrf_token text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX dashboard_sessions_expires_idx ON dashboard_sessions (expires_at);
CREATE INDEX dashboard_sessions_key_idx ON dashboard_sessions (key_id);
