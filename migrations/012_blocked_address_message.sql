-- webhookd schema, version 12: stored attempts of kind blocked_address stop
-- naming the address a webhook's host resolved to.
--
-- Until this version an attempt refused by the outbound policy stored a
-- message such as "... resolved to an address that is not allowed: it is a
-- private network address (10.0.0.0/8)", shown to the account through the
-- deliveries API and the dashboard: an account key could map internal DNS
-- with test sends. New attempts store only the text below (outbound's
-- BlockedMessage) and the server log keeps the reason. This rewrites the
-- ones already stored.
--
-- One statement on the partitioned table (every day partition and the
-- default one; part_day does not change, so no row moves). There is no
-- index on error_kind: it reads attempts once, and writes only the blocked
-- ones, which are few. Rerunning it finds nothing left to change.

UPDATE attempts
SET error_message = 'the address is not allowed: webhooks must be reachable on the public internet'
WHERE error_kind = 'blocked_address'
  AND error_message IS DISTINCT FROM 'the address is not allowed: webhooks must be reachable on the public internet';
