package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/mono/webhookd/internal/store"
)

// fifoAccount is the account of the FIFO endpoint.
const fifoAccount = "acct_fifo"

// FIFO is the ordered-delivery scenario (issue 25, part 2): a backlog of
// Events to one webhook with "ordering": "fifo", a receiver answering at
// once, on two worker processes sharing one database. Its throughput is one
// delivery at a time: 1 / (round trip + recording + waking the next + the
// next fetch).
type FIFO struct {
	Events int
	Run    *Throughput
	// PerDelivery is the mean time from one delivery's start to the next's.
	PerDelivery time.Duration
}

// fifoDrain runs the FIFO scenario.
func (e *env) fifoDrain(ctx context.Context, events int) (*FIFO, error) {
	s, servers, err := e.twoServerStage(ctx)
	if err != nil {
		return nil, err
	}
	defer s.close()
	recv, target, err := s.startReceiver(false)
	if err != nil {
		return nil, err
	}
	if _, err := s.createWebhook(ctx, fifoAccount, target, func(w *store.Webhook) { w.Ordering = store.OrderingFIFO }); err != nil {
		return nil, err
	}
	if err := s.insertBacklog(ctx, fifoAccount, events); err != nil {
		return nil, err
	}
	start := time.Now()
	deadline := start.Add(e.cfg.Timeout)
	for _, srv := range servers {
		if err := srv.Start(ctx); err != nil {
			return nil, err
		}
	}
	s.progress("two workers started: draining %s deliveries to one FIFO webhook", count(events))
	if err := s.waitAnswered(ctx, recv, events, deadline); err != nil {
		return nil, err
	}
	err = s.waitFor(ctx, "every FIFO delivery to be recorded as succeeded", time.Until(deadline), 5*time.Millisecond, func() (bool, string, error) {
		pending, err := s.pendingOf(ctx, fifoAccount)
		return pending == 0, fmt.Sprintf("%s still pending", count(pending)), err
	})
	if err != nil {
		return nil, err
	}
	out := &FIFO{Events: events, Run: &Throughput{Deliveries: events, Elapsed: time.Since(start)}}
	var first, last time.Time
	if err := s.pool().QueryRow(ctx, `SELECT min(started_at), max(started_at) FROM attempt_log`).Scan(&first, &last); err != nil {
		return nil, err
	}
	if events > 1 {
		out.PerDelivery = last.Sub(first) / time.Duration(events-1)
	}
	s.progress("%s FIFO deliveries in %.2f s: %.1f/s, %v from one start to the next", count(events), out.Run.Elapsed.Seconds(), out.Run.PerSecond(), out.PerDelivery.Round(time.Microsecond))
	return out, nil
}
