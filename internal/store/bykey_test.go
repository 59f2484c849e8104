package store

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
)

// Prewarm leaves n connections open and idle in the pool, never more than
// the pool may open.
func TestPrewarm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := testdb.New(t)
	cfg := base.Config().Copy()
	cfg.MaxConns = 3
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	require.Zero(t, pool.Stat().TotalConns(), "a new pool opens nothing")

	require.NoError(t, Prewarm(ctx, pool, 2))
	require.EqualValues(t, 2, pool.Stat().IdleConns())
	require.NoError(t, Prewarm(ctx, pool, 10))
	require.EqualValues(t, 3, pool.Stat().TotalConns(), "at most MaxConns")
	require.EqualValues(t, 3, pool.Stat().IdleConns(), "all released")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	fresh, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer fresh.Close()
	require.ErrorContains(t, Prewarm(cancelled, fresh, 2), "error opening database connections ahead")
}
