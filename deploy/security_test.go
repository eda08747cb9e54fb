package deploy

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Measured in docs/benchmarks-memory.md and docs/efficiency.md: 169 MiB
// with 10,000 jobs in flight and a cache of 2,000 workflows (the full
// cache), and, with the cache as large as the jobs in flight, 98 MiB with
// 1,000 and 570 MiB with 10,000 (about 53 KiB per cached workflow).
const (
	measuredKiBPerWorkflow = (570 - 98) * 1024 / 9000
	measuredCache          = 2000
	measuredFullCacheMiB   = 169
	measuredBaseMiB        = measuredFullCacheMiB - measuredCache*measuredKiBPerWorkflow/1024
)

// mebibytes reads a Kubernetes or GOMEMLIMIT quantity (Mi, MiB, Gi, GiB).
func mebibytes(t *testing.T, q string) int {
	t.Helper()
	q = strings.TrimSuffix(strings.TrimSpace(q), "B")
	mult := 1
	switch {
	case strings.HasSuffix(q, "Gi"):
		mult, q = 1024, strings.TrimSuffix(q, "Gi")
	case strings.HasSuffix(q, "Mi"):
		q = strings.TrimSuffix(q, "Mi")
	default:
		t.Fatalf("quantity %q: want Mi or Gi", q)
	}
	n, err := strconv.Atoi(q)
	require.NoError(t, err)
	return n * mult
}

// TestKubernetesProbesAndMemory: liveness asks only whether the process
// answers (a dependency outage must not restart-loop healthy workers),
// readiness checks the dependencies, every probe's timeout covers its
// handler, and GOMEMLIMIT and the workflow cache fit the memory limit at
// the measured cost per cached workflow.
func TestKubernetesProbesAndMemory(t *testing.T) {
	var container, config map[string]any
	for _, doc := range readYAMLDocs(t, "k8s/worker.yaml") {
		switch doc["kind"] {
		case "Deployment":
			c := doc["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0]
			container = c.(map[string]any)
		case "ConfigMap":
			config = doc["data"].(map[string]any)
		}
	}
	require.NotNil(t, container)
	probe := func(name string) (string, int) {
		p, ok := container[name].(map[string]any)
		require.True(t, ok, "%s is set", name)
		path := p["httpGet"].(map[string]any)["path"].(string)
		timeout, _ := p["timeoutSeconds"].(int)
		return path, timeout
	}
	path, timeout := probe("livenessProbe")
	require.Equal(t, "/livez", path, "liveness must not depend on Temporal or PostgreSQL")
	require.GreaterOrEqual(t, timeout, 2)
	path, timeout = probe("readinessProbe")
	require.Equal(t, "/readyz", path)
	require.Greater(t, timeout, 3, "the readiness handler takes up to 3 s")
	path, _ = probe("startupProbe")
	require.Equal(t, "/livez", path)

	limits := container["resources"].(map[string]any)["limits"].(map[string]any)
	limit := mebibytes(t, toString(limits["memory"]))
	var goMemLimit int
	for _, e := range asSlice(container["env"]) {
		if m := e.(map[string]any); m["name"] == "GOMEMLIMIT" {
			goMemLimit = mebibytes(t, toString(m["value"]))
		}
	}
	require.Positive(t, goMemLimit, "GOMEMLIMIT is set")
	require.LessOrEqual(t, goMemLimit*100, limit*85, "GOMEMLIMIT leaves the kernel and non-heap memory room under the limit")
	cache, err := strconv.Atoi(toString(config["WORKFLOW_CACHE_SIZE"]))
	require.NoError(t, err, "WORKFLOW_CACHE_SIZE is set")
	full := measuredBaseMiB + cache*measuredKiBPerWorkflow/1024
	require.LessOrEqual(t, full*100, goMemLimit*80, "a full cache (%d MiB) leaves a fifth of GOMEMLIMIT for activities and GC", full)
	require.Greater(t, limit, measuredFullCacheMiB, "the limit is above what 10,000 jobs in flight measured")
}

// TestComposePublishesToLoopbackOnly: nothing the compose file publishes
// has authentication, so every port is bound to 127.0.0.1.
func TestComposePublishesToLoopbackOnly(t *testing.T) {
	services := readYAMLDocs(t, "docker-compose.yml")[0]["services"].(map[string]any)
	published := 0
	for name, svc := range services {
		for _, p := range asSlice(svc.(map[string]any)["ports"]) {
			published++
			require.True(t, strings.HasPrefix(toString(p), "127.0.0.1:"), "%s publishes %s on every interface", name, toString(p))
		}
	}
	require.Positive(t, published)
}
