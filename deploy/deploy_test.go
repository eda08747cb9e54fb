package deploy

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/chamelaion-lipsync/worker/config"
)

// known is every variable the worker's configuration reads.
func known() map[string]config.Variable {
	m := map[string]config.Variable{}
	for _, v := range config.Variables() {
		m[v.Name] = v
	}
	return m
}

// goRuntime are the Go runtime's own variables, which a deployment may set
// for the worker beside its configuration.
var goRuntime = map[string]bool{"GOMEMLIMIT": true, "GOGC": true, "GOMAXPROCS": true}

// checkWorkerEnv asserts that every variable set for the worker exists in
// the configuration and that the required ones are set.
func checkWorkerEnv(t *testing.T, where string, env map[string]string) {
	t.Helper()
	vars := known()
	var unknown []string
	for name := range env {
		if _, ok := vars[name]; !ok && !goRuntime[name] {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	require.Empty(t, unknown, "%s sets variables the worker does not read", where)
	for _, v := range vars {
		if v.RequiredByWorker {
			require.Contains(t, env, v.Name, "%s must set %s", where, v.Name)
		}
	}
}

func readYAMLDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []map[string]any
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			require.Equal(t, "EOF", err.Error(), "%s: %v", path, err)
			break
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	return docs
}

func strMap(t *testing.T, v any) map[string]string {
	out := map[string]string{}
	switch m := v.(type) {
	case map[string]any:
		for k, val := range m {
			out[k] = strings.TrimSpace(toString(val))
		}
	case []any:
		for _, item := range m {
			k, val, _ := strings.Cut(toString(item), "=")
			out[k] = val
		}
	case nil:
	default:
		t.Fatalf("environment of unexpected shape %T", v)
	}
	return out
}

func toString(v any) string {
	if v == nil {
		return ""
	}
	switch x := v.(type) {
	case string:
		return x
	default:
		b, _ := yaml.Marshal(x)
		return strings.TrimSpace(string(b))
	}
}

func TestComposeWorkerEnvironment(t *testing.T) {
	docs := readYAMLDocs(t, "docker-compose.yml")
	require.Len(t, docs, 1)
	services := docs[0]["services"].(map[string]any)
	worker := services["worker"].(map[string]any)
	env := strMap(t, worker["environment"])
	for k, v := range dockerfileEnv(t, "worker") {
		if _, set := env[k]; !set {
			env[k] = v
		}
	}
	checkWorkerEnv(t, "docker-compose.yml worker", env)
	for _, svc := range []string{"postgresql", "temporal-schema", "temporal-frontend", "temporal-namespace", "temporal-ui", "emulator", "worker"} {
		require.Contains(t, services, svc)
	}
}

func TestKubernetesWorkerEnvironment(t *testing.T) {
	env := map[string]string{}
	var deployment map[string]any
	for _, f := range []string{"k8s/worker.yaml", "k8s/secret.example.yaml"} {
		for _, doc := range readYAMLDocs(t, f) {
			switch doc["kind"] {
			case "ConfigMap":
				for k, v := range strMap(t, doc["data"]) {
					env[k] = v
				}
			case "Secret":
				for k, v := range strMap(t, doc["stringData"]) {
					env[k] = v
				}
			case "Deployment":
				deployment = doc
			}
		}
	}
	require.NotNil(t, deployment)
	containers := deployment["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
	c := containers[0].(map[string]any)
	for _, e := range asSlice(c["env"]) {
		m := e.(map[string]any)
		env[m["name"].(string)] = toString(m["value"])
	}
	require.Len(t, asSlice(c["envFrom"]), 2, "config from the ConfigMap and the API key from the Secret")
	checkWorkerEnv(t, "k8s worker", env)
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// dockerfileEnv reads the ENV lines of one stage of the Dockerfile.
func dockerfileEnv(t *testing.T, stage string) map[string]string {
	t.Helper()
	f, err := os.Open("Dockerfile")
	require.NoError(t, err)
	defer f.Close()
	env := map[string]string{}
	in := false
	var cont string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "FROM ") {
			in = strings.HasSuffix(line, " AS "+stage)
			continue
		}
		if !in {
			continue
		}
		if cont != "" || strings.HasPrefix(line, "ENV ") {
			body := strings.TrimPrefix(cont+line, "ENV ")
			if strings.HasSuffix(body, "\\") {
				cont = strings.TrimSuffix(body, "\\") + " "
				continue
			}
			cont = ""
			for _, kv := range strings.Fields(body) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		}
	}
	require.NotEmpty(t, env, "stage %s sets no ENV", stage)
	return env
}

func TestExampleEnvFileAndDockerfile(t *testing.T) {
	f, err := os.Open("worker.env.example")
	require.NoError(t, err)
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	checkWorkerEnv(t, "worker.env.example", env)
	for name := range dockerfileEnv(t, "worker") {
		require.Contains(t, known(), name, "Dockerfile worker stage")
	}
	units, err := filepath.Glob("*.service")
	require.NoError(t, err)
	require.NotEmpty(t, units)
}
