package workflows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/chamelaion"
)

func testSettings() Settings {
	return Settings{
		Poll:            PollSchedule{Initial: 5 * time.Second, Max: time.Minute, Coefficient: 2},
		StuckAfter:      10 * time.Minute,
		Deadline:        24 * time.Hour,
		RequestTimeout:  30 * time.Second,
		RetryInitial:    time.Second,
		RetryMax:        time.Minute,
		RetryMaxElapsed: 30 * time.Minute,
		NotifyTimeout:   10 * time.Second,
		MaxPollsPerRun:  200,
		SubmitTaskQueue: "lipsync-submit",
	}
}

func testInput() LipSyncInput {
	return LipSyncInput{
		Video:       "https://cdn.example.com/v.mp4?X-Amz-Signature=SIG",
		Audio:       "https://cdn.example.com/a.wav",
		ReferenceID: "job-1",
	}
}

// harness is a time-skipping test environment with the real workflow and
// scripted activities that record when they were called.
type harness struct {
	t         *testing.T
	env       *testsuite.TestWorkflowEnvironment
	start     time.Time
	checks    []time.Time
	submits   []time.Time
	escalate  []activities.EscalateInput
	notified  int
	decisions []activities.DecisionInput
	// What the workflow recorded itself.
	recorded []activities.RecordJobInput
	progress []activities.RecordProgressInput
	// submitted are the inputs of the Submit calls.
	submitted []activities.SubmitInput
	// escalateAnswersLost is how many Escalate calls record the
	// escalation and then fail (the answer lost, as after a timeout);
	// notifyFails how many NotifyHuman calls fail.
	escalateAnswersLost int
	notifyFails         int
	// recordFails is how many RecordJob calls fail as a database away.
	recordFails int
}

func newHarness(t *testing.T, s Settings) *harness {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestWorkflowEnvironment()
	wfs := &Workflows{Defaults: s}
	env.RegisterWorkflowWithOptions(wfs.LipSync, workflow.RegisterOptions{Name: WorkflowName})
	env.RegisterActivity(&activities.Activities{})
	h := &harness{t: t, env: env, start: env.Now()}
	env.OnActivity(a.RecordJob, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RecordJobInput) error {
			if h.recordFails > 0 {
				h.recordFails--
				return temporal.NewApplicationError("store: record job: connection refused", activities.TypeStoreUnavailable)
			}
			h.recorded = append(h.recorded, in)
			return nil
		})
	env.OnActivity(a.RecordProgress, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RecordProgressInput) error {
			h.progress = append(h.progress, in)
			return nil
		})
	env.OnActivity(a.Escalate, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.EscalateInput) (activities.EscalateResult, error) {
			if !slices.ContainsFunc(h.escalate, func(e activities.EscalateInput) bool { return e == in }) {
				h.escalate = append(h.escalate, in)
			}
			if h.escalateAnswersLost > 0 {
				h.escalateAnswersLost--
				return activities.EscalateResult{}, errors.New("store: context deadline exceeded (the row was written)")
			}
			return activities.EscalateResult{EscalationID: int64(len(h.escalate)), Created: true, WebUIURL: "http://ui/wf"}, nil
		})
	env.OnActivity(a.NotifyHuman, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.NotifyInput) error {
			if h.notifyFails > 0 {
				h.notifyFails--
				return errors.New("webhook: 502 Bad Gateway")
			}
			h.notified++
			return nil
		})
	env.OnActivity(a.RecordDecision, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DecisionInput) error {
			h.decisions = append(h.decisions, in)
			return nil
		})
	return h
}

// submitReturns scripts Submit: each entry is an error to return, or nil for
// success with request id "req-1".
func (h *harness) submitReturns(errs ...error) {
	h.env.OnActivity(a.Submit, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SubmitInput) (activities.SubmitResult, error) {
			h.submits = append(h.submits, h.env.Now())
			h.submitted = append(h.submitted, in)
			n := len(h.submits)
			if n <= len(errs) && errs[n-1] != nil {
				return activities.SubmitResult{}, errs[n-1]
			}
			return activities.SubmitResult{RequestID: "req-1", SubmittedAt: h.env.Now()}, nil
		})
}

// statusFn answers the n-th status check (1-based).
type statusFn func(n int) (activities.CheckStatusResult, error)

func (h *harness) statusReturns(f statusFn) {
	h.env.OnActivity(a.CheckStatus, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CheckStatusInput) (activities.CheckStatusResult, error) {
			h.checks = append(h.checks, h.env.Now())
			return f(len(h.checks))
		})
}

