//go:build integration

package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/chamelaion-lipsync/worker/codec"
)

// recorder is an HTTP endpoint that keeps the method and body of every
// request it receives (not its path, where a webhook's token is) and
// answers with answer (200 when nil).
type recorder struct {
	mu     sync.Mutex
	bodies []string
	srv    *httptest.Server
}

func newRecorder(t *testing.T, answer http.HandlerFunc) *recorder {
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, req.Method+" "+string(b))
		r.mu.Unlock()
		if answer != nil {
			answer(w, req)
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

// forEachHistory calls fn with every history of the namespace.
func forEachHistory(ctx context.Context, t *testing.T, s *stack, fn func(id string, h *historypb.History)) {
	tc, err := client.Dial(client.Options{HostPort: s.temporal.Address, Namespace: "default"})
	require.NoError(t, err)
	defer tc.Close()
	resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", PageSize: 1000})
	require.NoError(t, err)
	for _, ex := range resp.Executions {
		fn(ex.Execution.WorkflowId+"/"+ex.Execution.RunId, history(ctx, t, tc, ex.Execution.WorkflowId, ex.Execution.RunId))
	}
}

// callerInput are the events that carry inputs a caller gave (a job's
// media URLs); every other event holds what the worker wrote.
var callerInput = map[enumspb.EventType]bool{
	enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:               true,
	enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:      true,
	enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:                  true,
	enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED: true,
}

// payloadTexts returns the data of every payload in m (at any depth), as
// text: decoded by pc when it is not nil, as stored otherwise.
func payloadTexts(t *testing.T, m proto.Message, pc *codec.Codec) []string {
	var out []string
	var walk func(protoreflect.Message)
	walk = func(msg protoreflect.Message) {
		if p, ok := msg.Interface().(*commonpb.Payload); ok {
			if pc != nil {
				dec, err := pc.Decode([]*commonpb.Payload{p})
				require.NoError(t, err)
				p = dec[0]
			}
			out = append(out, string(p.GetData()))
			return
		}
		msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
			case fd.IsMap() && fd.MapValue().Message() != nil:
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					walk(mv.Message())
					return true
				})
			case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
				walk(v.Message())
			}
			return true
		})
	}
	walk(m.ProtoReflect())
	return out
}

