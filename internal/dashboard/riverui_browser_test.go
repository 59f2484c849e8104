package dashboard_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/testbrowser"
	"github.com/mono/webhookd/internal/testserver"
)

// crossOriginPage auto-submits a text/plain form, which needs no CORS
// pre-flight, to River UI's delete endpoint: its body is the JSON
// {"ids":["ID"],"pad":"="}.
const crossOriginPage = `<!doctype html><title>prize</title>
<form id=f method=POST enctype="text/plain" action="%s/riverui/api/jobs/delete">
<input type=hidden name='{"ids":["%d"],"pad":"' value='"}'>
</form><script>document.getElementById('f').submit()</script>`

// TestBrowserRiverUICrossOrigin: an admin whose browser holds River UI's
// Basic credentials opens a page on another origin that posts a form to
// River UI's delete endpoint. The request is refused and the job is still
// there; River UI's own page, in the same browser, still deletes it.
func TestBrowserRiverUICrossOrigin(t *testing.T) {
	t.Parallel()
	ctx := testbrowser.New(t)
	b := start(t)

	job, err := b.srv.River().Insert(context.Background(), engine.ReconcileArgs{}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	jobID := job.Job.ID
	jobExists := func() bool {
		var n int
		require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT count(*) FROM river_job WHERE id = $1", jobID).Scan(&n))
		return n == 1
	}
	require.True(t, jobExists())

	// The other origin: another loopback address, another port.
	ln, err := net.Listen("tcp", "127.0.0.3:0")
	require.NoError(t, err)
	evil := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, crossOriginPage, html.EscapeString(b.base), jobID)
	})}
	go evil.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { evil.Close() })

	// The browser sends the admin's credentials with every request, as it
	// does once the admin has answered River UI's Basic prompt.
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+testserver.AdminKey))
	require.NoError(t, chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": basic}})
		return err
	})))

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate("http://"+ln.Addr().String()+"/"),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](`location.pathname === "/riverui/api/jobs/delete" && document.readyState === "complete"`,
				chromedp.WithPollingTimeout(20*time.Second))(ctx, tg)
			return err
		}),
	))
	body, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	require.NoError(t, err)
	require.Contains(t, body, "cross_origin_request", "River UI must refuse the other origin's form")
	require.True(t, jobExists(), "the cross-origin form deleted the job")

	// River UI's own page: its buttons call the same endpoint from the same
	// origin, and that still works.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(b.base+"/riverui/jobs/"+strconv.FormatInt(jobID, 10)),
		chromedp.WaitReady(chromedp.CSS("body")),
	))
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(
		`fetch("/riverui/api/jobs/delete", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({ids: ["%d"]})}).then(r => r.status)`, jobID),
		chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	require.False(t, jobExists(), "River UI's own page could not delete the job")
}
