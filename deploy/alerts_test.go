package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

const (
	alertsFile     = "prometheus/alerts.yml"
	alertTestsFile = "prometheus/alerts_test.yml"
	operatorsGuide = repoRoot + "/docs/operators.md"
)

// ruleFile is the part of a Prometheus rule file the test reads.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// ruleTests is the part of a promtool unit-test file the test reads.
type ruleTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, path string, out any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, out), path)
}

// The alert rules pass promtool's checks and unit tests; every rule has a
// test case where it fires and one where it stays silent, queries only
// metrics webhookd exports, and is the one docs/operators.md describes.
func TestAlertRules(t *testing.T) {
	t.Parallel()

	var rules ruleFile
	readYAML(t, alertsFile, &rules)
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "%s: group %s has a rule without alert (a recording rule?)", alertsFile, g.Name)
			require.NotContains(t, alerts, r.Alert, "%s: %s twice", alertsFile, r.Alert)
			alerts = append(alerts, r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], "%s: %s has no summary", alertsFile, r.Alert)
			require.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], "%s: %s's severity", alertsFile, r.Alert)
		}
	}
	require.NotEmpty(t, alerts)

	t.Run("Promtool", func(t *testing.T) {
		t.Parallel()
		promtool := promtoolPath(t)
		t.Log(run(t, promtool, "check", "rules", alertsFile))
		// promtool test rules resolves rule_files from the test file's
		// directory.
		t.Log(run(t, promtool, "test", "rules", alertTestsFile))
	})

	t.Run("EveryRuleFiresAndStaysSilent", func(t *testing.T) {
		t.Parallel()
		var tests ruleTests
		readYAML(t, alertTestsFile, &tests)
		require.Equal(t, []string{filepath.Base(alertsFile)}, tests.RuleFiles)
		fires, silent := map[string]bool{}, map[string]bool{}
		for _, tc := range tests.Tests {
			for _, a := range tc.AlertRuleTest {
				require.Contains(t, alerts, a.Alertname, "%s: %q tests an alert alerts.yml doesn't have", alertTestsFile, tc.Name)
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
				} else {
					silent[a.Alertname] = true
				}
			}
		}
		for _, a := range alerts {
			require.True(t, fires[a], "%s: no case where %s fires", alertTestsFile, a)
			require.True(t, silent[a], "%s: no case where %s stays silent", alertTestsFile, a)
		}
	})

	t.Run("QueriesExportedMetrics", func(t *testing.T) {
		t.Parallel()
		exp := exportedMetrics(t)
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				checkQuery(t, alertsFile+": "+r.Alert, r.Expr, exp)
			}
		}
	})

	t.Run("Documented", func(t *testing.T) {
		t.Parallel()
		raw, err := os.ReadFile(operatorsGuide)
		require.NoError(t, err)
		guide := string(raw)
		for _, a := range alerts {
			require.Contains(t, guide, "`"+a+"`", "docs/operators.md doesn't describe %s", a)
		}
		for _, m := range regexp.MustCompile("`(Webhookd[A-Z][A-Za-z]+)`").FindAllStringSubmatch(guide, -1) {
			require.True(t, slices.Contains(alerts, m[1]), "docs/operators.md names the alert %s, which %s doesn't have", m[1], alertsFile)
		}
	})
}
