package admin

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mono/webhookd/internal/batch"
	"github.com/mono/webhookd/internal/engine"
)

// Batching of POST /v1/events: the events of concurrent requests are
// stored by one transaction (one statement for their events and
// deliveries, one River insert for their jobs, one commit), at most
// Config.IntakeTransactions at once. Every request is answered only once
// its event is committed, exactly as if alone.
const (
	enqueueBatchMax = 100
	enqueueTimeout  = 10 * time.Second
)

// IntakeTransactionsDefault is Config.IntakeTransactions' default: one
// transaction at a time, so that the requests arriving while it commits
// all go into the next one. Measured against two (BENCHMARKS.md, issue 30):
// the same intake rate, first attempts at 0.8 × that rate p99 45.6 ms
// against 54.3 ms (medians of ten alternating runs); four was worse still.
const IntakeTransactionsDefault = 1

// IntakeTransactionsMax bounds Config.IntakeTransactions.
const IntakeTransactionsMax = 16

// enqueued is one event's answer from a shared batch: its result, or what
// is wrong with it alone (a conflicting idempotency key, invalid data).
type enqueued struct {
	res *engine.Enqueued
	err error
}

// newEnqueueBatcher batches with at most transactions at once (0 or less:
// IntakeTransactionsDefault; at most IntakeTransactionsMax).
func (a *API) newEnqueueBatcher(transactions int) *batch.Batcher[*engine.Event, enqueued] {
	n := min(cmp.Or(max(transactions, 0), IntakeTransactionsDefault), IntakeTransactionsMax)
	return batch.New(a.enqueueEach, n, enqueueBatchMax, enqueueTimeout)
}

// enqueueEach stores events (from different requests) in one transaction.
// An event that fails on its own (a reused idempotency key, invalid data,
// more deliveries than a request may create) gets its own error and the
// others are stored without it, in a new transaction; any other error
// fails every event not yet stored. An event
// whose idempotency key another event of the batch uses with a different
// payload waits for a transaction after that one, so it is judged against
// what that one stored, as it would be alone.
func (a *API) enqueueEach(ctx context.Context, events []*engine.Event) ([]enqueued, error) {
	out := make([]enqueued, len(events))
	todo := make([]int, len(events)) // indexes into events still to store
	for i := range todo {
		todo[i] = i
	}
	var later []int
	for len(todo) > 0 {
		batch := make([]*engine.Event, len(todo))
		for i, j := range todo {
			batch[i] = events[j]
		}
		var results []*engine.Enqueued
		err := a.enqueueTx(ctx, batch, func(ctx context.Context, tx pgx.Tx) (handoff *engine.Handoff, err error) {
			results, handoff, err = a.enqueuer.EnqueueEach(ctx, tx, batch)
			return handoff, err
		})
		if err == nil {
			for i, j := range todo {
				out[j].res = results[i]
			}
			todo, later = later, nil
			continue
		}
		var (
			conflict *engine.IdempotencyConflictError
			invalid  *engine.BatchError
			fanout   *engine.FanoutError
			drop     []int // positions in todo answered or put off
		)
		switch {
		case errors.As(err, &fanout) && fanout.Index >= 0:
			out[todo[fanout.Index]].err = fanout
			drop = append(drop, fanout.Index)
		case errors.As(err, &conflict) && conflict.Earlier >= 0:
			later = append(later, todo[conflict.Index])
			drop = append(drop, conflict.Index)
		case errors.As(err, &conflict):
			out[todo[conflict.Index]].err = engine.ErrIdempotencyKeyReused
			drop = append(drop, conflict.Index)
		case errors.As(err, &invalid):
			for _, item := range invalid.Items {
				v := item.ValidationError
				out[todo[item.Index]].err = &v
				drop = append(drop, item.Index)
			}
		default:
			// Nothing of this transaction was stored; events stored by an
			// earlier one keep their results.
			for _, j := range slices.Concat(todo, later) {
				out[j].err = err
			}
			return out, nil
		}
		slices.Sort(drop)
		for k := len(drop) - 1; k >= 0; k-- {
			todo = slices.Delete(todo, drop[k], drop[k]+1)
		}
		if len(todo) == 0 {
			todo, later = later, nil
		}
	}
	return out, nil
}
