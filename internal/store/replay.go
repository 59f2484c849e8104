package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ReplayRecord is one replay of a delivery: which key asked, when, from
// which state, and the generation it started.
type ReplayRecord struct {
	// Generation is the generation of ten attempts the replay started.
	Generation int
	// FromState is the state the delivery was replayed from.
	FromState string
	// KeyID is the API key that asked; nil for the bootstrap admin key.
	KeyID *string
	// BatchID is the bulk replay the delivery was part of, if any.
	BatchID   *string
	CreatedAt time.Time
}

const deliveryReplaysGet = `
SELECT generation, from_state, key_id, batch_id, created_at
FROM delivery_replays WHERE delivery_id = $1 ORDER BY id`

func deliveryReplays(ctx context.Context, db DB, deliveryID string) ([]ReplayRecord, error) {
	rows, err := db.Query(ctx, deliveryReplaysGet, deliveryID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReplayRecord, error) {
		var r ReplayRecord
		return r, row.Scan(&r.Generation, &r.FromState, &r.KeyID, &r.BatchID, &r.CreatedAt)
	})
}

// ReplayCandidate is a delivery locked, by LockDeliveryForReplay, until the
// end of the transaction.
type ReplayCandidate struct {
	ID          string
	AccountID   string
	WebhookID   string
	State       string
	Generation  int
	WebhookLive bool
	// Test marks a test send (POST /v1/webhooks/{id}/test): never replayed.
	Test bool
}

const deliveryLockForReplay = `
SELECT d.id, d.account_id, d.webhook_id, d.state, d.generation, w.deleted_at IS NULL, d.test
FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
WHERE d.id = $1
FOR UPDATE OF d`

// LockDeliveryForReplay locks delivery id (db must be a transaction) and
// returns what a replay decides on, or ErrNotFound. A concurrent replay of
// the same delivery waits here and then sees the state the first left.
func LockDeliveryForReplay(ctx context.Context, db DB, id string) (*ReplayCandidate, error) {
	c := &ReplayCandidate{}
	err := db.QueryRow(ctx, deliveryLockForReplay, id).Scan(&c.ID, &c.AccountID, &c.WebhookID, &c.State, &c.Generation, &c.WebhookLive, &c.Test)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return c, err
}

// ReplayTarget is one delivery to put back on the schedule, with what it
// must still be for the replay to happen.
type ReplayTarget struct {
	ID string
	// FromState and Generation are the state (dead or succeeded) and
	// generation the delivery must still have.
	FromState  string
	Generation int
	// JobID is the new River job, inserted in the same transaction.
	JobID int64
	// NextAttemptAt is when the new generation's first attempt is due.
	NextAttemptAt time.Time
}

// The state flip. Only a dead or succeeded delivery still in the expected
// state and generation changes, so of two concurrent replays of one
// delivery only the first does; the loser's statement waits on the row lock
// and then matches nothing. Attempts and their history are kept: the
// lifetime attempt count goes on, the generation's count restarts.
const deliveriesReplay = `
WITH replayed AS (
    UPDATE deliveries d SET
        state = 'pending',
        generation = d.generation + 1,
        gen_attempts = 0,
        next_attempt_at = t.next_attempt_at,
        job_id = t.job_id,
        finished_at = NULL,
        updated_at = $6,
        -- A succeeded delivery of a FIFO webhook is history, not the line:
        -- replayed, it goes out outside the order (store/fifo.go). A dead
        -- one keeps its place (it is the blocking head).
        fifo_seq = CASE WHEN d.state = 'succeeded' THEN NULL ELSE d.fifo_seq END
    FROM unnest($1::text[], $2::text[], $3::integer[], $4::bigint[], $5::timestamptz[])
         AS t (id, from_state, generation, job_id, next_attempt_at)
    WHERE d.id = t.id
      AND d.state IN ('dead', 'succeeded')
      AND d.state = t.from_state
      AND d.generation = t.generation
    RETURNING d.id, d.generation, t.from_state
)
INSERT INTO delivery_replays (delivery_id, generation, from_state, key_id, batch_id, created_at)
SELECT id, generation, from_state, $7, $8, $6 FROM replayed
RETURNING delivery_id, generation`