// allRows returns every row of the product's tables as JSON text, one
// line per row.
func allRows(ctx context.Context, t *testing.T, s *stack) string {
	conn, err := pgx.Connect(ctx, s.databaseURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var all strings.Builder
	for _, table := range []string{"lipsync_jobs", "lipsync_job_events", "escalations", "account_holds"} {
		var rows string
		require.NoError(t, conn.QueryRow(ctx, fmt.Sprintf(`SELECT coalesce(string_agg(row_to_json(t)::text, E'\n'), '') FROM %s t`, table)).Scan(&rows))
		all.WriteString(rows + "\n")
	}
	return all.String()
}

func jsonError(msg string) string {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return string(b)
}

// TestSecretsSweep: a vendor that echoes the job's signed URL and the API
// key in its error messages (plainly, JSON-escaped, percent-encoded, in a
// failed job's error_message, in a non-JSON 503, in a status read's 500)
// leaks no signature, key, webhook token or database password into any
// history, log, row, webhook body, metrics page, starter output or results
// file. Histories are read twice: as stored (payloads decoded from base64:
// nothing in the clear), and decrypted with the keys, where a signature may
// appear only in the inputs the caller gave (the job's media) and nowhere
// the worker wrote (failures, results, signals, markers).
func TestSecretsSweep(t *testing.T) {
	const hookToken = "HOOKTOKEN-SECRET-9a7c"
	hook := newRecorder(t, nil)
	keys := "k1:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("s", 32)))
	s := startStack(t, "NOTIFY_WEBHOOK_URL="+hook.srv.URL+"/services/T000/B000/"+hookToken,
		"ESCALATION_DECISION_WAIT=0", "PAYLOAD_ENCRYPTION_KEYS="+keys)
	s.starterEnv = []string{"PAYLOAD_ENCRYPTION_KEYS=" + keys}
	pc, err := codec.ParseKeys(keys, "")
	require.NoError(t, err)
	u, err := url.Parse(s.databaseURL)
	require.NoError(t, err)
	dbPassword, ok := u.User.Password()
	require.True(t, ok && len(dbPassword) >= 16, "the stack's database has a password")

	signed := func(ref string) string { return mediaURL(ref, "video") }
	scenarios := []map[string]any{
		{"reference_id": "sweep-400", "reject_submits": map[string]any{"status": 400,
			"body": jsonError("cannot fetch " + signed("sweep-400") + " with key " + apiKey)}},
		{"reference_id": "sweep-422-escaped", "reject_submits": map[string]any{"status": 422,
			"body": `{"error":"cannot fetch ` + strings.ReplaceAll(signed("sweep-422-escaped"), "/", `\/`) + ` (Authorization: Bearer ` + apiKey + `)"}`}},
		{"reference_id": "sweep-failed", "outcome": "failed",
			"error_message": "video URL " + url.QueryEscape(signed("sweep-failed")) + " is not accessible; X-Amz-Signature=SIGSECRETsweep-failed token=" + apiKey + strings.Repeat(" padding", 20000)},
		{"reference_id": "sweep-503", "submit_faults": []any{map[string]any{"status": 503, "content_type": "text/html",
			"body": "<html>upstream fetch of " + signed("sweep-503") + " failed</html>"}}},
		{"reference_id": "sweep-status-500", "status_faults": []any{map[string]any{"status": 500,
			"body": jsonError("poll of " + signed("sweep-status-500") + " for key " + apiKey)}}},
	}
	b, err := json.Marshal(scenarios)
	require.NoError(t, err)
	s.scenarios(string(b))

	refs := []string{"sweep-ok", "sweep-400", "sweep-422-escaped", "sweep-failed", "sweep-503", "sweep-status-500"}
	rows := []string{"reference_id,video_url,audio_url"}
	for _, ref := range refs {
		rows = append(rows, fmt.Sprintf("%s,%s,%s", ref, mediaURL(ref, "video"), mediaURL(ref, "audio")))
	}
	file := filepath.Join(s.dir, "sweep.csv")
	require.NoError(t, os.WriteFile(file, []byte(strings.Join(rows, "\n")+"\n"), 0o600))
	results := filepath.Join(s.dir, "sweep.results.csv")

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	out, errOut, code := s.starter(ctx, "batch", "--file", file, "--batch-id", "sweep", "--wait", "--results", results, "--progress-interval", "1s")
	require.Equal(t, 1, code, "three jobs escalate: %s\n%s", out, errOut)
	require.Contains(t, out, "6 jobs: 3 completed, 3 escalated")

	// The echoes did reach the worker, and were redacted.
	require.Eventually(t, func() bool { return len(hook.received()) >= 3 }, time.Minute, 200*time.Millisecond, "one notification per escalation")
	rowsText := allRows(ctx, t, s)
	require.Contains(t, rowsText, "[REDACTED]")
	require.Contains(t, rowsText, "is not accessible")

	places := map[string]string{
		"starter output": out + errOut,
		"database rows":  rowsText,
		"/metrics":       httpGet(t, s.opsURL+"/metrics"),
		"/readyz":        httpGet(t, s.opsURL+"/readyz"),
		"/livez":         httpGet(t, s.opsURL+"/livez"),
	}
	for i, body := range hook.received() {
		places[fmt.Sprintf("webhook body %d", i)] = body
	}
	secrets := map[string]string{"a URL signature": "SIGSECRET", "the API key": apiKey, "the webhook token": hookToken, "the database password": dbPassword}
	histories, inputsWithSignature := 0, 0
	forEachHistory(ctx, t, s, func(id string, h *historypb.History) {
		histories++
		stored, err := protojson.Marshal(h)
		require.NoError(t, err)
		places["history as stored "+id] = string(stored) + strings.Join(payloadTexts(t, h, nil), "\n")
		for _, ev := range h.Events {
			texts := strings.Join(payloadTexts(t, ev, pc), "\n")
			where := fmt.Sprintf("history %s, event %d (%s), decrypted", id, ev.EventId, ev.EventType)
			for name, secret := range secrets {
				if name == "a URL signature" && callerInput[ev.EventType] {
					if strings.Contains(texts, secret) {
						inputsWithSignature++ // the caller's own media URLs
					}
					continue
				}
				require.NotContains(t, texts, secret, "%s holds %s", where, name)
			}
		}
	})
	require.GreaterOrEqual(t, histories, len(refs)+1)
	require.Positive(t, inputsWithSignature, "the histories were decrypted (the inputs hold the media URLs)")
	for _, name := range []string{"worker.log", "emulator.log", "sweep.results.csv"} {
		b, err := os.ReadFile(filepath.Join(s.dir, name))
		require.NoError(t, err, name)
		places[name] = string(b)
	}
	for _, path := range s.temporal.LogFiles() {
		b, err := os.ReadFile(path)
		require.NoError(t, err, path)
		places["Temporal's "+filepath.Base(path)] = string(b)
	}
	st, err := os.Stat(results)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "results file mode")
	for where, text := range places {
		for name, secret := range secrets {
			require.NotContains(t, text, secret, "%s holds %s", where, name)
		}
	}
	t.Logf("swept %d places", len(places))
}