func sequence(statuses ...chamelaion.Status) statusFn {
	return func(n int) (activities.CheckStatusResult, error) {
		s := statuses[min(n, len(statuses))-1]
		r := activities.CheckStatusResult{Status: s}
		if s == chamelaion.StatusCompleted {
			r.OutputURL = "https://storage.chamelaion.com/output/req-1.mp4"
		}
		return r, nil
	}
}

func apiErr(status int, msg string, retryAfter time.Duration) error {
	return activities.ClassifiedError("test", &chamelaion.APIError{
		Endpoint: "POST /v1/lipsync/generate", StatusCode: status, Message: msg, RetryAfter: retryAfter,
	})
}

func (h *harness) run(in LipSyncInput) (LipSyncResult, error) {
	h.env.ExecuteWorkflow(WorkflowName, in)
	require.True(h.t, h.env.IsWorkflowCompleted())
	err := h.env.GetWorkflowError()
	if err != nil {
		return LipSyncResult{}, err
	}
	var res LipSyncResult
	require.NoError(h.t, h.env.GetWorkflowResult(&res))
	return res, nil
}

func gaps(times []time.Time, from time.Time) []time.Duration {
	var out []time.Duration
	prev := from
	for _, t := range times {
		out = append(out, t.Sub(prev))
		prev = t
	}
	return out
}

func TestCompletesAfterSeveralPollsOnBackoffSchedule(t *testing.T) {
	h := newHarness(t, testSettings())
	h.submitReturns()
	h.statusReturns(sequence(chamelaion.StatusQueued, chamelaion.StatusProcessing, chamelaion.StatusProcessing,
		chamelaion.StatusProcessing, chamelaion.StatusProcessing, chamelaion.StatusCompleted))
	res, err := h.run(testInput())
	require.NoError(t, err)
	require.Equal(t, "completed", res.Status)
	require.Equal(t, "req-1", res.RequestID)
	require.Equal(t, "https://storage.chamelaion.com/output/req-1.mp4", res.OutputURL)
	require.Equal(t, 6, res.StatusChecks)
	require.Equal(t, 1, res.Runs)
	// 5s doubling to the 1m cap, timed by durable timers.
	require.Equal(t, []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, time.Minute, time.Minute},
		gaps(h.checks, h.submits[0]))
	require.Equal(t, 3*time.Minute+15*time.Second, res.Duration)
	require.Empty(t, h.escalate)
}

func TestPerJobPollOverride(t *testing.T) {
	h := newHarness(t, testSettings())
	h.submitReturns()
	h.statusReturns(sequence(chamelaion.StatusProcessing, chamelaion.StatusProcessing, chamelaion.StatusCompleted))
	in := testInput()
	in.Poll = &PollSchedule{Initial: 2 * time.Second, Max: 3 * time.Second, Coefficient: 3}
	_, err := h.run(in)
	require.NoError(t, err)
	require.Equal(t, []time.Duration{2 * time.Second, 3 * time.Second, 3 * time.Second}, gaps(h.checks, h.submits[0]))
}

func TestRateLimitedSubmissionWaitsTheAdvisedTime(t *testing.T) {
	h := newHarness(t, testSettings())
	h.submitReturns(apiErr(429, "rate limit exceeded", 7*time.Second), apiErr(429, "rate limit exceeded", 13*time.Second))
	h.statusReturns(sequence(chamelaion.StatusCompleted))
	res, err := h.run(testInput())
	require.NoError(t, err)
	require.Equal(t, "completed", res.Status)
	require.Len(t, h.submits, 3)
	require.Equal(t, []time.Duration{7 * time.Second, 13 * time.Second}, gaps(h.submits[1:], h.submits[0]))
	require.Empty(t, h.escalate)
}

func TestRateLimitedStatusCheckWaitsTheAdvisedTime(t *testing.T) {
	h := newHarness(t, testSettings())
	h.submitReturns()
	h.statusReturns(func(n int) (activities.CheckStatusResult, error) {
		if n == 1 {
			return activities.CheckStatusResult{}, apiErr(429, "rate limit exceeded", 42*time.Second)
		}
		return activities.CheckStatusResult{Status: chamelaion.StatusCompleted, OutputURL: "https://o/x.mp4"}, nil
	})
	_, err := h.run(testInput())
	require.NoError(t, err)
	require.Len(t, h.checks, 2)
	require.Equal(t, 42*time.Second, h.checks[1].Sub(h.checks[0]))
}

