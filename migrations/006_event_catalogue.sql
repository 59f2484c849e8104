-- webhookd schema, version 6: the event catalogue. Each event type has a
-- description, a JSON Schema (draft 2020-12) for its `data`, an example
-- `data`, and whether enqueue validates `data` against the schema. Schema
-- and example are stored as the text registered (`json` keeps key order),
-- compacted.

CREATE TABLE event_types (
    type          text        PRIMARY KEY CHECK (type ~ '^[a-z][a-z0-9_.]{0,99}$'),
    description   text        NOT NULL DEFAULT '',
    schema        json        NOT NULL,
    example       json        NOT NULL,
    -- Enqueue (POST /v1/events and /v1/events/batch) refuses `data` that
    -- does not match the schema.
    validate      boolean     NOT NULL DEFAULT false,
    -- A deprecated type is still accepted; the catalogue says not to use it.
    deprecated_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The API's caches reload only the types that validate.
CREATE INDEX event_types_validate_idx ON event_types (type) WHERE validate;

-- The seed's money rule, as an example: amounts are integers in the
-- smallest currency unit (240000 = 2,400.00 COP); fx_rates is a decimal
-- string ("4002.24"). Validation is off until an admin turns it on.
INSERT INTO event_types (type, description, schema, example, validate) VALUES (
    'bank_transfer_approved',
    'A bank transfer was approved. Money fields are integers in the smallest currency unit (cents: 240000 = 2,400.00); fx_rates is a decimal string.',
    '{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["id","amount","currency","status"],"properties":{"id":{"type":"string","minLength":1},"amount":{"type":"integer","minimum":0,"description":"In the smallest currency unit: 240000 = 2,400.00"},"fee":{"type":"integer","minimum":0,"description":"In the smallest currency unit: 160 = 1.60"},"currency":{"type":"string","pattern":"^[A-Z]{3}$"},"fx_rates":{"type":"string","pattern":"^[0-9]+(\\.[0-9]+)?$","description":"A decimal exchange rate as a string: \"4002.24\""},"status":{"type":"string","enum":["approved"]}}}',
    '{"id":"trf_9f8e7d6c","amount":240000,"fee":160,"currency":"COP","fx_rates":"4002.24","status":"approved"}',
    false
);
