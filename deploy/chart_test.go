package deploy_test

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/mono/webhookd/internal/engine"
)

const chartDir = "helm/webhookd"

// chartValueFiles are the value sets CI renders: the defaults and each
// file of ci/ over them.
func chartValueFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 2, "two value files in %s/ci", chartDir)
	return append([]string{""}, files...)
}

// The chart's manifests, rendered by helm over each value set, do what
// issue 28 and docs/operators.md say a deployment must.
func TestChart(t *testing.T) {
	t.Parallel()

	helm := helmPath(t)
	guideExample := filepath.Join(t.TempDir(), "operators-guide-example.yaml")
	require.NoError(t, os.WriteFile(guideExample, []byte(guideValues(t)), 0o644))
	for _, file := range append(chartValueFiles(t), guideExample) {
		name := "Defaults"
		if file != "" {
			name = strings.TrimSuffix(filepath.Base(file), ".yaml")
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := []string{}
			if file != "" {
				args = append(args, "-f", file)
			}
			t.Log(run(t, helm, append([]string{"lint", "--strict", chartDir}, args...)...))
			out := run(t, helm, append([]string{"template", "webhookd", chartDir, "--namespace", "webhookd"}, args...)...)
			checkRendered(t, chartValues(t, file), parseManifests(t, out))
		})
	}
}

// guideValues is the example values file of docs/operators.md's
// "Kubernetes (Helm)": its first yaml block.
func guideValues(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(operatorsGuide)
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(raw), "\n### Kubernetes (Helm)\n")
	require.True(t, ok, "docs/operators.md has no Kubernetes (Helm) section")
	section, _, _ = strings.Cut(section, "\n### ")
	_, block, ok := strings.Cut(section, "\n```yaml\n")
	require.True(t, ok, "docs/operators.md's Kubernetes (Helm) section has no yaml block")
	block, _, ok = strings.Cut(block, "\n```\n")
	require.True(t, ok)
	return block + "\n"
}

// The chart refuses values that would break a deployment, with a message
// that says which value.
func TestChartRefuses(t *testing.T) {
	t.Parallel()

	helm := helmPath(t)
	render := func(t *testing.T, set ...string) (string, error) {
		t.Helper()
		args := []string{"template", "webhookd", chartDir}
		for _, s := range set {
			args = append(args, "--set", s)
		}
		return runErr(t, helm, args...)
	}

	t.Run("ConnectionBudget", func(t *testing.T) {
		t.Parallel()
		// The budget the defaults need, counted as the code opens
		// connections: the chart must accept exactly that many and
		// refuse one fewer.
		v := chartValues(t, "")
		need := 0
		for _, role := range []string{"api", "worker"} {
			need += (intValue(t, v, role+".replicas") + intValue(t, v, "rollingUpdate.maxSurge")) * podConnections(role, intValue(t, v, role+".dbMaxConns"))
		}
		need += intValue(t, v, "database.headroomConnections")
		reserved := intValue(t, v, "database.reservedConnections")
		require.LessOrEqual(t, need+reserved, intValue(t, v, "database.maxConnections"), "the defaults fit the default max_connections")

		out, err := render(t, fmt.Sprintf("database.maxConnections=%d", need+reserved))
		require.NoError(t, err, out)
		out, err = render(t, fmt.Sprintf("database.maxConnections=%d", need+reserved-1))
		require.Error(t, err)
		require.Contains(t, out, "the PostgreSQL connection budget is exceeded")
	})

	t.Run("SecretValuesRequired", func(t *testing.T) {
		t.Parallel()
		out, err := render(t, "existingSecret=")
		require.Error(t, err)
		require.Contains(t, out, "secret.databaseURL is required")
		out, err = render(t, "existingSecret=", "secret.databaseURL=postgres://db/webhookd")
		require.Error(t, err)
		require.Contains(t, out, "secret.encryptionKey is required")
	})

	t.Run("ChartManagedEnv", func(t *testing.T) {
		t.Parallel()
		for _, set := range []string{"env.WEBHOOKD_DB_MAX_CONNS=100", "worker.env.WEBHOOKD_ROLES=api", "env.DATABASE_URL=x"} {
			out, err := render(t, set)
			require.Error(t, err, set)
			require.Contains(t, out, "values don't meet the specifications of the schema", set)
		}
	})

	t.Run("Schema", func(t *testing.T) {
		t.Parallel()
		for _, set := range []string{"api.dbMaxConns=3", "worker.replicas=-1", "api.replicass=2", "shutdownTimeoutSeconds=0"} {
			out, err := render(t, set)
			require.Error(t, err, set)
			require.Contains(t, out, "values don't meet the specifications of the schema", set)
		}
	})
}

