package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// The accounts of the API scenarios.
const (
	sustainedAccount = "acct_sustained"
	noisyAccountA    = "acct_a"
	noisyAccountB    = "acct_b"
)

// noisyUnderway is how many of A's deliveries must have arrived before B
// starts sending in scenario 4.
const noisyUnderway = 2000

// sendersMax bounds the POSTs in flight at once; a sender that reaches it
// falls behind its rate, which then shows as the achieved rate.
const sendersMax = 256

// postTimeout bounds one POST.
const postTimeout = 10 * time.Second

// sent is what postEvents did: when each POST began and the event id it got.
type sent struct {
	at      []time.Time
	acked   []time.Time
	ids     []string
	elapsed time.Duration
}

// achieved is the rate at which events were accepted.
func (s *sent) achieved() float64 { return float64(len(s.ids)) / s.elapsed.Seconds() }

// arrivalsSeed seeds Poisson arrivals: every run of a scenario sends at the
// same instants, so alternating runs of two builds compare like with like.
const arrivalsSeed = 30

// arrivalTimes are the instants, from the start, at which postEvents sends
// total events at rate: one every 1/rate, or with poisson a Poisson
// process of that rate (independent gaps, exponentially distributed with
// mean 1/rate, from a fixed seed), as many producers acting on their own
// send.
func arrivalTimes(total, rate int, poisson bool) []time.Duration {
	out := make([]time.Duration, total)
	interval := time.Second / time.Duration(rate)
	if !poisson {
		for i := range out {
			out[i] = time.Duration(i) * interval
		}
		return out
	}
	rng := rand.New(rand.NewPCG(arrivalsSeed, uint64(rate)))
	var at time.Duration
	for i := range out {
		out[i] = at
		at += time.Duration(rng.ExpFloat64() * float64(interval))
	}
	return out
}

