// Package engine accepts events into the outbox (Enqueue) and delivers
// them (Worker): one River job per delivery, with the deliveries row, not
// River's attempt counter, owning the ten-attempt schedule.
//
// The worker sends only when the delivery is pending, due, and its job_id is
// the running job; anything else (a stale or rescued job, a River UI retry, a
// finished delivery) completes without sending. Each attempt and the state it
// leads to are recorded in one statement guarded by the attempt count, so a
// duplicate run can't record twice. A failed attempt snoozes the job until
// the next one is due (a snooze uses no River attempt); success and death
// let River's batching completer finish the job, and if that completion is
// lost the rerun finds the delivery finished and sends nothing. River's own
// MaxAttempts then counts only crashes.
//
// It is webhookd's delivery engine, internal. Programs outside webhookd
// import only its outbox, through package dispatcher: a façade over
// [Enqueuer] that keeps the documented names (NewEnqueuer, Enqueue, Event,
// ValidationError, ErrIdempotencyKeyReused). The River job kinds declared
// here (webhookd.delivery, webhookd.reconcile, webhookd.replay_batch) and
// their args are stored in existing databases: never change them.
package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/batch"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/metrics"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/stacks"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testsignal"
	"github.com/mono/webhookd/internal/webhookrule"
	"github.com/mono/webhookd/schedule"
	"github.com/mono/webhookd/signer"
)

// QueueDeliveries is the River queue that delivery jobs run on.
const QueueDeliveries = "deliveries"

// JobMaxAttemptsDefault is River's MaxAttempts for delivery jobs. It counts
// only crashes, panics and database errors, never failed HTTP attempts.
const JobMaxAttemptsDefault = 25

// Error kinds recorded on attempts besides outbound's.
const (
	// ErrorKindInterrupted is an attempt cut short by our own shutdown; it
	// does not count towards the ten.
	ErrorKindInterrupted = "interrupted"
	// ErrorKindSecretUnavailable is an attempt that could not be signed
	// because the webhook's secret can't be decrypted with the configured
	// keys. Nothing is sent; it counts like any failure.
	ErrorKindSecretUnavailable = "secret_unavailable"
)

// DeliveryArgs are a delivery job's arguments: the delivery id only.
// Payloads and secrets stay in our tables (River UI displays job args).
type DeliveryArgs struct {
	DeliveryID string `json:"delivery_id"`
}

// Kind is the River job kind.
func (DeliveryArgs) Kind() string { return "webhookd.delivery" }