// podConnections is how many connections one pod of role opens at most
// (docs/operators.md, "PostgreSQL connection budget"): its pool, River's
// LISTEN connection taken out of it, and a worker's by-key pool.
func podConnections(role string, dbMaxConns int) int {
	n := dbMaxConns + 1
	if role == "worker" {
		n += 2 * engine.BatchConcurrency
	}
	return n
}

// chartValues is values.yaml with file (if any) merged over it, as helm
// merges them.
func chartValues(t *testing.T, file string) map[string]any {
	t.Helper()
	var v map[string]any
	readYAML(t, filepath.Join(chartDir, "values.yaml"), &v)
	if file != "" {
		var over map[string]any
		readYAML(t, file, &over)
		mergeValues(v, over)
	}
	return v
}

func mergeValues(dst, src map[string]any) {
	for k, sv := range src {
		if sm, ok := sv.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeValues(dm, sm)
				continue
			}
		}
		dst[k] = sv
	}
}

// value is the value at a dotted path.
func value(t *testing.T, v map[string]any, path string) any {
	t.Helper()
	var cur any = v
	for _, key := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		require.True(t, ok, "values: %s is not under a map", path)
		cur = m[key]
	}
	return cur
}

func intValue(t *testing.T, v map[string]any, path string) int {
	t.Helper()
	n, ok := value(t, v, path).(int)
	require.True(t, ok, "values: %s = %v is not an integer", path, value(t, v, path))
	return n
}

// The parts of the Kubernetes objects the test reads.
type (
	objectMeta struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	}
	object struct {
		APIVersion string     `yaml:"apiVersion"`
		Kind       string     `yaml:"kind"`
		Metadata   objectMeta `yaml:"metadata"`
		Spec       yaml.Node  `yaml:"spec"`
		StringData yaml.Node  `yaml:"stringData"`
	}
	securityContext struct {
		RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
		RunAsUser                *int64 `yaml:"runAsUser"`
		ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
		Privileged               *bool  `yaml:"privileged"`
		Capabilities             struct {
			Add  []string `yaml:"add"`
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	}
	probe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
	}
	envVar struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name     string `yaml:"name"`
				Key      string `yaml:"key"`
				Optional bool   `yaml:"optional"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	container struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Env   []envVar `yaml:"env"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		StartupProbe    *probe           `yaml:"startupProbe"`
		LivenessProbe   *probe           `yaml:"livenessProbe"`
		ReadinessProbe  *probe           `yaml:"readinessProbe"`
		SecurityContext *securityContext `yaml:"securityContext"`
		Resources       struct {
			Limits   map[string]string `yaml:"limits"`
			Requests map[string]string `yaml:"requests"`
		} `yaml:"resources"`
	}
	podTemplate struct {
		Metadata objectMeta `yaml:"metadata"`
		Spec     struct {
			Containers                    []container      `yaml:"containers"`
			SecurityContext               *securityContext `yaml:"securityContext"`
			TerminationGracePeriodSeconds *int             `yaml:"terminationGracePeriodSeconds"`
			AutomountServiceAccountToken  *bool            `yaml:"automountServiceAccountToken"`
			RestartPolicy                 string           `yaml:"restartPolicy"`
		} `yaml:"spec"`
	}
	deploymentSpec struct {
		Replicas int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Strategy struct {
			Type          string `yaml:"type"`
			RollingUpdate struct {
				MaxSurge       int `yaml:"maxSurge"`
				MaxUnavailable int `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template podTemplate `yaml:"template"`
	}
	jobSpec struct {
		BackoffLimit *int        `yaml:"backoffLimit"`
		Template     podTemplate `yaml:"template"`
	}
	pdbSpec struct {
		MaxUnavailable any `yaml:"maxUnavailable"`
		MinAvailable   any `yaml:"minAvailable"`
		Selector       struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	}
	serviceSpec struct {
		ClusterIP string            `yaml:"clusterIP"`
		Selector  map[string]string `yaml:"selector"`
		Ports     []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	}
	serviceMonitorSpec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Endpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"endpoints"`
	}
)

// manifests are the rendered objects by kind.
type manifests map[string][]object

func parseManifests(t *testing.T, out string) manifests {
	t.Helper()
	m := manifests{}
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if o.Kind == "" {
			continue // an empty document
		}
		m[o.Kind] = append(m[o.Kind], o)
	}
	return m
}

