-- webhookd schema, version 15: webhookd's own notification types in the
-- event catalogue (issue 23). A webhook subscribes to one by naming it in
-- its event_types; their events belong to the internal account _webhookd.
-- Producers can't send them.
INSERT INTO event_types (type, description, schema, example, validate) VALUES
(
    'webhook.paused',
    'webhookd''s notification: a webhook was paused (reason manual: by hand; auto: no successful attempt for WEBHOOKD_AUTO_PAUSE_AFTER; gone: its endpoint answered 410 Gone and its on_gone is pause). Its deliveries wait; nothing is lost.',
    '{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["webhook_id","account_id","url","reason","paused_at"],"additionalProperties":false,"properties":{"webhook_id":{"type":"string","pattern":"^wh_[0-9a-f]{32}$"},"account_id":{"type":"string"},"url":{"type":"string","description":"The webhook''s normalised URL"},"reason":{"type":"string","enum":["manual","auto","gone"]},"paused_at":{"type":"string","format":"date-time"}}}',
    '{"webhook_id":"wh_0193a5b2c4d87e6f9a0b1c2d3e4f5a6b","account_id":"acct_123","url":"https://hooks.example.com/webhooks/mono","reason":"gone","paused_at":"2026-12-05T12:45:07.247889Z"}',
    false
),
(
    'webhook.resumed',
    'webhookd''s notification: a paused webhook was resumed; deliveries is how many paused deliveries went back on their schedule.',
    '{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["webhook_id","account_id","url","resumed_at","deliveries"],"additionalProperties":false,"properties":{"webhook_id":{"type":"string","pattern":"^wh_[0-9a-f]{32}$"},"account_id":{"type":"string"},"url":{"type":"string"},"resumed_at":{"type":"string","format":"date-time"},"deliveries":{"type":"integer","minimum":0}}}',
    '{"webhook_id":"wh_0193a5b2c4d87e6f9a0b1c2d3e4f5a6b","account_id":"acct_123","url":"https://hooks.example.com/webhooks/mono","resumed_at":"2026-12-05T13:02:11.031245Z","deliveries":42}',
    false
),
(
    'delivery.dead',
    'webhookd''s notification: deliveries to a webhook died after their tenth attempt. At most one per webhook per minute: count is how many died in that minute, delivery_ids the first of them (at most 10).',
    '{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["webhook_id","account_id","url","count","delivery_ids","since"],"additionalProperties":false,"properties":{"webhook_id":{"type":"string","pattern":"^wh_[0-9a-f]{32}$"},"account_id":{"type":"string"},"url":{"type":"string"},"count":{"type":"integer","minimum":1},"delivery_ids":{"type":"array","maxItems":10,"items":{"type":"string","pattern":"^dlv_[0-9a-f]{32}$"}},"since":{"type":"string","format":"date-time"}}}',
    '{"webhook_id":"wh_0193a5b2c4d87e6f9a0b1c2d3e4f5a6b","account_id":"acct_123","url":"https://hooks.example.com/webhooks/mono","count":3,"delivery_ids":["dlv_0193a5b2c4d87e6f9a0b1c2d3e4f5a70","dlv_0193a5b2c4d87e6f9a0b1c2d3e4f5a71","dlv_0193a5b2c4d87e6f9a0b1c2d3e4f5a72"],"since":"2026-12-05T13:01:00Z"}',
    false
),
(
    'endpoint.failing',
    'webhookd''s notification: a webhook''s consecutive failed attempts crossed the threshold. Not sent again for that webhook until one of its attempts has succeeded.',
    '{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["webhook_id","account_id","url","consecutive_failures","threshold","last_failure_kind"],"additionalProperties":false,"properties":{"webhook_id":{"type":"string","pattern":"^wh_[0-9a-f]{32}$"},"account_id":{"type":"string"},"url":{"type":"string"},"consecutive_failures":{"type":"integer","minimum":1},"threshold":{"type":"integer","minimum":1},"last_failure_kind":{"type":["string","null"]}}}',
    '{"webhook_id":"wh_0193a5b2c4d87e6f9a0b1c2d3e4f5a6b","account_id":"acct_123","url":"https://hooks.example.com/webhooks/mono","consecutive_failures":10,"threshold":10,"last_failure_kind":"http_status"}',
    false
)
ON CONFLICT (type) DO NOTHING;
