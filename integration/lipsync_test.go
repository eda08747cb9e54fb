//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/chamelaion-lipsync/worker/lipsync"
)

// job is one submission of the end-to-end test and what must come of it.
type job struct {
	ref        string
	scenario   string // emulator scenario JSON (without reference_id), "" for none
	wantExit   int
	wantStatus string // lipsync_jobs.status
	wantReason string // escalation reason of kind failure, "" for none
	wantStuck  bool
	wantJobs   int // jobs the emulator must have created for the reference_id
	args       []string
}

func TestEndToEnd(t *testing.T) {
	// A budget of 600 submissions a minute: the rate-limited queue never
	// spaces the retries whose timing the test checks.
	s := startStack(t, "JOB_STUCK_AFTER=3s", "MAX_POLLS_PER_RUN=10", "CHAMELAION_RATE_LIMIT_PER_MINUTE=600")
	jobs := []job{
		{ref: "e2e-ok-1", wantStatus: "completed", wantJobs: 1},
		{ref: "e2e-ok-2", wantStatus: "completed", wantJobs: 1},
		{ref: "e2e-429", scenario: `"submit_faults":[{"status":429,"headers":{"Retry-After":"2"}}]`, wantStatus: "completed", wantJobs: 1},
		{ref: "e2e-503", scenario: `"submit_faults":[503,503]`, wantStatus: "completed", wantJobs: 1},
		{ref: "e2e-status-500", scenario: `"status_faults":[500,{"status":429,"headers":{"X-Ratelimit-Wait":"1"}}]`, wantStatus: "completed", wantJobs: 1},
		{ref: "e2e-lost-reset", scenario: `"lose_responses":1,"lose_mode":"reset"`, wantStatus: "completed", wantJobs: 1},
		{ref: "e2e-lost-hang", scenario: `"lose_responses":1,"lose_mode":"hang"`, wantStatus: "completed", wantJobs: 1},
		{ref: "e2e-412", scenario: `"submit_faults":[412]`, wantExit: 1, wantStatus: "failed", wantReason: "QuotaExceeded"},
		{ref: "e2e-400", scenario: `"submit_faults":[{"status":400,"body":"{\"error\":\"expected exactly one video input\"}"}]`, wantExit: 1, wantStatus: "failed", wantReason: "BadRequest"},
		{ref: "e2e-failed", scenario: `"outcome":"failed","error_message":"video URL is not accessible"`, wantExit: 1, wantStatus: "failed", wantReason: "JobFailed", wantJobs: 1},
		{ref: "e2e-stuck", scenario: `"queued_for":"6s"`, wantStatus: "completed", wantStuck: true, wantJobs: 1},
		{ref: "e2e-long", scenario: `"processing_for":"30s"`, wantStatus: "completed", wantJobs: 1},
		// Queued past its 2 s deadline: escalated, then resumed by a human.
		{ref: "e2e-resume", scenario: `"queued_for":"6s"`, args: []string{"--deadline", "2s"}, wantExit: 1, wantStatus: "failed", wantReason: "DeadlineExceeded", wantJobs: 1},
	}
	var scen []string
	for _, j := range jobs {
		if j.scenario != "" {
			scen = append(scen, fmt.Sprintf(`{"reference_id":%q,%s}`, j.ref, j.scenario))
		}
	}
	s.scenarios("[" + strings.Join(scen, ",") + "]")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	type outcome struct {
		stdout, stderr string
		code           int
	}
	results := make(map[string]outcome)
	var mu sync.Mutex
	parallel(jobs, func(j job) {
		out, errOut, code := s.starter(ctx, append([]string{"submit", "--wait", "--reference-id", j.ref, "--batch-id", "itest-batch",
			"--video-url", mediaURL(j.ref, "video"), "--audio-url", mediaURL(j.ref, "audio")}, j.args...)...)
		mu.Lock()
		results[j.ref] = outcome{out, errOut, code}
		mu.Unlock()
	})

	for _, j := range jobs {
		r := results[j.ref]
		require.Equal(t, j.wantExit, r.code, "%s: stdout=%s stderr=%s", j.ref, r.stdout, r.stderr)
		lines := strings.SplitN(r.stdout, "\n", 2)
		require.Equal(t, "lipsync-"+j.ref, lines[0], j.ref)
		if j.wantExit == 0 {
			var res struct {
				RequestID    string `json:"request_id"`
				Status       string `json:"status"`
				OutputURL    string `json:"output_url"`
				StatusChecks int    `json:"status_checks"`
				Runs         int    `json:"runs"`
				Adopted      bool   `json:"adopted"`
			}
			require.NoError(t, json.Unmarshal([]byte(lines[1]), &res), "%s: %s", j.ref, r.stdout)
			require.Equal(t, "completed", res.Status, j.ref)
			require.NotEmpty(t, res.RequestID, j.ref)
			require.NotEmpty(t, res.OutputURL, j.ref)
			if strings.HasPrefix(j.ref, "e2e-lost") {
				require.True(t, res.Adopted, "%s must adopt the request its lost attempt created", j.ref)
			}
			if j.ref == "e2e-long" {
				require.Greater(t, res.Runs, 1, "a 30s job polled every 2s must continue as new at 10 checks")
			}
		} else {
			require.Contains(t, r.stderr, j.wantReason, j.ref)
		}
		// Nothing secret in what the starter printed.
		require.NotContains(t, r.stdout+r.stderr, "SIGSECRET")
	}

	// Exactly one vendor job per reference_id: no duplicate submission, even
	// for the attempts whose answers were lost.
	st := s.stats()
	for _, j := range jobs {
		require.Equal(t, j.wantJobs, st.JobsByReference[j.ref], "emulator jobs for %s", j.ref)
	}
	require.GreaterOrEqual(t, st.LostResponses, 2)

	// Rows in PostgreSQL: one job row each, in the state the workflow ended
	// in; one failure escalation per permanent failure, none for transient
	// ones; one stuck notification for the stuck job.
	conn, err := pgx.Connect(ctx, s.databaseURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	for _, j := range jobs {
		var status string
		var output, reqID *string
		var checks int
		err := conn.QueryRow(ctx, `SELECT status, output_url, request_id, status_checks FROM lipsync_jobs WHERE workflow_id = $1`, "lipsync-"+j.ref).
			Scan(&status, &output, &reqID, &checks)
		require.NoError(t, err, j.ref)
		require.Equal(t, j.wantStatus, status, j.ref)
		if status == "completed" {
			require.NotNil(t, output, j.ref)
			require.NotNil(t, reqID, j.ref)
			require.Positive(t, checks, j.ref)
		}
		var failures, stuck int
		var reason *string
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE kind='failure'), count(*) FILTER (WHERE kind='stuck'), max(reason) FILTER (WHERE kind='failure')
			FROM escalations WHERE workflow_id = $1`, "lipsync-"+j.ref).Scan(&failures, &stuck, &reason))
		if j.wantReason != "" {
			require.Equal(t, 1, failures, j.ref)
			require.Equal(t, j.wantReason, *reason, j.ref)
		} else {
			require.Zero(t, failures, j.ref)
		}
		require.Equal(t, j.wantStuck, stuck == 1, "%s stuck notifications: %d", j.ref, stuck)
		var sources string
		require.NoError(t, conn.QueryRow(ctx, `SELECT video_source || audio_source FROM lipsync_jobs WHERE workflow_id = $1`, "lipsync-"+j.ref).Scan(&sources))
		require.NotContains(t, sources, "SIGSECRET", "media query strings must not be stored")
	}
	var events int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM lipsync_job_events WHERE workflow_id = 'lipsync-e2e-ok-1'`).Scan(&events))
	require.GreaterOrEqual(t, events, 4, "pending, submitted, queued/processing, completed")

	t.Run("resubmitting a finished reference_id returns the finished job", func(t *testing.T) {
		out, errOut, code := s.starter(ctx, "submit", "--wait", "--reference-id", "e2e-ok-1",
			"--video-url", mediaURL("e2e-ok-1", "video"), "--audio-url", mediaURL("e2e-ok-1", "audio"))
		require.Equal(t, 0, code, errOut)
		require.Contains(t, errOut, "attached to the existing job")
		require.Contains(t, out, `"status": "completed"`)
		require.Equal(t, 1, s.stats().JobsByReference["e2e-ok-1"])
	})

	t.Run("bad input is refused before anything starts", func(t *testing.T) {
		_, errOut, code := s.starter(ctx, "submit", "--reference-id", "e2e-bad", "--video-url", "ftp://x/v.mp4?sig=SIGSECRET", "--audio-url", mediaURL("e2e-bad", "audio"))
		require.Equal(t, 2, code)
		require.Contains(t, errOut, "video")
		require.NotContains(t, errOut, "SIGSECRET")
	})

	tc, err := client.Dial(client.Options{HostPort: s.temporal.Address, Namespace: "default"})
	require.NoError(t, err)
	defer tc.Close()

	t.Run("an operator finds stuck and escalated jobs with the README's list queries", func(t *testing.T) {
		s.scenarios(`{"reference_id":"e2e-queued-long","queued_for":"10m"}`)
		_, errOut, code := s.starter(ctx, "submit", "--reference-id", "e2e-queued-long", "--batch-id", "itest-batch",
			"--video-url", mediaURL("e2e-queued-long", "video"), "--audio-url", mediaURL("e2e-queued-long", "audio"))
		require.Equal(t, 0, code, errOut)
		require.Eventually(t, func() bool {
			out, _, code := s.starter(ctx, "status", "--reference-id", "e2e-queued-long")
			return code == 0 && strings.Contains(out, `"status": "queued"`)
		}, 30*time.Second, 200*time.Millisecond)
		time.Sleep(3 * time.Second)
		queuedBefore := time.Now().Add(-2 * time.Second).UTC().Format(time.RFC3339)
		queries := []struct {
			query string
			want  []string
		}{
			{fmt.Sprintf(`ExecutionStatus = "Running" AND LipsyncStatus = "queued" AND LipsyncStatusSince < "%s"`, queuedBefore), []string{"lipsync-e2e-queued-long"}},
			{`LipsyncBatchId = "itest-batch" AND LipsyncEscalated IS NOT NULL`, []string{"lipsync-e2e-400", "lipsync-e2e-412", "lipsync-e2e-failed", "lipsync-e2e-resume"}},
			{`LipsyncEscalated = "QuotaExceeded"`, []string{"lipsync-e2e-412"}},
		}
		for _, q := range queries {
			deadline := time.Now().Add(15 * time.Second)
			for {
				got := s.listWorkflows(ctx, q.query)
				if fmt.Sprint(got) == fmt.Sprint(q.want) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("query %s: got %v, want %v\nall jobs: %s", q.query, got, q.want, s.cli(ctx, "workflow", "list", "--query", `WorkflowId STARTS_WITH "lipsync-e2e-q"`))
				}
				time.Sleep(250 * time.Millisecond)
			}
		}
	})

	t.Run("a human answers escalations: retry, abandon, refusals", func(t *testing.T) {
		resolve := func(args ...string) (string, string, int) {
			return s.starter(ctx, append([]string{"resolve"}, args...)...)
		}
		out, errOut, code := resolve("e2e-412", "retry", "--note", "plan upgraded", "--by", "itest-operator")
		require.Equal(t, 0, code, errOut)
		require.Contains(t, out, "retry accepted for attempt 1")
		out, errOut, code = s.starter(ctx, "submit", "--wait", "--reference-id", "e2e-412",
			"--video-url", mediaURL("e2e-412", "video"), "--audio-url", mediaURL("e2e-412", "audio"))
		require.Equal(t, 0, code, "the retried job completes: %s %s", out, errOut)
		require.Contains(t, out, `"status": "completed"`)

		_, errOut, code = resolve("lipsync-e2e-failed", "abandon", "--note", "media deleted upstream", "--by", "itest-operator")
		require.Equal(t, 0, code, errOut)

		// A deadline is answered by resume: the same request, polled on.
		_, errOut, code = resolve("e2e-failed", "resume")
		require.Equal(t, 1, code, "the job is no longer waiting")
		_, errOut, code = resolve("e2e-400", "resume")
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "cannot resume: it has no request to poll")
		out, errOut, code = resolve("e2e-resume", "resume", "--note", "queued longer than usual", "--by", "itest-operator")
		require.Equal(t, 0, code, errOut)
		require.Contains(t, out, "resume accepted for attempt 1")
		out, errOut, code = s.starter(ctx, "submit", "--wait", "--reference-id", "e2e-resume",
			"--video-url", mediaURL("e2e-resume", "video"), "--audio-url", mediaURL("e2e-resume", "audio"))
		require.Equal(t, 0, code, "the resumed job completes: %s %s", out, errOut)
		require.Equal(t, 1, s.stats().JobsByReference["e2e-resume"], "resume submitted nothing")

		_, errOut, code = resolve("e2e-400", "maybe")
		require.Equal(t, 2, code)
		require.Contains(t, errOut, `unknown action "maybe"`)
		_, errOut, code = resolve("e2e-ok-1", "retry")
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "not waiting for a decision")
		_, errOut, code = resolve("e2e-queued-long", "abandon")
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "not waiting for a decision (status queued)")

		var status string
		var attempt int
		require.Eventually(t, func() bool {
			return conn.QueryRow(ctx, `SELECT status FROM lipsync_jobs WHERE workflow_id = 'lipsync-e2e-failed'`).Scan(&status) == nil && status == "abandoned"
		}, 10*time.Second, 100*time.Millisecond)
		require.NoError(t, conn.QueryRow(ctx, `SELECT status, attempt FROM lipsync_jobs WHERE workflow_id = 'lipsync-e2e-412'`).Scan(&status, &attempt))
		require.Equal(t, "completed", status)
		require.Equal(t, 2, attempt)
		var resolution, by, note string
		require.NoError(t, conn.QueryRow(ctx, `SELECT resolution, resolved_by, resolution_note FROM escalations WHERE workflow_id = 'lipsync-e2e-412' AND kind = 'failure'`).Scan(&resolution, &by, &note))
		require.Equal(t, []string{"retry", "itest-operator", "plan upgraded"}, []string{resolution, by, note})
		require.NoError(t, conn.QueryRow(ctx, `SELECT resolution, resolution_note FROM escalations WHERE workflow_id = 'lipsync-e2e-failed' AND kind = 'failure'`).Scan(&resolution, &note))
		require.Equal(t, []string{"abandon", "media deleted upstream"}, []string{resolution, note})
		require.Equal(t, 1, s.stats().JobsByReference["e2e-412"], "the retry submitted exactly once")
		require.NoError(t, conn.QueryRow(ctx, `SELECT status, attempt FROM lipsync_jobs WHERE workflow_id = 'lipsync-e2e-resume'`).Scan(&status, &attempt))
		require.Equal(t, []any{"completed", 2}, []any{status, attempt}, "the resumed attempt's row")
		require.NoError(t, conn.QueryRow(ctx, `SELECT resolution FROM escalations WHERE workflow_id = 'lipsync-e2e-resume' AND kind = 'failure'`).Scan(&resolution))
		require.Equal(t, "resume", resolution)
	})

	t.Run("metrics count what happened and healthz reflects the connections", func(t *testing.T) {
		body := httpGet(t, s.opsURL+"/metrics")
		for _, want := range []string{
			`chamelaion_api_requests_total{code="429",endpoint="POST /v1/lipsync/generate"}`,
			`chamelaion_api_requests_total{code="503",endpoint="POST /v1/lipsync/generate"} 2`,
			`chamelaion_api_requests_total{code="412",endpoint="POST /v1/lipsync/generate"} 1`,
			`chamelaion_api_requests_total{code="0",endpoint="POST /v1/lipsync/generate"}`,
			`lipsync_escalations_total{kind="failure",reason="QuotaExceeded"} 1`,
			`lipsync_escalations_total{kind="stuck",reason="Stuck"}`,
			`lipsync_retryable_failures_total{type="RateLimited"}`,
			`lipsync_advised_wait_seconds_count`,
			`lipsync_jobs_finished_total{outcome="completed"}`,
			`lipsync_job_duration_seconds_count`,
			`temporal_workflow_completed`,
			`temporal_activity_execution_latency`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		require.NotContains(t, body, apiKey)
		require.NotContains(t, body, "SIGSECRET")
		require.Contains(t, httpGet(t, s.opsURL+"/healthz"), `"postgres":"ok"`)
	})

	t.Run("a retried submission goes when the server advised, and waits only for a request that may land", func(t *testing.T) {
		// Issue 13, defect 1: after a 429 with Retry-After: 3 the next
		// generation request arrives 3 to 5 s later (it used to wait one
		// more request timeout, 3 s here); after a 503 the next arrives
		// after the retry backoff (200 ms, 400 ms) and one lookup, well
		// within the 3 s it used to wait.
		s.scenarios(`[{"reference_id":"e2e-advised-429","submit_faults":[{"status":429,"headers":{"Retry-After":"3"}}]},` +
			`{"reference_id":"e2e-advised-503","submit_faults":[503,503]}]`)
		var mu sync.Mutex
		ended := map[string]string{}
		parallel([]string{"e2e-advised-429", "e2e-advised-503"}, func(ref string) {
			_, errOut, code := s.starter(ctx, "submit", "--wait", "--reference-id", ref, "--video-url", mediaURL(ref, "video"), "--audio-url", mediaURL(ref, "audio"))
			mu.Lock()
			defer mu.Unlock()
			ended[ref] = fmt.Sprintf("exit %d: %s", code, errOut)
		})
		for ref, out := range ended {
			require.True(t, strings.HasPrefix(out, "exit 0: "), "%s: %s", ref, out)
		}
		gaps := func(ref string) []time.Duration {
			var at []time.Time
			for _, r := range s.requests(ref) {
				if r.Endpoint == "POST /v1/lipsync/generate" {
					at = append(at, r.At)
				}
			}
			var out []time.Duration
			for i := 1; i < len(at); i++ {
				out = append(out, at[i].Sub(at[i-1]))
			}
			return out
		}
		g := gaps("e2e-advised-429")
		require.Len(t, g, 1)
		require.GreaterOrEqual(t, g[0], 3*time.Second, "not before the advised wait")
		require.LessOrEqual(t, g[0], 5*time.Second, "no later than 2 s after it")
		g = gaps("e2e-advised-503")
		require.Len(t, g, 2)
		for _, d := range g {
			require.Less(t, d, 3*time.Second, "a 503 is answered: no wait (3 s here) for a request to land")
		}
		t.Logf("gaps between generation requests: after a 429 (Retry-After: 3) %s; after two 503s %v", gaps("e2e-advised-429")[0].Round(time.Millisecond), g)
		require.Equal(t, 1, s.stats().JobsByReference["e2e-advised-503"])
		require.Contains(t, ended["e2e-advised-429"], "completed in", "submit --wait says how long the job took")
	})

	t.Run("timers and activities say what they are for", func(t *testing.T) {
		h := history(ctx, t, tc, "lipsync-e2e-ok-1", "")
		var timers, activities []string
		for _, ev := range h.Events {
			summary := string(ev.GetUserMetadata().GetSummary().GetData())
			switch {
			case ev.GetTimerStartedEventAttributes() != nil:
				timers = append(timers, summary)
			case ev.GetActivityTaskScheduledEventAttributes() != nil:
				activities = append(activities, summary)
			}
		}
		require.NotEmpty(t, timers)
		require.Contains(t, timers[0], "check 1 at ")
		require.Contains(t, strings.Join(activities, "\n"), "submit attempt 1")
		require.Contains(t, strings.Join(activities, "\n"), "check 1 of request ")
	})

	t.Run("every run of a long job keeps its history bounded", func(t *testing.T) {
		runs := runHistories(ctx, t, tc, "lipsync-e2e-long")
		require.Greater(t, len(runs), 1)
		// MAX_POLLS_PER_RUN=10 status checks per run; each check costs at most
		// 11 events (timer, activity, two workflow tasks), plus the run's
		// start: record, submit and plan with their workflow tasks (18),
		// five version markers each with the SDK's upsert (10), two side
		// effects, the status upserts and the start and end (about 45 in
		// all), and 3 events for each workflow task the server retries (a
		// loaded cluster in CI gave run 1 151 events against the earlier
		// bound of 150). What
		// matters is that the bound does not grow with the job's length:
		// bound = 11*10 + 60.
		for i, h := range runs {
			require.LessOrEqual(t, len(h.Events), 11*10+60, "run %d has %d events", i+1, len(h.Events))
		}
		t.Logf("e2e-long: %d runs, events per run: %v", len(runs), eventCounts(runs))
	})

	if dir := os.Getenv("LIPSYNC_RECORD_HISTORIES"); dir != "" {
		var ids []string
		for _, ref := range []string{"e2e-ok-1", "e2e-429", "e2e-status-500", "e2e-lost-reset", "e2e-412", "e2e-failed", "e2e-stuck", "e2e-long", "e2e-resume"} {
			ids = append(ids, "lipsync-"+ref)
		}
		recordHistories(ctx, t, tc, dir, ids)
	}

	t.Run("the API key appears in no history and no log", func(t *testing.T) {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", PageSize: 1000})
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(resp.Executions), len(jobs))
		total := 0
		for _, ex := range resp.Executions {
			h := history(ctx, t, tc, ex.Execution.WorkflowId, ex.Execution.RunId)
			b, err := protojson.Marshal(h)
			require.NoError(t, err)
			require.NotContains(t, string(b), apiKey, "history of %s", ex.Execution.WorkflowId)
			total += len(h.Events)
		}
		t.Logf("checked %d histories, %d events", len(resp.Executions), total)
		for _, name := range []string{"worker.log", "emulator.log"} {
			b, err := os.ReadFile(s.dir + "/" + name)
			require.NoError(t, err)
			require.NotContains(t, string(b), apiKey, name)
			require.NotContains(t, string(b), "SIGSECRET", name+" must not log media query strings")
		}
	})
}