// one returns the only object of kind named name.
func (m manifests) one(t *testing.T, kind, name string) object {
	t.Helper()
	for _, o := range m[kind] {
		if o.Metadata.Name == name {
			return o
		}
	}
	t.Fatalf("no %s %s among %v", kind, name, m.names(kind))
	return object{}
}

func (m manifests) names(kind string) []string {
	var out []string
	for _, o := range m[kind] {
		out = append(out, o.Metadata.Name)
	}
	return out
}

func decodeSpec(t *testing.T, o object, out any) {
	t.Helper()
	require.NoError(t, o.Spec.Decode(out), "%s %s", o.Kind, o.Metadata.Name)
}

// selects says whether a label selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func env(c container, name string) (envVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return envVar{}, false
}

func port(c container, name string) (int, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// hookOf returns a hook object's events and weight.
func hookOf(t *testing.T, o object) ([]string, int) {
	t.Helper()
	hooks := o.Metadata.Annotations["helm.sh/hook"]
	require.NotEmpty(t, hooks, "%s %s is not a Helm hook", o.Kind, o.Metadata.Name)
	weight, err := strconv.Atoi(o.Metadata.Annotations["helm.sh/hook-weight"])
	require.NoError(t, err, "%s %s's hook weight", o.Kind, o.Metadata.Name)
	return strings.Split(hooks, ","), weight
}

const fullname = "webhookd" // helm template webhookd …

// checkRendered checks one rendering against the values it came from.
func checkRendered(t *testing.T, v map[string]any, m manifests) {
	t.Helper()
	secretName := value(t, v, "existingSecret").(string)
	if secretName == "" {
		secretName = fullname
	}
	metricsOn := value(t, v, "metrics.enabled").(bool)
	metricsPort := intValue(t, v, "metrics.port")

	// API and worker Deployments, their roles, replicas and pools.
	require.ElementsMatch(t, []string{fullname + "-api", fullname + "-worker"}, m.names("Deployment"))
	pods := map[string]podTemplate{}
	var images []string
	budget := 0
	for _, role := range []string{"api", "worker"} {
		d := m.one(t, "Deployment", fullname+"-"+role)
		var spec deploymentSpec
		decodeSpec(t, d, &spec)
		pod := spec.Template
		pods[role] = pod
		require.Equal(t, intValue(t, v, role+".replicas"), spec.Replicas, role)
		require.True(t, selects(spec.Selector.MatchLabels, pod.Metadata.Labels), "%s: the selector matches its pods", role)
		require.Len(t, pod.Spec.Containers, 1, role)
		c := pod.Spec.Containers[0]
		images = append(images, c.Image)
		require.Equal(t, []string{"serve"}, c.Args, role)
		roles, _ := env(c, "WEBHOOKD_ROLES")
		require.Equal(t, role, roles.Value, role)
		conns, ok := env(c, "WEBHOOKD_DB_MAX_CONNS")
		require.True(t, ok, role)
		n, err := strconv.Atoi(conns.Value)
		require.NoError(t, err, role)
		require.Equal(t, intValue(t, v, role+".dbMaxConns"), n, role)
		require.GreaterOrEqual(t, n, 4, "%s: WEBHOOKD_DB_MAX_CONNS is at least 4", role)
		budget += (spec.Replicas + spec.Strategy.RollingUpdate.MaxSurge) * podConnections(role, n)

		// Probes on the API's listener.
		addr, _ := env(c, "WEBHOOKD_ADDR")
		require.Equal(t, ":8080", addr.Value, role)
		httpPort, ok := port(c, "http")
		require.True(t, ok, role)
		require.Equal(t, 8080, httpPort, role)
		require.NotNil(t, c.ReadinessProbe, role)
		require.NotNil(t, c.ReadinessProbe.HTTPGet, role)
		require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path, role)
		require.Equal(t, "http", c.ReadinessProbe.HTTPGet.Port, role)
		require.NotNil(t, c.LivenessProbe, role)
		require.NotNil(t, c.LivenessProbe.HTTPGet, role)
		require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path, role)
		require.Equal(t, "http", c.LivenessProbe.HTTPGet.Port, role)

		// SIGKILL only after the shutdown timeout.
		timeout, ok := env(c, "WEBHOOKD_SHUTDOWN_TIMEOUT")
		require.True(t, ok, role)
		d2, err := time.ParseDuration(timeout.Value)
		require.NoError(t, err, role)
		require.Equal(t, time.Duration(intValue(t, v, "shutdownTimeoutSeconds"))*time.Second, d2, role)
		require.NotNil(t, pod.Spec.TerminationGracePeriodSeconds, role)
		require.Greater(t, time.Duration(*pod.Spec.TerminationGracePeriodSeconds)*time.Second, d2,
			"%s: terminationGracePeriodSeconds above WEBHOOKD_SHUTDOWN_TIMEOUT", role)

		// The metrics listener on every interface of the pod, or none.
		maddr, ok := env(c, "WEBHOOKD_METRICS_ADDR")
		require.True(t, ok, "%s: WEBHOOKD_METRICS_ADDR is set either way (its default is loopback only)", role)
		mport, hasPort := port(c, "metrics")
		if metricsOn {
			require.Equal(t, fmt.Sprintf(":%d", metricsPort), maddr.Value, role)
			require.True(t, hasPort, role)
			require.Equal(t, metricsPort, mport, role)
		} else {
			require.Empty(t, maddr.Value, role)
			require.False(t, hasPort, role)
		}

		// Secrets from the Secret; the settings the chart manages once.
		checkSecretEnv(t, role, c, secretName, []string{"DATABASE_URL", "WEBHOOKD_ENCRYPTION_KEY", "WEBHOOKD_BOOTSTRAP_ADMIN_KEY"})
		seen := map[string]bool{}
		for _, e := range c.Env {
			require.False(t, seen[e.Name], "%s: %s set twice", role, e.Name)
			seen[e.Name] = true
		}
		for _, scope := range []string{"env", role + ".env"} {
			for name, want := range value(t, v, scope).(map[string]any) {
				got, ok := env(c, name)
				require.True(t, ok, "%s: %s.%s", role, scope, name)
				if scope == "env" {
					if over, ok := value(t, v, role+".env").(map[string]any)[name]; ok {
						want = over // a role's own value wins
					}
				}
				require.Equal(t, fmt.Sprint(want), got.Value, "%s: %s", role, name)
			}
		}

		checkPodSecurity(t, role, pod)
	}
	require.True(t, !selects(m.one(t, "Deployment", fullname+"-api").specSelector(t), pods["worker"].Metadata.Labels) &&
		!selects(m.one(t, "Deployment", fullname+"-worker").specSelector(t), pods["api"].Metadata.Labels),
		"each Deployment selects its own pods only")

	// The connection budget of values.yaml's comments.
	limit := intValue(t, v, "database.maxConnections") - intValue(t, v, "database.reservedConnections")
	budget += intValue(t, v, "database.headroomConnections")
	require.LessOrEqual(t, budget, limit, "the pods (with a rolling update's surge) and the headroom fit max_connections")
	t.Logf("connections: %d of %d (max_connections %d less the reserved)", budget, limit, intValue(t, v, "database.maxConnections"))

	// The migration Job: a hook before the Deployments roll, with the
	// database URL from the Secret.
	job := m.one(t, "Job", fullname+"-migrate")
	jobHooks, jobWeight := hookOf(t, job)
	require.ElementsMatch(t, []string{"pre-install", "pre-upgrade"}, jobHooks)
	var js jobSpec
	decodeSpec(t, job, &js)
	require.Equal(t, "Never", js.Template.Spec.RestartPolicy)
	require.Len(t, js.Template.Spec.Containers, 1)
	mc := js.Template.Spec.Containers[0]
	require.Equal(t, []string{"migrate"}, mc.Args)
	images = append(images, mc.Image)
	checkSecretEnv(t, "migrate", mc, secretName, []string{"DATABASE_URL"})
	checkPodSecurity(t, "migrate", js.Template)
	require.False(t, selects(m.one(t, "Deployment", fullname+"-api").specSelector(t), js.Template.Metadata.Labels) ||
		selects(m.one(t, "Deployment", fullname+"-worker").specSelector(t), js.Template.Metadata.Labels), "no Deployment adopts the Job's pod")
	require.Len(t, slices.Compact(slices.Clone(images)), 1, "one image for every container: %v", images)

	// The Secret: the chart's own (a hook the Job can read), or none.
	if value(t, v, "existingSecret").(string) != "" {
		require.Empty(t, m["Secret"], "existingSecret: the chart creates no Secret")
	} else {
		s := m.one(t, "Secret", secretName)
		hooks, weight := hookOf(t, s)
		require.ElementsMatch(t, []string{"pre-install", "pre-upgrade"}, hooks, "the Secret exists before the migration Job runs")
		require.Less(t, weight, jobWeight, "the Secret's hook runs before the Job's")
		var data map[string]string
		require.NoError(t, s.StringData.Decode(&data))
		for key, path := range map[string]string{"database-url": "secret.databaseURL", "encryption-key": "secret.encryptionKey", "bootstrap-admin-key": "secret.bootstrapAdminKey"} {
			require.Equal(t, value(t, v, path), data[key], key)
		}
	}

	// A PodDisruptionBudget for each Deployment.
	require.Len(t, m["PodDisruptionBudget"], 2)
	for role, pod := range pods {
		var found bool
		for _, o := range m["PodDisruptionBudget"] {
			var spec pdbSpec
			decodeSpec(t, o, &spec)
			if !selects(spec.Selector.MatchLabels, pod.Metadata.Labels) {
				continue
			}
			found = true
			require.Equal(t, value(t, v, role+".podDisruptionBudget.maxUnavailable"), spec.MaxUnavailable, role)
			require.NotEqual(t, 0, spec.MaxUnavailable, "%s: a budget that allows no eviction blocks node drains", role)
		}
		require.True(t, found, "no PodDisruptionBudget selects the %s pods", role)
	}

	// The API's Service selects the API pods only.
	var api serviceSpec
	decodeSpec(t, m.one(t, "Service", fullname+"-api"), &api)
	require.True(t, selects(api.Selector, pods["api"].Metadata.Labels))
	require.False(t, selects(api.Selector, pods["worker"].Metadata.Labels))
	require.Equal(t, "http", api.Ports[0].TargetPort)

	// Metrics: a Service for every pod's listener and, behind a value, a
	// ServiceMonitor that scrapes it.
	if !metricsOn {
		require.NotContains(t, m.names("Service"), fullname+"-metrics")
		require.Empty(t, m["ServiceMonitor"], "no ServiceMonitor without the metrics listener")
		return
	}
	svc := m.one(t, "Service", fullname+"-metrics")
	var ms serviceSpec
	decodeSpec(t, svc, &ms)
	for role, pod := range pods {
		require.True(t, selects(ms.Selector, pod.Metadata.Labels), "the metrics Service selects the %s pods", role)
	}
	require.False(t, selects(ms.Selector, js.Template.Metadata.Labels), "the metrics Service leaves the migration Job out")
	require.Len(t, ms.Ports, 1)
	require.Equal(t, "metrics", ms.Ports[0].Name)
	require.Equal(t, "metrics", ms.Ports[0].TargetPort)
	if !value(t, v, "metrics.serviceMonitor.enabled").(bool) {
		require.Empty(t, m["ServiceMonitor"])
		return
	}
	require.Len(t, m["ServiceMonitor"], 1)
	sm := m["ServiceMonitor"][0]
	require.Equal(t, "monitoring.coreos.com/v1", sm.APIVersion)
	var sms serviceMonitorSpec
	decodeSpec(t, sm, &sms)
	require.True(t, selects(sms.Selector.MatchLabels, svc.Metadata.Labels), "the ServiceMonitor selects the metrics Service")
	require.False(t, selects(sms.Selector.MatchLabels, m.one(t, "Service", fullname+"-api").Metadata.Labels), "and not the API's")
	require.Len(t, sms.Endpoints, 1)
	require.Equal(t, "metrics", sms.Endpoints[0].Port)
	require.Equal(t, "/metrics", sms.Endpoints[0].Path)
	for k, want := range value(t, v, "metrics.serviceMonitor.labels").(map[string]any) {
		require.Equal(t, want, sm.Metadata.Labels[k], "the ServiceMonitor's label %s, for Prometheus to select it", k)
	}
}

