package bench

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testdb"
)

// TestIntakeQuietSmoke runs scenarios 8 and 9 with tiny sizes: every event
// is accepted and delivered, River's figure is measured beside the intake,
// and CPU is counted. The figures mean nothing at this size.
func TestIntakeQuietSmoke(t *testing.T) {
	t.Parallel()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	res, err := Run(ctx, &Config{
		DatabaseURL:  testdb.BaseURL(),
		Scenarios:    []int{ScenarioIntake, ScenarioQuiet},
		Backlog:      200,
		IntakeEvents: 300,
		QuietRates:   []int{20},
		Duration:     time.Second,
		Timeout:      time.Minute,
		Warmup:       200 * time.Millisecond,
		// Taken by the server and shown in the table's settings.
		FetchCooldown:      30 * time.Millisecond,
		IntakeTransactions: 2,
		IntakeLinger:       5 * time.Millisecond,
		RecordLinger:       server.RecordLingerOff,
		PoissonArrivals:    true,
		Out:                &out,
		Progress:           logWriter{t},
	})
	t.Log("\n" + out.String())
	require.NoError(t, err)

	in := res.Intake
	require.NotNil(t, in)
	require.Equal(t, 300, in.Events)
	require.Equal(t, 300, in.Latency.N)
	require.Equal(t, 300, in.Answer.N)
	require.Positive(t, in.RiverBefore, "River's figure is measured in the same run")
	require.Positive(t, in.RiverAfter)
	require.InDelta(t, (in.RiverBefore+in.RiverAfter)/2, in.Reference, 1e-9)
	require.Positive(t, in.Delivered)
	// Nothing is delivered before it is sent and committed; but a
	// handed-off first attempt starts at the COMMIT, without a load, and
	// can reach the receiver before the producer has read its 202 (the
	// answer's way back): the last arrival may come that much before the
	// last 202, which the 5 % allows.
	require.LessOrEqual(t, in.Delivered, in.Accepted*1.05, "delivered faster than accepted")
	require.InDelta(t, in.Delivered/in.Reference, in.Ratio(), 1e-9)
	require.Equal(t, max(1, int(in.Delivered*intakePacedShare)), in.PacedRate)
	require.Positive(t, in.Paced.N)
	require.Contains(t, out.String(), "| 8 | intake:")
	require.Contains(t, out.String(), "FetchCooldown 30ms, FetchPollInterval 1s")
	require.Contains(t, out.String(), "a lone recording waits for company never;")
	require.Contains(t, out.String(), "events POSTed with the bootstrap admin key, those at a rate at a Poisson process's instants")
	require.Contains(t, out.String(), "(intake transactions at once: 2; a lone request waits for company 5ms; first attempts handed off at once, where the API works deliveries too: 100)")

	q := res.Quiet
	require.NotNil(t, q)
	require.NotNil(t, q.IdleCPU)
	require.Len(t, q.Rates, 1)
	r := q.Rates[0]
	require.Equal(t, 20, r.Rate)
	require.Equal(t, 20, r.Sent)
	require.Equal(t, 20, r.Latency.N)
	require.Positive(t, r.CPU)
	require.NotNil(t, r.PostgresCPU, "PostgreSQL runs on this machine in the tests: %s", q.PostgresNote)
	require.Equal(t, r.CPU+*r.PostgresCPU, r.Total())
	require.Nil(t, r.River, "River alone is measured beside webhookd's own process only")
	require.Zero(t, r.Ratio())
	require.Contains(t, out.String(), "| 9 | quiet:")
}

// TestQuietOwnProcessSmoke runs scenario 9 with webhookd (API and workers)
// in a process of its own (-worker process): every event is POSTed to that
// process and delivered by it, and its CPU is counted instead of the bench
// process's; then River alone, in a process of its own, at the same rate.
func TestQuietOwnProcessSmoke(t *testing.T) {
	t.Parallel()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	res, err := Run(ctx, &Config{
		DatabaseURL:   testdb.BaseURL(),
		Scenarios:     []int{ScenarioQuiet},
		QuietRates:    []int{20},
		Duration:      time.Second,
		Timeout:       time.Minute,
		WorkerProcess: true,
		DBMaxConns:    6,
		Out:           &out,
		Progress:      logWriter{t},
	})
	t.Log("\n" + out.String())
	require.NoError(t, err)
	q := res.Quiet
	require.NotNil(t, q)
	require.True(t, q.OwnProcess)
	require.Len(t, q.Rates, 1)
	r := q.Rates[0]
	require.Equal(t, 20, r.Sent)
	require.Equal(t, 20, r.Latency.N, "every event delivered by the process")
	require.Positive(t, r.CPU, "the process's CPU")
	require.NotNil(t, r.PostgresCPU, q.PostgresNote)
	require.Contains(t, out.String(), "webhookd's process alone")

	// River alone at the same rate, in a process of its own, beside it.
	rv := r.River
	require.NotNil(t, rv, "River's figure is measured in the same run")
	require.Equal(t, 20, rv.Sent)
	require.Equal(t, 20, rv.Latency.N, "every event delivered by River's process")
	require.Positive(t, rv.CPU, "River's process's CPU")
	require.NotNil(t, rv.PostgresCPU)
	require.Positive(t, *rv.PostgresCPU, "River's database's backends")
	require.InDelta(t, float64(r.Total())/float64(rv.Total()), r.Ratio(), 1e-9)
	require.Contains(t, out.String(), fmt.Sprintf("vs River alone %s ms", msf(rv.Total())))
}
