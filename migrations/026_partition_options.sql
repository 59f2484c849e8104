-- webhookd schema, version 26: a new day partition takes the storage
-- parameters of its table's default partition (fillfactor, autovacuum
-- settings), so an operator sets them once, on deliveries_default,
-- attempts_default or events_default, and every partition made later has
-- them (docs/operators.md, "PostgreSQL settings").
--
-- Until now the function wrote deliveries' fillfactor 90 (migration 22)
-- into itself. deliveries_default has had fillfactor 90 since migration 22,
-- so a deployment that changes nothing gets the partitions it got before.
-- An option is copied as the default partition's pg_class.reloptions says
-- it, each value quoted.
CREATE OR REPLACE FUNCTION webhookd_ensure_partition(parent text, day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text := parent || '_p' || to_char(day, 'YYYYMMDD');
    options text;
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    SELECT ' WITH (' || string_agg(format('%s = %L', split_part(o, '=', 1), substr(o, strpos(o, '=') + 1)), ', ') || ')'
    INTO options
    FROM pg_class c, unnest(c.reloptions) o
    WHERE c.oid = to_regclass(parent || '_default');
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)%s', name, parent, coalesce(options, ''));
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE part_day = %L RETURNING *) INSERT INTO %I SELECT * FROM moved',
                   parent || '_default', day, name);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, name, day, day + 1);
    RETURN true;
END
$$;