// InsertOpts puts delivery jobs on QueueDeliveries.
func (DeliveryArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDeliveries, MaxAttempts: JobMaxAttemptsDefault}
}

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	// Schedule is the retry schedule. Defaults to scale 1.
	Schedule *schedule.Schedule
	// HTTPTimeout is the outbound client's overall timeout; the job timeout
	// is HTTPTimeout + 10s. Defaults to outbound.TimeoutDefault.
	HTTPTimeout time.Duration
	// BookkeepingTimeout bounds the transaction that records an attempt,
	// which runs even when the job's context is cancelled. Defaults to 10s.
	BookkeepingTimeout time.Duration
	// Now is the clock. Defaults to time.Now; tests pass River's stubbed
	// time generator.
	Now func() time.Time
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
	// WebhookConcurrency caps this process's concurrent attempts to one
	// webhook; a job over the cap is snoozed without using an attempt.
	// Defaults to WebhookConcurrencyDefault.
	WebhookConcurrency int
	// MaxWorkers is the most jobs River runs on this worker at once (the
	// queue's MaxWorkers); it bounds the goroutines kept to run them.
	// Defaults to MaxWorkersDefault.
	MaxWorkers int
	// BulkWhileLive is how many bulk deliveries already behind their time
	// (a backlog) may be under way in this process while another
	// account's live deliveries (PriorityNormal) are being answered; the
	// others wait (see bulkGate).
	// Defaults to BulkWhileLiveDefault(MaxWorkers); negative: no limit.
	BulkWhileLive int
	// ByKey, when set, runs the batched load and recording instead of
	// the worker's db (see store.ByKeyPool); it needs 2 × BatchConcurrency
	// connections. Optional.
	ByKey *store.ByKeyPool
	// Metrics records attempts, latencies and outcomes. Optional: nil
	// records nothing.
	Metrics *metrics.Metrics
	Health  *HealthTracker // endpoint health (Observe after each recorded counted attempt); optional: nil records nothing
	// DeadNoticeWindow is the least time between two delivery.dead
	// notifications of one webhook (see Worker.SetNotifier). Defaults to
	// DeadNoticeWindowDefault.
	DeadNoticeWindow time.Duration
	// NotifyClient sends the operator's notifications (the webhook
	// store.OperatorWebhookID, WEBHOOKD_NOTIFY_URL), exempt from the
	// private-network rule. Optional: nil sends them with the client.
	NotifyClient *outbound.Client
	// TracerProvider receives a client span per attempt, in the trace of
	// the event's stored traceparent (internal/engine/trace.go). Optional: nil
	// or a no-op provider traces nothing and sends the receiver the
	// producer's trace id with a fresh span id, as without tracing.
	TracerProvider trace.TracerProvider
	// KeepFinishedJobs leaves a finished delivery's job to River's
	// completer, which marks it completed (kept for River's completed-job
	// retention, shown in River UI). False, the default: the statement
	// that records the delivery's last attempt deletes its job
	// (store.Recording.DeleteJob), which writes a fifth less WAL per
	// delivery (WEBHOOKD_KEEP_FINISHED_JOBS).
	KeepFinishedJobs bool
	// RecordLinger is how long the recording of an attempt waits for
	// others to share its statement and commit when it comes alone but
	// less than RecordLinger after the one before it (batch.Linger; the
	// wait lasts the whole linger, or until a batch fills): at a few
	// hundred events a second each recording otherwise has a round trip
	// and a commit of its own. A FIFO webhook's recordings never wait (the
	// line's next delivery waits for them). Zero: never (the server's
	// default is RecordLingerDefault).
	RecordLinger time.Duration
	// TestSignals, for tests only: Init its signals before the worker
	// runs. Nil: off.
	TestSignals *WorkerTestSignals
}

// RecordLingerDefault is the server's WorkerConfig.RecordLinger
// (WEBHOOKD_RECORD_LINGER).
const RecordLingerDefault = 20 * time.Millisecond

// WorkerTestSignals tell a test what the delivery worker did, so that it
// waits for a job instead of sleeping or polling (internal/testsignal).
// Production leaves them nil.
type WorkerTestSignals struct {
	// JobDone is sent when a delivery job's run ends, after whatever it
	// recorded (an attempt, a park, a cancel, nothing for a stale job) is
	// committed.
	JobDone testsignal.TestSignal[WorkerJobDone]
}

// WorkerJobDone is what WorkerTestSignals.JobDone carries.
type WorkerJobDone struct {
	DeliveryID string
	JobID      int64
	// Err is what Work returned (a snooze is an error too).
	Err error
}

// MaxWorkersDefault is WorkerConfig.MaxWorkers's default.
const MaxWorkersDefault = 400

// BookkeepingTimeoutDefault bounds the transaction recording an attempt.
const BookkeepingTimeoutDefault = 10 * time.Second

// JobTimeoutMargin is added to the HTTP timeout to make the job timeout.
const JobTimeoutMargin = 10 * time.Second

