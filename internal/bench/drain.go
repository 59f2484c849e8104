package bench

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"
)

// The accounts of the drain scenarios.
const (
	healthyAccount   = "acct_healthy"
	blackHoleAccount = "acct_blackhole"
)

// drain (scenarios 1, 3 and 6) inserts cfg.Backlog pending deliveries to one
// healthy receiver with the workers stopped, then starts them and times
// until every delivery has succeeded. With holeBacklog > 0, that many
// deliveries of another account to a black hole are inserted first, so they
// are at the head of the queue. A meter, when given, measures from the start
// of the workers to the end of the drain.
func (e *env) drain(ctx context.Context, n, holeBacklog int, m *meter) (*Throughput, error) {
	s, recv, _, err := e.newStageWithReceiver(ctx, n, 1, false, healthyAccount)
	if err != nil {
		return nil, err
	}
	defer s.close()
	var hole *blackHole
	if holeBacklog > 0 {
		var holeURL string
		if hole, holeURL, err = s.startBlackHole(); err != nil {
			return nil, err
		}
		if _, err := s.createWebhook(ctx, blackHoleAccount, holeURL); err != nil {
			return nil, err
		}
		if err := s.insertBacklog(ctx, blackHoleAccount, holeBacklog); err != nil {
			return nil, err
		}
	}
	total := e.cfg.Backlog
	if err := s.insertBacklog(ctx, healthyAccount, total); err != nil {
		return nil, err
	}

	// With Config.WorkerProcess, scenario 1's workers are another
	// process's: this stage's server never starts.
	var wp *workerProcess
	if e.cfg.WorkerProcess && n == ScenarioDrain && m == nil && holeBacklog == 0 {
		if wp, err = s.startWorkerProcess(ctx, s.srvCfg, false); err != nil {
			return nil, err
		}
	}

	if m != nil {
		if err := m.begin(ctx, s); err != nil {
			return nil, err
		}
	}
	var cpu0 time.Duration
	var cpuErr error
	var backends *backendsMeter // the database's backends, beside the worker process
	if wp != nil {
		backends = e.startBackends(ctx, s.dbName)
		defer backends.stop(ctx) //nolint:errcheck // stopped below when the drain ends; a failed drain's count is not read
		cpu0, cpuErr = wp.cpu()
	}
	start := time.Now()
	deadline := start.Add(e.cfg.Timeout)
	waitCtx := ctx
	if wp != nil {
		if _, err := wp.startWorkers(ctx); err != nil {
			return nil, err
		}
		var stopWatch context.CancelFunc
		waitCtx, stopWatch = wp.watch(ctx)
		defer stopWatch()
	} else if err := s.start(ctx); err != nil {
		return nil, err
	}
	s.progress("workers started: draining %s deliveries", count(total))
	if err := s.waitAnswered(waitCtx, recv, total, deadline); err != nil {
		return nil, cmp.Or(context.Cause(waitCtx), err)
	}
	err = s.waitFor(waitCtx, "every delivery to be recorded as succeeded", time.Until(deadline), 5*time.Millisecond, func() (bool, string, error) {
		pending, err := s.pendingOf(ctx, healthyAccount)
		return pending == 0, fmt.Sprintf("%s still pending", count(pending)), err
	})
	if err != nil {
		return nil, cmp.Or(context.Cause(waitCtx), err)
	}
	out := &Throughput{Deliveries: total, Elapsed: time.Since(start)}
	if backends != nil {
		var err error
		if out.Backends, out.CPUNote, err = backends.stop(ctx); err != nil {
			out.CPUNote = err.Error() // the worker process's figures stand without it
		}
	}
	if wp != nil {
		if out.Worker, err = s.workerOutcome(ctx, wp, cpu0, cpuErr, recv); err != nil {
			return nil, err
		}
	}
	if m != nil {
		if err := m.end(ctx, total); err != nil {
			return nil, err
		}
	}
	if out.Snoozes, err = s.snoozes(ctx); err != nil {
		return nil, err
	}
	if err := recv.refresh(); err != nil {
		return nil, err
	}
	if bad := recv.bad.Load(); bad > 0 {
		return nil, fmt.Errorf("the receiver could not read %d requests", bad)
	}
	if err := s.checkSentOnce(ctx, healthyAccount, recv.requests.Load(), total); err != nil {
		return nil, err
	}
	if hole != nil && hole.accepted.Load() == 0 {
		return nil, fmt.Errorf("the black hole was never contacted: the scenario did not test isolation")
	}
	s.progress("%s deliveries in %.2f s: %s/s; %s%s", count(total), out.Elapsed.Seconds(), count(int(out.PerSecond())), snoozesText(out.Snoozes), strings.ReplaceAll(workerProcessResult(out), "**", ""))
	return out, nil
}

// workerOutcome reads what the drain cost the worker process (its CPU
// since cpu0, or why not) and what it left: the receiver's requests, and
// the deliveries and attempts recorded. The process is then stopped, so
// that it is gone when the drain returns.
func (s *stage) workerOutcome(ctx context.Context, wp *workerProcess, cpu0 time.Duration, cpuErr error, recv *receiver) (*WorkerProcess, error) {
	w := &WorkerProcess{PID: wp.pid()}
	cpu1, err := wp.cpu()
	switch {
	case cpuErr != nil:
		w.CPUNote = cpuErr.Error()
	case err != nil:
		w.CPUNote = err.Error()
	default:
		w.CPU, w.CPUKnown = cpu1-cpu0, true
	}
	wp.stop()
	if err := recv.refresh(); err != nil {
		return nil, err
	}
	w.Requests = recv.requests.Load()
	if w.Succeeded, w.Attempts, err = s.drainOutcome(ctx, healthyAccount); err != nil {
		return nil, err
	}
	return w, nil
}

// waitAnswered waits until recv has answered total requests with 200, or
// deadline.
func (s *stage) waitAnswered(ctx context.Context, recv *receiver, total int, deadline time.Time) error {
	return s.waitFor(ctx, "the receiver to answer every delivery", time.Until(deadline), 2*time.Millisecond, func() (bool, string, error) {
		if err := recv.refresh(); err != nil {
			return false, "", err
		}
		got := recv.ok.Load()
		return got >= int64(total), fmt.Sprintf("%s of %s delivered", count(int(got)), count(total)), nil
	})
}

// isolation is scenario 3: scenario 1 beside a black hole. When scenario 1
// has not run, its baseline is measured first.
func (e *env) isolation(ctx context.Context, baseline *Throughput) (*Isolation, error) {
	if baseline == nil {
		e.progress(ScenarioIsolation, "no result of scenario 1 with webhookd in process: measuring the baseline drain first")
		var err error
		if baseline, err = e.drain(ctx, ScenarioIsolation, 0, nil); err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
	}
	healthy, err := e.drain(ctx, ScenarioIsolation, e.cfg.BlackHole, nil)
	if err != nil {
		return nil, err
	}
	return &Isolation{
		Healthy:   *healthy,
		BlackHole: e.cfg.BlackHole,
		Baseline:  baseline.PerSecond(),
		Ratio:     healthy.PerSecond() / baseline.PerSecond(),
	}, nil
}
