package store

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
)

// sendCounter counts what a connection sends to PostgreSQL: each query
// (Exec, Query, and pgx's own "begin" and "commit") and each batch is one
// round trip.
type sendCounter struct{ sends atomic.Int64 }

func (c *sendCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.sends.Add(1)
	return ctx
}
func (c *sendCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *sendCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.sends.Add(1)
	return ctx
}
func (c *sendCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *sendCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// pipePool is a one-connection pool on a fresh database with a table t,
// counting its round trips.
func pipePool(t *testing.T) (*pgxpool.Pool, *sendCounter) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(testdb.NewURL(t))
	require.NoError(t, err)
	cfg.MaxConns = 1
	counter := &sendCounter{}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)")
	require.NoError(t, err)
	return pool, counter
}

// beginPipelined begins a PipelinedTx that a failed test still releases
// (rolled back before the pool closes, which waits for it).
func beginPipelined(t *testing.T, pool *pgxpool.Pool) *PipelinedTx {
	t.Helper()
	tx, err := BeginPipelined(context.Background(), pool)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

func countRows(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM t").Scan(&n))
	return n
}

// BEGIN goes with the first statement and a queued statement with the
// COMMIT: a transaction of a query, an exec and a queued insert takes three
// round trips where pgx's takes five, and stores the same.
func TestPipelinedTxRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, counter := pipePool(t)
	_, err := pool.Exec(ctx, "INSERT INTO t VALUES (1, 'a')")
	require.NoError(t, err)

	run := func(tx pgx.Tx, id int) {
		var v string
		require.NoError(t, tx.QueryRow(ctx, "SELECT v FROM t WHERE id = $1", 1).Scan(&v))
		require.Equal(t, "a", v)
		_, err := tx.Exec(ctx, "INSERT INTO t VALUES ($1, 'b')", id)
		require.NoError(t, err)
		if p, ok := tx.(*PipelinedTx); ok {
			p.Queue("INSERT INTO t VALUES ($1, 'c')", id+1)
		} else {
			_, err := tx.Exec(ctx, "INSERT INTO t VALUES ($1, 'c')", id+1)
			require.NoError(t, err)
		}
		require.NoError(t, tx.Commit(ctx))
	}

	before := counter.sends.Load()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	run(tx, 10)
	plain := counter.sends.Load() - before

	before = counter.sends.Load()
	ptx := beginPipelined(t, pool)
	run(ptx, 20)
	pipelined := counter.sends.Load() - before

	require.Equal(t, int64(5), plain, "pgx's transaction: begin, query, exec, exec, commit")
	require.Equal(t, int64(3), pipelined, "begin with the query, the exec, the queued insert with the commit")
	require.Equal(t, 5, countRows(t, pool))
	require.ErrorIs(t, ptx.Rollback(ctx), pgx.ErrTxClosed, "rollback after commit does nothing")
	require.ErrorIs(t, ptx.Commit(ctx), pgx.ErrTxClosed)
}

// Nothing is visible to others before Commit returns, and a rollback drops
// what was sent and what was queued; the connection goes back to the pool
// clean each time.
func TestPipelinedTxRollback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, counter := pipePool(t)

	// A transaction that sent nothing costs nothing.
	before := counter.sends.Load()
	tx := beginPipelined(t, pool)
	tx.Queue("INSERT INTO t VALUES (1, 'a')")
	require.NoError(t, tx.Rollback(ctx))
	require.Equal(t, before, counter.sends.Load())

	tx = beginPipelined(t, pool)
	_, err := tx.Exec(ctx, "INSERT INTO t VALUES (2, 'b')")
	require.NoError(t, err)
	tx.Queue("INSERT INTO t VALUES (3, 'c')")
	require.NoError(t, tx.Rollback(ctx))
	require.Equal(t, 0, countRows(t, pool))

	// Statements only queued go with the BEGIN and the COMMIT, in one
	// round trip.
	before = counter.sends.Load()
	tx = beginPipelined(t, pool)
	tx.Queue("INSERT INTO t VALUES (6, 'f')")
	tx.Queue("INSERT INTO t VALUES (7, 'g')")
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, before+1, counter.sends.Load())
	require.Equal(t, 2, countRows(t, pool))
	_, err = pool.Exec(ctx, "DELETE FROM t")
	require.NoError(t, err)

	// Uncommitted rows are not seen from another connection.
	tx = beginPipelined(t, pool)
	_, err = tx.Exec(ctx, "INSERT INTO t VALUES (4, 'd')")
	require.NoError(t, err)
	other, err := pgx.Connect(ctx, pool.Config().ConnConfig.ConnString())
	require.NoError(t, err)
	defer other.Close(ctx)
	var n int
	require.NoError(t, other.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n))
	require.Zero(t, n)
	require.NoError(t, tx.Commit(ctx))
	require.NoError(t, other.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n))
	require.Equal(t, 1, n)

	// A rollback whose context is gone waits for nothing: the connection
	// is closed (PostgreSQL rolls back), and the pool opens another.
	tx = beginPipelined(t, pool)
	_, err = tx.Exec(ctx, "INSERT INTO t VALUES (5, 'e')")
	require.NoError(t, err)
	gone, cancel := context.WithCancel(ctx)
	cancel()
	require.Error(t, tx.Rollback(gone))
	require.Equal(t, 1, countRows(t, pool), "row 5 rolled back")
}