// TestFileMediaThroughTheWorker: on real parts, a job naming a file of the
// worker's host (its environment, a link out of MEDIA_ROOT, a missing file)
// is refused with one message that says nothing of why, nothing reaches
// the vendor, a pipe is refused at once as not a regular file, and a
// regular file inside MEDIA_ROOT is uploaded. The escalations go to a
// webhook that redirects: nothing reaches the redirect's target and no
// escalation is marked notified.
func TestFileMediaThroughTheWorker(t *testing.T) {
	root := filepath.Join(t.TempDir(), "media")
	require.NoError(t, os.MkdirAll(root, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "v.mp4"), make([]byte, 1<<20), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "a.wav"), make([]byte, 4096), 0o644))
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(root, "passwd-link")))
	require.NoError(t, syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	target := newRecorder(t, nil)
	redirector := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.srv.URL+"/collected", http.StatusFound)
	})
	s := startStack(t, "MEDIA_ROOT="+root, "NOTIFY_WEBHOOK_URL="+redirector.srv.URL+"/services/HOOK")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	file := func(name string) string { return "file://" + filepath.Join(root, name) }
	audio := file("a.wav")
	out, errOut, code := s.starter(ctx, "submit", "--wait", "--reference-id", "media-ok", "--video-url", file("v.mp4"), "--audio-url", audio)
	require.Equal(t, 0, code, out+errOut)
	require.Equal(t, 1, s.stats().JobsByReference["media-ok"])

	// The refused jobs escalate at once (their notifications are still
	// being retried against the redirecting webhook, so the starter does
	// not wait for them): read their escalations.
	conn, err := pgx.Connect(ctx, s.databaseURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	escalation := func(ref string) (reason, message string) {
		require.Eventually(t, func() bool {
			return conn.QueryRow(ctx, `SELECT reason, message FROM escalations WHERE workflow_id = $1 AND kind = 'failure'`, "lipsync-"+ref).Scan(&reason, &message) == nil
		}, 30*time.Second, 100*time.Millisecond, "%s escalates at once, without retries", ref)
		return reason, message
	}
	refused := map[string]string{
		"media-environ": "file:///proc/self/environ",
		"media-link":    file("passwd-link"),
		"media-missing": file("missing.mp4"),
		"media-dotdot":  "file://" + root + "/../../../../etc/passwd",
		"media-fifo":    file("fifo"),
	}
	for ref, video := range refused {
		_, errOut, code := s.starter(ctx, "submit", "--reference-id", ref, "--video-url", video, "--audio-url", audio)
		require.Equal(t, 0, code, errOut)
	}
	var refusals []string
	for ref := range refused {
		reason, msg := escalation(ref)
		require.Equal(t, "MediaUnreadable", reason, ref)
		for _, leak := range []string{"no such file", "permission", "escapes", "root:x:0", "CHAMELAION_API_KEY=", "openat"} {
			require.NotContains(t, msg, leak, ref)
		}
		require.Zero(t, s.stats().JobsByReference[ref], "%s: nothing was uploaded", ref)
		if ref == "media-fifo" {
			require.Equal(t, "submit: the video file is not a regular file", msg)
			continue
		}
		require.Contains(t, msg, "the video file is not allowed", ref)
		refusals = append(refusals, msg)
	}
	for _, r := range refusals {
		require.Equal(t, refusals[0], r, "every refusal reads the same")
	}

	// The precise causes are in the worker's log, for the operator.
	log, err := os.ReadFile(s.workerLog)
	require.NoError(t, err)
	require.Contains(t, string(log), `"msg":"media file refused"`)

	// The webhook redirects: nothing is delivered, nothing is marked.
	require.Eventually(t, func() bool { return len(redirector.received()) >= 5 }, time.Minute, 200*time.Millisecond)
	require.Empty(t, target.received(), "the redirect's target received the escalation")
	var notified int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM escalations WHERE notified_at IS NOT NULL`).Scan(&notified))
	require.Zero(t, notified, "a redirected delivery is not a delivery")
	forEachHistory(ctx, t, s, func(id string, h *historypb.History) {
		text := strings.Join(payloadTexts(t, h, nil), "\n")
		require.NotContains(t, text, "root:x:0", id)
		require.NotContains(t, text, "no such file", id)
	})
}
