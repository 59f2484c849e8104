-- webhookd schema, version 25: attempts have one index, their primary key
-- (delivery_id, id, part_day), instead of two (issue 30; BENCHMARKS.md,
-- "Less WAL per delivery: River's job rows and the attempts' one index").
--
-- Every read of attempts is by delivery (a delivery's attempts in order,
-- the dashboard's join); none is by attempt id alone. The old primary key
-- (id, part_day) served no query, yet every attempt wrote an entry in it
-- (~75 bytes of WAL, and its space) besides the one in
-- attempts_delivery_idx (delivery_id, id). The new primary key is that
-- index with part_day (a key of a partitioned table must hold its
-- partition key); ids still come from the attempt_ids sequence.
--
-- Blocking: the new key is built under an exclusive lock on attempts, so
-- recording attempts and reading them wait while it is built (~1.3 s per
-- million attempts in cache on the project's 2-core machine). On a large
-- table build it first, one partition at a time and without blocking
-- (docs/operators.md, "Migrations and upgrades"): an index named
-- <partition>_delivery_key that is valid, unique and on exactly
-- (delivery_id, id, part_day) becomes that partition's key here, and the
-- table's key then takes it over instead of building.
DO $$
DECLARE
    part oid;
    name text;
    ready regclass;
BEGIN
    EXECUTE format('ALTER TABLE attempts DROP CONSTRAINT %I',
                   (SELECT conname FROM pg_constraint WHERE conrelid = 'attempts'::regclass AND contype = 'p'));
    FOR part, name IN SELECT c.oid, c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                      WHERE i.inhparent = 'attempts'::regclass LOOP
        SELECT x.indexrelid::regclass INTO ready
        FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid
        WHERE x.indrelid = part AND ic.relname = name || '_delivery_key'
          AND x.indisvalid AND x.indisunique AND x.indpred IS NULL AND x.indexprs IS NULL
          AND (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, n)
               JOIN pg_attribute a ON a.attrelid = part AND a.attnum = k.attnum) = ARRAY['delivery_id', 'id', 'part_day']::name[];
        IF ready IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I PRIMARY KEY USING INDEX %I', part::regclass, name || '_pkey', name || '_delivery_key');
        END IF;
    END LOOP;
END
$$;
ALTER TABLE attempts ADD CONSTRAINT attempts_pkey PRIMARY KEY (delivery_id, id, part_day);
DROP INDEX IF EXISTS attempts_delivery_idx;
