package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/server"
)

// POST /v1/events stores its event and deliveries by a statement that goes
// with the transaction's COMMIT (store.PipelinedTx). When that statement
// fails there, the request gets a 500 and nothing of it is stored (no
// event, no delivery, no River job); the next request on the same pool is
// stored whole.
func TestEventInsertFailingAtCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := startServerWith(t, true, func(c *server.Config) { c.API, c.Worker = true, false })
	b.createWebhook(t, "acct_commit", "http://127.0.0.2:9/hook")
	_, err := b.pool.Exec(ctx, `
CREATE FUNCTION refuse_delivery() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
CREATE TRIGGER refuse_delivery BEFORE INSERT ON deliveries
    FOR EACH ROW WHEN (NEW.event_type = 'refused') EXECUTE FUNCTION refuse_delivery();`)
	require.NoError(t, err)

	stored := func() (events, deliveries, jobs int) {
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM deliveries),
			(SELECT count(*) FROM river_job WHERE kind = 'webhookd.delivery')`).Scan(&events, &deliveries, &jobs))
		return
	}
	post := func(typ string) *response {
		return b.do(t, request{method: http.MethodPost, path: "/v1/events",
			body: fmt.Sprintf(`{"account_id":"acct_commit","type":%q,"data":{"n":1}}`, typ)})
	}

	resp := post("refused")
	requireError(t, resp, http.StatusInternalServerError, "internal_error", "")
	require.NotContains(t, string(resp.body), "refused by the test", "no database detail in the answer")
	events, deliveries, jobs := stored()
	require.Zero(t, events+deliveries+jobs, "nothing of the refused request stored")

	for range 3 { // more requests than the test's pool would survive leaking connections
		var ev struct {
			ID         string `json:"id"`
			Deliveries []struct {
				ID        string `json:"id"`
				WebhookID string `json:"webhook_id"`
			} `json:"deliveries"`
		}
		jsonBody(t, post("accepted"), http.StatusAccepted, &ev)
		require.Len(t, ev.Deliveries, 1)
	}
	events, deliveries, jobs = stored()
	require.Equal(t, []int{3, 3, 3}, []int{events, deliveries, jobs})
}
