-- webhookd schema, version 13: portal links, and the portal:write scope
-- that mints them.
--
-- A product's backend, which already knows who its signed-in user is,
-- mints a short-lived, single-use link (POST /v1/portal-links) and sends
-- the user's browser to it; opening it signs the browser in to the
-- dashboard for that one account. The link carries a random token; only
-- its SHA-256 is stored, so reading this table does not let anyone sign
-- in. Each row is the record of one link: who minted it and from where,
-- when (and from where) it was used, and whether it was revoked.
-- Revoking an account's links (DELETE /v1/portal-links?account_id=) also
-- ends the dashboard sessions they opened.

CREATE TABLE portal_links (
    id                text        PRIMARY KEY,
    -- SHA-256 of the link's token; a link is looked up by it.
    token_hash        bytea       NOT NULL UNIQUE,
    account_id        text        NOT NULL,
    -- The API key that minted it ('bootstrap' for the bootstrap admin
    -- key) and the client address it was minted from.
    created_by_key_id text        NOT NULL,
    created_from      text        NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    -- Set once, by the one request that used it.
    used_at           timestamptz,
    used_from         text,
    used_user_agent   text,
    revoked_at        timestamptz,
    revoked_by_key_id text,
    CHECK (expires_at > created_at)
);

CREATE INDEX portal_links_account_idx ON portal_links (account_id, id);
CREATE INDEX portal_links_expires_idx ON portal_links (expires_at);

-- A session opened with a portal link acts as the link's account; it ends
-- when the link is revoked (read with the session on every request) or
-- its row is removed.
ALTER TABLE dashboard_sessions
    ADD COLUMN portal_link_id text REFERENCES portal_links (id) ON DELETE CASCADE;

CREATE INDEX dashboard_sessions_portal_link_idx ON dashboard_sessions (portal_link_id) WHERE portal_link_id IS NOT NULL;

-- portal:write keys may only mint and revoke portal links (for any account,
-- or bound to one).
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scope_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scope_check
    CHECK (scope IN ('admin', 'account', 'events:write', 'portal:write'));
