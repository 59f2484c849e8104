package dashboard_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testreceiver"
)

// fifoLine is what the API says of a FIFO webhook's line.
type fifoLine struct {
	FIFO *struct {
		BlockedBy *string `json:"blocked_by"`
		Waiting   int     `json:"waiting"`
	} `json:"fifo"`
}

// A FIFO webhook's line blocked by a dead head is skipped from its page:
// the link asks first (asking changes nothing), the form needs the CSRF
// token, and skipping sends the next delivery. Another account's webhook
// is not found, and its line stays blocked.
func TestFIFOSkipFromDashboard(t *testing.T) {
	t.Parallel()
	b := start(t)
	k := b.createKey(t, "account", "acct_fifo_skip")
	other := b.createKey(t, "account", "acct_fifo_other")
	receiver := testreceiver.New(t, testreceiver.Status(http.StatusInternalServerError))
	hook := b.createWebhookWith(t, k.Key, map[string]any{"url": receiver.URL + "/fifo", "ordering": "fifo"})
	theirs := b.createWebhookWith(t, other.Key, map[string]any{"url": receiver.URL + "/theirs", "ordering": "fifo"})

	// Each line: a head that dies (ten failures, about 3 s at this
	// schedule) and one delivery waiting behind it.
	head := b.sendEvent(t, "acct_fifo_skip", "order.created")[0]
	next := b.sendEvent(t, "acct_fifo_skip", "order.updated")[0]
	theirHead := b.sendEvent(t, "acct_fifo_other", "order.created")[0]
	b.sendEvent(t, "acct_fifo_other", "order.updated")
	line := func(id string) fifoLine {
		var l fifoLine
		b.api(t, http.MethodGet, "/v1/webhooks/"+id, "", "", http.StatusOK, &l)
		return l
	}
	for _, id := range []string{hook.ID, theirs.ID} {
		require.Eventually(t, func() bool { l := line(id); return l.FIFO != nil && l.FIFO.BlockedBy != nil }, 60*time.Second, 50*time.Millisecond)
	}
	require.Equal(t, head.ID, *line(hook.ID).FIFO.BlockedBy)
	require.Equal(t, theirHead.ID, *line(theirs.ID).FIFO.BlockedBy)
	require.Equal(t, "pending", b.waitDelivery(t, next.ID, "pending", time.Second).State)

	br := b.browser(t)
	br.signIn(t, k.Key)
	p := br.get(t, "/dashboard/webhooks/"+hook.ID)
	require.Contains(t, elementText(p.body, "ordering"), "blocked by the dead delivery "+head.ID)
	require.Contains(t, p.body, `href="/dashboard/webhooks/`+hook.ID+`/fifo/skip"`)
	// Asking first names the delivery, and changes nothing.
	p = br.get(t, "/dashboard/webhooks/"+hook.ID+"/fifo/skip")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, text(p.body), "Skip the blocked delivery?")
	require.Equal(t, head.ID, elementText(p.body, "skip-delivery"))
	require.Equal(t, "Skip it", elementText(p.body, "confirm-skip"))
	token := br.csrf(t)
	require.Equal(t, head.ID, *line(hook.ID).FIFO.BlockedBy)
	// Without the CSRF token nothing happens.
	p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/fifo/skip", url.Values{"delivery_id": {head.ID}})
	require.Equal(t, http.StatusForbidden, p.status)
	require.Equal(t, head.ID, *line(hook.ID).FIFO.BlockedBy)

	// Another account's webhook: not found, asked or posted to.
	p = br.get(t, "/dashboard/webhooks/"+theirs.ID+"/fifo/skip")
	require.Equal(t, http.StatusNotFound, p.status)
	p = br.post(t, "/dashboard/webhooks/"+theirs.ID+"/fifo/skip", url.Values{"csrf": {token}, "delivery_id": {theirHead.ID}})
	require.Equal(t, http.StatusNotFound, p.status)
	require.Equal(t, theirHead.ID, *line(theirs.ID).FIFO.BlockedBy)

	// A delivery that is not the blocking head: refused, nothing skipped.
	p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/fifo/skip", url.Values{"csrf": {token}, "delivery_id": {next.ID}})
	require.Equal(t, http.StatusConflict, p.status)
	require.Equal(t, head.ID, *line(hook.ID).FIFO.BlockedBy)

	// Skipped: the head stays dead, the next goes (and succeeds now).
	receiver.SetRespond(testreceiver.Status(http.StatusOK))
	p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/fifo/skip", url.Values{"csrf": {token}, "delivery_id": {head.ID}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "/dashboard/webhooks/"+hook.ID+"?notice=skipped#ordering", p.location)
	b.waitDelivery(t, next.ID, "succeeded", 30*time.Second)
	require.Equal(t, "dead", b.waitDelivery(t, head.ID, "dead", time.Second).State)
	require.Nil(t, line(hook.ID).FIFO.BlockedBy)
	p = br.get(t, p.location)
	require.Contains(t, text(p.body), "Blocked delivery skipped")
	require.NotContains(t, elementText(p.body, "ordering"), "blocked")
	require.NotContains(t, p.body, `/fifo/skip"`)
	// Asking again goes back to the page.
	p = br.get(t, "/dashboard/webhooks/"+hook.ID+"/fifo/skip")
	require.Equal(t, http.StatusSeeOther, p.status)

	// Theirs is still blocked.
	require.Equal(t, theirHead.ID, *line(theirs.ID).FIFO.BlockedBy)
}
