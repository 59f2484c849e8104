package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PipelinedTx is a transaction on one pooled connection whose BEGIN goes to
// PostgreSQL with its first statement, and whose queued statements (Queue)
// go with the statement after them or with the COMMIT: one round trip each
// time instead of two. Everything else is pgx's transaction: statements run
// in order, on one connection, and nothing is durable before Commit returns
// nil. A statement's error is returned by the call that sent it; a queued
// statement's by the next call, or by Commit.
//
// POST /v1/events' transaction uses it (issue 30: at low rates an event's
// CPU is per round trip, about eight of them; BENCHMARKS.md). Nested
// transactions (savepoints) and large objects are not supported.
type PipelinedTx struct {
	conn *pgxpool.Conn
	// queued are the statements not yet sent, "begin" first until it is.
	queued []queuedStatement
	begun  bool // "begin" was sent
	closed bool // committed, rolled back or failed to; conn released
}

type queuedStatement struct {
	sql  string
	args []any
}

var _ pgx.Tx = (*PipelinedTx)(nil)

// ErrNestedPipelinedTx is Begin's error on a PipelinedTx.
var ErrNestedPipelinedTx = errors.New("a pipelined transaction has no nested transactions")

// BeginPipelined acquires a connection from pool for a transaction whose
// BEGIN is sent with its first statement. Roll it back (a no-op after
// Commit) to release the connection on every path.
func BeginPipelined(ctx context.Context, pool *pgxpool.Pool) (*PipelinedTx, error) {
	return beginPipelinedWith(ctx, pool, "begin")
}

// beginPipelinedWith is BeginPipelined with its own BEGIN statement (an
// isolation level, read only).
func beginPipelinedWith(ctx context.Context, pool *pgxpool.Pool, begin string) (*PipelinedTx, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &PipelinedTx{conn: conn, queued: []queuedStatement{{sql: begin}}}, nil
}

// Queue adds a statement whose result nobody reads to go with the next
// statement, or with the COMMIT: its error is theirs.
func (t *PipelinedTx) Queue(sql string, args ...any) {
	t.queued = append(t.queued, queuedStatement{sql: sql, args: args})
}

// send sends the queued statements and then sql in one batch, and returns
// the batch's results at sql's; nil when nothing was queued (then sql is
// the caller's to send).
func (t *PipelinedTx) send(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	if err := t.usable(); err != nil {
		return nil, err
	}
	if len(t.queued) == 0 {
		return nil, nil
	}
	b := t.queuedBatch()
	n := b.Len()
	b.Queue(sql, args...)
	return t.sendBatch(ctx, b, n)
}

// ErrPipelinedTxLost is the error of every call on a PipelinedTx whose
// connection is no longer in its transaction: its BEGIN went with a first
// statement that PostgreSQL refused before running either (pgx prepares
// every statement of a batch first), or the connection ended it. Nothing
// else is sent on it, so no statement runs outside the transaction.
var ErrPipelinedTxLost = errors.New("the pipelined transaction is not open: its first statement failed before it began, or it ended")

// usable says whether statements may be sent: the transaction is neither
// closed nor lost.
func (t *PipelinedTx) usable() error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	if t.begun && t.conn.Conn().PgConn().TxStatus() == 'I' {
		return ErrPipelinedTxLost
	}
	return nil
}

// queuedBatch is a batch of the queued statements.
func (t *PipelinedTx) queuedBatch() *pgx.Batch {
	b := &pgx.Batch{}
	for _, q := range t.queued {
		b.Queue(q.sql, q.args...)
	}
	return b
}

// sendBatch sends b, whose first n statements are the queued ones, and
// reads their results.
func (t *PipelinedTx) sendBatch(ctx context.Context, b *pgx.Batch, n int) (pgx.BatchResults, error) {
	t.queued = nil
	t.begun = true
	br := t.conn.SendBatch(ctx, b)
	for range n {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return nil, err
		}
	}
	return br, nil
}

// flush sends the queued statements alone, before a call that can't go in
// a batch.
func (t *PipelinedTx) flush(ctx context.Context) error {
	if err := t.usable(); err != nil {
		return err
	}
	if len(t.queued) == 0 {
		return nil
	}
	b := t.queuedBatch()
	br, err := t.sendBatch(ctx, b, b.Len())
	if err != nil {
		return err
	}
	return br.Close()
}

