package deploy_test

import (
	"bytes"
	"context"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/metrics"
)

// repoRoot is the repository, seen from this package's directory.
const repoRoot = ".."

// installHow is how to get the tools these tests run.
const installHow = "run .ci/install-deploy-tools.sh (helm from the Go module proxy into $(go env GOPATH)/bin, promtool from Debian's prometheus package)"

// toolPath finds a tool: the env variable's path, then $(go env
// GOPATH)/bin, then PATH. Missing, it fails the test in CI (CI=true) and
// skips it elsewhere, saying how to install it.
func toolPath(t *testing.T, name, envVar string) string {
	t.Helper()
	candidates := []string{os.Getenv(envVar), filepath.Join(build.Default.GOPATH, "bin", name)}
	if p, err := exec.LookPath(name); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if p == "" {
			continue
		}
		if info, err := os.Stat(p); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing and the deployment checks must run in CI: %s, or set %s", name, installHow, envVar)
	}
	t.Skipf("%s not found; %s, or set %s", name, installHow, envVar)
	return ""
}

func helmPath(t *testing.T) string     { return toolPath(t, "helm", "WEBHOOKD_HELM") }
func promtoolPath(t *testing.T) string { return toolPath(t, "promtool", "WEBHOOKD_PROMTOOL") }

// run runs a tool and returns its standard output; the test fails with its
// output when it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := runErr(t, name, args...)
	require.NoError(t, err, "%s %s:\n%s", filepath.Base(name), strings.Join(args, " "), out)
	return out
}

// runErr runs a tool and returns its combined output and error.
func runErr(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	// helm keeps its caches and config here, not in $HOME.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

// exported is a metric series name webhookd exports, with its labels.
type exported map[string][]string

// exportedMetrics derives from the code every series name webhookd's
// /metrics can show, with its labels: the registrations in every package
// that uses client_golang (prometheus.NewCounterVec(prometheus.CounterOpts{
// Name: …}, []string{…}), prometheus.NewDesc(…), …), a histogram's _bucket,
// _sum and _count included; and what a scrape of metrics.New's registry
// shows (the Go runtime and process collectors).
func exportedMetrics(t *testing.T) exported {
	t.Helper()
	out := exported{}
	add := func(name string, labels []string) {
		out[name] = append(out[name], labels...)
	}

	fset := token.NewFileSet()
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != repoRoot && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		imports, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(imports.Imports, func(s *ast.ImportSpec) bool {
			return s.Path.Value == `"github.com/prometheus/client_golang/prometheus"`
		}) {
			return nil
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "prometheus" {
				return true
			}
			where := fset.Position(call.Pos()).String()
			switch fn := sel.Sel.Name; {
			case fn == "NewDesc":
				require.GreaterOrEqual(t, len(call.Args), 3, "%s: prometheus.NewDesc", where)
				add(stringLit(t, where, call.Args[0]), stringList(t, where, call.Args[2]))
			case regexp.MustCompile(`^New(Counter|Gauge|Histogram|Summary)(Vec|Func)?$`).MatchString(fn):
				opts, ok := call.Args[0].(*ast.CompositeLit)
				require.True(t, ok, "%s: prometheus.%s's options are not a literal; this test reads the metric's name from it", where, fn)
				name := ""
				for _, el := range opts.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					switch key := kv.Key.(*ast.Ident).Name; key {
					case "Name":
						name = stringLit(t, where, kv.Value)
					case "Namespace", "Subsystem":
						t.Fatalf("%s: %s in a metric's options; this test reads Name only", where, key)
					}
				}
				require.NotEmpty(t, name, "%s: prometheus.%s without a Name", where, fn)
				var labels []string
				if strings.HasSuffix(fn, "Vec") {
					labels = stringList(t, where, call.Args[1])
				}
				switch {
				case strings.Contains(fn, "Histogram"):
					add(name+"_bucket", append(labels, "le"))
					add(name+"_sum", labels)
					add(name+"_count", labels)
				case strings.Contains(fn, "Summary"):
					add(name, append(labels, "quantile"))
					add(name+"_sum", labels)
					add(name+"_count", labels)
				default:
					add(name, labels)
				}
			}
			return true
		})
		return nil
	})
	require.NoError(t, err)

	families, err := metrics.New(nil, nil).Registry().Gather()
	require.NoError(t, err)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName())
			}
			switch {
			case m.GetHistogram() != nil:
				add(f.GetName()+"_bucket", append(labels, "le"))
				add(f.GetName()+"_sum", labels)
				add(f.GetName()+"_count", labels)
			case m.GetSummary() != nil:
				add(f.GetName(), append(labels, "quantile"))
				add(f.GetName()+"_sum", labels)
				add(f.GetName()+"_count", labels)
			default:
				add(f.GetName(), labels)
			}
		}
	}
	require.Contains(t, out, "webhookd_deliveries_finished_total", "the registrations were not found")
	require.Contains(t, out, "go_goroutines", "the runtime collector was not found")
	return out
}

