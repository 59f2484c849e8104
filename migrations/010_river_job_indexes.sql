---- tern: disable-tx ----
-- webhookd schema, version 10: three of River's indexes on river_job go.
--
-- River creates a GIN index on river_job.args and one on river_job.metadata
-- (for its JobListParams.Metadata filter) and a B-tree on kind (River UI's
-- kind list and filter). webhookd queries none of them, and river_job holds
-- only the jobs not yet finished and a few minutes of completed ones. But a
-- job row changes state twice (fetched, completed), neither change can be
-- HOT (state is indexed), and every new row version is added to every
-- index: with fastupdate, a GIN entry is also a write to the index's
-- metapage. Measured over a drain of 50,000 deliveries: GIN records were a
-- quarter of all WAL (53 of 209 MB; 4 of 28 records per delivery), and
-- commits queued on WAL flushes behind them (LWLock:WALWrite). Alternating
-- runs, BENCHMARKS.md:
--   without the GIN indexes: drain +4 / +10 %; sustained 2,000/s p99 152 /
--   104 ms against 194 / 250 ms; the noisy neighbour's p99 170 / 143 ms
--   against 211 / 209 ms;
--   without river_job_kind as well: drain +16 / +6 %, latencies the same.
--
-- River's reindexer is told not to look for them (server.RiverReindexIndexes).
-- A query on args, metadata or kind still works; it reads the table, which
-- costs River UI's kind list a scan of river_job.
-- Dropped CONCURRENTLY, so a running deployment's workers go on meanwhile.

DROP INDEX CONCURRENTLY IF EXISTS river_job_args_index;
DROP INDEX CONCURRENTLY IF EXISTS river_job_metadata_index;
DROP INDEX CONCURRENTLY IF EXISTS river_job_kind;