// ReplayDeliveries puts targets back to pending on a new generation, each
// pointed at its new job, and records each replay (keyID nil for the
// bootstrap admin key; batchID nil for a single replay). It returns the new
// generation of every delivery it replayed; a target no longer in its
// expected state and generation is left alone and missing from the result.
func ReplayDeliveries(ctx context.Context, db DB, targets []ReplayTarget, keyID, batchID *string, now time.Time) (map[string]int, error) {
	ids := make([]string, len(targets))
	states := make([]string, len(targets))
	generations := make([]int32, len(targets))
	jobIDs := make([]int64, len(targets))
	due := make([]time.Time, len(targets))
	for i, t := range targets {
		ids[i], states[i], generations[i], jobIDs[i], due[i] = t.ID, t.FromState, int32(t.Generation), t.JobID, t.NextAttemptAt
	}
	rows, err := db.Query(ctx, deliveriesReplay, ids, states, generations, jobIDs, due, now, keyID, batchID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]int, len(targets))
	for rows.Next() {
		var (
			id         string
			generation int
		)
		if err := rows.Scan(&id, &generation); err != nil {
			return nil, err
		}
		out[id] = generation
	}
	return out, rows.Err()
}

// Bulk replay states.
const (
	ReplayBatchRunning = "running"
	ReplayBatchDone    = "done"
)

// ReplayFilter selects the deliveries of a bulk replay. It is stored with
// the batch as JSON.
type ReplayFilter struct {
	// AccountID is required: a bulk replay never crosses accounts.
	AccountID string `json:"account_id"`
	// WebhookID narrows it to one webhook of the account.
	WebhookID string `json:"webhook_id,omitempty"`
	// State is StateDead or StateSucceeded.
	State string `json:"state"`
	// CreatedAfter and CreatedBefore bound created_at: CreatedAfter <=
	// created_at < CreatedBefore.
	CreatedAfter  *time.Time `json:"created_after,omitempty"`
	CreatedBefore *time.Time `json:"created_before,omitempty"`
}

// ReplayBatch is a bulk replay: the deliveries matching Filter when it was
// created, replayed in the background.
type ReplayBatch struct {
	ID     string
	Filter ReplayFilter
	// KeyID is the API key that asked; nil for the bootstrap admin key.
	KeyID *string
	// Total is how many deliveries matched; Replayed and Skipped how many
	// have been put back on the schedule and how many were passed over
	// because they had changed meanwhile (replayed by someone else, say).
	Total, Replayed, Skipped int
	// State is ReplayBatchRunning or ReplayBatchDone.
	State      string
	CreatedAt  time.Time
	FinishedAt *time.Time
}

const replayBatchInsert = `
INSERT INTO replay_batches (id, filter, key_id, total, state, created_at)
VALUES ($1, $2, $3, 0, 'running', $4)`

const replayBatchSetTotal = `
UPDATE replay_batches SET
    total = $2,
    state = CASE WHEN $2 = 0 THEN 'done' ELSE 'running' END,
    finished_at = CASE WHEN $2 = 0 THEN created_at END
WHERE id = $1`

// CountReplayable counts the deliveries a bulk replay with filter f would
// take, counting no further than limit: cheap enough to refuse a filter
// that matches too many before writing anything.
func CountReplayable(ctx context.Context, db DB, f *ReplayFilter, limit int) (int, error) {
	query, args, err := replayItemsQuery("", f, limit)
	if err != nil {
		return 0, err
	}
	var n int
	err = db.QueryRow(ctx, `SELECT count(*) FROM (`+query+`) AS matching`, append([]any{pgx.QueryExecModeExec}, args...)...).Scan(&n)
	return n, err
}