func TestTransientServerErrorsAreRetriedWithBackoff(t *testing.T) {
	for _, status := range []int{500, 502, 503, 504} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			h := newHarness(t, testSettings())
			h.submitReturns(apiErr(status, "trouble", 0), apiErr(status, "trouble", 0))
			h.statusReturns(sequence(chamelaion.StatusCompleted))
			res, err := h.run(testInput())
			require.NoError(t, err)
			require.Equal(t, "completed", res.Status)
			require.Len(t, h.submits, 3)
			// The retry policy's exponential backoff: 1s, then 2s.
			require.Equal(t, []time.Duration{time.Second, 2 * time.Second}, gaps(h.submits[1:], h.submits[0]))
			require.Empty(t, h.escalate)
		})
	}
}

func TestPermanentFailuresEscalateOnceWithoutRetry(t *testing.T) {
	cases := []struct {
		status int
		msg    string
		reason string
		atPoll bool
	}{
		{400, "expected exactly one video input", chamelaion.TypeBadRequest, false},
		{401, "invalid token", chamelaion.TypeUnauthorized, false},
		{403, "Unauthorized: Please check your Chameleon Account Secret", chamelaion.TypeForbidden, false},
		{404, "lipsync request not found", chamelaion.TypeNotFound, true},
		{409, "Conflict", chamelaion.TypeConflict, false},
		{412, "token limit reached", chamelaion.TypeQuotaExceeded, false},
		{422, "Unprocessable", chamelaion.TypeUnprocessable, false},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			h := newHarness(t, testSettings())
			if tc.atPoll {
				h.submitReturns()
				h.statusReturns(func(int) (activities.CheckStatusResult, error) {
					return activities.CheckStatusResult{}, apiErr(tc.status, tc.msg, 0)
				})
			} else {
				h.submitReturns(apiErr(tc.status, tc.msg, 0))
			}
			_, err := h.run(testInput())
			require.Error(t, err)
			var appErr *temporal.ApplicationError
			require.True(t, errors.As(err, &appErr))
			require.Equal(t, tc.reason, appErr.Type())
			require.Contains(t, appErr.Error(), tc.msg)
			require.Len(t, h.submits, 1, "no retry of a permanent failure")
			if tc.atPoll {
				require.Len(t, h.checks, 1)
			}
			require.Len(t, h.escalate, 1)
			require.Equal(t, activities.KindFailure, h.escalate[0].Kind)
			require.Equal(t, tc.reason, h.escalate[0].Reason)
			require.Equal(t, tc.status, h.escalate[0].HTTPStatus)
			require.Contains(t, h.escalate[0].Message, tc.msg)
			require.Equal(t, 1, h.notified)

			var details EscalationDetails
			require.NoError(t, appErr.Details(&details))
			require.Equal(t, tc.reason, details.Reason)
			require.Equal(t, tc.status, details.HTTPStatus)
		})
	}
}

func TestVendorFailedJobEscalates(t *testing.T) {
	h := newHarness(t, testSettings())
	h.submitReturns()
	h.statusReturns(func(n int) (activities.CheckStatusResult, error) {
		if n < 3 {
			return activities.CheckStatusResult{Status: chamelaion.StatusProcessing}, nil
		}
		return activities.CheckStatusResult{Status: chamelaion.StatusFailed, ErrorMessage: "video URL is not accessible"}, nil
	})
	_, err := h.run(testInput())
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	require.Equal(t, ReasonJobFailed, appErr.Type())
	require.Contains(t, err.Error(), "video URL is not accessible")
	require.Len(t, h.escalate, 1)
	require.Equal(t, ReasonJobFailed, h.escalate[0].Reason)
	require.Equal(t, "req-1", h.escalate[0].RequestID)
}

func TestStuckJobNotifiesOnceThenCompletes(t *testing.T) {
	h := newHarness(t, testSettings())
	h.submitReturns()
	var submitted time.Time
	h.statusReturns(func(n int) (activities.CheckStatusResult, error) {
		if n == 1 {
			submitted = h.submits[0]
		}
		if h.env.Now().Sub(submitted) < 25*time.Minute {
			return activities.CheckStatusResult{Status: chamelaion.StatusQueued}, nil
		}
		return activities.CheckStatusResult{Status: chamelaion.StatusCompleted, OutputURL: "https://o/x.mp4"}, nil
	})
	res, err := h.run(testInput())
	require.NoError(t, err)
	require.Equal(t, "completed", res.Status)
	require.Len(t, h.escalate, 1, "exactly one stuck notification")
	require.Equal(t, activities.KindStuck, h.escalate[0].Kind)
	require.Equal(t, ReasonStuck, h.escalate[0].Reason)
	require.Equal(t, 1, h.notified)
}

