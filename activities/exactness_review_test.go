package activities_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/emulator"
	"github.com/chamelaion-lipsync/worker/store"
	"github.com/chamelaion-lipsync/worker/workflows"
)

// Defects a review of issue 13's fixes found: each test ran the defect
// before its fix.

// TestAReRunAfterAnAbandonedLostAnswerAdoptsTheJob: the submission's answer
// is lost after its request landed, the retries run out, and a human
// abandons the job. The row never learnt of the request. When the
// reference_id is run again (a new execution of its workflow), the first
// submission must look for the request the lost answer created and adopt
// it, not pay for a second job (before: 2 vendor jobs).
func TestAReRunAfterAnAbandonedLostAnswerAdoptsTheJob(t *testing.T) {
	f := newFixture(t)
	api := &flakyAPI{API: f.acts.API, loseNext: true}
	f.acts.API = api
	f.wfs.Defaults.RetryMaxElapsed = 2 * time.Second
	f.wfs.Defaults.RetryMax = 5 * time.Second
	f.wfs.Defaults.DecisionWait = 72 * time.Hour
	refused := f.answer(2*time.Hour, workflows.Decision{Action: "abandon", By: "ops"}, func() { api.setDown(false) })
	_, err := f.run("orphan")
	require.NoError(t, *refused)
	require.Equal(t, workflows.ReasonAbandoned, errorType(err))
	require.Equal(t, 1, f.emu.Stats().JobsByReferenceID["orphan"])

	f.wfs.Defaults.DecisionWait = 0
	f.newEnv()
	res, err := f.run("orphan")
	require.NoError(t, err)
	require.True(t, res.Adopted, "the re-run adopted the request the lost answer created")
	require.Equal(t, 1, f.emu.Stats().JobsByReferenceID["orphan"], "exactly one vendor job")
	job, err := f.store.GetJob(context.Background(), workflowID)
	require.NoError(t, err)
	require.Equal(t, store.StatusCompleted, job.Status)
}

// TestAReRunOfACompletedJobSubmitsAgain: a re-run looks first, but never
// adopts the request an earlier execution recorded: a reference_id run
// again on purpose gets a job of its own.
func TestAReRunOfACompletedJobSubmitsAgain(t *testing.T) {
	f := newFixture(t)
	first, err := f.run("again")
	require.NoError(t, err)
	f.newEnv()
	second, err := f.run("again")
	require.NoError(t, err)
	require.False(t, second.Adopted)
	require.NotEqual(t, first.RequestID, second.RequestID)
	require.Equal(t, 2, f.emu.Stats().JobsByReferenceID["again"])
}

// TestAJobHeldBehindAnotherWorkflowsHoldIsNotLate: another workflow holds
// the account after a rejected key; the job's status checks wait on that
// hold without calling the API. The time held is the human's, not the
// vendor's: it must not escalate the job DeadlineExceeded (before: every
// job in flight escalated at its deadline, one escalation each). Once the
// hold is released the job completes.
func TestAJobHeldBehindAnotherWorkflowsHoldIsNotLate(t *testing.T) {
	f := newFixture(t)
	f.wfs.Defaults.Deadline = time.Hour
	f.wfs.Defaults.StuckAfter = 50 * time.Minute
	f.wfs.Defaults.DecisionWait = 0
	require.NoError(t, f.emu.SetScenario(emulator.Scenario{ReferenceID: "held", QueuedFor: emulator.D(10 * time.Minute)}))
	ctx := context.Background()
	f.env.RegisterDelayedCallback(func() {
		_, _, err := f.store.ClaimAccountHold(ctx, store.NewHold{Owner: "other-job", Reason: chamelaion.TypeUnauthorized, HTTPStatus: 401, Message: "invalid token"},
			activities.CredentialFailures)
		require.NoError(t, err)
	}, 30*time.Second)
	f.env.RegisterDelayedCallback(func() {
		_, err := f.store.ReleaseHold(ctx, store.DefaultAccount, "other-job")
		require.NoError(t, err)
	}, 3*time.Hour)
	res, err := f.run("held")
	require.NoError(t, err)
	require.Equal(t, "completed", res.Status)
	require.Empty(t, failures(t, f), "no escalation: the job waited on another's hold")
	require.Greater(t, res.Duration, 3*time.Hour)
}