// CreateReplayBatch stores batch b and fixes its items: up to limit
// deliveries of live webhooks matching b.Filter, each with the state and
// generation it has now. It returns how many it fixed (the batch's total);
// a batch of none is done at once. db must be a transaction, so that the
// batch commits with the job that will work it.
func CreateReplayBatch(ctx context.Context, db DB, b *ReplayBatch, limit int) (int, error) {
	query, args, err := replayItemsQuery(b.ID, &b.Filter, limit)
	if err != nil {
		return 0, err
	}
	filter, err := json.Marshal(&b.Filter)
	if err != nil {
		return 0, fmt.Errorf("error encoding filter: %w", err)
	}
	if _, err := db.Exec(ctx, replayBatchInsert, b.ID, filter, b.KeyID, b.CreatedAt); err != nil {
		return 0, fmt.Errorf("error inserting replay batch: %w", err)
	}
	tag, err := db.Exec(ctx, `INSERT INTO replay_batch_items (batch_id, delivery_id, generation, from_state) `+query,
		append([]any{pgx.QueryExecModeExec}, args...)...)
	if err != nil {
		return 0, fmt.Errorf("error fixing replay batch items: %w", err)
	}
	total := int(tag.RowsAffected())
	if _, err := db.Exec(ctx, replayBatchSetTotal, b.ID, total); err != nil {
		return 0, fmt.Errorf("error recording replay batch total: %w", err)
	}
	b.Total = total
	return total, nil
}

// replayItemsQuery builds the SELECT of a batch's items: batch id, delivery
// id, generation and state of up to limit deliveries matching f. It reads
// the same indexes as the listing: (webhook_id or account_id, state,
// created_at, id), with the state as a constant.
func replayItemsQuery(batchID string, f *ReplayFilter, limit int) (string, []any, error) {
	literal, ok := stateLiterals[f.State]
	if !ok || (f.State != StateDead && f.State != StateSucceeded) {
		return "", nil, fmt.Errorf("a bulk replay takes dead or succeeded deliveries, not %q", f.State)
	}
	if f.AccountID == "" {
		return "", nil, errors.New("a bulk replay needs an account")
	}
	args := []any{batchID}
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	// Test sends are never replayed (nor retried): send another test.
	conds := []string{"d.account_id = " + param(f.AccountID), "d.state = " + literal, "NOT d.test"}
	if f.WebhookID != "" {
		conds = append(conds, "d.webhook_id = "+param(f.WebhookID))
	}
	if f.CreatedAfter != nil {
		conds = append(conds, "d.created_at >= "+param(*f.CreatedAfter))
	}
	if f.CreatedBefore != nil {
		conds = append(conds, "d.created_at < "+param(*f.CreatedBefore))
	}
	query := `
SELECT $1::text, d.id, d.generation, d.state
FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id AND w.deleted_at IS NULL
WHERE ` + strings.Join(conds, " AND ") + `
LIMIT ` + param(limit)
	return query, args, nil
}

const replayBatchGet = `
SELECT id, filter, key_id, total, replayed, skipped, state, created_at, finished_at
FROM replay_batches WHERE id = $1`

// GetReplayBatch returns bulk replay id, or ErrNotFound.
func GetReplayBatch(ctx context.Context, db DB, id string) (*ReplayBatch, error) {
	b := &ReplayBatch{}
	var filter []byte
	err := db.QueryRow(ctx, replayBatchGet, id).Scan(&b.ID, &filter, &b.KeyID, &b.Total, &b.Replayed, &b.Skipped, &b.State, &b.CreatedAt, &b.FinishedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(filter, &b.Filter); err != nil {
		return nil, fmt.Errorf("error decoding filter of replay batch %s: %w", id, err)
	}
	return b, nil
}

// ReplayItem is one delivery of a bulk replay still to be done.
type ReplayItem struct {
	DeliveryID string
	WebhookID  string
}

const replayItemsTodo = `
SELECT i.delivery_id, d.webhook_id
FROM replay_batch_items i JOIN deliveries d ON d.id = i.delivery_id
WHERE i.batch_id = $1 AND i.replayed IS NULL
ORDER BY i.delivery_id`

// ReplayItemsTodo lists the items of batch batchID not yet done, oldest
// delivery first.
func ReplayItemsTodo(ctx context.Context, db DB, batchID string) ([]ReplayItem, error) {
	rows, err := db.Query(ctx, replayItemsTodo, batchID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReplayItem, error) {
		var it ReplayItem
		return it, row.Scan(&it.DeliveryID, &it.WebhookID)
	})
}

