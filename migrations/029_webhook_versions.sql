-- webhookd schema version 29: a version per account's webhooks, so that
-- the intake can keep them in memory without reading them for each event
-- (issue 30).
--
-- POST /v1/events reads the account's live webhooks in its transaction to
-- fan an event out: one round trip of three at low rates. A process may
-- now keep what it read (WEBHOOKD_INTAKE_WEBHOOK_CACHE) with the account's
-- version read in the same statement, and send the insert with the
-- versions it used: webhookd_webhooks_unchanged raises SQLSTATE WHK01 when
-- one of them is no longer current, the transaction rolls back (nothing is
-- stored) and the process reads the webhooks again and retries. So an
-- event fans out to exactly the webhooks a read at its insert would see,
-- in every process, whoever changed them and however (the API, the
-- dashboard, the CLI, plain SQL).
--
--   webhook_versions   one row per account whose webhooks changed since
--                      this migration (none: version 0). Every INSERT,
--                      DELETE or UPDATE of a column the fan-out or an
--                      attempt reads sets the account's version to the
--                      next value of webhook_version_seq, in the changing
--                      transaction (a TRUNCATE: every account that had
--                      webhooks). A sequence, not a counter: versions
--                      never repeat.
--                      Changes to one account's webhooks wait for each
--                      other's commit at that row.
--
-- Safe on a live database: it creates objects and adds triggers to
-- webhooks (a short lock of the table); no row is rewritten. A process of
-- an earlier version neither reads nor needs the table; its changes to
-- webhooks set versions all the same, through the triggers.

CREATE SEQUENCE IF NOT EXISTS webhook_version_seq;

CREATE TABLE IF NOT EXISTS webhook_versions (
    account_id text   PRIMARY KEY,
    version    bigint NOT NULL
);

CREATE OR REPLACE FUNCTION webhookd_bump_webhook_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        -- Before the rows go: every account that has webhooks gets a new
        -- version (an account never versioned must not read as unchanged,
        -- version 0, with its webhooks gone).
        INSERT INTO webhook_versions (account_id, version)
        SELECT a.account_id, nextval('webhook_version_seq') FROM (SELECT DISTINCT account_id FROM webhooks) a
        ON CONFLICT (account_id) DO UPDATE SET version = EXCLUDED.version;
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO webhook_versions (account_id, version) VALUES (OLD.account_id, nextval('webhook_version_seq'))
        ON CONFLICT (account_id) DO UPDATE SET version = EXCLUDED.version;
    END IF;
    IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.account_id IS DISTINCT FROM OLD.account_id) THEN
        INSERT INTO webhook_versions (account_id, version) VALUES (NEW.account_id, nextval('webhook_version_seq'))
        ON CONFLICT (account_id) DO UPDATE SET version = EXCLUDED.version;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS webhooks_version_insert_delete ON webhooks;
CREATE TRIGGER webhooks_version_insert_delete AFTER INSERT OR DELETE ON webhooks
    FOR EACH ROW EXECUTE FUNCTION webhookd_bump_webhook_version();

-- The columns store.LiveWebhooksWithTargets reads (and account_id,
-- deleted_at): a change to another (description, metadata) keeps the
-- version.
DROP TRIGGER IF EXISTS webhooks_version_update ON webhooks;
CREATE TRIGGER webhooks_version_update AFTER UPDATE ON webhooks
    FOR EACH ROW
    WHEN ((OLD.account_id, OLD.deleted_at, OLD.event_types, OLD.paused_at, OLD.ordering, OLD.rate_limit_per_second,
           OLD.url_normalized, OLD.secret_ciphertext, OLD.secret_key_id, OLD.headers_ciphertext, OLD.headers_key_id,
           OLD.previous_secret_ciphertext, OLD.previous_secret_key_id, OLD.previous_secret_expires_at,
           OLD.signature_scheme, OLD.on_gone, OLD.tls_ciphertext, OLD.tls_key_id, OLD.tls_ca_bundle)
          IS DISTINCT FROM
          (NEW.account_id, NEW.deleted_at, NEW.event_types, NEW.paused_at, NEW.ordering, NEW.rate_limit_per_second,
           NEW.url_normalized, NEW.secret_ciphertext, NEW.secret_key_id, NEW.headers_ciphertext, NEW.headers_key_id,
           NEW.previous_secret_ciphertext, NEW.previous_secret_key_id, NEW.previous_secret_expires_at,
           NEW.signature_scheme, NEW.on_gone, NEW.tls_ciphertext, NEW.tls_key_id, NEW.tls_ca_bundle))
    EXECUTE FUNCTION webhookd_bump_webhook_version();

DROP TRIGGER IF EXISTS webhooks_version_truncate ON webhooks;
CREATE TRIGGER webhooks_version_truncate BEFORE TRUNCATE ON webhooks
    FOR EACH STATEMENT EXECUTE FUNCTION webhookd_bump_webhook_version();

-- webhookd_webhooks_unchanged is true when each of accounts still has its
-- version (0: no row); otherwise it raises SQLSTATE WHK01, which fails the
-- statement that called it and, with it, the transaction. STABLE: it reads
-- with the calling statement's snapshot.
CREATE OR REPLACE FUNCTION webhookd_webhooks_unchanged(accounts text[], versions bigint[]) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM unnest(accounts, versions) AS a (account_id, version)
        LEFT JOIN webhook_versions v ON v.account_id = a.account_id
        WHERE coalesce(v.version, 0) <> a.version
    ) THEN
        RAISE EXCEPTION 'the webhooks of an account changed since this process read them'
            USING ERRCODE = 'WHK01';
    END IF;
    RETURN true;
END
$$;
