package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// insertDeliveryJobs inserts delivery jobs in tx and returns each job's id
// by its delivery id, matched through the args, not by position: River
// does not promise RETURNING's order.
func insertDeliveryJobs(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, params []river.InsertManyParams) (map[string]int64, error) {
	results, err := client.InsertManyTx(ctx, tx, params)
	if err != nil {
		return nil, fmt.Errorf("error inserting delivery jobs: %w", err)
	}
	jobOf := make(map[string]int64, len(results))
	for _, res := range results {
		var args DeliveryArgs
		if err := json.Unmarshal(res.Job.EncodedArgs, &args); err != nil {
			return nil, fmt.Errorf("error decoding args of job %d: %w", res.Job.ID, err)
		}
		jobOf[args.DeliveryID] = res.Job.ID
	}
	return jobOf, nil
}
