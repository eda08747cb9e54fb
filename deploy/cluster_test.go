package deploy_test

import (
	"bufio"
	"bytes"
	"maps"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"gopkg.in/yaml.v3"

	"github.com/chamelaion-lipsync/worker/config"
	"github.com/chamelaion-lipsync/worker/deploy"
	"github.com/chamelaion-lipsync/worker/internal/localcluster"
	"github.com/chamelaion-lipsync/worker/workflows"
)

// The checks below keep what the tests run (internal/localcluster: the
// server version, its environment, the dynamic configuration, the schema
// and namespace scripts) and what deploy/ ships in step.

// serverVersion is the pinned server's version as image tags write it.
func serverVersion() string { return strings.TrimPrefix(localcluster.ServerVersion, "v") }

// TestToolsPinTheServerTheTestsRun: tools/temporal-server builds the server
// version the cluster names, and the Web UI of the release the CLI embeds.
func TestToolsPinTheServerTheTestsRun(t *testing.T) {
	gomod, err := os.ReadFile("../tools/temporal-server/go.mod")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^\s*(require\s+)?go\.temporal\.io/server `+regexp.QuoteMeta(localcluster.ServerVersion)+`$`, string(gomod))
	require.Regexp(t, `(?m)^\s*github\.com/temporalio/ui-server/v2 v`+regexp.QuoteMeta(uiVersion(t))+`$`, string(gomod))
}

// uiVersion is the Web UI version the compose file runs.
func uiVersion(t *testing.T) string {
	t.Helper()
	image := deploy.ToString(composeServices(t)["temporal-ui"].(map[string]any)["image"])
	v, ok := strings.CutPrefix(image, "temporalio/ui:")
	require.True(t, ok, "the compose file's Web UI image: %s", image)
	return v
}

func composeServices(t *testing.T) map[string]any {
	t.Helper()
	return deploy.ReadYAMLDocs(t, "docker-compose.yml")[0]["services"].(map[string]any)
}

// serverEnvKeys are the variables the tests give every service process
// (localcluster.ServerEnv); deploy/ must set the same, except the ports
// (deploy/ keeps the template's defaults).
func serverEnvKeys() (required, allowed map[string]bool) {
	env := localcluster.ServerEnv(localcluster.Postgres{}, localcluster.Ports{}, localcluster.DefaultHistoryShards, "", "", "")
	required, allowed = map[string]bool{"SERVICES": true}, map[string]bool{"SERVICES": true}
	for k := range env {
		allowed[k] = true
		if !strings.HasSuffix(k, "_PORT") || k == "DB_PORT" || k == "VISIBILITY_DB_PORT" {
			required[k] = true
		}
	}
	return required, allowed
}

// checkServerEnv asserts a server container's environment: the variables
// the tests set, nothing the tests do not, the same database plugin, and
// one service.
func checkServerEnv(t *testing.T, where string, env map[string]string, service localcluster.Service) {
	t.Helper()
	required, allowed := serverEnvKeys()
	for k := range required {
		require.Contains(t, env, k, "%s must set %s as the tests do", where, k)
	}
	for k := range env {
		require.True(t, allowed[k], "%s sets %s, which the tests do not (localcluster.ServerEnv)", where, k)
	}
	want := localcluster.ServerEnv(localcluster.Postgres{}, localcluster.Ports{}, 0, "", "", "")
	require.Equal(t, want["DB"], env["DB"], where)
	require.Equal(t, string(service), env["SERVICES"], "%s runs one service", where)
	shards, err := strconv.Atoi(env["NUM_HISTORY_SHARDS"])
	require.NoError(t, err, where)
	require.GreaterOrEqual(t, shards, localcluster.DefaultHistoryShards, where)
	require.Zero(t, shards&(shards-1), "%s: a power of two, so that a later migration can split shards evenly", where)
}

// TestComposeRunsTheClusterTheTestsRun: one container per service, on the
// pinned image, with the tests' variables and shard count, the shipped
// dynamic configuration mounted where DYNAMIC_CONFIG_FILE_PATH says, and
// the schema and namespace jobs running the scripts the tests run.
func TestComposeRunsTheClusterTheTestsRun(t *testing.T) {
	services := composeServices(t)
	for _, svc := range localcluster.Services() {
		name := "temporal-" + string(svc)
		require.Contains(t, services, name)
		s := services[name].(map[string]any)
		require.Equal(t, "temporalio/server:"+serverVersion(), deploy.ToString(s["image"]), name)
		env := deploy.StrMap(t, s["environment"])
		checkServerEnv(t, "docker-compose.yml "+name, env, svc)
		require.Equal(t, strconv.Itoa(localcluster.DefaultHistoryShards), env["NUM_HISTORY_SHARDS"], "one host, as the tests")
		require.Contains(t, mounts(s), "./temporal-dynamicconfig.yaml:"+env["DYNAMIC_CONFIG_FILE_PATH"]+":ro", name)
		dependsOn := s["depends_on"].(map[string]any)
		require.Equal(t, "service_completed_successfully", dependsOn["temporal-schema"].(map[string]any)["condition"], name)
	}
	for job, script := range map[string]string{"temporal-schema": "temporal-schema.sh", "temporal-namespace": "temporal-namespace.sh"} {
		s := services[job].(map[string]any)
		require.True(t, strings.HasPrefix(deploy.ToString(s["image"]), "temporalio/admin-tools:"+serverVersion()+"-"), "%s: the admin tools of the server's release", job)
		require.Contains(t, mounts(s), "./"+script+":/lipsync/"+script+":ro", job)
		require.Equal(t, []any{"sh", "/lipsync/" + script}, s["entrypoint"], job)
	}
	worker := services["worker"].(map[string]any)
	require.Equal(t, "service_completed_successfully",
		worker["depends_on"].(map[string]any)["temporal-namespace"].(map[string]any)["condition"], "the worker starts in a set-up namespace")
	require.Equal(t, "temporal-frontend:7233", deploy.StrMap(t, worker["environment"])["TEMPORAL_ADDRESS"])
}

func mounts(service map[string]any) []string {
	var out []string
	for _, v := range deploy.AsSlice(service["volumes"]) {
		out = append(out, deploy.ToString(v))
	}
	return out
}

// TestKubernetesRunsTheClusterTheTestsRun: a Deployment per service on the
// pinned image with the tests' variables, the dynamic configuration and
// the two jobs' scripts generated from the files the tests use, and the
// worker pointed at the frontend's Service.
func TestKubernetesRunsTheClusterTheTestsRun(t *testing.T) {
	docs := deploy.ReadYAMLDocs(t, "k8s/temporal.yaml")
	byName := map[string]map[string]any{}
	configMaps := map[string]map[string]string{}
	for _, d := range docs {
		name := deploy.ToString(d["metadata"].(map[string]any)["name"])
		byName[deploy.ToString(d["kind"])+"/"+name] = d
		if d["kind"] == "ConfigMap" {
			configMaps[name] = deploy.StrMap(t, d["data"])
		}
	}
	for _, d := range deploy.ReadYAMLDocs(t, "k8s/temporal-secret.example.yaml") {
		configMaps["secret/"+deploy.ToString(d["metadata"].(map[string]any)["name"])] = deploy.StrMap(t, d["stringData"])
	}
	for _, svc := range localcluster.Services() {
		d := byName["Deployment/temporal-"+string(svc)]
		require.NotNil(t, d, "a Deployment for %s", svc)
		pod := d["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
		c := pod["containers"].([]any)[0].(map[string]any)
		require.Equal(t, "temporalio/server:"+serverVersion(), deploy.ToString(c["image"]), svc)
		env := map[string]string{}
		for _, from := range deploy.AsSlice(c["envFrom"]) {
			f := from.(map[string]any)
			if ref, ok := f["configMapRef"]; ok {
				maps.Copy(env, configMaps[deploy.ToString(ref.(map[string]any)["name"])])
			}
			if ref, ok := f["secretRef"]; ok {
				maps.Copy(env, configMaps["secret/"+deploy.ToString(ref.(map[string]any)["name"])])
			}
		}
		for _, e := range deploy.AsSlice(c["env"]) {
			m := e.(map[string]any)
			env[deploy.ToString(m["name"])] = deploy.ToString(m["value"])
		}
		checkServerEnv(t, "k8s temporal-"+string(svc), env, svc)
		var mountPath string
		for _, m := range deploy.AsSlice(c["volumeMounts"]) {
			if mm := m.(map[string]any); mm["name"] == "dynamicconfig" {
				mountPath = deploy.ToString(mm["mountPath"])
			}
		}
		require.Equal(t, mountPath+"/temporal-dynamicconfig.yaml", env["DYNAMIC_CONFIG_FILE_PATH"], svc)
		require.Contains(t, deploy.ToString(pod["volumes"]), "temporal-dynamicconfig", svc)
	}
	for _, job := range []string{"temporal-schema-" + strings.ReplaceAll(serverVersion(), ".", "-"), "temporal-namespace"} {
		d := byName["Job/"+job]
		require.NotNil(t, d, "the Job %s (named for the server version it sets up, where it is the schema)", job)
		c := d["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
		require.True(t, strings.HasPrefix(deploy.ToString(c["image"]), "temporalio/admin-tools:"+serverVersion()+"-"), job)
	}
	require.NotNil(t, byName["Service/temporal-frontend"])

	// kustomization.yaml makes the ConfigMaps from the very files the
	// tests load.
	kust := deploy.ReadYAMLDocs(t, "kustomization.yaml")[0]
	generated := map[string][]string{}
	for _, g := range deploy.AsSlice(kust["configMapGenerator"]) {
		m := g.(map[string]any)
		for _, f := range deploy.AsSlice(m["files"]) {
			generated[deploy.ToString(m["name"])] = append(generated[deploy.ToString(m["name"])], deploy.ToString(f))
		}
	}
	require.Equal(t, []string{"temporal-dynamicconfig.yaml"}, generated["temporal-dynamicconfig"])
	require.ElementsMatch(t, []string{"temporal-schema.sh", "temporal-namespace.sh"}, generated["temporal-setup"])
	require.ElementsMatch(t, []any{"k8s/temporal.yaml", "k8s/worker.yaml"}, deploy.AsSlice(kust["resources"]))

	// The worker talks to that frontend.
	for _, d := range deploy.ReadYAMLDocs(t, "k8s/worker.yaml") {
		if d["kind"] == "ConfigMap" {
			require.Equal(t, "temporal-frontend.temporal.svc:7233", deploy.StrMap(t, d["data"])["TEMPORAL_ADDRESS"])
		}
	}
}

// TestDynamicConfigGivesTheRateLimitedQueuesOnePartition: the shipped
// dynamic configuration (which the tests' cluster loads) sets exactly the
// two partition keys, to 1, for the submit and status queues of the task
// queue the deployments use.
func TestDynamicConfigGivesTheRateLimitedQueuesOnePartition(t *testing.T) {
	var dc map[string][]struct {
		Value       any               `yaml:"value"`
		Constraints map[string]string `yaml:"constraints"`
	}
	require.NoError(t, yaml.Unmarshal(deploy.TemporalDynamicConfig, &dc))
	keys := slices.Sorted(maps.Keys(dc))
	require.Equal(t, []string{"matching.numTaskqueueReadPartitions", "matching.numTaskqueueWritePartitions"}, keys)

	queue := ""
	for _, v := range config.Variables() {
		if v.Name == "TEMPORAL_TASK_QUEUE" {
			queue = v.Default
		}
	}
	require.NotEmpty(t, queue)
	compose := deploy.StrMap(t, composeServices(t)["worker"].(map[string]any)["environment"])
	require.Equal(t, queue, compose["TEMPORAL_TASK_QUEUE"], "the compose worker runs on the queue the dynamic configuration names")
	for _, d := range deploy.ReadYAMLDocs(t, "k8s/worker.yaml") {
		if d["kind"] == "ConfigMap" {
			require.Equal(t, queue, deploy.StrMap(t, d["data"])["TEMPORAL_TASK_QUEUE"], "the k8s worker runs on the queue the dynamic configuration names")
		}
	}
	want := []string{workflows.StatusTaskQueue(queue), workflows.SubmitTaskQueue(queue)}
	for _, k := range keys {
		var queues []string
		for _, entry := range dc[k] {
			require.Equal(t, 1, entry.Value, k)
			require.Len(t, entry.Constraints, 1, "%s: constrained to one task queue", k)
			queues = append(queues, entry.Constraints["taskQueueName"])
		}
		sort.Strings(queues)
		require.Equal(t, want, queues, k)
	}
	disk, err := os.ReadFile("temporal-dynamicconfig.yaml")
	require.NoError(t, err)
	require.Equal(t, disk, deploy.TemporalDynamicConfig)
}

// TestNamespaceScriptRegistersTheWorkersSearchAttributes: the namespace job
// registers exactly the attributes the workflows set, with their types.
func TestNamespaceScriptRegistersTheWorkersSearchAttributes(t *testing.T) {
	types := map[string]enumspb.IndexedValueType{
		"Keyword": enumspb.INDEXED_VALUE_TYPE_KEYWORD, "Text": enumspb.INDEXED_VALUE_TYPE_TEXT,
		"Int": enumspb.INDEXED_VALUE_TYPE_INT, "Double": enumspb.INDEXED_VALUE_TYPE_DOUBLE,
		"Bool": enumspb.INDEXED_VALUE_TYPE_BOOL, "Datetime": enumspb.INDEXED_VALUE_TYPE_DATETIME,
		"KeywordList": enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST,
	}
	got := map[string]enumspb.IndexedValueType{}
	sc := bufio.NewScanner(bytes.NewReader(deploy.TemporalNamespaceScript))
	line := regexp.MustCompile(`^attribute (\w+) (\w+)$`)
	for sc.Scan() {
		if m := line.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			typ, ok := types[m[2]]
			require.True(t, ok, "unknown type %s", m[2])
			require.NotContains(t, got, m[1], "registered twice")
			got[m[1]] = typ
		}
	}
	require.Equal(t, workflows.SearchAttributes(), got)
}