// slow401API answers a job's status checks 503 first, then (after the
// check's retry budget has passed) 401: a key rejected after retryable
// failures.
type slow401API struct {
	activities.API
	mu    sync.Mutex
	calls int
}

func (s *slow401API) GetRequest(ctx context.Context, id string) (chamelaion.Request, error) {
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.mu.Unlock()
	switch n {
	case 1:
		return chamelaion.Request{}, &chamelaion.APIError{Endpoint: "GET /v1/requests", StatusCode: 503, Message: "unavailable"}
	case 2:
		time.Sleep(2500 * time.Millisecond)
		return chamelaion.Request{}, &chamelaion.APIError{Endpoint: "GET /v1/requests", StatusCode: 401, Message: "invalid token"}
	}
	return s.API.GetRequest(ctx, id)
}

// TestARejectedKeyAfterRetryableFailuresEscalatesForTheAccount: the status
// check meets a 503, then, its retry budget spent, a 401. The 401 claims
// the account hold for the job; it must then escalate as the account's
// failure (kind account, Unauthorized), answered by resume, which
// releases the hold. Before: the budget turned the 401 into
// RetriesExhausted, escalated as the job's failure while it owned the
// hold; a human's retry then waited on its own hold for ever.
func TestARejectedKeyAfterRetryableFailuresEscalatesForTheAccount(t *testing.T) {
	f := newFixture(t)
	f.acts.API = &slow401API{API: f.acts.API}
	f.wfs.Defaults.RetryMaxElapsed = 2 * time.Second
	f.wfs.Defaults.DecisionWait = 3 * time.Hour
	refused := f.answer(time.Hour, workflows.Decision{Action: "resume", By: "ops"}, nil)
	res, err := f.run("self")
	require.NoError(t, err)
	require.NoError(t, *refused)
	require.Equal(t, "completed", res.Status)
	escs := failures(t, f)
	require.Len(t, escs, 1)
	require.Equal(t, activities.KindAccount, escs[0].Kind)
	require.Equal(t, chamelaion.TypeUnauthorized, escs[0].Reason)
	holds, err := f.store.AccountHolds(context.Background(), "")
	require.NoError(t, err)
	require.Empty(t, holds)
	require.Equal(t, 1, f.emu.Stats().JobsByReferenceID["self"])
}

// TestAnAnsweredEscalationReleasesItsOwnersHold: whatever the answer, the
// answering workflow's hold ends (a retry that kept it would be held back
// by its own hold); another workflow's hold stands.
func TestAnAnsweredEscalationReleasesItsOwnersHold(t *testing.T) {
	ctx := context.Background()
	for _, action := range []string{activities.DecisionRetry, activities.DecisionAbandon, activities.DecisionExpired, activities.DecisionResume} {
		t.Run(action, func(t *testing.T) {
			f := newFixture(t)
			require.NoError(t, f.store.RecordJob(ctx, store.NewJob{WorkflowID: "job-a", ReferenceID: "a", VideoSource: "v", AudioSource: "a"}))
			for _, owner := range []string{"job-a", "job-b"} {
				_, err := f.store.HoldAccount(ctx, store.NewHold{Owner: owner, Reason: chamelaion.TypeUnauthorized, HTTPStatus: 401, Message: "invalid token"})
				require.NoError(t, err)
			}
			var suite testsuite.WorkflowTestSuite
			env := suite.NewTestActivityEnvironment()
			env.RegisterActivity(f.acts)
			_, err := env.ExecuteActivity(f.acts.RecordDecision, activities.DecisionInput{WorkflowID: "job-a", Attempt: 1, Action: action, By: "ops"})
			require.NoError(t, err)
			holds, err := f.store.AccountHolds(ctx, "")
			require.NoError(t, err)
			require.Len(t, holds, 1)
			require.Equal(t, "job-b", holds[0].Owner)
		})
	}
}

// TestAnUnansweredAccountEscalationEndsTheRow: a job on its own meets a
// rejected key while polling and escalates for the account; nobody answers
// within DecisionWait. The workflow ends, and so must its row: failed,
// with the reason and a finish time, and no hold left (before: the row
// stayed "submitted" for ever, and the hold stood until another job met
// it).
func TestAnUnansweredAccountEscalationEndsTheRow(t *testing.T) {
	f := newFixture(t)
	f.wfs.Defaults.DecisionWait = time.Hour
	require.NoError(t, f.emu.SetScenario(emulator.Scenario{ReferenceID: "key", StatusFaults: []emulator.Fault{{Status: 401, Body: `{"error":"invalid token"}`}}}))
	_, err := f.run("key")
	require.Equal(t, chamelaion.TypeUnauthorized, errorType(err))
	ctx := context.Background()
	job, err := f.store.GetJob(ctx, workflowID)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, job.Status)
	require.Equal(t, chamelaion.TypeUnauthorized, deref(job.ErrorType))
	require.NotNil(t, job.FinishedAt)
	holds, err := f.store.AccountHolds(ctx, "")
	require.NoError(t, err)
	require.Empty(t, holds)
}