func (o object) specSelector(t *testing.T) map[string]string {
	t.Helper()
	var spec deploymentSpec
	decodeSpec(t, o, &spec)
	return spec.Selector.MatchLabels
}

// checkSecretEnv checks that the secret settings come from the Secret
// (the bootstrap admin key optional), never from a plain value.
func checkSecretEnv(t *testing.T, who string, c container, secretName string, names []string) {
	t.Helper()
	keys := map[string]string{"DATABASE_URL": "database-url", "WEBHOOKD_ENCRYPTION_KEY": "encryption-key", "WEBHOOKD_BOOTSTRAP_ADMIN_KEY": "bootstrap-admin-key"}
	for _, name := range slices.Sorted(maps.Keys(keys)) {
		e, ok := env(c, name)
		if !slices.Contains(names, name) {
			require.False(t, ok, "%s: %s is not needed there", who, name)
			continue
		}
		require.True(t, ok, "%s: %s", who, name)
		require.Empty(t, e.Value, "%s: %s is a plain value", who, name)
		require.NotNil(t, e.ValueFrom, "%s: %s", who, name)
		require.NotNil(t, e.ValueFrom.SecretKeyRef, "%s: %s", who, name)
		require.Equal(t, secretName, e.ValueFrom.SecretKeyRef.Name, "%s: %s", who, name)
		require.Equal(t, keys[name], e.ValueFrom.SecretKeyRef.Key, "%s: %s", who, name)
		require.Equal(t, name == "WEBHOOKD_BOOTSTRAP_ADMIN_KEY", e.ValueFrom.SecretKeyRef.Optional, "%s: %s: only the bootstrap key is optional", who, name)
	}
}

