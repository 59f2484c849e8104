package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mono/webhookd/internal/engine"
)

const precisionAccount = "acct_precision"

// precisionRate is how fast the precision scenario enqueues its events, so
// their retries come due spread out as they would in service rather than
// all in one instant.
const precisionRate = 500

// lateness is attempt 2's start after it was due, per delivery.
const lateness = `
SELECT extract(epoch FROM a.started_at - a.scheduled_at)::float8
FROM attempt_log a JOIN deliveries d ON d.id = a.delivery_id
WHERE d.account_id = $1 AND a.number = 2`

// precision is scenario 5: Retries deliveries whose receiver answers 500 to
// each event's first request, at RetryScale; the lateness of attempt 2 is
// read from the attempts table.
func (e *env) precision(ctx context.Context) (*Precision, error) {
	s, _, _, err := e.newStageWithReceiver(ctx, ScenarioPrecision, e.cfg.RetryScale, true, precisionAccount)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	enqueuer, err := engine.NewEnqueuer(s.srv.River(), nil)
	if err != nil {
		return nil, err
	}
	total := e.cfg.Retries
	s.progress("enqueuing %s events at %d/s; each fails once", count(total), precisionRate)
	interval := time.Second / precisionRate
	start := time.Now()
	for i := 0; i < total; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		if time.Since(start) > e.cfg.Timeout {
			return nil, fmt.Errorf("%w: %d of %d events enqueued after %s", errBound, i, total, e.cfg.Timeout)
		}
		err := pgx.BeginFunc(ctx, s.pool(), func(tx pgx.Tx) error {
			_, err := enqueuer.Enqueue(ctx, tx, &engine.Event{AccountID: precisionAccount, Type: "bench.precision", Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("error enqueuing event %d: %w", i, err)
		}
	}
	err = s.waitFor(ctx, "every delivery to succeed on its second attempt", e.cfg.Timeout, 20*time.Millisecond, func() (bool, string, error) {
		pending, err := s.pendingOf(ctx, precisionAccount)
		return pending == 0, fmt.Sprintf("%s of %s pending", count(pending), count(total)), err
	})
	if err != nil {
		return nil, err
	}
	rows, err := s.pool().Query(ctx, lateness, precisionAccount)
	if err != nil {
		return nil, fmt.Errorf("error reading attempts: %w", err)
	}
	secs, err := pgx.CollectRows(rows, pgx.RowTo[float64])
	if err != nil {
		return nil, fmt.Errorf("error reading attempts: %w", err)
	}
	if len(secs) != total {
		return nil, fmt.Errorf("%d deliveries have an attempt 2, want %d", len(secs), total)
	}
	ds := make([]time.Duration, len(secs))
	for i, v := range secs {
		ds[i] = time.Duration(v * float64(time.Second))
	}
	snoozes, err := s.snoozes(ctx)
	if err != nil {
		return nil, err
	}
	delay, _ := mustSchedule(e.cfg.RetryScale).Delay(2)
	lat := summarise(ds)
	s.progress("lateness p50 %s, p99 %s, max %s; %s", ms(lat.P50), ms(lat.P99), ms(lat.Max), snoozesText(snoozes))
	return &Precision{Deliveries: total, FirstRetryDelay: delay, Lateness: lat, Snoozes: snoozes}, nil
}
