package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const dashboardFile = "grafana/webhookd.json"

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int               `json:"id"`
	Type       string            `json:"type"`
	Title      string            `json:"title"`
	Datasource *datasourceRef    `json:"datasource"`
	Panels     []panel           `json:"panels"` // a collapsed row's
	Targets    []dashboardTarget `json:"targets"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashboardTarget struct {
	Expr       string         `json:"expr"`
	RefID      string         `json:"refId"`
	Datasource *datasourceRef `json:"datasource"`
}

// The dashboard has a panel for each thing issue 28 asks to see, every
// query on the data source picked at import names only metrics (and
// labels) webhookd exports.
func TestDashboard(t *testing.T) {
	t.Parallel()

	raw, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(raw, &d))
	require.Equal(t, "webhookd", d.UID)

	// The data source is a variable, so the dashboard imports into any
	// Grafana with a Prometheus data source.
	require.Len(t, d.Templating.List, 1)
	require.Equal(t, "datasource", d.Templating.List[0].Type)
	require.Equal(t, "prometheus", d.Templating.List[0].Query)
	wantDS := datasourceRef{Type: "prometheus", UID: "${" + d.Templating.List[0].Name + "}"}

	var panels []panel
	for _, p := range d.Panels {
		panels = append(panels, p)
		panels = append(panels, p.Panels...)
	}
	exp := exportedMetrics(t)
	ids := map[int]bool{}
	byTitle := map[string]panel{}
	for _, p := range panels {
		require.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		byTitle[p.Title] = p
		require.NotNil(t, p.Datasource, "panel %q", p.Title)
		require.Equal(t, wantDS, *p.Datasource, "panel %q", p.Title)
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, tg := range p.Targets {
			where := fmt.Sprintf("%s: panel %q, query %s", dashboardFile, p.Title, tg.RefID)
			require.NotNil(t, tg.Datasource, where)
			require.Equal(t, wantDS, *tg.Datasource, where)
			checkQuery(t, where, tg.Expr, exp)
			// Per-webhook or per-account series don't exist, and must not
			// be asked for.
			for _, l := range []string{"webhook", "account"} {
				require.NotContains(t, tg.Expr, l+"_id", where)
			}
		}
	}

	// The panels issue 28 asks for, each by the metric it must show.
	for title, metric := range map[string]string{
		"Throughput":            "webhookd_deliveries_finished_total",
		"Attempt outcomes":      "webhookd_attempts_total",
		"First-attempt latency": "webhookd_first_attempt_latency_seconds_bucket",
		"Retry lateness":        "webhookd_retry_lateness_seconds_bucket",
		"Pending deliveries":    "webhookd_pending_deliveries",
		"Oldest due delivery":   "webhookd_oldest_due_pending_age_seconds",
		"Webhook pauses":        "webhookd_webhook_pauses_total",
		"Rate limiting":         "webhookd_rate_limited_total",
		"River queue by state":  "webhookd_river_jobs",
	} {
		p, ok := byTitle[title]
		require.True(t, ok, "no panel %q", title)
		var exprs []string
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
		require.Contains(t, strings.Join(exprs, "\n"), metric, "panel %q", title)
	}
}
