//go:build integration

package integration

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// batchFile writes a CSV batch file of the given reference_ids.
func (s *stack) batchFile(name string, refs []string) string {
	var b strings.Builder
	b.WriteString("reference_id,video_url,audio_url\n")
	for _, ref := range refs {
		fmt.Fprintf(&b, "%s,%s,%s\n", ref, mediaURL(ref, "video"), mediaURL(ref, "audio"))
	}
	path := filepath.Join(s.dir, name)
	require.NoError(s.t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

// setQuota sets the emulator account's token quota (0 = none).
func (s *stack) setQuota(n int) {
	req, err := http.NewRequest(http.MethodPut, s.emulatorURL+"/_emulator/quota", strings.NewReader(fmt.Sprintf(`{"token_quota":%d}`, n)))
	require.NoError(s.t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	resp.Body.Close()
	require.Less(s.t, resp.StatusCode, 300)
}

func refsOf(prefix string, n int) []string {
	refs := make([]string, n)
	for i := range refs {
		refs[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return refs
}

// TestBatchSettlesWhileJobsWaitForAHuman: a batch in which some jobs are
// refused before submission (400) and some fail after it returns from
// --wait as soon as the rest have completed, with the results file listing
// each waiting job's reason and the command that answers it, and exit 1.
// The jobs refused before submission hold no pending slot (with
// --max-pending 3 and three of them, the batch would otherwise start
// nothing more), and an answer given after the batch ended shows in
// batch-status, read from PostgreSQL. Before, --wait sat on "7 in flight"
// until killed and wrote no results file.
func TestBatchSettlesWhileJobsWaitForAHuman(t *testing.T) {
	s := startStackWith(t, stackOptions{race: true, emulatorArgs: []string{"--rate-limit", "6000"}},
		"CHAMELAION_RATE_LIMIT_PER_MINUTE=6000", "CHAMELAION_STATUS_RATE_LIMIT_PER_MINUTE=60000")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	refs := refsOf("settle", 24)
	refused := map[string]bool{refs[0]: true, refs[1]: true, refs[2]: true}
	vendorFailed := map[string]bool{refs[10]: true, refs[17]: true}
	var scen []string
	for ref := range refused {
		scen = append(scen, fmt.Sprintf(`{"reference_id":%q,"reject_submits":{"status":400,"body":"{\"error\":\"invalid video url\"}"}}`, ref))
	}
	for ref := range vendorFailed {
		scen = append(scen, fmt.Sprintf(`{"reference_id":%q,"outcome":"failed","error_message":"no face found in the video"}`, ref))
	}
	s.scenarios("[" + strings.Join(scen, ",") + "]")
	file := s.batchFile("settle.csv", refs)
	results := filepath.Join(s.dir, "settle.results.csv")
	out, errOut, code := s.starter(ctx, "batch", "--file", file, "--batch-id", "settle", "--concurrency", "6", "--max-pending", "3",
		"--wait", "--results", results, "--progress-interval", "500ms")
	require.Equal(t, 1, code, "escalated jobs: exit 1\n%s\n%s", out, errOut)
	require.Contains(t, out, "batch settle: 24 jobs: 19 completed, 5 escalated (5 waiting for a human)")
	require.Contains(t, out, "5 jobs wait for a human")

	f, err := os.Open(results)
	require.NoError(t, err)
	lines, err := csv.NewReader(f).ReadAll()
	f.Close()
	require.NoError(t, err)
	require.Len(t, lines, 25)
	for _, l := range lines[1:] {
		ref, status, errText := l[0], l[1], l[3]
		switch {
		case refused[ref]:
			require.Equal(t, "escalated", status, ref)
			require.Contains(t, errText, "BadRequest")
			require.Contains(t, errText, "starter resolve "+ref+" retry|abandon", ref)
		case vendorFailed[ref]:
			require.Equal(t, "escalated", status, ref)
			require.Contains(t, errText, "JobFailed")
			require.Contains(t, errText, "starter resolve "+ref+" retry|abandon", ref)
		default:
			require.Equal(t, "completed", status, ref)
		}
	}
	// The jobs are still waiting, each resolvable on its own.
	var st struct {
		WaitingForDecision bool `json:"waiting_for_decision"`
	}
	stOut, _, code := s.starter(ctx, "status", "--reference-id", refs[0])
	require.Equal(t, 0, code)
	require.NoError(t, json.Unmarshal([]byte(stOut), &st))
	require.True(t, st.WaitingForDecision)
	_, errOut, code = s.starter(ctx, "resolve", refs[0], "abandon", "--note", "bad source", "--by", "itest")
	require.Equal(t, 0, code, errOut)

	// batch-status of the ended batch reads how its jobs stand now.
	s.starterEnv = append(s.starterEnv, "DATABASE_URL="+s.databaseURL)
	var status struct {
		Status string
		Now    struct {
			Jobs    map[string]int
			Waiting []string
		}
	}
	require.Eventually(t, func() bool {
		out, _, code := s.starter(ctx, "batch-status", "settle")
		require.Equal(t, 0, code)
		require.NoError(t, json.Unmarshal([]byte(out), &status))
		return status.Now.Jobs["abandoned"] == 1
	}, time.Minute, 500*time.Millisecond)
	require.Equal(t, "completed", status.Status)
	require.Equal(t, 19, status.Now.Jobs["completed"])
	require.Equal(t, 4, status.Now.Jobs["failed"])
	require.Len(t, status.Now.Waiting, 4)
	for _, w := range status.Now.Waiting {
		require.Contains(t, w, "starter resolve ")
	}
	require.Zero(t, s.stats().JobsByReference[refs[0]], "a job refused before submission never made a vendor job")
}

// TestBatchCancelAndTerminateLeaveNothingBehind: a job cancelled mid-batch
// ends the batch's wait for it (listed as cancelled, its row ended); a
// batch terminated while paused on the quota leaves no hold behind (the
// next submission releases it) and no job waiting for it (its held-back
// jobs end not submitted); and a later batch then submits normally.
func TestBatchCancelAndTerminateLeaveNothingBehind(t *testing.T) {
	s := startStackWith(t, stackOptions{race: true, emulatorArgs: []string{"--rate-limit", "6000"}},
		"CHAMELAION_RATE_LIMIT_PER_MINUTE=6000", "CHAMELAION_STATUS_RATE_LIMIT_PER_MINUTE=60000")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.databaseURL)
	require.NoError(t, err)
	defer conn.Close(ctx)

	// A job that processes for an hour, cancelled by an operator.
	refs := refsOf("cx", 5)
	s.scenarios(fmt.Sprintf(`[{"reference_id":%q,"processing_for":"1h"}]`, refs[3]))
	results := filepath.Join(s.dir, "cx.results.csv")
	type exit struct {
		out, errOut string
		code        int
	}
	done := make(chan exit, 1)
	go func() {
		o, e, c := s.starter(ctx, "batch", "--file", s.batchFile("cx.csv", refs), "--batch-id", "cx", "--wait", "--results", results, "--progress-interval", "500ms")
		done <- exit{o, e, c}
	}()
	require.Eventually(t, func() bool {
		var status string
		err := conn.QueryRow(ctx, `SELECT status FROM lipsync_jobs WHERE workflow_id = $1`, "lipsync-"+refs[3]).Scan(&status)
		return err == nil && status == "processing"
	}, 2*time.Minute, 250*time.Millisecond)
	s.cli(ctx, "workflow", "cancel", "--workflow-id", "lipsync-"+refs[3])
	var ex exit
	select {
	case ex = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the batch waited for its cancelled job")
	}
	require.Equal(t, 1, ex.code, "%s\n%s", ex.out, ex.errOut)
	require.Contains(t, ex.out, "batch cx: 5 jobs: 4 completed, 0 escalated (0 waiting for a human), 0 abandoned, 0 not submitted, 0 duplicate, 1 cancelled")
	var rowStatus, errType string
	require.NoError(t, conn.QueryRow(ctx, `SELECT status, error_type FROM lipsync_jobs WHERE workflow_id = $1`, "lipsync-"+refs[3]).Scan(&rowStatus, &errType))
	require.Equal(t, "cancelled", rowStatus)
	require.Equal(t, "Canceled", errType)

	// A batch paused on the quota, then terminated.
	s.setQuota(s.stats().JobsCreated + 2)
	paused := refsOf("tp", 8)
	_, errOut, code := s.starter(ctx, "batch", "--file", s.batchFile("tp.csv", paused), "--batch-id", "tp", "--max-pending", "4")
	require.Equal(t, 0, code, errOut)
	require.Eventually(t, func() bool {
		var held int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM account_holds WHERE owner_workflow_id = 'batch-tp'`).Scan(&held))
		return held == 1
	}, 2*time.Minute, 250*time.Millisecond, "the batch pauses and holds the account")
	s.cli(ctx, "workflow", "terminate", "--workflow-id", "batch-tp", "--reason", "itest: operator gave up on the batch")
	require.Eventually(t, func() bool {
		return len(s.listWorkflows(ctx, `LipsyncBatchId = "tp" AND ExecutionStatus = "Running"`)) == 0
	}, 3*time.Minute, time.Second, "the terminated batch's held-back jobs end")
	var notSubmitted int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM lipsync_jobs WHERE batch_id = 'tp' AND status = 'not_submitted'`).Scan(&notSubmitted))
	require.Positive(t, notSubmitted)

	// A later batch submits normally: its first submission releases the
	// hold of the batch that is gone.
	s.setQuota(0)
	later := refsOf("later", 4)
	out, errOut, code := s.starter(ctx, "batch", "--file", s.batchFile("later.csv", later), "--batch-id", "later", "--wait", "--results", filepath.Join(s.dir, "later.results.csv"))
	require.Equal(t, 0, code, "%s\n%s", out, errOut)
	require.Contains(t, out, "batch later: 4 jobs: 4 completed")
	s.starterEnv = append(s.starterEnv, "DATABASE_URL="+s.databaseURL)
	out, errOut, code = s.starter(ctx, "holds")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "[]\n", out)
	require.Contains(t, errOut, "no account hold")
	b, err := os.ReadFile(s.workerLog)
	require.NoError(t, err)
	require.Contains(t, string(b), "account hold released: its owner has ended")
}
