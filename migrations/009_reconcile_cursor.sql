-- webhookd schema, version 9: where the reconciler's walk has got to.

-- The reconciler checks pending deliveries a slice at a time, in job id
-- order, from where its last pass stopped, so that a pass costs the same
-- whatever the backlog (see dispatcher.Reconciler).
CREATE TABLE webhookd_cursors (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
