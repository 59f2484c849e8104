package store

// The reconciler's statements: pending deliveries whose job is gone
// (ScanOrphans, JoblessOrphans), its saved position (Cursor, SetCursor),
// adopting a delivery into a new job (AdoptDelivery).

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// orphansOf completes a query whose CTE slice holds pending deliveries
// (id, job_id, webhook_id): it returns how many the slice holds, the
// largest job id among them, those whose webhook is live and whose job is
// finished, discarded, cancelled or missing (or that have none), and the
// deleted webhooks of the others, looked up once each.
const orphansOf = `
, abandoned AS (
    SELECT w.id FROM webhooks w
    WHERE w.id IN (SELECT webhook_id FROM slice) AND w.deleted_at IS NOT NULL
), orphans AS (
    SELECT s.id, s.job_id
    FROM slice s
    LEFT JOIN river_job j ON j.id = s.job_id
    WHERE (j.id IS NULL OR j.state IN ('completed', 'discarded', 'cancelled'))
      AND s.webhook_id NOT IN (SELECT id FROM abandoned)
)
SELECT (SELECT count(*) FROM slice), coalesce((SELECT max(job_id) FROM slice), 0),
       coalesce(array_agg(id ORDER BY job_id, id), '{}'), coalesce(array_agg(job_id ORDER BY job_id, id), '{}'),
       (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM abandoned)
FROM orphans`

// orphansScan checks one slice of the pending deliveries that have a job:
// up to $2 of them, in job id order, after job id $1 (through the partial
// index on pending deliveries' job ids, so a slice costs the same whatever
// the backlog).
const orphansScan = `
WITH slice AS MATERIALIZED (
    SELECT id, job_id, webhook_id FROM deliveries
    WHERE state = 'pending' AND job_id > $1
    ORDER BY job_id
    LIMIT $2
)` + orphansOf

// orphansJobless checks up to $1 pending deliveries that have no job at
// all.
const orphansJobless = `
WITH slice AS MATERIALIZED (
    SELECT id, job_id, webhook_id FROM deliveries
    WHERE state = 'pending' AND job_id IS NULL
    ORDER BY id
    LIMIT $1
)` + orphansOf

// Orphan is a pending delivery whose job is finished, discarded or missing.
type Orphan struct {
	DeliveryID string
	JobID      *int64
}

// OrphanSlice is what ScanOrphans or JoblessOrphans found in one slice.
type OrphanSlice struct {
	// Orphans are the slice's pending deliveries of live webhooks that no
	// live job serves.
	Orphans []Orphan
	// Abandoned are the deleted webhooks of the slice's other pending
	// deliveries (see CancelAbandoned).
	Abandoned []string
	// Checked is how many pending deliveries the slice held: fewer than
	// asked means the walk reached the end.
	Checked int
	// Last is the largest job id in the slice (0 if it was empty): the
	// next slice starts after it.
	Last int64
}

// ScanOrphans checks up to limit pending deliveries with a job, in job id
// order after job id after, for a job that is finished, discarded or
// missing, and for a deleted webhook.
func ScanOrphans(ctx context.Context, db DB, after int64, limit int) (*OrphanSlice, error) {
	return scanOrphanSlice(db.QueryRow(ctx, orphansScan, after, limit))
}

// JoblessOrphans checks up to limit pending deliveries that have no job:
// each is an orphan unless its webhook is deleted.
func JoblessOrphans(ctx context.Context, db DB, limit int) (*OrphanSlice, error) {
	return scanOrphanSlice(db.QueryRow(ctx, orphansJobless, limit))
}

func scanOrphanSlice(row pgx.Row) (*OrphanSlice, error) {
	var (
		out    OrphanSlice
		ids    []string
		jobIDs []*int64
	)
	if err := row.Scan(&out.Checked, &out.Last, &ids, &jobIDs, &out.Abandoned); err != nil {
		return nil, err
	}
	for i, id := range ids {
		out.Orphans = append(out.Orphans, Orphan{DeliveryID: id, JobID: jobIDs[i]})
	}
	return &out, nil
}

// Cursor reads the position saved under name; 0 if none was.
func Cursor(ctx context.Context, db DB, name string) (int64, error) {
	var pos int64
	err := db.QueryRow(ctx, `SELECT position FROM webhookd_cursors WHERE name = $1`, name).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return pos, err
}

// SetCursor saves position under name.
func SetCursor(ctx context.Context, db DB, name string, position int64) error {
	_, err := db.Exec(ctx, `
INSERT INTO webhookd_cursors (name, position) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now()`, name, position)
	return err
}

const deliveryAdopt = `
UPDATE deliveries SET job_id = $3, updated_at = now()
WHERE id = $1 AND state = 'pending' AND job_id IS NOT DISTINCT FROM $2`

// AdoptDelivery points the pending delivery id at job newJobID if oldJobID is
// still responsible for it, reporting whether it did.
func AdoptDelivery(ctx context.Context, db DB, id string, oldJobID *int64, newJobID int64) (bool, error) {
	tag, err := db.Exec(ctx, deliveryAdopt, id, oldJobID, newJobID)
	return tag.RowsAffected() == 1, err
}