// TestALateEscalationOfAnEndedExecutionLeavesItsSuccessorAlone: an
// execution's Escalate attempt lands after the execution ended and a new
// execution of the reference_id took the row over (a terminated job's
// activity still running on a worker). It must write nothing: before, it
// marked the successor's row failed with the old request and error, and
// the successor's own updates were then refused as stale, freezing the row.
func TestALateEscalationOfAnEndedExecutionLeavesItsSuccessorAlone(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const wf = "lipsync-late"
	nj := func(exec string) store.NewJob {
		return store.NewJob{WorkflowID: wf, ReferenceID: "late", VideoSource: "v", AudioSource: "a", ExecutionID: exec, Attempt: 1}
	}
	require.NoError(t, f.store.RecordJob(ctx, nj("e1")))
	_, err := f.store.UpdateJob(ctx, store.JobUpdate{WorkflowID: wf, ExecutionID: "e1", Attempt: 1, Status: store.StatusSubmitted, RequestID: "req-1"})
	require.NoError(t, err)
	require.NoError(t, f.store.RecordJob(ctx, nj("e2")))

	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	val, err := env.ExecuteActivity(f.acts.Escalate, activities.EscalateInput{
		WorkflowID: wf, ExecutionID: "e1", ReferenceID: "late", RequestID: "req-1", Attempt: 1,
		Kind: activities.KindFailure, Reason: workflows.ReasonDeadlineExceeded, Message: "e1's failure",
	})
	require.NoError(t, err)
	var res activities.EscalateResult
	require.NoError(t, val.Get(&res))
	require.True(t, res.Stale)
	escs, err := f.store.ListEscalations(ctx, wf)
	require.NoError(t, err)
	require.Empty(t, escs, "no escalation for an ended execution")

	_, err = f.store.UpdateJob(ctx, store.JobUpdate{WorkflowID: wf, ExecutionID: "e2", Attempt: 1, Status: store.StatusSubmitted, RequestID: "req-2"})
	require.NoError(t, err)
	_, err = f.store.UpdateJob(ctx, store.JobUpdate{WorkflowID: wf, ExecutionID: "e2", Attempt: 1, Status: store.StatusCompleted, RequestID: "req-2", OutputURL: "https://out.example/v.mp4"})
	require.NoError(t, err)
	job, err := f.store.GetJob(ctx, wf)
	require.NoError(t, err)
	require.Equal(t, store.StatusCompleted, job.Status)
	require.Equal(t, "req-2", deref(job.RequestID))
	require.Nil(t, job.ErrorMessage)

	// The same escalation from the row's own execution is recorded.
	val, err = env.ExecuteActivity(f.acts.Escalate, activities.EscalateInput{
		WorkflowID: wf, ExecutionID: "e2", ReferenceID: "late", RequestID: "req-2", Attempt: 1,
		Kind: activities.KindStuck, Reason: workflows.ReasonStuck, Message: "queued for long",
	})
	require.NoError(t, err)
	res = activities.EscalateResult{}
	require.NoError(t, val.Get(&res))
	require.False(t, res.Stale)
	require.True(t, res.Created)
}

// errorType is an error's Temporal application type, or "".
func errorType(err error) string {
	var appErr interface{ Type() string }
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}