// WithDefaults returns a copy of c with defaults filled in.
func (c *WorkerConfig) WithDefaults() *WorkerConfig {
	out := WorkerConfig{}
	if c != nil {
		out = *c
	}
	if out.Schedule == nil {
		out.Schedule, _ = schedule.New(schedule.ScaleDefault)
	}
	if out.HTTPTimeout <= 0 {
		out.HTTPTimeout = outbound.TimeoutDefault
	}
	if out.BookkeepingTimeout <= 0 {
		out.BookkeepingTimeout = BookkeepingTimeoutDefault
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	if out.Logger == nil {
		out.Logger = zap.NewNop()
	}
	if out.WebhookConcurrency <= 0 {
		out.WebhookConcurrency = WebhookConcurrencyDefault
	}
	if out.MaxWorkers <= 0 {
		out.MaxWorkers = MaxWorkersDefault
	}
	if out.BulkWhileLive == 0 {
		out.BulkWhileLive = BulkWhileLiveDefault(out.MaxWorkers)
	}
	return &out
}

// JobTimeout is the River job timeout for a worker with this config.
func (c *WorkerConfig) JobTimeout() time.Duration {
	return c.WithDefaults().HTTPTimeout + JobTimeoutMargin
}

// Worker delivers one delivery per job run.
type Worker struct {
	river.WorkerDefaults[DeliveryArgs]

	db       store.DB
	keys     *keyring.Keyring
	client   *outbound.Client
	cfg      *WorkerConfig
	inflight *inflight
	bulk     *bulkGate
	throttle *throttle // rate-limited webhooks' start slots (internal/engine/throttle.go)
	loads    *batch.Batcher[string, *store.Target]
	records  *batch.Batcher[store.Recording, bool]
	stacks   *stacks.Pool
	tracer   trace.Tracer             // nil: tracing off
	oauth    oauthSettings            // webhooks' OAuth2 settings (internal/engine/webhook_oauth.go)
	notifier atomic.Pointer[Enqueuer] // delivery.dead (SetNotifier, internal/engine/deadnotice.go)
	wakes    atomic.Pointer[Wakes]    // the deliveries queue's alarms (SetWakes; nil: none)
	// closing ends the recovery wakes (wakeRecovered) at Close; wakeSlots
	// holds their statements in flight (recoveryWakesAtOnce).
	closing   context.Context
	close     context.CancelFunc
	wakeSlots chan struct{}
}

// SetWakes gives the worker the deliveries queue's alarms (Wakes): a
// hand-off moved to its next attempt sets one. Nil: none (the queue's poll
// takes such jobs).
func (w *Worker) SetWakes(wakes *Wakes) { w.wakes.Store(wakes) }

// NewWorker returns a delivery worker. db is normally the pool; tests pass a
// transaction.
func NewWorker(db store.DB, keys *keyring.Keyring, client *outbound.Client, cfg *WorkerConfig) (*Worker, error) {
	if db == nil || keys == nil || client == nil {
		return nil, errors.New("engine.NewWorker: db, keys and client are required")
	}
	cfg = cfg.WithDefaults()
	w := &Worker{db: db, keys: keys, client: client, cfg: cfg, inflight: newInflight(cfg.WebhookConcurrency),
		bulk: newBulkGate(cfg.BulkWhileLive, cfg.Metrics.BulkGateWait),
		// One goroutine per worker slot at most; each leaves after a
		// minute without a job.
		stacks: stacks.New(cfg.MaxWorkers, time.Minute), tracer: Tracer(cfg.TracerProvider)}
	w.closing, w.close = context.WithCancel(context.Background())
	w.wakeSlots = make(chan struct{}, recoveryWakesAtOnce)
	// Loading deliveries and recording attempts are batched across the
	// worker's jobs: one query and one commit for every delivery whose job
	// is waiting, at most BatchConcurrency of each at once. A transaction
	// (tests) can serve one statement at a time.
	concurrency := BatchConcurrency
	if _, ok := db.(pgx.Tx); ok {
		concurrency = 1
	}
	w.throttle = newThrottle(db, cfg.Now, cfg.BookkeepingTimeout, cfg.Metrics)
	batchDB := db
	if cfg.ByKey != nil {
		batchDB = cfg.ByKey
	}
	w.loads = batch.New(func(ctx context.Context, ids []string) ([]*store.Target, error) {
		targets, err := store.GetTargets(ctx, batchDB, ids)
		seen := make(map[*store.Target]bool, len(targets))
		for i, t := range targets {
			if t != nil && seen[t] {
				c := *t // the same delivery twice (a stale job): a copy each
				targets[i] = &c
			}
			seen[t] = true
		}
		return targets, err
	}, concurrency, batchMax, cfg.BookkeepingTimeout)
	w.records = batch.New(func(ctx context.Context, rs []store.Recording) ([]bool, error) {
		return w.recordAttempts(ctx, batchDB, rs) // with delivery.dead (internal/engine/deadnotice.go)
	}, concurrency, batchMax, cfg.BookkeepingTimeout).Linger(cfg.RecordLinger, batchMax)
	return w, nil
}

// Close lets the goroutines kept for jobs exit and ends the recovery wakes
// (wakeRecovered). Call it once River has stopped working jobs; a job run
// after it runs on River's goroutine.
func (w *Worker) Close() {
	w.close()
	w.stacks.Close()
}

// Batching of the worker's statements: at most BatchConcurrency loads and
// as many recordings run at once, each for at most batchMax deliveries.
// One of each: the deliveries waiting while one runs go into the next,
// larger one. Against two (BENCHMARKS.md, issue 30), single-event intake
// with its deliveries delivered ~10 % more per second on the 2-core bench
// machine (ratio to River 0.27 – 0.30 against 0.25 – 0.27), the drain by a
// worker process the same, and the by-key pool needs 2 connections, not 4.
const (
	BatchConcurrency = 1
	batchMax         = 256
)

// Timeout is the HTTP timeout plus a margin, so the client's own timeout
// ends a hung attempt (recorded) before River cancels the job.
func (w *Worker) Timeout(*river.Job[DeliveryArgs]) time.Duration {
	return w.cfg.HTTPTimeout + JobTimeoutMargin
}

// NextRetry applies to errors only (a database outage, a panic): retry soon,
// backing off to a minute. Failed HTTP attempts never reach it.
func (w *Worker) NextRetry(job *river.Job[DeliveryArgs]) time.Time {
	d := time.Duration(job.Attempt*job.Attempt) * time.Second
	if d > time.Minute {
		d = time.Minute
	}
	return w.cfg.Now().Add(d)
}

// TrySlot takes one of this process's slots for webhookID, the ones its
// deliveries' attempts take (the webhook's cap, WebhookConcurrency at
// most), if one is free now, for an attempt made outside a job (a test
// send). release gives it back with the attempt's result, which moves the
// webhook's cap as a delivery's attempt would. With none free, ok is false
// and wait estimates when one frees (a second at least).
func (w *Worker) TrySlot(webhookID string) (release func(*outbound.Result), wait time.Duration, ok bool) {
	if !w.inflight.tryAcquire(webhookID) {
		return nil, max(w.inflight.freeIn(webhookID, w.cfg.HTTPTimeout), time.Second), false
	}
	at := time.Now()
	return func(res *outbound.Result) {
		w.release(webhookID, time.Since(at), res)
	}, 0, true
}

// release gives back webhookID's slot after an attempt that took took and
// ended in res (inflight.release), and starts the wake of the webhook's
// backlog when its answers show it has recovered.
func (w *Worker) release(webhookID string, took time.Duration, res *outbound.Result) {
	if !w.inflight.release(webhookID, took, attemptEndOf(res)) {
		return
	}
	if _, ok := w.db.(pgx.Tx); ok {
		w.inflight.wakeDone(webhookID, true) // a test's transaction: one statement at a time, the job's
		return
	}
	go w.wakeRecovered(webhookID)
}

// wakeRecovered wakes the backlog of a webhook whose answers have come
// fast again while its jobs wait for turns given when it was slow or a
// black hole (up to SaturatedTurnsMax ahead): every recoveryWakeEvery, the
// jobs of its oldest due deliveries that wait over recoveryLag, as many as
// the endpoint takes in that time (inflight.recoveryRound), until none
// waits that long (inflight.drained), its answers slow again, or the
// worker closes. A job woken before its webhook has room is turned away
// again, with a new turn, and woken again in a later round if that is far
// (the webhook's average attempt, which turns are reckoned by, comes down
// over a few dozen answers). Without it, such a backlog would wait for its
// turns: up to SaturatedTurnsMax after the endpoint recovered.
func (w *Worker) wakeRecovered(webhookID string) {
	giveUp := true // unless the wake ends as it should
	defer func() { w.inflight.wakeDone(webhookID, giveUp) }()
	log := w.cfg.Logger.With(zap.String("webhook_id", webhookID))
	tick := time.NewTicker(recoveryWakeEvery)
	defer tick.Stop()
	var woken int64
	for {
		n, over := w.inflight.recoveryRound(webhookID)
		if over {
			break
		}
		if n > 0 {
			select {
			case w.wakeSlots <- struct{}{}: // one of recoveryWakesAtOnce
			case <-w.closing.Done():
				return
			}
			ctx, cancel := context.WithTimeout(w.closing, w.cfg.BookkeepingTimeout)
			now := time.Now()
			got, err := store.WakeWaiting(ctx, w.db, webhookID, now, now.Add(recoveryLag), n)
			cancel()
			<-w.wakeSlots
			if err != nil {
				if w.closing.Err() == nil {
					log.Warn("could not wake the backlog of a recovered webhook; its jobs go at their turns", zap.Error(err))
				}
				return
			}
			woken += got
			if got < int64(n) {
				// None left waiting that long, but for jobs turned away
				// since: the next round looks only if there are some.
				w.inflight.drained(webhookID, now)
			}
		}
		select {
		case <-tick.C:
		case <-w.closing.Done():
			return
		}
	}
	giveUp = false
	if woken > 0 {
		log.Info("webhook answering again: woke the jobs waiting for its turns", zap.Int64("woken", woken))
	}
}

// Send makes one HTTP attempt of target, signed at start: the envelope,
// Content-Type, Mono-Signature, Mono-Event-Id, the webhook's custom headers
// and, when the producer gave one, a traceparent in its trace. A secret or
// headers that can't be decrypted (their key left WEBHOOKD_ENCRYPTION_KEY)
// make an attempt that fails without sending, kind secret_unavailable, so
// the delivery follows the schedule and ends dead (replayable) instead of
// hanging. An address the outbound policy refuses is logged at warn on log,
// which should carry the webhook id, with the range it is in.
func (w *Worker) Send(ctx context.Context, target *store.Target, start time.Time, log *zap.Logger) *outbound.Result {
	secret, err := w.keys.Decrypt(target.SecretCipher, target.SecretKeyID, []byte(target.WebhookID))
	if err != nil {
		log.Error("cannot decrypt the webhook secret; is its key still in WEBHOOKD_ENCRYPTION_KEY?", zap.String("key_id", target.SecretKeyID))
		return &outbound.Result{
			ErrorKind:    ErrorKindSecretUnavailable,
			ErrorMessage: "the webhook secret could not be decrypted: its encryption key (id " + target.SecretKeyID + ") is not in WEBHOOKD_ENCRYPTION_KEY",
		}
	}
	custom, err := webhookrule.DecryptHeaders(w.keys, target.WebhookID, target.HeadersCipher, target.HeadersKeyID)
	if err != nil {
		log.Error("cannot decrypt the webhook's custom headers; is their key still in WEBHOOKD_ENCRYPTION_KEY?")
		return &outbound.Result{
			ErrorKind:    ErrorKindSecretUnavailable,
			ErrorMessage: "the webhook's custom headers could not be decrypted: their encryption key is not in WEBHOOKD_ENCRYPTION_KEY",
		}
	}
	// During a rotation's overlap the secret rotated out signs too (a
	// second v1=, newest first); its expiry is checked here, at send time.
	secrets := []string{string(secret)}
	if target.PreviousSecretCipher != nil && target.PreviousSecretKeyID != nil && target.PreviousSecretExpiresAt != nil &&
		start.Before(*target.PreviousSecretExpiresAt) {
		previous, err := w.keys.Decrypt(target.PreviousSecretCipher, *target.PreviousSecretKeyID, []byte(target.WebhookID))
		if err != nil {
			log.Warn("cannot decrypt the webhook's previous secret; signing with the current one only", zap.String("key_id", *target.PreviousSecretKeyID))
		} else {
			secrets = append(secrets, string(previous))
		}
	}
	header := make(http.Header, 4+len(custom))
	for name, value := range custom {
		header.Set(name, value)
	}
	header.Set("Content-Type", "application/json")
	header.Set(signer.Header, signer.Sign(start, target.Body, secrets...))
	header.Set("Mono-Event-Id", target.EventID)
	if target.SignatureScheme == store.SchemeStandard {
		setStandardSignature(header, target.EventID, start, target.Body, secrets)
	}
	ctx, span := w.startAttempt(ctx, target, header) // the receiver's traceparent (internal/engine/trace.go)
	// With the webhook's TLS setting (internal/engine/webhook_tls.go).
	res := w.post(ctx, target, header, log)
	endAttempt(span, res)
	if res.ErrorKind == outbound.ErrorKindBlockedAddress {
		// The attempt says only "the address is not allowed" (the account
		// reads it); which range, for the operator, goes in the log. log
		// carries the webhook id; the reason names no part of the URL.
		log.Warn("webhook address refused by the outbound policy", zap.String("reason", res.BlockedReason()))
	}
	return res
}

// Work makes one attempt of the delivery, if it is this job's to make.
func (w *Worker) Work(ctx context.Context, job *river.Job[DeliveryArgs]) error {
	// On a goroutine whose stack has grown already (package stacks).
	var err error
	w.stacks.Run(func() { err = w.work(ctx, job) })
	if w.cfg.TestSignals != nil {
		w.cfg.TestSignals.JobDone.Signal(WorkerJobDone{DeliveryID: job.Args.DeliveryID, JobID: job.ID, Err: err})
	}
	return err
}

func (w *Worker) work(ctx context.Context, job *river.Job[DeliveryArgs]) error {
	log := w.cfg.Logger.WithLazy(zap.String("delivery_id", job.Args.DeliveryID), zap.Int64("job_id", job.ID))

	// A handed-off first attempt comes with its target, made where its
	// delivery was inserted; every other run loads it.
	target := preloaded(ctx, job)
	if target == nil {
		var err error
		if target, err = w.loads.Do(ctx, job.Args.DeliveryID); err != nil {
			return fmt.Errorf("error loading delivery %s: %w", job.Args.DeliveryID, err)
		}
	}
	if target == nil {
		log.Warn("delivery not found; finishing its job without sending")
		return nil
	}
	if target.State != store.StatePending || target.JobID == nil || *target.JobID != job.ID {
		log.Debug("stale job: delivery not pending or served by another job; not sending", zap.String("state", target.State))
		return nil
	}
	log = log.WithLazy(zap.String("event_id", target.EventID), zap.String("webhook_id", target.WebhookID), zap.String("account_id", target.AccountID))

	if target.WebhookGone {
		cancelled, err := store.CancelDelivery(ctx, w.db, target.DeliveryID, job.ID, w.cfg.Now())
		if err != nil {
			return fmt.Errorf("error cancelling delivery %s: %w", target.DeliveryID, err)
		}
		if cancelled {
			w.cfg.Metrics.DeliveriesFinished(metrics.OutcomeCancelled, target.EventType, 1)
			log.Info("webhook deleted; delivery cancelled")
		}
		return nil
	}

	if target.Paused {
		// Nothing is sent while the webhook is paused: the delivery waits
		// in state paused, its schedule kept, until it is resumed.
		parked, err := store.ParkDelivery(ctx, w.db, target, job.ID, w.cfg.Now())
		if err != nil {
			return fmt.Errorf("error parking delivery %s: %w", target.DeliveryID, err)
		}
		if parked {
			log.Debug("webhook paused; delivery parked")
		}
		return nil
	}

	now := w.cfg.Now()
	if target.NextAttemptAt != nil && target.NextAttemptAt.After(now) {
		return w.snooze(snoozeNotDue, target.NextAttemptAt.Sub(now))
	}
	// A FIFO webhook's delivery goes only as the head of its line
	// (internal/engine/fifo.go).
	if wait, err := w.fifoWait(ctx, target); err != nil {
		return fmt.Errorf("error reading the FIFO line of delivery %s: %w", target.DeliveryID, err)
	} else if wait > 0 {
		return w.snooze(snoozeFIFO, wait)
	}
	// A rate-limited webhook: wait for a start slot, snoozed, holding no
	// worker (internal/engine/throttle.go).
	limited, snooze, err := w.throttle.reserve(ctx, target, job.ID, now)
	if err != nil {
		return fmt.Errorf("error reserving a start slot for delivery %s: %w", target.DeliveryID, err)
	}
	if snooze > 0 {
		return w.snooze(snoozeRateLimit, snooze)
	}

	if job.Priority > PriorityNormal && !w.inflight.wouldTurnAway(target.WebhookID) {
		// A backlog gives way to other accounts' live traffic (bulkGate);
		// a job its webhook's cap turns away snoozes at once instead of
		// waiting here in a worker slot.
		release, err := w.bulk.enter(ctx, target.AccountID, now.Sub(job.ScheduledAt))
		if err != nil {
			return w.snooze(snoozeStopping, 0) // no attempt used
		}
		defer release()
	}

	if !w.inflight.acquire(ctx, target.WebhookID) {
		if limited {
			// A rate-limited job turned away (the cap held by slow
			// answers, or by jobs late at their slots together, each
			// waiting for its turn) takes a new slot and waits for it:
			// back after the cap's guess, its turn would likely be over
			// 2 s ahead and need a new slot then, a third fetch
			// (internal/engine/throttle.go).
			return w.snooze(snoozeRateLimit, w.throttle.again(ctx, target, job.ID))
		}
		// Saturated by a slow or black-hole endpoint: wait in the queue
		// without using an attempt, so one endpoint can't hold every worker.
		// Its turn (inflight.turn) spreads a backlog's jobs over the times
		// the webhook's slots should free.
		free, turn := w.inflight.turn(target.WebhookID, w.cfg.HTTPTimeout)
		return w.snooze(snoozeWebhookCap, max(saturatedWait(job.Metadata, free), turn))
	}
	slotAt := time.Now()
	start := w.cfg.Now()
	if limited {
		// The start itself, at least 1/N s after the webhook's last.
		claimed, ok, err := w.throttle.claim(ctx, target.WebhookID, *target.RateLimit)
		if err != nil || !ok {
			w.inflight.giveBack(target.WebhookID)
			if err != nil {
				return fmt.Errorf("error claiming a start for delivery %s: %w", target.DeliveryID, err)
			}
			return w.snooze(snoozeRateLimit, w.throttle.again(ctx, target, job.ID))
		}
		start = claimed
	}
	if target.Attempts == 0 {
		w.cfg.Metrics.FirstAttemptLatency(start.Sub(firstDue(target)))
	} else if target.NextAttemptAt != nil {
		w.cfg.Metrics.RetryLateness(start.Sub(*target.NextAttemptAt))
	}
	res := w.Send(ctx, target, start, log)
	end := w.cfg.Now()
	// The cap is on requests in flight: the slot is free once the response
	// is in, before the (batched) recording.
	w.release(target.WebhookID, time.Since(slotAt), res)
	if job.Priority <= PriorityNormal && res.StatusCode != 0 && res.Duration < bulkLiveAnswer && !waitedForSlot(target) {
		// Live traffic that a receiver answers: a backlog gives way to it
		// (not to a delivery that waited for its rate limit's slot).
		w.bulk.live(target.AccountID)
	}

	// Record what happened even when the job's context is gone (shutdown,
	// job timeout): the receiver may have seen a success.
	bookCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.BookkeepingTimeout)
	defer cancel()

	scheduledAt := start
	if target.NextAttemptAt != nil {
		scheduledAt = *target.NextAttemptAt
	}
	attempt := &store.AttemptRecord{
		Number:          target.Attempts + 1,
		Generation:      target.Generation,
		ScheduledAt:     scheduledAt,
		StartedAt:       start,
		Duration:        res.Duration,
		ResponseExcerpt: res.ResponseExcerpt,
		SignatureT:      start.Unix(),
	}
	if res.StatusCode != 0 {
		attempt.StatusCode = &res.StatusCode
	}
	genAttempt := target.GenAttempts + 1
	// Where the attempt leads is decided apart from the I/O (decide.go).
	decision := decideAttempt(w.cfg.Schedule, attemptFacts{
		Result:   res,
		Attempt:  genAttempt,
		End:      end,
		Stopping: ctx.Err() != nil && !errors.Is(context.Cause(ctx), context.DeadlineExceeded),
		OnGone:   target.OnGone,
	})
	errorKind := decision.ErrorKind
	if errorKind != "" {
		attempt.ErrorKind = &errorKind
		attempt.ErrorMessage = &res.ErrorMessage
	}
	attempt.Counted = decision.Counted
	outcome := &store.Outcome{Now: end, State: decision.State, NextAttemptAt: decision.NextAttemptAt}

	fields := []zap.Field{
		zap.Int("attempt", genAttempt), zap.Int("generation", target.Generation),
		zap.Int("status", res.StatusCode), zap.String("error_kind", errorKind),
		zap.Duration("duration", res.Duration), zap.String("state", outcome.State),
	}

	// One statement records the attempt and the new state, guarded by the
	// attempt count and the job id. Success and death delete the job in
	// that statement (or, with KeepFinishedJobs, complete it through
	// River's batching completer: should that completion be lost, a crash
	// right here, the job runs again, finds the delivery finished and sends
	// nothing). The deliveries row, not the job, is the truth.
	record := w.records.Do
	if target.FIFOSeq != nil {
		record = w.records.DoAtOnce // the line's next delivery waits for it
	}
	recorded, err := record(bookCtx, store.Recording{Target: target, JobID: job.ID, Attempt: attempt, Outcome: outcome,
		DeleteJob: !w.cfg.KeepFinishedJobs})
	if err != nil {
		return fmt.Errorf("error recording attempt %d of delivery %s: %w", attempt.Number, target.DeliveryID, err)
	}
	if !recorded {
		log.Warn("attempt made but another run recorded first; not recording twice", fields...)
		return nil
	}
	w.cfg.Metrics.Attempt(res.StatusCode, errorKind, res.Duration)
	if attempt.Counted && target.AccountID != NotifyAccount {
		// A notification's attempts stay out of endpoint health, so their
		// failures never make another notification (endpoint.failing).
		w.cfg.Health.Observe(target.WebhookID, end, res.Succeeded(), errorKind)
	}
	if decision.PauseWebhook {
		w.pauseGone(bookCtx, target, end, log)
	}
	switch {
	case !attempt.Counted:
		log.Info("attempt interrupted by shutdown; it does not count", fields...)
		return w.snooze(snoozeInterrupted, 0)
	case outcome.State == store.StatePending:
		log.Debug("attempt failed; retry scheduled", append(fields, zap.Time("next_attempt_at", *outcome.NextAttemptAt))...)
		return w.snooze(snoozeRetry, max(outcome.NextAttemptAt.Sub(w.cfg.Now()), 0))
	case outcome.State == store.StateDead:
		w.cfg.Metrics.DeliveriesFinished(metrics.OutcomeDead, target.EventType, 1)
		log.Warn("delivery dead after its last attempt", fields...)
	default:
		w.cfg.Metrics.DeliveriesFinished(metrics.OutcomeSucceeded, target.EventType, 1)
		log.Debug("delivered", fields...)
		if err := w.fifoAdvance(bookCtx, target); err != nil {
			log.Warn("could not wake the next delivery of the FIFO line; it goes at its own next look", zap.Error(err))
		}
	}
	return nil
}

// Why a delivery job snoozes (webhookd_job_snoozes_total's reason).
const (
	snoozeNotDue      = "not_due"
	snoozeFIFO        = "fifo"
	snoozeRateLimit   = "rate_limit"
	snoozeWebhookCap  = "webhook_cap"
	snoozeRetry       = "retry"
	snoozeInterrupted = "interrupted"
	snoozeStopping    = "stopping"
)

// snooze puts the job back for d without using an attempt, counting it by
// reason: River keeps the count in the job's metadata only as long as it
// keeps the job, which a finished delivery's is not (KeepFinishedJobs).
func (w *Worker) snooze(reason string, d time.Duration) error {
	w.cfg.Metrics.JobSnoozed(reason)
	return river.JobSnooze(d)
}