const replayLastDue = `
SELECT d.webhook_id, max(d.next_attempt_at)
FROM replay_batch_items i JOIN deliveries d ON d.id = i.delivery_id
WHERE i.batch_id = $1 AND i.replayed AND d.state = 'pending' AND d.next_attempt_at IS NOT NULL
GROUP BY d.webhook_id`

// ReplayLastDue returns, per webhook, the latest time an attempt of a
// delivery batch batchID has replayed is still due: where the pacing of a
// resumed batch continues.
func ReplayLastDue(ctx context.Context, db DB, batchID string) (map[string]time.Time, error) {
	rows, err := db.Query(ctx, replayLastDue, batchID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]time.Time)
	for rows.Next() {
		var (
			webhookID string
			due       time.Time
		)
		if err := rows.Scan(&webhookID, &due); err != nil {
			return nil, err
		}
		out[webhookID] = due
	}
	return out, rows.Err()
}

// The items of a chunk that can still be replayed, locked with their
// deliveries in id order (every batch locks in the same order, so two
// batches over the same deliveries can't deadlock). Only deliveries still
// in the state and generation the batch fixed qualify, so a delivery two
// batches share is replayed by whichever gets to it first, once.
const replayItemsLock = `
SELECT d.id, i.from_state, i.generation, d.webhook_id
FROM replay_batch_items i
JOIN deliveries d ON d.id = i.delivery_id AND d.state = i.from_state AND d.generation = i.generation
JOIN webhooks w ON w.id = d.webhook_id AND w.deleted_at IS NULL
WHERE i.batch_id = $1 AND i.delivery_id = ANY($2) AND i.replayed IS NULL
ORDER BY d.id
FOR UPDATE OF i, d`

// LockReplayItems locks the items ids of batch batchID that are still to
// do and whose delivery is still as the batch found it (state and
// generation) with a live webhook, and returns them as replay targets
// (without job or due time) with their webhook. db must be a transaction.
func LockReplayItems(ctx context.Context, db DB, batchID string, ids []string) ([]ReplayTarget, []string, error) {
	rows, err := db.Query(ctx, replayItemsLock, batchID, ids)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var (
		targets  []ReplayTarget
		webhooks []string
	)
	for rows.Next() {
		var (
			t         ReplayTarget
			webhookID string
		)
		if err := rows.Scan(&t.ID, &t.FromState, &t.Generation, &webhookID); err != nil {
			return nil, nil, err
		}
		targets = append(targets, t)
		webhooks = append(webhooks, webhookID)
	}
	return targets, webhooks, rows.Err()
}

const replayItemsFinish = `
WITH done AS (
    UPDATE replay_batch_items SET replayed = (delivery_id = ANY($3))
    WHERE batch_id = $1 AND delivery_id = ANY($2) AND replayed IS NULL
    RETURNING replayed
)
UPDATE replay_batches SET
    replayed = replayed + (SELECT count(*) FROM done WHERE replayed),
    skipped = skipped + (SELECT count(*) FROM done WHERE NOT replayed)
WHERE id = $1`

// FinishReplayItems marks the items ids of batch batchID that are still to
// do as done: replayed if in replayed, skipped otherwise, and adds them to
// the batch's counts.
func FinishReplayItems(ctx context.Context, db DB, batchID string, ids, replayed []string) error {
	if replayed == nil {
		replayed = []string{} // NULL would leave every item to do
	}
	_, err := db.Exec(ctx, replayItemsFinish, batchID, ids, replayed)
	return err
}

const replayBatchFinish = `
UPDATE replay_batches SET state = 'done', finished_at = $2
WHERE id = $1 AND state = 'running'
  AND NOT EXISTS (SELECT 1 FROM replay_batch_items WHERE batch_id = $1 AND replayed IS NULL)`

// FinishReplayBatch marks batch id done if none of its items is left to
// do, reporting whether it did.
func FinishReplayBatch(ctx context.Context, db DB, id string, now time.Time) (bool, error) {
	tag, err := db.Exec(ctx, replayBatchFinish, id, now)
	return tag.RowsAffected() == 1, err
}