func TestDeadlineEscalatesAndEnds(t *testing.T) {
	h := newHarness(t, testSettings())
	h.submitReturns()
	h.statusReturns(sequence(chamelaion.StatusProcessing))
	in := testInput()
	in.Deadline = time.Hour
	_, err := h.run(in)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	require.Equal(t, ReasonDeadlineExceeded, appErr.Type())
	require.Len(t, h.escalate, 1)
	require.Equal(t, ReasonDeadlineExceeded, h.escalate[0].Reason)
	// The last check happens exactly at the deadline, not a poll interval later.
	require.Equal(t, time.Hour, h.checks[len(h.checks)-1].Sub(h.start))
}

func TestRetriesExhaustedEscalates(t *testing.T) {
	s := testSettings()
	s.RetryMaxElapsed = 5 * time.Minute
	h := newHarness(t, s)
	h.submitReturns()
	// The activity counts its retry budget from its first attempt's start
	// and gives up with RetriesExhausted, naming the last failure.
	h.statusReturns(func(n int) (activities.CheckStatusResult, error) {
		if n < 4 {
			return activities.CheckStatusResult{}, apiErr(503, "service unavailable", 0)
		}
		return activities.CheckStatusResult{}, temporal.NewNonRetryableApplicationError(
			"check status: HTTP 503: service unavailable (Unavailable), still failing after retrying for up to 5m0s", activities.TypeRetriesExhausted, nil,
			activities.ErrorDetails{StatusCode: 503, Message: "HTTP 503: service unavailable (Unavailable), still failing after retrying for up to 5m0s"})
	})
	_, err := h.run(testInput())
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	require.Equal(t, ReasonRetriesExhausted, appErr.Type())
	require.Greater(t, len(h.checks), 3)
	require.Len(t, h.escalate, 1)
	require.Equal(t, 503, h.escalate[0].HTTPStatus)
	require.Contains(t, h.escalate[0].Message, "Unavailable")
}

func TestInvalidInputRefusedBeforeAnySideEffect(t *testing.T) {
	h := newHarness(t, testSettings())
	h.submitReturns()
	in := testInput()
	in.Video = "ftp://cdn.example.com/v.mp4?sig=SECRET"
	_, err := h.run(in)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	require.Equal(t, ReasonInvalidInput, appErr.Type())
	require.NotContains(t, err.Error(), "SECRET")
	require.Empty(t, h.submits)
}

// TestMultiDayJobKeepsHistoryBounded runs a job that processes for three
// days of workflow time: every run stops at MaxPollsPerRun status checks and
// continues as new with its state, and the job completes in the last run.
func TestMultiDayJobKeepsHistoryBounded(t *testing.T) {
	s := testSettings()
	in := testInput()
	in.Deadline = 7 * 24 * time.Hour
	var (
		jobStart  time.Time
		completed LipSyncResult
		runs      int
		maxChecks int
	)
	const jobLength = 3 * 24 * time.Hour
	for runs = 1; runs < 100; runs++ {
		h := newHarness(t, s)
		if runs == 1 {
			h.submitReturns()
		}
		if in.Resume != nil {
			// Each new environment starts its clock anew; carry the job's time.
			h.env.SetStartTime(in.Resume.StartedAt.Add(elapsedSoFar(in.Resume)))
		}
		h.statusReturns(func(int) (activities.CheckStatusResult, error) {
			if jobStart.IsZero() {
				jobStart = h.env.Now()
			}
			if h.env.Now().Sub(jobStart) >= jobLength {
				return activities.CheckStatusResult{Status: chamelaion.StatusCompleted, OutputURL: "https://o/x.mp4"}, nil
			}
			return activities.CheckStatusResult{Status: chamelaion.StatusProcessing}, nil
		})
		h.env.ExecuteWorkflow(WorkflowName, in)
		require.True(t, h.env.IsWorkflowCompleted())
		maxChecks = max(maxChecks, len(h.checks))
		err := h.env.GetWorkflowError()
		if err == nil {
			require.NoError(t, h.env.GetWorkflowResult(&completed))
			break
		}
		var can *workflow.ContinueAsNewError
		require.True(t, errors.As(err, &can), "run %d: %v", runs, err)
		require.Equal(t, WorkflowName, can.WorkflowType.Name)
		var next LipSyncInput
		require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
		require.NotNil(t, next.Resume)
		require.Equal(t, "req-1", next.Resume.RequestID)
		in = next
	}
	require.Equal(t, "completed", completed.Status)
	require.Equal(t, runs, completed.Runs)
	// Three days at the 1-minute cap is ~4,320 checks: 22 runs of at most 200.
	require.GreaterOrEqual(t, runs, 20)
	require.LessOrEqual(t, maxChecks, s.MaxPollsPerRun)
	require.GreaterOrEqual(t, completed.StatusChecks, 4300)
}

