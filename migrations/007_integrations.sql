-- webhookd schema, version 7: what integrators need beyond the envelope.
--
-- Custom headers per webhook, sent on every attempt: the names in the clear
-- (shown by the API), the name → value map encrypted like the secret (with
-- the keyring, bound to the webhook id).
ALTER TABLE webhooks
    ADD COLUMN header_names       text[] NOT NULL DEFAULT '{}',
    ADD COLUMN headers_ciphertext bytea,
    ADD COLUMN headers_key_id     text;

-- The W3C traceparent the producer gave on enqueue; each attempt carries its
-- trace id (with a span id of its own).
ALTER TABLE events ADD COLUMN traceparent text;

-- A test send (POST /v1/webhooks/{id}/test): one attempt, never retried,
-- marked in the history.
ALTER TABLE deliveries ADD COLUMN test boolean NOT NULL DEFAULT false;
