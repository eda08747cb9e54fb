package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/chamelaion-lipsync/worker/activities"
)

// TestAnAbortedBatchAdoptsAJobALostAnswerCreated: a job's submission may
// have created its job at the vendor (a 503, then the quota refused on the
// retry), and the batch, paused on the quota, is aborted. Before it is
// recorded not submitted, the job looks for the request (without sending
// one), adopts it and polls it to its end: a paid job is never recorded as
// never submitted (before: recorded not submitted, its vendor job
// unaccounted for, and a later re-run paid for a second one).
func TestAnAbortedBatchAdoptsAJobALostAnswerCreated(t *testing.T) {
	f := &fakeAccount{quotaAfter: 1, lostAnswers: map[string]bool{"a-0000": true}}
	env := newBatchEnv(t, f)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateBatchResolve, "abort-1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { t.Errorf("abort refused: %v", err) }, OnAccept: func() {}, OnComplete: func(any, error) {},
		}, BatchDecision{Action: activities.DecisionAbort, By: "ops"})
	}, time.Hour)
	res := runBatch(t, env, BatchInput{BatchID: "abort-lost", Jobs: batchJobs("a-", 3), Concurrency: 1})
	require.True(t, res.Aborted)
	require.Equal(t, 1, res.Completed, "the adopted job completed")
	require.Equal(t, 2, res.NotSubmitted)
	require.NotContains(t, f.notSubmit, "a-0000")
	require.Equal(t, 1, f.accepted["a-0000"], "one vendor job")
}

// TestAJobsStuckNoticeMustComeBeforeItsDeadline: a job whose own
// stuck_after is not shorter than its own deadline is refused at start, as
// JOB_STUCK_AFTER >= JOB_DEADLINE is at the worker's (before: accepted, and
// the stuck notice could never come).
func TestAJobsStuckNoticeMustComeBeforeItsDeadline(t *testing.T) {
	in := LipSyncInput{Video: "https://cdn.example.com/v.mp4", Audio: "https://cdn.example.com/a.wav", ReferenceID: "r", StuckAfter: time.Hour, Deadline: time.Hour}
	require.ErrorContains(t, ValidateInput(in), "stuck_after (1h0m0s) must be shorter than the deadline (1h0m0s)")
	in.StuckAfter = 10 * time.Minute
	require.NoError(t, ValidateInput(in))
}
