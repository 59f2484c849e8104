package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
)

// A server that is both API and worker makes the first attempt of an event
// POSTed to it itself (WEBHOOKD_HANDOFFS), alone or in a batch: while the
// receiver holds the attempt, the delivery's job still waits on its lease
// (scheduled), where River would have it running; the success deletes it.
// With WEBHOOKD_HANDOFFS=0 (server.HandoffsOff) River's worker runs the job.
func TestHandoffsWired(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		handoffs int
		batch    bool
		want     string
	}{{"Default", 0, false, "scheduled"}, {"Batch", 0, true, "scheduled"}, {"Off", server.HandoffsOff, false, "running"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := startServerWith(t, true, func(c *server.Config) { c.Handoffs = tc.handoffs })
			release := make(chan struct{})
			recv := testreceiver.New(t, func(_ int, w http.ResponseWriter, req *http.Request) {
				select {
				case <-release:
				case <-req.Context().Done():
				}
				w.WriteHeader(http.StatusOK)
			})
			account := "acct_handoff_" + tc.name
			resp := b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: `{"account_id":"` + account + `","url":"` + recv.URL + `/hook"}`})
			require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)
			event := `{"account_id":"` + account + `","type":"order.created","data":{}}`
			var ev apitype.Enqueued
			if tc.batch {
				resp = b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", body: `{"events":[` + event + `]}`})
				require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
				var page struct {
					Data []apitype.Enqueued `json:"data"`
				}
				require.NoError(t, json.Unmarshal(resp.body, &page))
				require.Len(t, page.Data, 1)
				ev = page.Data[0]
			} else {
				resp = b.do(t, request{method: http.MethodPost, path: "/v1/events", body: event})
				require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
				require.NoError(t, json.Unmarshal(resp.body, &ev))
			}
			require.Len(t, ev.Deliveries, 1)
			id := ev.Deliveries[0].ID

			recv.Wait(t, 1, 10*time.Second)
			var state string
			require.NoError(t, b.pool.QueryRow(context.Background(),
				`SELECT j.state::text FROM deliveries d JOIN river_job j ON j.id = d.job_id WHERE d.id = $1`, id).Scan(&state))
			require.Equal(t, tc.want, state, "the job while its attempt is under way")
			close(release)

			testwait.For(t, 10*time.Second, func() (bool, string) {
				var dstate string
				var jobs int
				require.NoError(t, b.pool.QueryRow(context.Background(), `
SELECT d.state, (SELECT count(*) FROM river_job j WHERE j.id = d.job_id) FROM deliveries d WHERE d.id = $1`, id).Scan(&dstate, &jobs))
				return dstate == "succeeded" && jobs == 0, fmt.Sprintf("delivery %s, %d jobs", dstate, jobs)
			})
			require.Equal(t, 1, recv.Count())
		})
	}
}