// TestAttemptsThatEndWithoutAResultSpendTheRetryBudget: a submission
// whose attempts keep ending without a result (each timed out, or its
// worker stopped) left its progress but no failure. The budget counts
// them like any other failure: past it, the submission ends
// RetriesExhausted, saying a job may exist (before: such attempts were
// retried until the job's deadline, a day by default, and this attempt
// would have sent yet another request).
func TestAttemptsThatEndWithoutAResultSpendTheRetryBudget(t *testing.T) {
	f := newFixture(t)
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	started := time.Now().Add(-31 * time.Minute)
	env.SetHeartbeatDetails(map[string]any{"FirstAttemptAt": started, "Look": true, "LookAfter": started.Add(time.Minute)})
	_, err := env.ExecuteActivity(f.acts.Submit, activities.SubmitInput{
		WorkflowID: "wf-silent", ReferenceID: "silent", Attempt: 1, RetryBudget: 30 * time.Minute,
		Video: "https://cdn.example.com/v.mp4", Audio: "https://cdn.example.com/a.wav",
	})
	require.Equal(t, activities.TypeRetriesExhausted, errorType(err), "%v", err)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	var d activities.ErrorDetails
	require.NoError(t, appErr.Details(&d))
	require.True(t, d.MayHaveCreated, "the next submission looks first")
	require.Zero(t, f.emu.Stats().JobsByReferenceID["silent"], "nothing sent")
}

// TestAReRunAfterATerminatedSubmissionWaitsForItsRequestToLand: execution
// e1 is terminated with its submission's request in flight (its row says
// only "pending": the records cannot tell when it stopped). A re-run
// started at once must not list before that request can have landed: it
// looks from twice the settle window after its own start, finds the job e1
// created and adopts it (before: it looked from e1's last record, listed
// too early, and sent a second request).
func TestAReRunAfterATerminatedSubmissionWaitsForItsRequestToLand(t *testing.T) {
	f := newFixture(t)
	f.acts.SubmitSettle = 2 * time.Second
	ctx := context.Background()
	const wf = "lipsync-terminated"
	require.NoError(t, f.store.RecordJob(ctx, store.NewJob{WorkflowID: wf, ReferenceID: "terminated", VideoSource: "v", AudioSource: "a", ExecutionID: "e1", Attempt: 1}))
	landed := make(chan string, 1)
	go func() {
		// e1's request lands 2.5 s later.
		time.Sleep(2500 * time.Millisecond)
		resp, err := f.acts.API.Generate(ctx, chamelaion.GenerateRequest{ReferenceID: "terminated", VideoURL: "https://cdn.example.com/v.mp4", AudioURL: "https://cdn.example.com/a.wav"})
		if err != nil {
			landed <- "error: " + err.Error()
			return
		}
		landed <- resp.RequestID
	}()
	require.NoError(t, f.store.RecordJob(ctx, store.NewJob{WorkflowID: wf, ReferenceID: "terminated", VideoSource: "v", AudioSource: "a", ExecutionID: "e2", Attempt: 1}))
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	val, err := env.ExecuteActivity(f.acts.Submit, activities.SubmitInput{
		WorkflowID: wf, ExecutionID: "e2", ReferenceID: "terminated", Attempt: 1,
		Video: "https://cdn.example.com/v.mp4", Audio: "https://cdn.example.com/a.wav",
	})
	require.NoError(t, err)
	var res activities.SubmitResult
	require.NoError(t, val.Get(&res))
	require.Equal(t, <-landed, res.RequestID)
	require.True(t, res.Adopted)
	require.Equal(t, 1, f.emu.Stats().JobsByReferenceID["terminated"])
}

// TestAResetSubmissionTakesTheRequestItsAttemptRecorded: a workflow reset
// to before its submission ended runs the submission again, as the same
// execution and attempt. The request the row already holds for them is
// taken, and nothing is sent (before: a second vendor job).
func TestAResetSubmissionTakesTheRequestItsAttemptRecorded(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const wf = "lipsync-reset"
	in := activities.SubmitInput{
		WorkflowID: wf, ExecutionID: "e1", ReferenceID: "reset", Attempt: 1,
		Video: "https://cdn.example.com/v.mp4", Audio: "https://cdn.example.com/a.wav",
	}
	require.NoError(t, f.store.RecordJob(ctx, store.NewJob{WorkflowID: wf, ReferenceID: "reset", VideoSource: "v", AudioSource: "a", ExecutionID: "e1", Attempt: 1}))
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	var first, second activities.SubmitResult
	val, err := env.ExecuteActivity(f.acts.Submit, in)
	require.NoError(t, err)
	require.NoError(t, val.Get(&first))
	val, err = env.ExecuteActivity(f.acts.Submit, in)
	require.NoError(t, err)
	require.NoError(t, val.Get(&second))
	require.Equal(t, first.RequestID, second.RequestID)
	require.Equal(t, 1, f.emu.Stats().JobsByReferenceID["reset"])
}
