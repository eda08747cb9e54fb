//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/chamelaion-lipsync/worker/codec"
)

// TestNodeExample builds and runs examples/node (TypeScript, the
// @temporalio/client of the npm registry, with its own AES-256-GCM codec) against the dev server,
// PostgreSQL, the emulator and a worker that refuses unencrypted media URLs,
// and checks what it printed against the database, the emulator and the
// histories. It installs the example's packages itself (npm ci, with npm's
// cache under ~/.cache/lipsync/npm), compiles it with the TypeScript
// compiler they include (so the contract's types in contract.ts are checked
// against the client's), and fails when node or npm is missing.
func TestNodeExample(t *testing.T) {
	node, err := exec.LookPath("node")
	require.NoError(t, err, "TestNodeExample needs Node.js 20 or later (node) on PATH, as CI machines have: install it (apt-get install nodejs npm) rather than skip the test")
	npm, err := exec.LookPath("npm")
	require.NoError(t, err, "TestNodeExample needs npm on PATH to install the example's packages")
	dir := filepath.Join(repoRoot(t), "examples", "node")
	npmInstall(t, npm, dir)
	build := exec.Command(node, filepath.Join("node_modules", "typescript", "bin", "tsc"), "-p", ".")
	build.Dir = dir
	out, err := build.CombinedOutput()
	require.NoError(t, err, "tsc in %s:\n%s", dir, out)

	keys := "old:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("o"), 32)) +
		",node:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("n"), 32))
	codecEnv := []string{"PAYLOAD_ENCRYPTION_KEYS=" + keys, "PAYLOAD_ENCRYPTION_KEY_ID=node"}
	s := startStack(t, append(codecEnv, "JOB_STUCK_AFTER=1m")...)
	const prefix = "node-"
	s.scenarios(`[{"reference_id":"node-quota","submit_faults":[412]},` +
		`{"reference_id":"node-failed","outcome":"failed","error_message":"video URL is not accessible"}]`)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("dist", "example.js"))
	cmd.Dir = dir
	// The service encrypts with the other key of the pair (as during a key
	// rotation): each side decrypts by the key id the payload names.
	nodeCodecEnv := []string{"PAYLOAD_ENCRYPTION_KEYS=" + keys, "PAYLOAD_ENCRYPTION_KEY_ID=old"}
	cmd.Env = append(os.Environ(), append(nodeCodecEnv,
		"TEMPORAL_ADDRESS="+s.temporal.Address, "TEMPORAL_NAMESPACE=default", "TEMPORAL_TASK_QUEUE="+taskQueue,
		"EXAMPLE_PREFIX="+prefix, "MEDIA_URL_TEMPLATE=https://media.example.com/{kind}/{ref}.bin?X-Amz-Signature=SIGSECRET{ref}")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "node dist/example.js:\n%s\n%s", stdout.String(), stderr.String())
	t.Logf("the example printed:\n%s", stdout.String())

	// One JSON object a line, by step (completed is printed twice).
	steps := map[string][]map[string]any{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var line map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), sc.Text())
		steps[line["step"].(string)] = append(steps[line["step"].(string)], line)
	}
	one := func(step string) map[string]any {
		t.Helper()
		require.Len(t, steps[step], 1, step)
		return steps[step][0]
	}
	obj := func(m map[string]any, key string) map[string]any {
		t.Helper()
		v, ok := m[key].(map[string]any)
		require.True(t, ok, "%s in %v", key, m)
		return v
	}

	conn, err := pgx.Connect(ctx, s.databaseURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	row := func(ref string) (status, requestID, outputURL string) {
		t.Helper()
		var out *string
		require.NoError(t, conn.QueryRow(ctx, `SELECT status, request_id, output_url FROM lipsync_jobs WHERE workflow_id = $1`,
			"lipsync-"+ref).Scan(&status, &requestID, &out))
		if out != nil {
			outputURL = *out
		}
		return status, requestID, outputURL
	}
	stats := s.stats()

	// The job: its status answered in the contract's names, a second
	// submission attached to the same run, its result the database's.
	submitted := one("submitted")
	require.Equal(t, "lipsync-node-ok", submitted["workflow_id"])
	require.Equal(t, submitted["run_id"], one("submitted_again")["run_id"], "a second start attaches to the running job")
	status := obj(one("status"), "status")
	require.Equal(t, "node-ok", status["reference_id"])
	for _, member := range []string{"request_id", "status", "attempt", "status_checks", "started_at", "waiting_for_decision"} {
		require.Contains(t, status, member)
	}
	require.Len(t, steps["completed"], 2)
	res := obj(steps["completed"][0], "result")
	dbStatus, dbRequest, dbOutput := row("node-ok")
	require.Equal(t, "completed", dbStatus)
	require.Equal(t, "completed", res["status"])
	require.Equal(t, dbRequest, res["request_id"])
	require.Equal(t, dbOutput, res["output_url"])
	require.True(t, strings.HasPrefix(dbOutput, "https://"), dbOutput)
	d, err := time.ParseDuration(res["duration"].(string))
	require.NoError(t, err, "the result's duration is a Go duration string")
	require.Positive(t, d)
	_, err = time.Parse(time.RFC3339Nano, res["finished_at"].(string))
	require.NoError(t, err)
	require.Equal(t, 1, stats.JobsByReference["node-ok"], "one vendor job however often it was submitted")
	afterEnd := one("submitted_after_end")
	require.Equal(t, true, afterEnd["already_ended"], "an ended job is never started again")
	require.Equal(t, dbRequest, obj(afterEnd, "result")["request_id"])

	// The escalated job: its reason read from the status, answered retry,
	// completed on its second attempt with one vendor job.
	esc := one("escalated")
	require.Equal(t, "QuotaExceeded", esc["reason"])
	require.Contains(t, esc["error_message"], "token limit reached")
	require.Equal(t, map[string]any{"action": "retry", "attempt": float64(1)}, obj(one("resolved"), "answer"))
	retried := obj(steps["completed"][1], "result")
	dbStatus, dbRequest, _ = row("node-quota")
	require.Equal(t, "completed", dbStatus)
	require.Equal(t, dbRequest, retried["request_id"])
	require.Equal(t, 1, stats.JobsByReference["node-quota"], "the refused submission created nothing; the retry one job")
	var resolution, by string
	require.NoError(t, conn.QueryRow(ctx, `SELECT resolution, resolved_by FROM escalations WHERE workflow_id = 'lipsync-node-quota' AND kind = 'failure'`).Scan(&resolution, &by))
	require.Equal(t, "retry", resolution)
	require.Equal(t, "node-example", by)

	// The abandoned job: the failure's type and its escalation details.
	ended := one("ended_escalated")
	require.Equal(t, "Abandoned", ended["type"])
	details := obj(ended, "details")
	require.Equal(t, "JobFailed", details["reason"])
	require.Contains(t, details["error_message"], "video URL is not accessible")
	dbStatus, dbRequest, _ = row("node-failed")
	require.Equal(t, "abandoned", dbStatus)
	require.Equal(t, dbRequest, details["request_id"])
	require.NoError(t, conn.QueryRow(ctx, `SELECT resolution, resolved_by FROM escalations WHERE workflow_id = 'lipsync-node-failed' AND kind = 'failure'`).Scan(&resolution, &by))
	require.Equal(t, "abandon", resolution)

	// The batch.
	require.Equal(t, "node-batch", obj(one("batch_progress"), "progress")["batch_id"])
	batch := obj(one("batch_completed"), "result")
	require.Equal(t, float64(2), batch["total"])
	require.Equal(t, float64(2), batch["completed"])
	for _, ref := range []string{"node-b1", "node-b2"} {
		dbStatus, _, _ = row(ref)
		require.Equal(t, "completed", dbStatus, ref)
		require.Equal(t, 1, stats.JobsByReference[ref], ref)
	}

	// What Node wrote is in the histories only encrypted, with Node's key,
	// and in the contract's shape.
	tc, err := client.Dial(client.Options{HostPort: s.temporal.Address, Namespace: "default"})
	require.NoError(t, err)
	defer tc.Close()
	cdc, err := codec.ParseKeys(keys, "")
	require.NoError(t, err)
	for _, id := range []string{"lipsync-node-ok", "lipsync-node-quota", "batch-node-batch"} {
		h := history(ctx, t, tc, id, "")
		b, err := protojson.Marshal(h)
		require.NoError(t, err)
		require.NotContains(t, string(b), "SIGSECRET", id)
		require.NotContains(t, string(b), "media.example.com", id)
		start := h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0]
		require.Equal(t, "old", string(start.GetMetadata()[codec.MetadataKeyID]), "encrypted with the service's active key: %s", id)
		var input map[string]any
		require.NoError(t, converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), cdc).FromPayload(start, &input), id)
		if strings.HasPrefix(id, "batch-") {
			require.Equal(t, "node-batch", input["batch_id"])
			continue
		}
		last := h.Events[len(h.Events)-1].GetWorkflowExecutionCompletedEventAttributes().GetResult().GetPayloads()
		require.Len(t, last, 1, "%s completed", id)
		require.Equal(t, "node", string(last[0].GetMetadata()[codec.MetadataKeyID]), "the worker's result, encrypted with its own active key, which the service read: %s", id)
		require.Contains(t, input["video_url"], "SIGSECRET", "decrypted, the input is the contract's")
		require.Equal(t, "10m", input["stuck_after"])
	}
}

// npmInstall installs the example's locked packages (npm ci), with npm's
// cache kept between runs.
func npmInstall(t *testing.T, npm, dir string) {
	t.Helper()
	cache, err := os.UserCacheDir()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--prefer-offline", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_cache="+filepath.Join(cache, "lipsync", "npm"))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "npm ci in %s:\n%s", dir, out)
}