// elapsedSoFar estimates a resumed job's elapsed time from its checks: the
// test environment cannot carry its clock across runs, so the test moves
// the next environment's clock forward by the time the checks took.
func elapsedSoFar(s *JobState) time.Duration {
	return s.SubmittedAt.Sub(s.StartedAt) + time.Duration(s.StatusChecks)*time.Minute
}

// resolve sends a decision after delay and records the outcome.
func (h *harness) resolve(delay time.Duration, d Decision, rejected *error, accepted *bool) {
	h.env.RegisterDelayedCallback(func() {
		h.env.UpdateWorkflow(UpdateResolve, fmt.Sprint("u-", d.Action, delay), &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { *rejected = err },
			OnAccept:   func() { *accepted = true },
			OnComplete: func(any, error) {},
		}, d)
	}, delay)
}

func decisionSettings() Settings {
	s := testSettings()
	s.DecisionWait = 24 * time.Hour
	return s
}

func TestRetryAfterADecisionResubmitsAndCompletes(t *testing.T) {
	h := newHarness(t, decisionSettings())
	h.submitReturns(apiErr(412, "token limit reached", 0))
	h.statusReturns(sequence(chamelaion.StatusCompleted))
	var rejected error
	var accepted bool
	h.resolve(time.Hour, Decision{Action: "maybe"}, &rejected, new(bool))
	h.resolve(2*time.Hour, Decision{Action: "retry", By: "ops@example", Note: "plan upgraded"}, new(error), &accepted)
	res, err := h.run(testInput())
	require.NoError(t, err)
	require.Equal(t, "completed", res.Status)
	require.ErrorContains(t, rejected, `unknown action "maybe"`)
	require.True(t, accepted)
	require.Len(t, h.submits, 2, "resubmitted once")
	require.Len(t, h.escalate, 1)
	require.Len(t, h.decisions, 1)
	d := h.decisions[0]
	require.Equal(t, activities.DecisionInput{WorkflowID: workflowIDForTests, ExecutionID: d.ExecutionID, Attempt: 1, Action: "retry", By: "ops@example", Note: "plan upgraded",
		Reason: h.escalate[0].Reason, Message: h.escalate[0].Message}, d)
	require.NotEmpty(t, d.ExecutionID)
	require.Equal(t, 2*time.Hour, h.submits[1].Sub(h.submits[0]))
}

func TestAbandonAfterADecisionEndsAbandoned(t *testing.T) {
	h := newHarness(t, decisionSettings())
	h.submitReturns()
	h.statusReturns(func(int) (activities.CheckStatusResult, error) {
		return activities.CheckStatusResult{Status: chamelaion.StatusFailed, ErrorMessage: "video URL is not accessible"}, nil
	})
	var accepted bool
	h.resolve(time.Hour, Decision{Action: "abandon", By: "ops", Note: "media deleted"}, new(error), &accepted)
	_, err := h.run(testInput())
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	require.Equal(t, ReasonAbandoned, appErr.Type())
	require.Contains(t, err.Error(), "media deleted")
	require.True(t, accepted)
	require.Len(t, h.decisions, 1)
	require.Equal(t, "abandon", h.decisions[0].Action)
}

func TestNoDecisionInTimeEndsEscalated(t *testing.T) {
	h := newHarness(t, decisionSettings())
	h.submitReturns(apiErr(401, "invalid token", 0))
	_, err := h.run(testInput())
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	require.Equal(t, chamelaion.TypeUnauthorized, appErr.Type())
	require.Len(t, h.decisions, 1)
	require.Equal(t, "expired", h.decisions[0].Action)
	require.GreaterOrEqual(t, h.env.Now().Sub(h.start), 24*time.Hour)
}

// workflowIDForTests is the test environment's default workflow ID.
const workflowIDForTests = "default-test-workflow-id"