// runHistories returns the histories of every run of a workflow, first to
// last, following continue-as-new.
func runHistories(ctx context.Context, t *testing.T, tc client.Client, workflowID string) []*historypb.History {
	resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: "default", Query: fmt.Sprintf("WorkflowId = %q", workflowID), PageSize: 1000,
	})
	require.NoError(t, err)
	var out []*historypb.History
	for i := len(resp.Executions) - 1; i >= 0; i-- { // newest first
		out = append(out, history(ctx, t, tc, workflowID, resp.Executions[i].Execution.RunId))
	}
	return out
}

func history(ctx context.Context, t *testing.T, tc client.Client, workflowID, runID string) *historypb.History {
	it := tc.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	return h
}

func eventCounts(hs []*historypb.History) []int {
	var n []int
	for _, h := range hs {
		n = append(n, len(h.Events))
	}
	return n
}

// recordHistories writes the histories of the given workflows (every run)
// as JSON into dir, for the replay test of the workflows package; a job's
// file is named by its reference_id:
//
//	LIPSYNC_RECORD_HISTORIES=$PWD/workflows/testdata/histories go test -tags integration -run 'TestEndToEnd|TestBatch$' ./integration/
func recordHistories(ctx context.Context, t *testing.T, tc client.Client, dir string, workflowIDs []string) {
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, id := range workflowIDs {
		for i, h := range runHistories(ctx, t, tc, id) {
			b, err := protojson.MarshalOptions{Indent: " "}.Marshal(h)
			require.NoError(t, err)
			name := filepath.Join(dir, fmt.Sprintf("%s-run%d.json", strings.TrimPrefix(id, "lipsync-"), i+1))
			require.NoError(t, os.WriteFile(name, b, 0o644))
		}
	}
	t.Logf("recorded histories of %d workflows into %s", len(workflowIDs), dir)
}

