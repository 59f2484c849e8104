-- webhookd schema, version 17: delivery.dead notifications (issue 23). The
-- reconciler reads the deliveries that died since its last notice, by the
-- time they died, through this index.
CREATE INDEX deliveries_dead_finished_idx ON deliveries (finished_at) WHERE state = 'dead';
