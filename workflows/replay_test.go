package workflows

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays histories recorded from the
// integration test against today's workflow code: a change that would break
// running workflows (non-determinism) fails here. The v0-* files were
// recorded before search attributes and decisions were added (behind
// workflow.GetVersion) and prove that change kept old runs replayable; the
// v1-* files before the learned poll plan; the v2-e2e-* files before issue
// 13's fixes (version "job-exactness": the execution named, look-first
// submissions, the workflow's own records, account holds while polling,
// resume), whose e2e-resume history the current set adds; the
// v2-batch-*/v2-bt-* files before the batch's one-consumer loop (version
// "batch-one-consumer"; they replay the frozen loop in batch_v1.go); the
// v3-* files before the wire contract (version "wire-contract": their
// payloads in Go's field names, which TestRecordedHistoriesDecode reads
// too) and before held time stopped counting against the deadline
// (version "job-held-not-late"); the v4-* files before the job epoch
// (version "job-epoch-1": one version marker for the changes above, where
// the v4-* runs record one per change). The current set was started in the
// contract's shape. Record
// the current code's histories after an intended, versioned change (keep the
// older ones):
//
//	LIPSYNC_RECORD_HISTORIES=$PWD/workflows/testdata/histories go test -tags integration -run 'TestEndToEnd|TestBatch$' ./integration/
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories")
	replayer := newReplayer(t, (&Workflows{}).LipSync)
	replayer.RegisterWorkflowWithOptions((&Workflows{}).Batch, workflow.RegisterOptions{Name: BatchWorkflowName})
	logger := tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			require.NoError(t, replayer.ReplayWorkflowHistoryFromJSONFile(logger, f))
		})
	}
}

// TestReplayCatchesANonDeterministicChange shows the replay test doing its
// job: a workflow that schedules its activities in another order than the
// recorded run did is refused.
func TestReplayCatchesANonDeterministicChange(t *testing.T) {
	broken := func(ctx workflow.Context, in LipSyncInput) (LipSyncResult, error) {
		// An unversioned change: a timer before anything else.
		if err := workflow.Sleep(ctx, 1); err != nil {
			return LipSyncResult{}, err
		}
		return (&Workflows{}).LipSync(ctx, in)
	}
	replayer := newReplayer(t, broken)
	f := filepath.Join("testdata", "histories", "v0-e2e-ok-1-run1.json")
	_, err := os.Stat(f)
	require.NoError(t, err)
	err = replayer.ReplayWorkflowHistoryFromJSONFile(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)), f)
	require.Error(t, err)
	require.Contains(t, err.Error(), "TMPRL1100", "the SDK's non-determinism error")
}

func newReplayer(t *testing.T, wf any) worker.WorkflowReplayer {
	t.Helper()
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: WorkflowName})
	return r
}
