package workflows

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/chamelaion"
)

// TestHeldNewsArrivingAfterTheResumeDoesNotPauseTheBatchAgain: a job whose
// submission was refused by the batch's own hold just before a human's
// resume released it tells the batch so after the resume was applied (its
// signal is recorded after the update). The batch must not take that news
// for a new account-wide failure: nothing was sent to the vendor, and no
// hold is in force any more. It resumes the job by itself, with no second
// escalation, no second hold and no second human answer (found by
// TestBatch on the cluster, where the window is wider: the batch paused a
// second time, held every job again, and waited for an answer that never
// came).
func TestHeldNewsArrivingAfterTheResumeDoesNotPauseTheBatchAgain(t *testing.T) {
	f := &fakeAccount{quotaAfter: 5}
	env := newBatchEnv(t, f)
	resume := func(id, by string) {
		env.UpdateWorkflow(UpdateBatchResolve, id, &testsuite.TestUpdateCallback{
			OnReject: func(err error) { t.Errorf("%s refused: %v", id, err) }, OnAccept: func() {}, OnComplete: func(any, error) {},
		}, BatchDecision{Action: activities.DecisionResume, By: by, Note: "plan upgraded"})
	}
	env.RegisterDelayedCallback(func() {
		f.mu.Lock()
		f.quotaFixed = true
		f.mu.Unlock()
		resume("resume-1", "ops")
	}, time.Hour)
	late := ""
	f.whileRecordingDecision = func(in activities.DecisionInput) {
		if in.By != "ops" {
			return
		}
		// While the batch records the human's answer (its pause still
		// set, the hold just released), a job still in flight reports a
		// refusal by that hold: the batch takes the news in after it has
		// applied the answer, as on the cluster.
		f.mu.Lock()
		var inFlight []string
		for ref := range f.active {
			inFlight = append(inFlight, ref)
		}
		f.mu.Unlock()
		slices.Sort(inFlight)
		if len(inFlight) == 0 {
			return
		}
		late = inFlight[0]
		env.SignalWorkflow(SignalBatchJob, BatchJobEvent{ReferenceID: late, Event: EventBlocked, Held: true,
			Reason: chamelaion.TypeQuotaExceeded, HTTPStatus: 412, Message: "submit: submissions are held since 2026-12-03T14:15:11Z"})
	}
	var after BatchProgress
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryBatchProgress)
		require.NoError(t, err)
		require.NoError(t, v.Get(&after))
		if after.Status == BatchPaused && after.Pause != nil && after.Pause.Escalated && after.Pause.HeldBy == "" {
			resume("resume-2", "ops-again") // so that the run ends: the assertions below say what went wrong
		}
	}, 2*time.Hour)
	res := runBatch(t, env, BatchInput{BatchID: "late-news", Jobs: batchJobs("ln-", 10), Concurrency: 10})
	require.NotEmpty(t, late, "a job was in flight at the answer")
	require.NotEqual(t, BatchPaused, after.Status, "the late news paused the batch again: %+v", after.Pause)
	require.Equal(t, 10, res.Completed)
	var account int
	for _, e := range f.escalations {
		if e.Kind == activities.KindAccount {
			account++
		}
	}
	require.Equal(t, 1, account, "one account escalation: the late news raised none")
	require.Len(t, f.decisions, 2)
	require.Equal(t, "ops", f.decisions[0].By)
	require.Equal(t, activities.DecisionInput{WorkflowID: "default-test-workflow-id", Attempt: 2, Action: "resume", By: "worker",
		Note: "the account hold its jobs met was released before they heard the answer"}, f.decisions[1])
	for ref, n := range f.accepted {
		require.Equal(t, 1, n, ref)
	}
}
