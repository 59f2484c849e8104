package server_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testdb"
)

// After the migrations, river_job has none of the indexes migration 10
// drops, and every index River's reindexer is given exists (otherwise it
// warns each day that it can't find them).
func TestRiverJobIndexes(t *testing.T) {
	t.Parallel()
	tx := testdb.Tx(t) // reads the schema only
	rows, err := tx.Query(context.Background(), `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'river_job'`)
	require.NoError(t, err)
	have := map[string]bool{}
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		have[name] = true
	}
	require.NoError(t, rows.Err())

	for _, gone := range []string{"river_job_args_index", "river_job_metadata_index", "river_job_kind"} {
		require.False(t, have[gone], "river_job still has %s", gone)
	}
	reindexed := server.RiverReindexIndexes()
	require.NotEmpty(t, reindexed)
	for _, name := range reindexed {
		require.True(t, have[name], "River's reindexer is given %s, which river_job doesn't have", name)
	}
	// The indexes River's hot path needs are still there.
	for _, name := range []string{"river_job_pkey", "river_job_prioritized_fetching_index", "river_job_state_and_finalized_at_index"} {
		require.True(t, have[name], "river_job lost %s", name)
	}
}
