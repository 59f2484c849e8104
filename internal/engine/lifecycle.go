package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/mono/webhookd/internal/store"
)

// resumeBatch is how many paused deliveries one statement resumes.
const resumeBatch = 1000

// ResumePaused puts every paused delivery of webhook id back on its
// schedule, in tx: each gets a new job due when the delivery was due (due
// ones at once); River works them in that order (by their jobs'
// scheduled_at, whatever order they were inserted in). The webhook must no
// longer be paused (store.UnpauseWebhook in the same tx). It returns how
// many it resumed.
func ResumePaused(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, webhookID string, now time.Time) (int, error) {
	total := 0
	for {
		batch, err := store.PausedDeliveries(ctx, tx, webhookID, resumeBatch)
		if err != nil {
			return total, fmt.Errorf("error loading paused deliveries: %w", err)
		}
		if len(batch) == 0 {
			return total, nil
		}
		params := make([]river.InsertManyParams, len(batch))
		for i, d := range batch {
			params[i] = river.InsertManyParams{Args: DeliveryArgs{DeliveryID: d.ID}, InsertOpts: &river.InsertOpts{ScheduledAt: d.DueAt, Priority: PriorityBulk}}
		}
		jobOf, err := insertDeliveryJobs(ctx, client, tx, params)
		if err != nil {
			return total, fmt.Errorf("error resuming paused deliveries: %w", err)
		}
		ids, days, jobs := make([]string, len(batch)), make([]time.Time, len(batch)), make([]int64, len(batch))
		for i, d := range batch {
			ids[i], days[i], jobs[i] = d.ID, d.PartDay, jobOf[d.ID]
		}
		n, err := store.UnparkDeliveries(ctx, tx, ids, days, jobs, now)
		if err != nil {
			return total, fmt.Errorf("error resuming paused deliveries: %w", err)
		}
		total += int(n)
		if len(batch) < resumeBatch {
			return total, nil
		}
	}
}