func TestADecisionForAJobNotWaitingIsRefused(t *testing.T) {
	h := newHarness(t, decisionSettings())
	h.submitReturns()
	h.statusReturns(sequence(chamelaion.StatusProcessing, chamelaion.StatusProcessing, chamelaion.StatusCompleted))
	var rejected error
	var accepted bool
	h.resolve(7*time.Second, Decision{Action: "retry"}, &rejected, &accepted)
	res, err := h.run(testInput())
	require.NoError(t, err)
	require.Equal(t, "completed", res.Status)
	require.False(t, accepted)
	require.ErrorContains(t, rejected, "not waiting for a decision (status processing)")
	require.Empty(t, h.decisions)
}

// TestTheRetryBudgetIsNotSpentWaitingInTheQueue: Submit and CheckStatus
// wait in rate-limited task queues; ScheduleToClose would count that wait
// against the retry budget (1,700 jobs started at once expired in the
// queue without one attempt). The budget goes to the activity, counted
// from its first attempt's start; ScheduleToClose only bounds a call that
// cannot start before the job's deadline.
func TestTheRetryBudgetIsNotSpentWaitingInTheQueue(t *testing.T) {
	h := newHarness(t, testSettings())
	h.submitReturns()
	h.statusReturns(sequence(chamelaion.StatusCompleted))
	scheduleToClose := map[string]time.Duration{}
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		scheduleToClose[info.ActivityType.Name] = info.ScheduleToCloseTimeout
	})
	_, err := h.run(testInput())
	require.NoError(t, err)
	require.Equal(t, 24*time.Hour, scheduleToClose["Submit"], "not the 30m retry budget")
	require.Equal(t, 24*time.Hour, scheduleToClose["CheckStatus"])
	require.Equal(t, 30*time.Minute, h.submitted[0].RetryBudget, "the activity counts the budget")
}

// TestARetriedSubmissionLooksFirstWhenTheFailedOneMayHaveCreatedAJob:
// retries ran out after a request that may have landed; the human's retry
// schedules Submit afresh, told to look for that request first. After a
// refusal that created nothing (412), it is not.
func TestARetriedSubmissionLooksFirstWhenTheFailedOneMayHaveCreatedAJob(t *testing.T) {
	for name, tc := range map[string]struct {
		err  error
		look bool
	}{
		"retries ran out after a lost answer": {temporal.NewNonRetryableApplicationError("submit: no answer (Timeout), still failing after retrying for up to 30m0s",
			activities.TypeRetriesExhausted, nil, activities.ErrorDetails{Message: "no answer", MayHaveCreated: true}), true},
		"quota exhausted": {apiErr(412, "token limit reached", 0), false},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, decisionSettings())
			h.submitReturns(tc.err)
			h.statusReturns(sequence(chamelaion.StatusCompleted))
			var accepted bool
			h.resolve(time.Hour, Decision{Action: "retry", By: "ops"}, new(error), &accepted)
			_, err := h.run(testInput())
			require.NoError(t, err)
			require.True(t, accepted)
			require.Len(t, h.submitted, 2)
			require.False(t, h.submitted[0].LookFirst)
			require.Equal(t, tc.look, h.submitted[1].LookFirst)
		})
	}
}

// TestResumeIsOfferedOnlyWhereThereIsARequestToPoll: a job escalated
// before the vendor accepted it, or whose request the vendor ended failed,
// has nothing to resume; the human is told to retry or abandon.
func TestResumeIsOfferedOnlyWhereThereIsARequestToPoll(t *testing.T) {
	for name, tc := range map[string]struct {
		submit error
		status statusFn
		want   string
	}{
		"before submission": {apiErr(412, "token limit reached", 0), nil, "no request to poll"},
		"vendor failed": {nil, func(int) (activities.CheckStatusResult, error) {
			return activities.CheckStatusResult{Status: chamelaion.StatusFailed, ErrorMessage: "video URL is not accessible"}, nil
		}, "the vendor ended its request failed"},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, decisionSettings())
			h.submitReturns(tc.submit)
			if tc.status != nil {
				h.statusReturns(tc.status)
			}
			var refused error
			h.resolve(time.Hour, Decision{Action: "resume"}, &refused, new(bool))
			h.resolve(2*time.Hour, Decision{Action: "abandon"}, new(error), new(bool))
			_, err := h.run(testInput())
			require.Error(t, err)
			require.ErrorContains(t, refused, tc.want)
			require.ErrorContains(t, refused, "answer retry or abandon")
		})
	}
}
