-- webhookd schema, version 14: Standard Webhooks signatures and 410 handling
-- (issue 23).

-- signature_scheme: 'mono' sends Mono-Signature only (as before);
-- 'standard' also sends webhook-id, webhook-timestamp and webhook-signature.
-- on_gone: 'retry' treats a 410 like any failure (as before); 'pause'
-- pauses the webhook (pause_reason 'gone') once a 410 is recorded.
ALTER TABLE webhooks
    ADD COLUMN signature_scheme text NOT NULL DEFAULT 'mono' CHECK (signature_scheme IN ('mono', 'standard')),
    ADD COLUMN on_gone          text NOT NULL DEFAULT 'retry' CHECK (on_gone IN ('retry', 'pause'));

-- pause_reason gains 'gone': paused because the endpoint answered 410.
ALTER TABLE webhooks DROP CONSTRAINT webhooks_pause_reason_check;
ALTER TABLE webhooks ADD CONSTRAINT webhooks_pause_reason_check CHECK (pause_reason IN ('manual', 'auto', 'gone'));
ALTER TABLE webhook_pauses DROP CONSTRAINT webhook_pauses_reason_check;
ALTER TABLE webhook_pauses ADD CONSTRAINT webhook_pauses_reason_check CHECK (reason IN ('manual', 'auto', 'gone'));
