package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/chamelaion"
)

// everyUntil calls f every step of workflow time, up to until, while it
// returns false (at most 1000 calls: the test environment queues them).
func everyUntil(env *testsuite.TestWorkflowEnvironment, step, until time.Duration, f func() bool) {
	done := false
	for at := step; at <= until; at += step {
		env.RegisterDelayedCallback(func() {
			if !done {
				done = f()
			}
		}, at)
	}
}

// TestAJobTakesAnAnswerOnceItsEscalationIsRecorded: a human who sees a
// job's escalation (its row, the escalations list) answers it at once,
// while the job still records it (the store's answer lost, retried) and
// notifies (the webhook failing, retried for up to 10 minutes). The
// answer is taken (before: refused, "not waiting for a decision (status
// failed)", until the notification had ended), recorded once, after the
// escalation, and the notification still goes out. The status query says
// all along what the job waits on (found by TestEndToEnd: a job waiting
// for an answer whose escalation was still being recorded had no reason).
func TestAJobTakesAnAnswerOnceItsEscalationIsRecorded(t *testing.T) {
	h := newHarness(t, decisionSettings())
	h.escalateAnswersLost, h.notifyFails = 1, 3
	h.submitReturns(apiErr(412, "token limit reached", 0))
	h.statusReturns(sequence(chamelaion.StatusCompleted))
	var rejected error
	var accepted, answered bool
	var status JobStatus
	everyUntil(h.env, 500*time.Millisecond, 5*time.Minute, func() bool {
		if len(h.escalate) == 0 {
			return false
		}
		answered = h.notified == 0
		v, err := h.env.QueryWorkflow(QueryStatus)
		require.NoError(t, err)
		require.NoError(t, v.Get(&status))
		h.env.UpdateWorkflow(UpdateResolve, "retry-1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { rejected = err }, OnAccept: func() { accepted = true }, OnComplete: func(any, error) {},
		}, Decision{Action: activities.DecisionRetry, By: "ops@example"})
		return true
	})
	res, err := h.run(testInput())
	require.NoError(t, err)
	require.NoError(t, rejected)
	require.True(t, accepted)
	require.True(t, answered, "answered while the escalation was still being recorded or notified")
	// What a caller waiting on the job (starter submit --wait) reads then
	// names the escalation.
	require.True(t, status.WaitingForDecision)
	require.Equal(t, chamelaion.TypeQuotaExceeded, status.Escalated)
	require.Contains(t, status.LastError, "token limit reached")
	require.Equal(t, "completed", res.Status)
	require.Len(t, h.escalate, 1)
	require.Equal(t, 1, h.notified, "the human is still notified")
	require.Len(t, h.decisions, 1)
	require.Equal(t, activities.DecisionRetry, h.decisions[0].Action)
	require.Len(t, h.submits, 2, "resubmitted once")
}

// TestABatchTakesAnAnswerOnceItsPauseIsRecorded: an operator who sees a
// batch's pause escalation answers it at once, while the batch still
// records it (the store's answer lost and retried). The answer is taken
// (before: refused, "not paused on an account-wide failure"), recorded
// once, and every job completes exactly once.
func TestABatchTakesAnAnswerOnceItsPauseIsRecorded(t *testing.T) {
	f := &fakeAccount{quotaAfter: 2, escalateAnswersLost: 3}
	env := newBatchEnv(t, f)
	var rejected error
	var accepted bool
	everyUntil(env, time.Second, 15*time.Minute, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.escalations) == 0 {
			return false
		}
		f.quotaFixed = true
		env.UpdateWorkflow(UpdateBatchResolve, "resume-1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { rejected = err }, OnAccept: func() { accepted = true }, OnComplete: func(any, error) {},
		}, BatchDecision{Action: activities.DecisionResume, By: "ops"})
		return true
	})
	env.RegisterDelayedCallback(func() { // a refused answer is sent again, so the batch ends and the test reports it
		if !accepted {
			env.UpdateWorkflow(UpdateBatchResolve, "resume-2", &testsuite.TestUpdateCallback{
				OnReject: func(error) {}, OnAccept: func() {}, OnComplete: func(any, error) {},
			}, BatchDecision{Action: activities.DecisionResume, By: "ops"})
		}
	}, 16*time.Minute)
	res := runBatch(t, env, BatchInput{BatchID: "early", Jobs: batchJobs("e-", 6), Concurrency: 2})
	require.NoError(t, rejected)
	require.True(t, accepted)
	require.Equal(t, 6, res.Completed)
	require.Len(t, f.escalations, 1)
	require.Len(t, f.decisions, 1)
	for ref, n := range f.accepted {
		require.Equal(t, 1, n, ref)
	}
}