// checkPodSecurity checks that a pod runs as non-root with a read-only
// root filesystem, no privilege escalation, no capabilities and no
// service account token.
func checkPodSecurity(t *testing.T, who string, pod podTemplate) {
	t.Helper()
	require.NotNil(t, pod.Spec.AutomountServiceAccountToken, who)
	require.False(t, *pod.Spec.AutomountServiceAccountToken, "%s: no service account token", who)
	if psc := pod.Spec.SecurityContext; psc != nil && psc.RunAsUser != nil {
		require.NotZero(t, *psc.RunAsUser, "%s: not uid 0", who)
	}
	for _, c := range pod.Spec.Containers {
		sc := c.SecurityContext
		require.NotNil(t, sc, "%s: container %s has no securityContext", who, c.Name)
		require.True(t, sc.RunAsNonRoot != nil && *sc.RunAsNonRoot, "%s: runAsNonRoot", who)
		require.True(t, sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem, "%s: readOnlyRootFilesystem", who)
		require.True(t, sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation, "%s: allowPrivilegeEscalation false", who)
		require.True(t, sc.Privileged == nil || !*sc.Privileged, "%s: not privileged", who)
		require.Equal(t, []string{"ALL"}, sc.Capabilities.Drop, "%s: every capability dropped", who)
		require.Empty(t, sc.Capabilities.Add, who)
		if sc.RunAsUser != nil {
			require.NotZero(t, *sc.RunAsUser, who)
		}
		require.NotEmpty(t, c.Resources.Requests, "%s: resource requests", who)
		require.NotEmpty(t, c.Resources.Limits["memory"], "%s: a memory limit", who)
	}
}