// requestRecord is one entry of the emulator's request log.
type requestRecord struct {
	At       time.Time `json:"at"`
	Endpoint string    `json:"endpoint"`
	Status   int       `json:"status"`
}

// requests reads the emulator's log of the requests naming a reference_id.
func (s *stack) requests(ref string) []requestRecord {
	resp, err := http.Get(s.emulatorURL + "/_emulator/requests?reference_id=" + ref)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	var body struct {
		Requests []requestRecord `json:"requests"`
	}
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&body))
	return body.Requests
}

var workflowIDField = regexp.MustCompile(`"workflowId":\s*"([^"]+)"`)

// cli runs the Temporal CLI against the stack's server.
func (s *stack) cli(ctx context.Context, args ...string) string {
	cli := os.Getenv("TEMPORAL_CLI")
	if cli == "" {
		cli = filepath.Join(os.Getenv("HOME"), ".cache", "lipsync", "temporal-v1.5.1")
	}
	args = append(args, "--address", s.temporal.Address, "--namespace", "default")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	require.NoError(s.t, err, "temporal %v: %s", args, out)
	return string(out)
}

// listWorkflows runs a list query through the Temporal CLI, as an operator
// would, and returns the workflow IDs found, sorted.
func (s *stack) listWorkflows(ctx context.Context, query string) []string {
	out := s.cli(ctx, "workflow", "list", "--query", query, "--output", "json")
	seen := map[string]bool{}
	ids := []string{}
	// Each execution names its workflow ID and its root execution's.
	for _, m := range workflowIDField.FindAllStringSubmatch(out, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			ids = append(ids, m[1])
		}
	}
	sort.Strings(ids)
	return ids
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", url, b)
	return string(b)
}