// Exec runs sql after the queued statements, in the same round trip.
func (t *PipelinedTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	br, err := t.send(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	if br == nil {
		return t.conn.Exec(ctx, sql, args...)
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// Query runs sql after the queued statements, in the same round trip.
func (t *PipelinedTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	br, err := t.send(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	if br == nil {
		return t.conn.Query(ctx, sql, args...)
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// QueryRow is Query's one row, as pgx's: pgx.ErrNoRows when there is none.
func (t *PipelinedTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	return &firstRow{rows: rows, err: err}
}

// SendBatch sends b after the queued statements, in the same round trip.
func (t *PipelinedTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if t.closed {
		return pgx.FailedBatchResults(b, pgx.ErrTxClosed)
	}
	if len(t.queued) == 0 {
		return t.conn.SendBatch(ctx, b)
	}
	all := t.queuedBatch()
	n := all.Len()
	all.QueuedQueries = append(all.QueuedQueries, b.QueuedQueries...)
	br, err := t.sendBatch(ctx, all, n)
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	return br
}

// CopyFrom sends the queued statements, then copies.
func (t *PipelinedTx) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	if err := t.flush(ctx); err != nil {
		return 0, err
	}
	return t.conn.CopyFrom(ctx, tableName, columnNames, rowSrc)
}

// Prepare sends the queued statements, then prepares.
func (t *PipelinedTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.conn.Conn().Prepare(ctx, name, sql)
}

// Begin is not supported: ErrNestedPipelinedTx.
func (t *PipelinedTx) Begin(context.Context) (pgx.Tx, error) {
	return nil, ErrNestedPipelinedTx
}

// LargeObjects is not supported: pgx's zero value, which can't be used.
func (t *PipelinedTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

// Conn is the transaction's connection.
func (t *PipelinedTx) Conn() *pgx.Conn { return t.conn.Conn() }

// Commit sends the queued statements and COMMIT in one round trip (with the
// BEGIN, when nothing was sent before) and releases the connection. A
// transaction with no statement at all costs no round trip.
func (t *PipelinedTx) Commit(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	if !t.begun && len(t.queued) == 1 {
		return t.release() // only the BEGIN: nothing to commit
	}
	// send refuses a lost transaction (ErrPipelinedTxLost); abandon then
	// only releases its connection, which is outside any transaction.
	br, err := t.send(ctx, "commit", nil)
	var tag pgconn.CommandTag
	switch {
	case err != nil:
	case br == nil:
		tag, err = t.conn.Exec(ctx, "commit")
	default:
		tag, err = br.Exec()
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil && tag.String() == "ROLLBACK" {
		err = pgx.ErrTxCommitRollback // the transaction had failed
	}
	if err != nil {
		t.abandon(ctx)
		return err
	}
	return t.release()
}

// Rollback drops the queued statements, rolls back what was sent and
// releases the connection; after Commit it does nothing (pgx.ErrTxClosed).
func (t *PipelinedTx) Rollback(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	t.queued = nil
	if !t.begun || t.conn.Conn().PgConn().TxStatus() == 'I' {
		return t.release()
	}
	if _, err := t.conn.Exec(ctx, "rollback"); err != nil {
		t.abandon(ctx)
		return fmt.Errorf("error rolling back: %w", err)
	}
	return t.release()
}

// abandon ends a transaction whose COMMIT or ROLLBACK failed, as pgx's own
// transaction does: a connection still inside it is closed (PostgreSQL
// rolls back what it holds), never waited on, and the pool, which drops a
// closed connection, gets it back. A transaction that a statement sent
// with the COMMIT failed (PostgreSQL skipped the COMMIT) is rolled back
// instead, keeping the connection, when that works within 5 s.
func (t *PipelinedTx) abandon(ctx context.Context) {
	c := t.conn.Conn()
	if !c.IsClosed() && c.PgConn().TxStatus() == 'E' {
		rbCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.Exec(rbCtx, "rollback")
		cancel()
		if err == nil {
			_ = t.release()
			return
		}
	}
	if !c.IsClosed() && c.PgConn().TxStatus() != 'I' {
		_ = c.Close(ctx)
	}
	_ = t.release()
}

func (t *PipelinedTx) release() error {
	t.closed = true
	t.conn.Release()
	return nil
}

// batchRows are a batch's rows: closing them (or reading past the last)
// closes the batch, so the connection is free for the next statement.
type batchRows struct {
	pgx.Rows
	br  pgx.BatchResults
	err error
	// done: the batch is closed.
	done bool
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if !r.done {
		r.done = true
		r.err = r.br.Close()
	}
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// firstRow is pgx.Row over rows: the first row, or pgx.ErrNoRows.
type firstRow struct {
	rows pgx.Rows
	err  error
}

func (r *firstRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}
