package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// commitProbeEvery is how often the commit probe commits.
const commitProbeEvery = 25 * time.Millisecond

// commitProbe times a durable commit (a one-row UPDATE, so the commit waits
// for its WAL to reach the disk) on the stage's database every
// commitProbeEvery, on a connection of its own, while a scenario measures.
// Every commit on the server waits for that same flush: the API's answer
// and River's fetch, among others. So when the disk stalls (seen on this
// machine's virtual disk: commits of 150 – 600 ms while it wrote no more
// than usual, IO wait 30 %) the whole pipeline stalls with it, and the
// probe's maximum says so beside the scenario's latency.
type commitProbe struct {
	cancel context.CancelFunc
	done   chan struct{}
	took   []time.Duration
	err    error
}

func (s *stage) startCommitProbe(ctx context.Context) (*commitProbe, error) {
	conn, err := pgx.Connect(ctx, s.dbURL)
	if err != nil {
		return nil, fmt.Errorf("commit probe: %w", err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_commit_probe (id int PRIMARY KEY, n bigint NOT NULL);
INSERT INTO bench_commit_probe VALUES (1, 0) ON CONFLICT (id) DO NOTHING`); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx)) // best effort
		return nil, fmt.Errorf("commit probe: %w", err)
	}
	pctx, cancel := context.WithCancel(ctx)
	p := &commitProbe{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }() // best effort
		tick := time.NewTicker(commitProbeEvery)
		defer tick.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-tick.C:
			}
			start := time.Now()
			if _, err := conn.Exec(pctx, `UPDATE bench_commit_probe SET n = n + 1 WHERE id = 1`); err != nil {
				if pctx.Err() == nil {
					p.err = fmt.Errorf("commit probe: %w", err)
				}
				return
			}
			p.took = append(p.took, time.Since(start))
		}
	}()
	return p, nil
}

// withCommitProbe runs measure with the commit probe beside it and returns
// the probe's figures; measure's error comes first.
func (s *stage) withCommitProbe(ctx context.Context, measure func() error) (Latency, error) {
	p, err := s.startCommitProbe(ctx)
	if err != nil {
		return Latency{}, err
	}
	err = measure()
	commits, perr := p.stop()
	if err != nil {
		return Latency{}, err
	}
	return commits, perr
}

// stop ends the probe and summarises its commits.
func (p *commitProbe) stop() (Latency, error) {
	p.cancel()
	<-p.done
	return summarise(p.took), p.err
}

// commitNote is the probe's figures for a progress line or the table.
func commitNote(c Latency) string {
	return fmt.Sprintf("a durable commit every %d ms took p50 %s, p99 %s, max %s", commitProbeEvery.Milliseconds(), ms(c.P50), ms(c.P99), ms(c.Max))
}
