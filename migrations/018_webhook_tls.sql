-- webhookd schema, version 18: per-webhook TLS settings (issue 24).
-- tls_ciphertext (under tls_key_id) is the encrypted JSON of the client
-- certificate chain and its key, never returned by the API; the CA bundle
-- is public and kept as given. The client certificate's subject, issuer,
-- serial and expiry are copied out so the API and the expiry metric can
-- show them without decrypting.
ALTER TABLE webhooks
    ADD COLUMN tls_ciphertext bytea,
    ADD COLUMN tls_key_id text,
    ADD COLUMN tls_ca_bundle text,
    ADD COLUMN tls_cert_subject text,
    ADD COLUMN tls_cert_issuer text,
    ADD COLUMN tls_cert_serial text,
    ADD COLUMN tls_cert_not_after timestamptz;

-- The expiry metric counts live webhooks whose certificate expires soon.
CREATE INDEX webhooks_tls_cert_not_after ON webhooks (tls_cert_not_after)
    WHERE tls_cert_not_after IS NOT NULL AND deleted_at IS NULL;
