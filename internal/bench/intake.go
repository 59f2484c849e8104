package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mono/webhookd/internal/procs"
)

// The intake (8) and quiet (9) scenarios' accounts and shape.
const (
	intakeAccount = "acct_intake"
	quietAccount  = "acct_quiet"
	// intakeClients is how many producers POST at once in scenario 8, each
	// waiting for its answer before it sends again (keep-alive).
	intakeClients = 32
	// intakePacedShare is the share of scenario 8's delivered rate that
	// its paced run sends at a fixed rate.
	intakePacedShare = 0.8
	// quietIdle is how long scenario 9 measures the server with nothing to
	// do.
	quietIdle = 10 * time.Second
)

// intakePad makes a POST /v1/events body about 1 KB.
var intakePad = strings.Repeat("x", 900)

// IntakeEventsDefault is scenario 8's events (Config.IntakeEvents).
const IntakeEventsDefault = 20_000

// QuietRatesDefault are scenario 9's steady rates, events per second.
var QuietRatesDefault = []int{100, 200}

// Intake is scenario 8: single-event intake as a product service sends it
// (one event per POST /v1/events, intakeClients producers each waiting for
// its 202, keep-alive, an events:write key bound to the account, ~1 KB
// events) to a webhookd that also delivers them, beside River's own
// ceiling measured in the same run.
type Intake struct {
	Events int
	// Accepted is events per second from the first POST to the last 202;
	// Delivered from the first POST to the last event's first arrival.
	Accepted, Delivered float64
	// Answer is POST → 202; Latency POST → first arrival.
	Answer, Latency Latency
	// Reference is River alone (scenario 0) in this run, jobs per second:
	// the mean of RiverBefore (scenario 0's, or measured just before) and
	// RiverAfter (measured right after the intake), so that a machine
	// whose load changes (a shared one) weighs on both sides alike.
	Reference, RiverBefore, RiverAfter float64
	// PacedRate is intakePacedShare × Delivered, sent at a fixed rate for
	// Config.Duration; Paced its POST → first arrival.
	PacedRate     int
	PacedAchieved float64
	Paced         Latency
}

// Ratio is the delivered rate over River's.
func (in *Intake) Ratio() float64 { return in.Delivered / in.Reference }

// Quiet is scenario 9: what an event costs at a steady low rate (single
// POSTs), webhookd's process and its database's backends apart.
type Quiet struct {
	// IdleCPU and IdlePostgresCPU are the share of one core used with no
	// events at all, over quietIdle (PostgreSQL: nil when it does not run
	// on this machine).
	IdleCPU, IdlePostgresCPU *float64
	Rates                    []*QuietRate
	// PostgresNote says why PostgreSQL's CPU is missing, when it is.
	PostgresNote string
	// OwnProcess is set when webhookd ran in a process of its own
	// (Config.WorkerProcess): the CPU figures are then that process's
	// alone, without the bench's sender and receiver.
	OwnProcess bool
}

// QuietRate is one steady rate of scenario 9.
type QuietRate struct {
	Rate     int
	Sent     int
	Achieved float64
	// CPU is the bench process's user+system CPU per event (webhookd, the
	// sender and the receiver: all in process), or with Quiet.OwnProcess
	// webhookd's process's alone; PostgresCPU that of the bench database's
	// backends (nil when PostgreSQL is elsewhere).
	CPU         time.Duration
	PostgresCPU *time.Duration
	// Latency is POST → first arrival.
	Latency Latency
	// River is River alone at the same rate (with Quiet.OwnProcess; nil
	// otherwise): the figures to read these against.
	River *QuietRiver
}

// Total is CPU + PostgresCPU per event.
func (q *QuietRate) Total() time.Duration { return cpuTotal(q.CPU, q.PostgresCPU) }

// Ratio is Total ÷ River alone's, or 0 without River's figure.
func (q *QuietRate) Ratio() float64 {
	if q.River == nil || q.River.Total() == 0 {
		return 0
	}
	return float64(q.Total()) / float64(q.River.Total())
}

// QuietRiver is River alone at one of scenario 9's rates, in a process of
// its own (riverProcess): a minimal event API that inserts each POSTed
// event as River's job, the reference worker signing and POSTing it to the
// same kind of receiver. CPU is that process's per event, PostgresCPU its
// database's backends' (nil when PostgreSQL is elsewhere).
type QuietRiver struct {
	Sent        int
	CPU         time.Duration
	PostgresCPU *time.Duration
	Latency     Latency
}

