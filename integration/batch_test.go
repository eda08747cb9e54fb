//go:build integration

package integration

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
)

// TestBatch runs a 200-job batch through the starter binary against the
// real parts, with a mix of outcomes: jobs the vendor fails, transient 503s,
// lost answers, and the account's token quota running out mid-batch (one
// account-level escalation, no submission until the answer, then resume).
// It checks the results file against the emulator's record and the
// database, and that starting the batch again submits nothing.
func TestBatch(t *testing.T) {
	const total, quota = 200, 120
	s := startStackWith(t,
		stackOptions{race: true, emulatorArgs: []string{"--rate-limit", "600", "--token-quota", fmt.Sprint(quota)}},
		"CHAMELAION_RATE_LIMIT_PER_MINUTE=600", "CHAMELAION_STATUS_RATE_LIMIT_PER_MINUTE=6000", "ESCALATION_DECISION_WAIT=0", "MAX_POLLS_PER_RUN=10")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	var rows []string
	var scen []string
	failed := map[string]bool{}
	for i := range total {
		ref := fmt.Sprintf("bt-%03d", i)
		rows = append(rows, fmt.Sprintf("%s,%s,%s,%t", ref, mediaURL(ref, "video"), mediaURL(ref, "audio"), i%7 == 0))
		switch {
		case i%50 == 7:
			failed[ref] = true
			scen = append(scen, fmt.Sprintf(`{"reference_id":%q,"outcome":"failed","error_message":"no face found in the video"}`, ref))
		case i%50 == 13:
			scen = append(scen, fmt.Sprintf(`{"reference_id":%q,"submit_faults":[503,503]}`, ref))
		case i%50 == 21:
			scen = append(scen, fmt.Sprintf(`{"reference_id":%q,"lose_responses":1}`, ref))
		}
	}
	s.scenarios("[" + strings.Join(scen, ",") + "]")
	file := filepath.Join(s.dir, "catalogue.csv")
	require.NoError(t, os.WriteFile(file, []byte("reference_id,video_url,audio_url,disable_active_speaker_detection\n"+strings.Join(rows, "\n")+"\n"), 0o600))
	results := filepath.Join(s.dir, "results.csv")

	type exit struct {
		stdout, stderr string
		code           int
	}
	done := make(chan exit, 1)
	go func() {
		o, e, c := s.starter(ctx, "batch", "--file", file, "--batch-id", "itest-batch", "--concurrency", "40",
			"--wait", "--results", results, "--progress-interval", "500ms")
		done <- exit{o, e, c}
	}()

	// The quota runs out: the batch pauses once and holds every submission.
	var progress struct {
		Status    string
		Submitted int
		Blocked   int
		Pause     *struct{ Reason string }
	}
	require.Eventually(t, func() bool {
		out, _, code := s.starter(ctx, "batch-status", "itest-batch")
		if code != 0 {
			return false
		}
		require.NoError(t, json.Unmarshal([]byte(out), &progress))
		return progress.Status == "paused" && progress.Pause != nil
	}, 3*time.Minute, 250*time.Millisecond, "the batch pauses when the quota runs out")
	require.Equal(t, "QuotaExceeded", progress.Pause.Reason)
	conn, err := pgx.Connect(ctx, s.databaseURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	require.Eventually(t, func() bool {
		var held int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM account_holds`).Scan(&held))
		return held == 1
	}, 30*time.Second, 100*time.Millisecond)
	createdAtPause := s.stats().JobsCreated
	require.Equal(t, quota, createdAtPause)
	generateCalls := func() int {
		n := 0
		for _, r := range s.stats().Requests {
			if strings.Contains(r.Endpoint, "generate") {
				n += r.Count
			}
		}
		return n
	}
	callsAtHold := generateCalls()
	time.Sleep(3 * time.Second)
	require.Equal(t, callsAtHold, generateCalls(), "no generation request while the account is held")
	out, _, code := s.starter(ctx, "batch-status", "itest-batch")
	require.Equal(t, 0, code)
	require.Contains(t, out, `"status": "paused"`)
	// The Web UI's view: the batch's search attributes say it is paused and
	// why.
	require.Eventually(t, func() bool {
		ids := s.listWorkflows(ctx, `WorkflowType = "LipSyncBatch" AND LipsyncStatus = "paused" AND LipsyncEscalated = "QuotaExceeded"`)
		return len(ids) == 1 && ids[0] == "batch-itest-batch"
	}, 20*time.Second, 250*time.Millisecond)
	require.Contains(t, httpGet(t, s.opsURL+"/metrics"), `lipsync_escalations_total{kind="account",reason="QuotaExceeded"} 1`)

	// A human upgrades the plan and resumes.
	req, err := http.NewRequest(http.MethodPut, s.emulatorURL+"/_emulator/quota", strings.NewReader(`{"token_quota":0}`))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	out, errOut, code := s.starter(ctx, "batch-resolve", "itest-batch", "resume", "--note", "plan upgraded", "--by", "itest")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "resume accepted")

	var ex exit
	select {
	case ex = <-done:
	case <-ctx.Done():
		t.Fatal("the batch did not end")
	}
	require.Equal(t, 1, ex.code, "some jobs were escalated: exit 1\n%s\n%s", ex.stdout, ex.stderr)
	require.Contains(t, ex.stderr, "paused: ", "the progress lines showed the pause")
	require.Contains(t, ex.stderr, "PAUSED: QuotaExceeded")
	require.Contains(t, ex.stdout, fmt.Sprintf("batch itest-batch: %d jobs: %d completed, %d escalated (0 waiting for a human), 0 abandoned, 0 not submitted, 0 duplicate, 0 cancelled", total, total-len(failed), len(failed)))

	// The results file against the emulator and the database.
	f, err := os.Open(results)
	require.NoError(t, err)
	lines, err := csv.NewReader(f).ReadAll()
	f.Close()
	require.NoError(t, err)
	require.Equal(t, []string{"reference_id", "status", "output_url", "error"}, lines[0])
	require.Len(t, lines, total+1)
	st := s.stats()
	require.Len(t, st.JobsByReference, total, "one vendor job per reference_id")
	for ref, n := range st.JobsByReference {
		require.Equal(t, 1, n, "%s created %d times", ref, n)
	}
	for _, l := range lines[1:] {
		ref, status, output, errText := l[0], l[1], l[2], l[3]
		var dbStatus, requestID string
		var dbOutput *string
		require.NoError(t, conn.QueryRow(ctx, `SELECT status, request_id, output_url FROM lipsync_jobs WHERE workflow_id = $1 AND batch_id = 'itest-batch'`,
			"lipsync-"+ref).Scan(&dbStatus, &requestID, &dbOutput), ref)
		var vendor struct {
			Status    string `json:"status"`
			OutputURL string `json:"output_url"`
		}
		req, err := http.NewRequest(http.MethodGet, s.emulatorURL+"/api/v1/lipsync/requests/"+requestID, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&vendor))
		resp.Body.Close()
		if failed[ref] {
			require.Equal(t, "escalated", status, ref)
			require.Contains(t, errText, "JobFailed: no face found in the video")
			require.Equal(t, "failed", dbStatus)
			require.Equal(t, "failed", vendor.Status)
			continue
		}
		require.Equal(t, "completed", status, ref)
		require.Equal(t, "completed", dbStatus, ref)
		require.Equal(t, "completed", vendor.Status, ref)
		require.NotEmpty(t, output)
		require.Equal(t, vendor.OutputURL, output, ref)
		require.Equal(t, output, *dbOutput, ref)
	}
	var escalations []string
	rowsDB, err := conn.Query(ctx, `SELECT kind || ':' || reason FROM escalations ORDER BY id`)
	require.NoError(t, err)
	for rowsDB.Next() {
		var e string
		require.NoError(t, rowsDB.Scan(&e))
		escalations = append(escalations, e)
	}
	require.NoError(t, rowsDB.Err())
	account := 0
	for _, e := range escalations {
		if strings.HasPrefix(e, "account:") {
			account++
			require.Equal(t, "account:QuotaExceeded", e)
		} else {
			require.Equal(t, "failure:JobFailed", e)
		}
	}
	require.Equal(t, 1, account, "one account-level escalation: %v", escalations)
	require.Len(t, escalations, len(failed)+1)
	var resolution string
	require.NoError(t, conn.QueryRow(ctx, `SELECT resolution FROM escalations WHERE kind = 'account'`).Scan(&resolution))
	require.Equal(t, "resume", resolution)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM lipsync_jobs WHERE batch_id = 'itest-batch'`).Scan(&n))
	require.Equal(t, total, n)

	// No secret in any database row or log: the API key, and the
	// signatures of the pre-signed media URLs.
	for _, table := range []string{"lipsync_jobs", "lipsync_job_events", "escalations", "account_holds"} {
		var dump string
		require.NoError(t, conn.QueryRow(ctx, fmt.Sprintf(`SELECT coalesce(string_agg(row_to_json(t)::text, E'\n'), '') FROM %s t`, table)).Scan(&dump))
		require.NotContains(t, dump, apiKey, table)
		require.NotContains(t, dump, "SIGSECRET", table)
		require.NotContains(t, dump, "X-Amz-Signature", table)
	}
	for _, name := range []string{"worker.log", "emulator.log"} {
		b, err := os.ReadFile(filepath.Join(s.dir, name))
		require.NoError(t, err)
		require.NotContains(t, string(b), apiKey, name)
		require.NotContains(t, string(b), "SIGSECRET", name)
	}
	require.NotContains(t, ex.stdout+ex.stderr, "SIGSECRET", "the starter's output")

	if dir := os.Getenv("LIPSYNC_RECORD_HISTORIES"); dir != "" {
		tc, err := client.Dial(client.Options{HostPort: s.temporal.Address, Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
		require.NoError(t, err)
		defer tc.Close()
		// The batch, and jobs that completed, failed, lost an answer, and
		// were held back by the quota.
		ids := []string{"batch-itest-batch", "lipsync-bt-000", "lipsync-bt-007", "lipsync-bt-021"}
		r, err := conn.Query(ctx, `SELECT j.workflow_id FROM lipsync_jobs j JOIN lipsync_job_events e USING (workflow_id)
			WHERE e.status = 'pending' AND j.submitted_at > (SELECT created_at FROM escalations WHERE kind = 'account') ORDER BY 1 LIMIT 1`)
		require.NoError(t, err)
		for r.Next() {
			var id string
			require.NoError(t, r.Scan(&id))
			ids = append(ids, id)
		}
		require.NoError(t, r.Err())
		recordHistories(ctx, t, tc, dir, ids)
	}

	// Starting the same batch again submits nothing.
	created := s.stats().JobsCreated
	_, errOut, code = s.starter(ctx, "batch", "--file", file, "--batch-id", "itest-batch")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "exists already")
	time.Sleep(time.Second)
	require.Equal(t, created, s.stats().JobsCreated)
}

// TestBatchFromWorkerFile runs a batch whose jobs the worker reads from the
// file itself (starter batch --worker-file), and checks that a file changed
// after the start is refused rather than half-run.
func TestBatchFromWorkerFile(t *testing.T) {
	const total = 120
	s := startStackWith(t, stackOptions{race: true, emulatorArgs: []string{"--rate-limit", "6000"}},
		"CHAMELAION_RATE_LIMIT_PER_MINUTE=6000", "CHAMELAION_STATUS_RATE_LIMIT_PER_MINUTE=60000")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var rows []string
	for i := range total {
		ref := fmt.Sprintf("wf-%03d", i)
		rows = append(rows, fmt.Sprintf(`{"reference_id":%q,"video_url":%q,"audio_url":%q}`, ref, mediaURL(ref, "video"), mediaURL(ref, "audio")))
	}
	file := filepath.Join(s.dir, "shared.jsonl")
	require.NoError(t, os.WriteFile(file, []byte(strings.Join(rows, "\n")+"\n"), 0o644))
	results := filepath.Join(s.dir, "shared.results.csv")
	out, errOut, code := s.starter(ctx, "batch", "--file", file, "--worker-file", file, "--batch-id", "shared", "--wait", "--results", results)
	require.Equal(t, 0, code, "%s\n%s", out, errOut)
	require.Contains(t, out, fmt.Sprintf("batch shared: %d jobs: %d completed", total, total))
	b, err := os.ReadFile(results)
	require.NoError(t, err)
	require.Equal(t, total+1, strings.Count(string(b), "\n"))
	st := s.stats()
	require.Len(t, st.JobsByReference, total)

	// The same file, changed after the start: the worker refuses it.
	require.NoError(t, os.WriteFile(file, []byte(strings.Join(rows[:total-1], "\n")+"\n"), 0o644))
	changed := filepath.Join(s.dir, "changed.jsonl")
	require.NoError(t, os.WriteFile(changed, []byte(strings.Join(rows, "\n")+"\n"), 0o644))
	out, errOut, code = s.starter(ctx, "batch", "--file", changed, "--worker-file", file, "--batch-id", "changed", "--wait")
	require.Equal(t, 1, code, "%s\n%s", out, errOut)
	require.Contains(t, errOut, "changed since the batch started")
}