// A queued statement's error is the commit's, and nothing of the
// transaction is stored; a failed statement fails the rest. The pool's one
// connection serves the next transaction each time.
func TestPipelinedTxErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pipePool(t)
	_, err := pool.Exec(ctx, "INSERT INTO t VALUES (1, 'a')")
	require.NoError(t, err)

	tx := beginPipelined(t, pool)
	_, err = tx.Exec(ctx, "INSERT INTO t VALUES (2, 'b')")
	require.NoError(t, err)
	tx.Queue("INSERT INTO t VALUES (1, 'duplicate')")
	err = tx.Commit(ctx)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "23505", pgErr.Code)
	require.ErrorIs(t, tx.Rollback(ctx), pgx.ErrTxClosed)
	require.Equal(t, 1, countRows(t, pool), "row 2 rolled back with the failed insert")

	// The first statement fails when it runs: its call says so, the
	// transaction is aborted, and the commit rolls it back.
	tx = beginPipelined(t, pool)
	_, err = tx.Exec(ctx, "SELECT 1 / (id - 1) FROM t")
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "22012", pgErr.Code)
	_, err = tx.Exec(ctx, "INSERT INTO t VALUES (3, 'c')")
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "25P02", pgErr.Code, "in failed transaction")
	require.ErrorIs(t, tx.Commit(ctx), pgx.ErrTxCommitRollback)
	require.Equal(t, 1, countRows(t, pool))

	// The first statement is refused before it runs (pgx prepares a
	// batch's statements first), so the BEGIN never ran either: nothing
	// more is sent, nothing runs outside a transaction.
	tx = beginPipelined(t, pool)
	_, err = tx.Exec(ctx, "SELECT nope FROM t")
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "42703", pgErr.Code)
	_, err = tx.Exec(ctx, "INSERT INTO t VALUES (3, 'c')")
	require.ErrorIs(t, err, ErrPipelinedTxLost)
	require.ErrorIs(t, tx.Commit(ctx), ErrPipelinedTxLost)
	require.Equal(t, 1, countRows(t, pool), "the insert did not run on its own")

	// A queued statement's error comes with the next statement.
	tx = beginPipelined(t, pool)
	tx.Queue("INSERT INTO t VALUES (1, 'duplicate')")
	err = tx.QueryRow(ctx, "SELECT 1").Scan(new(int))
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "23505", pgErr.Code)
	require.NoError(t, tx.Rollback(ctx))

	// QueryRow as pgx's: ErrNoRows when there is none.
	tx = beginPipelined(t, pool)
	err = tx.QueryRow(ctx, "SELECT v FROM t WHERE id = 99").Scan(new(string))
	require.ErrorIs(t, err, pgx.ErrNoRows)
	require.NoError(t, tx.Rollback(ctx))
}

// Rows read to the end free the connection for the next statement without
// an explicit Close, as pgx's do; so do rows closed early.
func TestPipelinedTxRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pipePool(t)
	_, err := pool.Exec(ctx, "INSERT INTO t SELECT g, 'x' FROM generate_series(1, 5) g")
	require.NoError(t, err)

	tx := beginPipelined(t, pool)
	tx.Queue("UPDATE t SET v = 'y' WHERE id = 1")
	rows, err := tx.Query(ctx, "SELECT id, v FROM t ORDER BY id")
	require.NoError(t, err)
	var ids []int
	for rows.Next() {
		var id int
		var v string
		require.NoError(t, rows.Scan(&id, &v))
		if id == 1 {
			require.Equal(t, "y", v, "the queued update ran first")
		}
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []int{1, 2, 3, 4, 5}, ids)
	_, err = tx.Exec(ctx, "DELETE FROM t WHERE id = 5")
	require.NoError(t, err, "the connection is free after the last row")
	require.NoError(t, tx.Commit(ctx))

	tx = beginPipelined(t, pool)
	rows, err = tx.Query(ctx, "SELECT id FROM t ORDER BY id")
	require.NoError(t, err)
	require.True(t, rows.Next())
	rows.Close()
	require.NoError(t, rows.Err())
	_, err = tx.Exec(ctx, "DELETE FROM t WHERE id = 4")
	require.NoError(t, err, "the connection is free after an early close")
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, 3, countRows(t, pool))

	_, err = (&PipelinedTx{closed: true}).Begin(ctx)
	require.ErrorIs(t, err, ErrNestedPipelinedTx)
}