func stringLit(t *testing.T, where string, e ast.Expr) string {
	t.Helper()
	lit, ok := e.(*ast.BasicLit)
	require.True(t, ok && lit.Kind == token.STRING, "%s: a metric name that is not a string literal; this test reads names from literals", where)
	s, err := strconv.Unquote(lit.Value)
	require.NoError(t, err)
	return s
}

func stringList(t *testing.T, where string, e ast.Expr) []string {
	t.Helper()
	if id, ok := e.(*ast.Ident); ok && id.Name == "nil" {
		return nil
	}
	lit, ok := e.(*ast.CompositeLit)
	require.True(t, ok, "%s: labels that are not a []string literal; this test reads labels from literals", where)
	var out []string
	for _, el := range lit.Elts {
		out = append(out, stringLit(t, where, el))
	}
	return out
}

// targetLabels are the labels Prometheus itself puts on every series it
// scrapes (prometheus-operator's ServiceMonitor adds the Kubernetes ones).
var targetLabels = []string{"job", "instance", "namespace", "pod", "service", "container", "endpoint"}

// promqlKeywords are PromQL's words that are neither a metric nor a
// function call.
var promqlKeywords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
}

var (
	promqlString  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promqlRange   = regexp.MustCompile(`\[[^\]]*\]`)
	promqlBraces  = regexp.MustCompile(`\{([^}]*)\}`)
	promqlMatcher = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	promqlGroup   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	promqlToken   = regexp.MustCompile(`\$?[a-zA-Z_:][a-zA-Z0-9_:]*|[0-9.]+(?:e[+-]?[0-9]+)?|\S`)
)

// promqlNames returns the metric names and the label names a PromQL
// expression uses. It is a lexer, not a parser: enough for the
// expressions of alerts.yml and the dashboard.
func promqlNames(expr string) (names, labels []string) {
	expr = promqlString.ReplaceAllString(expr, `""`)
	expr = promqlRange.ReplaceAllString(expr, "")
	for _, m := range promqlBraces.FindAllStringSubmatch(expr, -1) {
		for _, l := range promqlMatcher.FindAllStringSubmatch(m[1], -1) {
			labels = append(labels, l[1])
		}
	}
	expr = promqlBraces.ReplaceAllString(expr, " ")
	for _, m := range promqlGroup.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
	}
	expr = promqlGroup.ReplaceAllString(expr, " ")
	tokens := promqlToken.FindAllString(expr, -1)
	for i, tok := range tokens {
		first := tok[0]
		if first == '$' || (first >= '0' && first <= '9') || first == '.' || len(tok) == 1 && !isIdent(first) {
			continue
		}
		if promqlKeywords[strings.ToLower(tok)] {
			continue
		}
		if i+1 < len(tokens) && tokens[i+1] == "(" {
			continue // a function
		}
		names = append(names, tok)
	}
	return names, labels
}

func isIdent(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// checkQuery fails the test unless expr names at least one metric, every
// metric it names is one webhookd exports, and every label it matches or
// groups by is one of those metrics' (or a scrape's own).
func checkQuery(t *testing.T, where, expr string, exp exported) {
	t.Helper()
	names, labels := promqlNames(expr)
	require.NotEmpty(t, names, "%s: %q names no metric", where, expr)
	allowed := slices.Clone(targetLabels)
	for _, name := range names {
		metricLabels, ok := exp[name]
		require.True(t, ok, "%s: %q names %s, which webhookd does not export", where, expr, name)
		allowed = append(allowed, metricLabels...)
	}
	for _, l := range labels {
		require.Contains(t, allowed, l, "%s: %q uses the label %s, which none of %v has", where, expr, l, names)
	}
}

func TestPromQLNames(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name, expr    string
		names, labels []string
	}{
		{"Gauge", `max(webhookd_pending_deliveries)`, []string{"webhookd_pending_deliveries"}, nil},
		{
			"Quantile", `histogram_quantile(0.99, sum by (le) (rate(webhookd_retry_lateness_seconds_bucket[$__rate_interval]))) > 1`,
			[]string{"webhookd_retry_lateness_seconds_bucket"}, []string{"le"},
		},
		{
			"MatchersAndGroupLeft", `sum by (event_type) (increase(webhookd_deliveries_finished_total{outcome="dead", event_type!~"a(b)"}[5m])) / on (job) group_left count(up)`,
			[]string{"webhookd_deliveries_finished_total", "up"}, []string{"outcome", "event_type", "event_type", "job"},
		},
		{"WithoutAndNumbers", `sum without (instance) (rate(a_total[1m])) and b > 2e3`, []string{"a_total", "b"}, []string{"instance"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			names, labels := promqlNames(tt.expr)
			require.Equal(t, tt.names, names)
			require.ElementsMatch(t, tt.labels, labels)
		})
	}
}