// The image the chart runs is what the Dockerfile builds: static, non-root
// (the chart's uid), with the chart's ports.
func TestDockerfile(t *testing.T) {
	t.Parallel()

	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	require.NoError(t, err)
	var from, user, expose, entrypoint string
	var static bool
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		rest := strings.TrimSpace(strings.TrimPrefix(line, fields[0]))
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			from, user = rest, "" // the last stage is the image
		case "USER":
			user = rest
		case "EXPOSE":
			expose = rest
		case "ENTRYPOINT":
			entrypoint = rest
		case "RUN":
			static = static || strings.Contains(rest, "CGO_ENABLED=0")
		}
	}
	require.True(t, static, "the binary is built with CGO_ENABLED=0")
	require.Contains(t, from, "distroless/static")
	require.Contains(t, from, ":nonroot")
	require.Equal(t, "nonroot:nonroot", user, "the image runs as the distroless nonroot user")
	require.Equal(t, `["/webhookd"]`, entrypoint, "the chart passes serve or migrate as args")

	v := chartValues(t, "")
	require.Equal(t, 65532, intValue(t, v, "podSecurityContext.runAsUser"), "distroless's nonroot uid")
	require.ElementsMatch(t, []string{"8080", strconv.Itoa(intValue(t, v, "metrics.port"))}, strings.Fields(expose))
}