// postEvents POSTs rate×d events of account to the API, one every 1/rate
// (Config.PoissonArrivals: at a Poisson process's instants of that rate),
// and fails if any POST fails or sending overruns d by the Timeout bound.
func (s *stage) postEvents(ctx context.Context, account string, rate int, d time.Duration) (*sent, error) {
	total := max(1, int(float64(rate)*d.Seconds()))
	bound := d + s.e.cfg.Timeout
	key, err := s.postKey(ctx, account)
	if err != nil {
		return nil, err
	}
	s.progress("POSTing %s events of %s at %s/s", count(total), account, count(rate))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: sendersMax}, Timeout: postTimeout}
	defer client.CloseIdleConnections()
	api := s.api()
	out := &sent{at: make([]time.Time, total), ids: make([]string, total), acked: make([]time.Time, total)}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failed   int
		firstErr string
	)
	fail := func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		failed++
		if firstErr == "" {
			firstErr = msg
		}
	}
	sem := make(chan struct{}, sendersMax)
	times := arrivalTimes(total, rate, s.e.cfg.PoissonArrivals)
	start := time.Now()
	var sendErr error
	for i := 0; i < total; i++ {
		if wait := time.Until(start.Add(times[i])); wait > 0 {
			time.Sleep(wait)
		}
		if err := ctx.Err(); err != nil {
			sendErr = err
			break
		}
		if time.Since(start) > bound {
			sendErr = fmt.Errorf("%w: %d of %d events POSTed after %s", errBound, i, total, bound)
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			body := fmt.Sprintf(`{"account_id":%q,"type":"bench.event","data":{"i":%d}}`, account, i)
			if s.pad != "" {
				body = fmt.Sprintf(`{"account_id":%q,"type":"bench.event","data":{"i":%d,"pad":%q}}`, account, i, s.pad)
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, api, strings.NewReader(body))
			if err != nil {
				fail(err.Error())
				return
			}
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			out.at[i] = time.Now()
			resp, err := client.Do(req)
			if err != nil {
				fail(err.Error())
				return
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			var ev struct {
				ID string `json:"id"`
			}
			if resp.StatusCode != http.StatusAccepted || json.Unmarshal(raw, &ev) != nil || ev.ID == "" {
				fail(fmt.Sprintf("status %d: %.200s", resp.StatusCode, raw))
				return
			}
			out.ids[i] = ev.ID
			out.acked[i] = time.Now()
		}(i)
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	if sendErr != nil {
		return nil, sendErr
	}
	if failed > 0 {
		return nil, fmt.Errorf("%d of %d POSTs failed; the first: %s", failed, total, firstErr)
	}
	s.progress("POSTed %s events in %.2f s (%.0f/s)", count(total), out.elapsed.Seconds(), out.achieved())
	return out, nil
}

// arrivals waits (bounded by the Timeout) until every sent event has reached
// recv and summarises POST → first arrival. status adds to the progress line.
func (s *stage) arrivals(ctx context.Context, recv *receiver, sent *sent, phase string, status func() string) (Latency, error) {
	// Each look checks only the events not yet arrived: the scenario's
	// deliveries are still running, on the same cores.
	arrived := make([]time.Time, len(sent.ids))
	missing := make([]int, len(sent.ids))
	for i := range missing {
		missing[i] = i
	}
	err := s.waitFor(ctx, "every event's first attempt", s.e.cfg.Timeout, 20*time.Millisecond, func() (bool, string, error) {
		still := missing[:0]
		for _, i := range missing {
			at, ok := recv.firstArrival(sent.ids[i])
			if !ok {
				still = append(still, i)
				continue
			}
			arrived[i] = at
		}
		missing = still
		msg := fmt.Sprintf("%s of %s events not yet arrived", count(len(missing)), count(len(sent.ids)))
		if status != nil {
			msg += "; " + status()
		}
		return len(missing) == 0, msg, nil
	})
	if err != nil {
		return Latency{}, err
	}
	// Where the time went: the API's answer, then the delivery.
	latencies := make([]time.Duration, len(sent.ids))
	answer := make([]time.Duration, len(sent.ids))
	deliver := make([]time.Duration, len(sent.ids))
	for i := range sent.ids {
		latencies[i] = arrived[i].Sub(sent.at[i])
		answer[i] = sent.acked[i].Sub(sent.at[i])
		deliver[i] = arrived[i].Sub(sent.acked[i])
	}
	if w := s.e.cfg.LatencyLog; w != nil {
		for i := range sent.ids {
			fmt.Fprintf(w, "%d,%s,%s,%s,%s,%d\n", s.n, phase, msf(sent.at[i].Sub(sent.at[0])), msf(answer[i]), msf(deliver[i]), sent.at[i].UnixMilli())
		}
	}
	a, d := summarise(answer), summarise(deliver)
	s.progress("POST→202 p50 %s p99 %s; 202→first attempt p50 %s p99 %s", ms(a.P50), ms(a.P99), ms(d.P50), ms(d.P99))
	return summarise(latencies), nil
}

// The phases of the latency log.
const (
	phaseWarmup   = "warmup"
	phaseMeasured = "measured"
)

// warmUp sends account's events at rate for the Warmup period, which is not
// counted, and waits for their first attempts. A server that has just
// started opens its database connections and fills its caches (and
// PostgreSQL's backends theirs) under that load: measured on 2 cores, the
// first second after a start held nearly all of a 10 s run's p99 (500/s:
// p99 131 - 284 ms from the start, 39 - 50 ms after a 2 s warm-up). The
// scenarios measure a server that is running, as a sender is for all but
// a moment after each deploy; the progress lines give the warm-up's own
// figures.
func (s *stage) warmUp(ctx context.Context, recv *receiver, account string, rate int) error {
	if s.e.cfg.Warmup <= 0 {
		return nil
	}
	s.progress("warm-up, not counted: %s of %s's events", s.e.cfg.Warmup, account)
	sent, err := s.postEvents(ctx, account, rate, s.e.cfg.Warmup)
	if err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	lat, err := s.arrivals(ctx, recv, sent, phaseWarmup, nil)
	if err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	s.progress("warm-up: POST→first attempt p50 %s, p99 %s, max %s", ms(lat.P50), ms(lat.P99), ms(lat.Max))
	return nil
}

// sustained is scenario 2: one fresh stage per rate.
func (e *env) sustained(ctx context.Context) ([]*Sustained, error) {
	var out []*Sustained
	for _, rate := range e.cfg.Rates {
		r, err := e.sustainedAt(ctx, rate)
		if err != nil {
			return nil, fmt.Errorf("at %d/s: %w", rate, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func (e *env) sustainedAt(ctx context.Context, rate int) (*Sustained, error) {
	s, recv, _, err := e.newStageWithReceiver(ctx, ScenarioSustained, 1, false, sustainedAccount)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := s.warmUp(ctx, recv, sustainedAccount, rate); err != nil {
		return nil, err
	}
	var sent *sent
	var lat Latency
	commits, err := s.withCommitProbe(ctx, func() error {
		if sent, err = s.postEvents(ctx, sustainedAccount, rate, e.cfg.Duration); err != nil {
			return err
		}
		lat, err = s.arrivals(ctx, recv, sent, phaseMeasured, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	snoozes, err := s.snoozes(ctx)
	if err != nil {
		return nil, err
	}
	s.progress("%s/s: p50 %s, p99 %s, max %s; %s; %s", count(rate), ms(lat.P50), ms(lat.P99), ms(lat.Max), snoozesText(snoozes), commitNote(commits))
	return &Sustained{Rate: rate, Sent: len(sent.ids), Achieved: sent.achieved(), Latency: lat, Snoozes: snoozes, Commits: commits}, nil
}

// noisy is scenario 4: account A has a backlog (inserted before the workers
// start) while account B POSTs at NoisyRate; B's latency is what counts.
func (e *env) noisy(ctx context.Context) (*Noisy, error) {
	s, recvA, _, err := e.newStageWithReceiver(ctx, ScenarioNoisy, 1, false, noisyAccountA)
	if err != nil {
		return nil, err
	}
	defer s.close()
	recvB, targetB, err := s.startReceiver(false)
	if err != nil {
		return nil, err
	}
	if _, err := s.createWebhook(ctx, noisyAccountB, targetB); err != nil {
		return nil, err
	}
	if err := s.insertBacklog(ctx, noisyAccountA, e.cfg.NoisyBacklog); err != nil {
		return nil, err
	}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	// B starts once A's backlog is draining, so B's figures are the steady
	// state beside a backlog, not the start of the workers (whose first
	// fetches serve A's first burst at B's priority; measured: B's first
	// ~15 events then wait 100-260 ms, which alone would be B's p99).
	underway := min(noisyUnderway, e.cfg.NoisyBacklog)
	if err := s.waitFor(ctx, "A's drain to be under way", s.e.cfg.Timeout, 5*time.Millisecond, func() (bool, string, error) {
		n := int(recvA.ok.Load())
		return n >= underway, fmt.Sprintf("A has %s of %s delivered", count(n), count(underway)), nil
	}); err != nil {
		return nil, err
	}
	if err := s.warmUp(ctx, recvB, noisyAccountB, e.cfg.NoisyRate); err != nil {
		return nil, err
	}
	var sent *sent
	var lat Latency
	var drained int64
	commits, err := s.withCommitProbe(ctx, func() error {
		if sent, err = s.postEvents(ctx, noisyAccountB, e.cfg.NoisyRate, e.cfg.Duration); err != nil {
			return err
		}
		drained = recvA.ok.Load()
		lat, err = s.arrivals(ctx, recvB, sent, phaseMeasured, func() string {
			return fmt.Sprintf("A has %s of %s delivered", count(int(recvA.ok.Load())), count(e.cfg.NoisyBacklog))
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	snoozes, err := s.snoozes(ctx)
	if err != nil {
		return nil, err
	}
	s.progress("B: p50 %s, p99 %s, max %s; A delivered %s while B sent; %s; %s", ms(lat.P50), ms(lat.P99), ms(lat.Max), count(int(drained)), snoozesText(snoozes), commitNote(commits))
	return &Noisy{
		Backlog: e.cfg.NoisyBacklog, Rate: e.cfg.NoisyRate, Sent: len(sent.ids), Achieved: sent.achieved(),
		Latency: lat, BacklogDrained: drained, Snoozes: snoozes, Commits: commits,
	}, nil
}

// summarise sorts ds and takes its percentiles (nearest rank).
func summarise(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return Latency{N: len(sorted), P50: percentile(sorted, 0.50), P99: percentile(sorted, 0.99), Max: sorted[len(sorted)-1]}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(float64(len(sorted))*p)) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