// Total is CPU + PostgresCPU per event.
func (q *QuietRiver) Total() time.Duration { return cpuTotal(q.CPU, q.PostgresCPU) }

// cpuTotal is a process's CPU and its backends' (when known) together.
func cpuTotal(cpu time.Duration, pg *time.Duration) time.Duration {
	if pg == nil {
		return cpu
	}
	return cpu + *pg
}

// newKey makes an API key of scope (account, events:write) bound to account.
func (s *stage) newKey(ctx context.Context, scope, account string) (string, error) {
	body := fmt.Sprintf(`{"scope":%q,"account_id":%q,"description":"bench"}`, scope, account)
	status, raw, err := postJSON(ctx, http.DefaultClient, "http://"+s.addr()+"/v1/keys", benchAdminKey, body)
	if err != nil {
		return "", fmt.Errorf("error making an %s key: %w", scope, err)
	}
	var k struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(raw, &k); err != nil || status != http.StatusCreated || k.Key == "" {
		return "", fmt.Errorf("error making an %s key: status %d", scope, status)
	}
	return k.Key, nil
}

// postClosed POSTs total ~1 KB events of account one per request,
// intakeClients requests at once, each client sending its next as soon as
// its previous is answered.
func (s *stage) postClosed(ctx context.Context, key, account string, total int) (*sent, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: intakeClients}, Timeout: postTimeout}
	defer client.CloseIdleConnections()
	api := s.api()
	out := &sent{at: make([]time.Time, total), ids: make([]string, total), acked: make([]time.Time, total)}
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	deadline := time.Now().Add(s.e.cfg.Timeout)
	start := time.Now()
	for range intakeClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				err := ctx.Err()
				if err == nil && time.Now().After(deadline) {
					err = fmt.Errorf("%w: %d of %d events POSTed after %s", errBound, i, total, s.e.cfg.Timeout)
				}
				if err == nil {
					out.at[i] = time.Now()
					out.ids[i], err = postEvent(ctx, client, api, key, fmt.Sprintf(`{"account_id":%q,"type":"bench.intake","data":{"i":%d,"pad":%q}}`, account, i, intakePad))
					out.acked[i] = time.Now()
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// postEvent POSTs one event and returns its id.
func postEvent(ctx context.Context, client *http.Client, url, key, body string) (string, error) {
	status, raw, err := postJSON(ctx, client, url, key, body)
	if err != nil {
		return "", err
	}
	var ev struct {
		ID string `json:"id"`
	}
	if status != http.StatusAccepted || json.Unmarshal(raw, &ev) != nil || ev.ID == "" {
		return "", fmt.Errorf("POST /v1/events: status %d: %.200s", status, raw)
	}
	return ev.ID, nil
}

// lastArrival is when the last of sent's events first reached recv.
func lastArrival(recv *receiver, sent *sent) time.Time {
	var last time.Time
	for _, id := range sent.ids {
		if at, ok := recv.firstArrival(id); ok && at.After(last) {
			last = at
		}
	}
	return last
}

// intake is scenario 8. reference is River's figure of this run, measured
// here first when scenario 0 was not selected.
func (e *env) intake(ctx context.Context, reference *Throughput) (*Intake, error) {
	if reference == nil {
		e.progress(ScenarioIntake, "measuring River alone first (scenario 0 was not selected)")
		var err error
		if reference, err = e.reference(ctx); err != nil {
			return nil, fmt.Errorf("reference: %w", err)
		}
	}
	s, recv, _, err := e.newStageWithReceiver(ctx, ScenarioIntake, 1, false, intakeAccount)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	key, err := s.newKey(ctx, "events:write", intakeAccount)
	if err != nil {
		return nil, err
	}
	s.key, s.pad = key, intakePad
	total := e.cfg.IntakeEvents
	// Warm up (uncounted): the server's connections, PostgreSQL's caches.
	if warm := min(total/10, 2000); warm > 0 && e.cfg.Warmup > 0 {
		s.progress("warm-up, not counted: %s events", count(warm))
		w, err := s.postClosed(ctx, key, intakeAccount, warm)
		if err == nil {
			_, err = s.arrivals(ctx, recv, w, phaseWarmup, nil)
		}
		if err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	s.progress("POSTing %s events one per request, %d producers each waiting for its 202, an events:write key", count(total), intakeClients)
	sent, err := s.postClosed(ctx, key, intakeAccount, total)
	if err != nil {
		return nil, err
	}
	lat, err := s.arrivals(ctx, recv, sent, phaseMeasured, nil)
	if err != nil {
		return nil, err
	}
	answer := make([]time.Duration, total)
	for i := range answer {
		answer[i] = sent.acked[i].Sub(sent.at[i])
	}
	out := &Intake{
		Events: total, Accepted: sent.achieved(), Answer: summarise(answer), Latency: lat,
		Delivered:   float64(total) / lastArrival(recv, sent).Sub(sent.at[0]).Seconds(),
		RiverBefore: reference.PerSecond(),
	}
	s.progress("measuring River alone again, right after")
	after, err := e.reference(ctx)
	if err != nil {
		return nil, fmt.Errorf("reference after: %w", err)
	}
	out.RiverAfter = after.PerSecond()
	out.Reference = (out.RiverBefore + out.RiverAfter) / 2
	s.progress("accepted %s/s, delivered %s/s (River alone %s/s: ratio %.2f); POST→first attempt p50 %s, p99 %s",
		count(int(out.Accepted)), count(int(out.Delivered)), count(int(out.Reference)), out.Ratio(), ms(lat.P50), ms(lat.P99))

	out.PacedRate = max(1, int(out.Delivered*intakePacedShare))
	paced, err := s.postEvents(ctx, intakeAccount, out.PacedRate, e.cfg.Duration)
	if err != nil {
		return nil, fmt.Errorf("paced at %d/s: %w", out.PacedRate, err)
	}
	if out.Paced, err = s.arrivals(ctx, recv, paced, phaseMeasured, nil); err != nil {
		return nil, fmt.Errorf("paced at %d/s: %w", out.PacedRate, err)
	}
	out.PacedAchieved = paced.achieved()
	s.progress("paced at %s/s: POST→first attempt p50 %s, p99 %s", count(out.PacedRate), ms(out.Paced.P50), ms(out.Paced.P99))
	return out, nil
}

// quiet is scenario 9: one server, measured idle, then at each QuietRate
// for Config.Duration.
func (e *env) quiet(ctx context.Context) (*Quiet, error) {
	s, recv, _, err := e.newStageWithReceiver(ctx, ScenarioQuiet, 1, false, quietAccount)
	if err != nil {
		return nil, err
	}
	defer s.close()
	out := &Quiet{OwnProcess: e.cfg.WorkerProcess}
	baseCtx := ctx // ctx ends with webhookd's process (watch)
	// cpuNow is the CPU so far of the process webhookd runs in: the bench
	// process, or with Config.WorkerProcess a process of its own (API and
	// workers) that the stage's requests go to; the stage's own server
	// then never starts.
	cpuNow := procs.ProcessCPU
	if out.OwnProcess {
		wp, err := s.startWorkerProcess(ctx, s.srvCfg, true)
		if err != nil {
			return nil, err
		}
		if s.apiAddr, err = wp.startWorkers(ctx); err != nil {
			return nil, err
		}
		wctx, stop := wp.watch(ctx)
		defer stop()
		ctx, cpuNow = wctx, wp.cpu
	} else if err := s.start(ctx); err != nil {
		return nil, err
	}
	key, err := s.newKey(ctx, "events:write", quietAccount)
	if err != nil {
		return nil, err
	}
	s.key, s.pad = key, intakePad
	if err := s.warmUp(ctx, recv, quietAccount, e.cfg.QuietRates[0]); err != nil {
		return nil, err
	}
	// measure runs f and returns webhookd's process's CPU and the bench
	// database's backends' over it.
	measure := func(f func() error) (time.Duration, *time.Duration, error) {
		cpu, pg, note, err := e.cpuOver(ctx, s.dbName, cpuNow, f)
		if note != "" {
			out.PostgresNote = note
		}
		return cpu, pg, err
	}
	s.progress("idle: %s with nothing to send", quietIdle)
	start := time.Now()
	cpu, pg, err := measure(func() error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(quietIdle):
			return nil
		}
	})
	if err != nil {
		return nil, err
	}
	idle := time.Since(start).Seconds()
	share := cpu.Seconds() / idle
	out.IdleCPU = &share
	if pg != nil {
		pgShare := pg.Seconds() / idle
		out.IdlePostgresCPU = &pgShare
	}
	for _, rate := range e.cfg.QuietRates {
		r := &QuietRate{Rate: rate}
		cpu, pg, err := measure(func() error {
			sent, err := s.postEvents(ctx, quietAccount, rate, e.cfg.Duration)
			if err != nil {
				return err
			}
			r.Sent, r.Achieved = len(sent.ids), sent.achieved()
			r.Latency, err = s.arrivals(ctx, recv, sent, phaseMeasured, nil)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("at %d/s: %w", rate, err)
		}
		r.CPU = cpu / time.Duration(r.Sent)
		if pg != nil {
			per := *pg / time.Duration(r.Sent)
			r.PostgresCPU = &per
		}
		s.progress("%s/s: CPU per event %s ms (process %s ms); POST→first attempt p50 %s, p99 %s", count(rate), msf(r.Total()), msf(r.CPU), ms(r.Latency.P50), ms(r.Latency.P99))
		out.Rates = append(out.Rates, r)
	}
	if out.OwnProcess {
		s.close() // webhookd's process stops before River's starts
		if err := e.quietRiver(baseCtx, out); err != nil {
			return nil, fmt.Errorf("measuring River alone: %w", err)
		}
	}
	return out, nil
}

// cpuOver runs f and returns the CPU cpuNow counts over it and that of the
// database dbName's backends, or nil and why not when they can't be read
// (PostgreSQL elsewhere).
func (e *env) cpuOver(ctx context.Context, dbName string, cpuNow func() (time.Duration, error), f func() error) (cpu time.Duration, pg *time.Duration, note string, err error) {
	backends := e.startBackends(ctx, dbName)
	defer backends.stop(ctx) //nolint:errcheck // stopped below on success; a failed run's count is not read
	cpu0, err := cpuNow()
	if err == nil {
		err = f()
	}
	if err != nil {
		return 0, nil, backends.note, err
	}
	cpu1, err := cpuNow()
	if err != nil {
		return 0, nil, backends.note, err
	}
	pg, note, err = backends.stop(ctx)
	return cpu1 - cpu0, pg, note, err
}

// backendsMeter counts the CPU of a database's backends from its start
// (startBackends) to its first stop, when PostgreSQL is on this machine.
type backendsMeter struct {
	sampler *pgSampler // nil: not sampling (note says why), or stopped
	note    string
}

// startBackends starts counting the CPU of database dbName's backends
// (startBackendSampler); when it can't, the meter's note says why.
func (e *env) startBackends(ctx context.Context, dbName string) *backendsMeter {
	sampler, err := startBackendSampler(ctx, e.baseURL, dbName)
	if err != nil {
		return &backendsMeter{note: err.Error()}
	}
	return &backendsMeter{sampler: sampler}
}

// stop ends the count and returns the backends' CPU since the start, or
// nil and why not: note when the count never started, err when it failed
// (a sample's query). Later calls return nil and the note.
func (m *backendsMeter) stop(ctx context.Context) (cpu *time.Duration, note string, err error) {
	if m.sampler == nil {
		return nil, m.note, nil
	}
	d, err := m.sampler.stop(ctx)
	m.sampler = nil
	if err != nil {
		return nil, m.note, err
	}
	return &d, m.note, nil
}

// quietRiver measures River alone at each of out's rates, as quiet
// measured webhookd's process (after its warm-up, on a database of its own
// and a receiver of its own), and sets each rate's River.
func (e *env) quietRiver(ctx context.Context, out *Quiet) error {
	s, recv, target, err := e.newStageWithReceiver(ctx, ScenarioQuiet, 1, false, "")
	if err != nil {
		return err
	}
	defer s.close()
	rp, err := s.startRiverProcess(ctx, target)
	if err != nil {
		return err
	}
	s.apiAddr, s.key, s.pad = rp.addr, "none (River's API checks no key)", intakePad
	if err := s.warmUp(ctx, recv, quietAccount, e.cfg.QuietRates[0]); err != nil {
		return err
	}
	for _, r := range out.Rates {
		river := &QuietRiver{}
		cpu, pg, _, err := e.cpuOver(ctx, s.dbName, rp.cpu, func() error {
			sent, err := s.postEvents(ctx, quietAccount, r.Rate, e.cfg.Duration)
			if err != nil {
				return err
			}
			river.Sent = len(sent.ids)
			river.Latency, err = s.arrivals(ctx, recv, sent, phaseMeasured, nil)
			return err
		})
		if err != nil {
			return fmt.Errorf("at %d/s: %w", r.Rate, err)
		}
		river.CPU = cpu / time.Duration(river.Sent)
		if pg != nil {
			per := *pg / time.Duration(river.Sent)
			river.PostgresCPU = &per
		}
		r.River = river
		s.progress("River alone at %s/s: CPU per event %s ms (process %s ms); POST→first attempt p50 %s, p99 %s; webhookd ÷ River %.2f", count(r.Rate), msf(river.Total()), msf(river.CPU), ms(river.Latency.P50), ms(river.Latency.P99), r.Ratio())
	}
	return nil
}

// writeIntakeRows adds scenarios 8 and 9 to the table.
func writeIntakeRows(row func(n int, scenario, result, target string), cfg *Config, res *Result, n int, msg string, bad bool) {
	switch n {
	case ScenarioIntake:
		scenario := fmt.Sprintf("intake: %s ~1 KB events POSTed one per request to /v1/events by %d producers each waiting for its 202 (keep-alive, an events:write key bound to the account), webhookd delivering them; then %.1f × its delivered rate at a fixed rate for %s", count(cfg.IntakeEvents), intakeClients, intakePacedShare, cfg.Duration)
		if !bad {
			in := res.Intake
			msg = fmt.Sprintf("accepted %s/s, delivered **%s/s** vs River alone %s/s in this run (%s before, %s after): **ratio %.2f**; POST→202 p50 %s p99 %s; POST→first attempt p50 %s, p99 %s; paced at %s/s (achieved %.0f/s): POST→first attempt p50 %s, **p99 %s**",
				count(int(in.Accepted)), count(int(in.Delivered)), count(int(in.Reference)), count(int(in.RiverBefore)), count(int(in.RiverAfter)), in.Ratio(), ms(in.Answer.P50), ms(in.Answer.P99), ms(in.Latency.P50), ms(in.Latency.P99),
				count(in.PacedRate), in.PacedAchieved, ms(in.Paced.P50), ms(in.Paced.P99))
		}
		row(n, scenario, msg, "ratio ≥ 0.30; paced p99 ≤ 50 ms (issue 30)")
	case ScenarioQuiet:
		whose := "the bench process (webhookd, sender and receiver)"
		if cfg.WorkerProcess {
			whose = "webhookd's process alone (API and workers in a process of their own; the sender and the receiver in the bench process)"
		}
		scenario := fmt.Sprintf("quiet: idle for %s, then ~1 KB events POSTed one per request at %s/s for %s each; CPU per event of %s and of the bench database's PostgreSQL backends", quietIdle, joinInts(cfg.QuietRates), cfg.Duration, whose)
		if cfg.WorkerProcess {
			scenario += "; then River alone at the same rates, in a process of its own (a minimal event API that inserts each event as River's job, whose worker signs it and POSTs it; FetchCooldown 1ms) with its database's backends"
		}
		if !bad {
			q := res.Quiet
			pgShare := "n/a (" + q.PostgresNote + ")"
			if q.IdlePostgresCPU != nil {
				pgShare = fmt.Sprintf("%.1f%%", 100**q.IdlePostgresCPU)
			}
			parts := []string{fmt.Sprintf("idle: process %.1f%% of a core, PostgreSQL %s", 100**q.IdleCPU, pgShare)}
			pgMS := func(d *time.Duration) string {
				if d == nil {
					return "n/a"
				}
				return msf(*d) + " ms"
			}
			for _, r := range q.Rates {
				part := fmt.Sprintf("%s/s: **%s ms** per event (process %s ms, PostgreSQL %s), POST→first attempt p50 %s, p99 %s", count(r.Rate), msf(r.Total()), msf(r.CPU), pgMS(r.PostgresCPU), ms(r.Latency.P50), ms(r.Latency.P99))
				if rv := r.River; rv != nil {
					part += fmt.Sprintf(" vs River alone %s ms (process %s ms, PostgreSQL %s; p50 %s, p99 %s): **ratio %.2f**", msf(rv.Total()), msf(rv.CPU), pgMS(rv.PostgresCPU), ms(rv.Latency.P50), ms(rv.Latency.P99), r.Ratio())
				}
				parts = append(parts, part)
			}
			msg = strings.Join(parts, "; ")
		}
		row(n, scenario, msg, "≤ 1.0 ms per event, p99 ≤ 50 ms (issue 30)")
	}
}
