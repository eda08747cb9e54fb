package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/chamelaion"
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
// stuck_after is not shorter than its own deadline is refused at start (by
// the starter and lipsync.Client), as JOB_STUCK_AFTER >= JOB_DEADLINE is at
// the worker's (before: accepted, and the stuck notice could never come).
// The workflow does not refuse it: a job accepted before keeps running.
func TestAJobsStuckNoticeMustComeBeforeItsDeadline(t *testing.T) {
	in := LipSyncInput{Video: "https://cdn.example.com/v.mp4", Audio: "https://cdn.example.com/a.wav", ReferenceID: "r", StuckAfter: time.Hour, Deadline: time.Hour}
	require.ErrorContains(t, ValidateNewJob(in), "stuck_after (1h0m) must be shorter than the deadline (1h0m)")
	require.NoError(t, ValidateInput(in), "a running job accepted before the check is not refused on its continued runs")
	in.StuckAfter = 10 * time.Minute
	require.NoError(t, ValidateNewJob(in))
}

// TestAJobAcceptedBeforeKeepsRunning: a job started with its own
// stuck_after equal to its own deadline (accepted before the check) is not
// refused by its continued runs, nor is a batch that holds one.
func TestAJobAcceptedBeforeKeepsRunning(t *testing.T) {
	h := newHarness(t, testSettings())
	h.submitReturns()
	h.statusReturns(sequence(chamelaion.StatusCompleted))
	in := testInput()
	in.StuckAfter, in.Deadline = time.Hour, time.Hour
	st := JobState{
		Settings: testSettings(), ReferenceID: in.ReferenceID, Attempt: 1, Status: "processing",
		RequestID: "req-1", StartedAt: h.env.Now(), SubmittedAt: h.env.Now(), NextPoll: 5 * time.Second, Runs: 1,
	}
	st.Settings.StuckAfter, st.Settings.Deadline = time.Hour, time.Hour
	in.Resume = &st
	res, err := h.run(in)
	require.NoError(t, err)
	require.Equal(t, "completed", res.Status)
	require.NoError(t, ValidateBatchInput(BatchInput{BatchID: "old-batch", Jobs: []LipSyncInput{in}, Resume: &BatchState{}}))
}

// TestTimeHeldAtSubmissionIsNotLate: a job on its own is held at
// submission behind another workflow's account hold for longer than its
// deadline; once the hold goes it is submitted and completes, without a
// DeadlineExceeded escalation (before: escalated before its first check,
// its paid vendor job left to nobody).
func TestTimeHeldAtSubmissionIsNotLate(t *testing.T) {
	s := testSettings()
	s.Deadline, s.StuckAfter = time.Hour, 10*time.Minute
	h := newHarness(t, s)
	held := temporal.NewNonRetryableApplicationError("submit: the account is held", chamelaion.TypeUnauthorized, nil,
		activities.ErrorDetails{StatusCode: 401, Held: true})
	n := 0
	h.env.OnActivity(a.Submit, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SubmitInput) (activities.SubmitResult, error) {
			n++
			if n <= 90 { // about 90 minutes held (waitOnHold waits RetryMax, a minute)
				return activities.SubmitResult{}, held
			}
			return activities.SubmitResult{RequestID: "req-1", SubmittedAt: h.env.Now()}, nil
		})
	h.statusReturns(sequence(chamelaion.StatusCompleted))
	res, err := h.run(testInput())
	require.NoError(t, err)
	require.Equal(t, "completed", res.Status)
	require.Empty(t, h.escalate)
}