// TestSubmissionsQueuedBehindTheRateLimitKeepTheirRetryBudget: 30 jobs
// started at once share a budget of 60 submissions a minute, so the last
// waits about 30 s on the rate-limited submit queue before its first
// attempt, longer than RETRY_MAX_ELAPSED (9 s). The retry budget counts
// from a call's first attempt, not from its scheduling (issue 13, defect
// 5): every job completes, none escalates as RetriesExhausted.
func TestSubmissionsQueuedBehindTheRateLimitKeepTheirRetryBudget(t *testing.T) {
	s := startStack(t, "CHAMELAION_RATE_LIMIT_PER_MINUTE=60", "RETRY_MAX_ELAPSED=9s", "ESCALATION_DECISION_WAIT=0")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tc, err := client.Dial(client.Options{HostPort: s.temporal.Address, Namespace: "default"})
	require.NoError(t, err)
	defer tc.Close()
	jobs := lipsync.NewClient(tc, taskQueue)
	var refs []string
	for i := range 30 {
		refs = append(refs, fmt.Sprintf("queued-%02d", i))
	}
	start := time.Now()
	var mu sync.Mutex
	failed := map[string]string{}
	parallel(refs, func(ref string) {
		run, err := jobs.Submit(ctx, lipsync.Job{Video: mediaURL(ref, "video"), Audio: mediaURL(ref, "audio"), ReferenceID: ref})
		if err == nil {
			_, err = run.Wait(ctx)
		}
		if err != nil {
			mu.Lock()
			failed[ref] = err.Error()
			mu.Unlock()
		}
	})
	took := time.Since(start)
	require.Empty(t, failed, "jobs that waited in the queue longer than RETRY_MAX_ELAPSED must not escalate")
	require.Greater(t, took, 20*time.Second, "the queue did hold the last jobs longer than the budget")
	st := s.stats()
	for _, ref := range refs {
		require.Equal(t, 1, st.JobsByReference[ref], ref)
	}
	t.Logf("30 jobs at 60 submissions a minute with a 9 s retry budget: all completed in %s", took.Round(time.Second))
}
