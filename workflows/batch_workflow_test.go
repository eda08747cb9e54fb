package workflows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/chamelaion"
)

// fakeAccount plays the vendor and the database for batch tests, as the
// real activities would see them: submissions are counted per reference_id,
// a job completes on its second status check, reference_ids starting with
// "bad-" are refused with 400, the quota runs out after quotaAfter
// accepted submissions (412) until fixed, and an account escalation holds
// submissions until a decision releases them (as the store does).
type fakeAccount struct {
	mu          sync.Mutex
	now         func() time.Time
	accepted    map[string]int
	apiCalls    int
	quotaAfter  int // 0 = no limit
	quotaFixed  bool
	held        bool
	active      map[string]bool
	maxActive   int
	pending     map[string]bool
	maxPending  int
	checks      map[string]int
	escalations []activities.EscalateInput
	decisions   []activities.DecisionInput
	notSubmit   []string
	// callsWhileHeld counts API submissions made while the account was
	// held.
	callsWhileHeld int
	pausedAt       time.Time
	pageLoads      int
	// ended are the rows EndJob ended.
	ended []string
	// foreignHold is another workflow's account hold in force ("" = none):
	// submissions are refused while it stands.
	foreignHold string
	// lostAnswers are jobs whose first submission creates the job at the
	// vendor but fails with the quota refused on its retry, the activity
	// reporting that a job may exist; created are those jobs.
	lostAnswers map[string]bool
	created     map[string]bool
	// whileRecordingDecision runs inside RecordDecision, while the
	// workflow waits for it to record an answer.
	whileRecordingDecision func(activities.DecisionInput)
	// escalateAnswersLost is how many Escalate calls record the
	// escalation and then fail (the answer lost, as after a timeout).
	escalateAnswersLost int
}

func newBatchEnv(t *testing.T, f *fakeAccount) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestWorkflowEnvironment()
	env.SetTestTimeout(5 * time.Minute)
	s := testSettings()
	s.DecisionWait = 0
	wfs := &Workflows{Defaults: s}
	env.RegisterWorkflowWithOptions(wfs.LipSync, workflow.RegisterOptions{Name: WorkflowName})
	env.RegisterWorkflowWithOptions(wfs.Batch, workflow.RegisterOptions{Name: BatchWorkflowName})
	env.RegisterActivity(&activities.Activities{})
	f.now = env.Now
	f.accepted, f.active, f.checks, f.pending = map[string]int{}, map[string]bool{}, map[string]int{}, map[string]bool{}
	env.OnActivity(a.RecordJob, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RecordJobInput) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.active[in.ReferenceID] {
			f.active[in.ReferenceID] = true
			f.maxActive = max(f.maxActive, len(f.active))
			f.pending[in.ReferenceID] = true
			f.maxPending = max(f.maxPending, len(f.pending))
		}
		return nil
	})
	env.OnActivity(a.Submit, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.SubmitInput) (activities.SubmitResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if in.LookOnly {
			if f.created[in.ReferenceID] {
				delete(f.pending, in.ReferenceID)
				return activities.SubmitResult{RequestID: "req-" + in.ReferenceID, Adopted: true, SubmittedAt: f.now()}, nil
			}
			return activities.SubmitResult{}, nil
		}
		if f.lostAnswers[in.ReferenceID] && !f.created[in.ReferenceID] {
			if f.created == nil {
				f.created = map[string]bool{}
			}
			f.created[in.ReferenceID] = true
			f.accepted[in.ReferenceID]++
			f.apiCalls++
			return activities.SubmitResult{}, temporal.NewNonRetryableApplicationError("token limit reached", chamelaion.TypeQuotaExceeded, nil,
				activities.ErrorDetails{StatusCode: 412, MayHaveCreated: true})
		}
		if f.held || f.foreignHold != "" {
			return activities.SubmitResult{}, temporal.NewNonRetryableApplicationError("held", chamelaion.TypeQuotaExceeded, nil, activities.ErrorDetails{StatusCode: 412, Held: true})
		}
		f.apiCalls++
		switch {
		case strings.HasPrefix(in.ReferenceID, "bad-"):
			return activities.SubmitResult{}, apiErr(400, "invalid video url", 0)
		case f.quotaAfter > 0 && !f.quotaFixed && f.total() >= f.quotaAfter:
			return activities.SubmitResult{}, apiErr(412, "token limit reached", 0)
		}
		f.accepted[in.ReferenceID]++
		delete(f.pending, in.ReferenceID)
		return activities.SubmitResult{RequestID: "req-" + in.ReferenceID, SubmittedAt: f.now()}, nil
	})
	env.OnActivity(a.CheckStatus, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.CheckStatusInput) (activities.CheckStatusResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.checks[in.RequestID]++
		if f.checks[in.RequestID] < 2 {
			return activities.CheckStatusResult{Status: chamelaion.StatusProcessing}, nil
		}
		delete(f.active, strings.TrimPrefix(in.RequestID, "req-"))
		return activities.CheckStatusResult{Status: chamelaion.StatusCompleted, OutputURL: "https://out/" + in.RequestID}, nil
	})
	env.OnActivity(a.Escalate, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.EscalateInput) (activities.EscalateResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !slices.Contains(f.escalations, in) {
			f.escalations = append(f.escalations, in)
		}
		if in.Kind == activities.KindAccount {
			f.held, f.pausedAt = true, f.now()
		} else {
			delete(f.active, in.ReferenceID)
			delete(f.pending, in.ReferenceID)
		}
		if f.escalateAnswersLost > 0 {
			f.escalateAnswersLost--
			return activities.EscalateResult{}, errors.New("store: context deadline exceeded (the row was written)")
		}
		return activities.EscalateResult{EscalationID: int64(len(f.escalations)), Created: true}, nil
	})
	env.OnActivity(a.NotifyHuman, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(a.RecordDecision, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DecisionInput) error {
		f.mu.Lock()
		f.decisions = append(f.decisions, in)
		if in.Action == activities.DecisionResume || in.Action == activities.DecisionAbort {
			f.held = false
		}
		hook := f.whileRecordingDecision
		f.mu.Unlock()
		if hook != nil {
			hook(in)
		}
		return nil
	})
	env.OnActivity(a.LoadBatchJobs, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.LoadBatchJobsInput) ([]activities.BatchJob, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.pageLoads++
		var page []activities.BatchJob
		for i := in.From; i < min(in.From+in.Limit, in.Source.Jobs); i++ {
			j := batchJobs("src-", i+1)[i]
			page = append(page, activities.BatchJob{ReferenceID: j.ReferenceID, Video: j.Video, Audio: j.Audio})
		}
		return page, nil
	})
	env.OnActivity(a.EndJob, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.EndJobInput) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.ended = append(f.ended, in.WorkflowID)
		return nil
	})
	env.OnActivity(a.ReconcileJobs, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ReconcileJobsInput) ([]activities.WorkflowEnd, error) {
		ends := make([]activities.WorkflowEnd, len(in.WorkflowIDs))
		for i := range ends {
			ends[i] = activities.WorkflowEnd{Status: activities.WorkflowRunning}
		}
		return ends, nil
	})
	env.OnActivity(a.DescribeWorkflow, mock.Anything, mock.Anything).Return(activities.WorkflowEnd{Status: activities.WorkflowRunning}, nil)
	env.OnActivity(a.ActiveHolds, mock.Anything).Return(func(context.Context) ([]activities.HoldInfo, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var holds []activities.HoldInfo
		if f.held {
			holds = append(holds, activities.HoldInfo{Owner: "default-test-workflow-id", Reason: chamelaion.TypeQuotaExceeded})
		}
		if f.foreignHold != "" {
			holds = append(holds, activities.HoldInfo{Owner: f.foreignHold, Reason: chamelaion.TypeQuotaExceeded, HTTPStatus: 412})
		}
		return holds, nil
	})
	env.OnActivity(a.LoadBatchPage, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.LoadBatchPageInput) (activities.LoadBatchPageResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.pageLoads++
		from := in.From
		if in.Cursor.Checked() {
			from = in.Cursor.Read
		}
		end := min(from+in.Limit, in.Source.Jobs)
		res := activities.LoadBatchPageResult{Next: activities.SourceCursor{Read: end, Offset: int64(end), Line: end + 2, Size: 1}}
		for i := from; i < end; i++ {
			res.Jobs = append(res.Jobs, activities.BatchJob{ReferenceID: fmt.Sprintf("src-%04d", i), Video: "https://cdn.example.com/v.mp4?X-Amz-Signature=SIG", Audio: "https://cdn.example.com/a.wav"})
		}
		return res, nil
	})
	env.OnActivity(a.RecordNotSubmitted, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.NotSubmittedInput) (int, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, j := range in.Jobs {
			f.notSubmit = append(f.notSubmit, j.ReferenceID)
			delete(f.active, j.ReferenceID)
		}
		return len(in.Jobs), nil
	})
	return env
}

func (f *fakeAccount) total() int {
	n := 0
	for _, c := range f.accepted {
		n += c
	}
	return n
}

func batchJobs(prefix string, n int) []LipSyncInput {
	jobs := make([]LipSyncInput, n)
	for i := range jobs {
		jobs[i] = LipSyncInput{
			ReferenceID: fmt.Sprintf("%s%04d", prefix, i),
			Video:       "https://cdn.example.com/v.mp4?X-Amz-Signature=SIG",
			Audio:       "https://cdn.example.com/a.wav",
		}
	}
	return jobs
}

func runBatch(t *testing.T, env *testsuite.TestWorkflowEnvironment, in BatchInput) BatchResult {
	t.Helper()
	env.ExecuteWorkflow(BatchWorkflowName, in)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res BatchResult
	require.NoError(t, env.GetWorkflowResult(&res))
	return res
}

func TestBatchSlidingWindowNeverExceedsItsBound(t *testing.T) {
	f := &fakeAccount{}
	env := newBatchEnv(t, f)
	res := runBatch(t, env, BatchInput{BatchID: "window", Jobs: batchJobs("w-", 60), Concurrency: 7})
	require.Equal(t, 60, res.Completed)
	require.Empty(t, res.Outcomes)
	require.LessOrEqual(t, f.maxActive, 7, "jobs in flight at once")
	require.Equal(t, 7, f.maxActive, "the window is used in full")

	f = &fakeAccount{}
	env = newBatchEnv(t, f)
	res = runBatch(t, env, BatchInput{BatchID: "pending", Jobs: batchJobs("p-", 60), Concurrency: 20, MaxPending: 3})
	require.Equal(t, 60, res.Completed)
	require.LessOrEqual(t, f.maxPending, 3, "jobs started and not yet accepted at once")
	require.Equal(t, 3, f.maxPending)
	require.Len(t, f.accepted, 60)
	for ref, n := range f.accepted {
		require.Equal(t, 1, n, "%s submitted once", ref)
	}
}

func TestBatchPermanentFailureEscalatesWhileOthersComplete(t *testing.T) {
	f := &fakeAccount{}
	env := newBatchEnv(t, f)
	jobs := batchJobs("ok-", 18)
	jobs = append(jobs[:5], append(batchJobs("bad-", 2), jobs[5:]...)...)
	res := runBatch(t, env, BatchInput{BatchID: "mixed", Jobs: jobs, Concurrency: 4})
	require.Equal(t, 20, res.Total)
	require.Equal(t, 18, res.Completed)
	require.Equal(t, 2, res.Escalated)
	require.Len(t, res.Outcomes, 2)
	require.True(t, res.OutcomesListed)
	for _, o := range res.Outcomes {
		require.True(t, strings.HasPrefix(o.ReferenceID, "bad-"))
		require.Equal(t, OutcomeEscalated, o.Outcome)
		require.Equal(t, chamelaion.TypeBadRequest, o.Reason)
	}
	require.Len(t, f.escalations, 2, "one escalation per failed job, none for the batch")
	for _, e := range f.escalations {
		require.Equal(t, activities.KindFailure, e.Kind)
	}
}

// TestBatchQuotaExhaustedPausesOnceThenResumes: a 412 in the middle of a
// 1,000-job batch produces one account-level escalation, no submission
// until the answer, and after resume every job completes exactly once.
func TestBatchQuotaExhaustedPausesOnceThenResumes(t *testing.T) {
	f := &fakeAccount{quotaAfter: 300}
	env := newBatchEnv(t, f)
	var progressWhilePaused BatchProgress
	var resolveErr error
	callsAtPause := -1
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryBatchProgress)
		require.NoError(t, err)
		require.NoError(t, v.Get(&progressWhilePaused))
		f.mu.Lock()
		callsAtPause = f.apiCalls
		f.quotaFixed = true // the plan was upgraded
		f.mu.Unlock()
		env.UpdateWorkflow(UpdateBatchResolve, "resume-1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { resolveErr = err },
			OnAccept: func() {},
			OnComplete: func(_ any, err error) {
				if err != nil {
					resolveErr = err
				}
			},
		}, BatchDecision{Action: activities.DecisionResume, By: "ops", Note: "plan upgraded"})
	}, 6*time.Hour)
	res := runBatch(t, env, BatchInput{BatchID: "quota", Jobs: batchJobs("q-", 1000), Concurrency: 50, StartsPerRun: 2000})
	require.NoError(t, resolveErr)

	require.Equal(t, BatchPaused, progressWhilePaused.Status)
	require.NotNil(t, progressWhilePaused.Pause)
	require.Equal(t, chamelaion.TypeQuotaExceeded, progressWhilePaused.Pause.Reason)
	require.Greater(t, progressWhilePaused.Blocked, 0)
	require.Equal(t, 300, progressWhilePaused.Submitted)

	var account []activities.EscalateInput
	for _, e := range f.escalations {
		if e.Kind == activities.KindAccount {
			account = append(account, e)
		}
	}
	require.Len(t, f.escalations, 1, "one escalation in all")
	require.Len(t, account, 1)
	require.Equal(t, "quota", account[0].BatchID)
	require.Contains(t, account[0].Message, "starter batch-resolve quota resume|abort")
	require.Equal(t, []activities.DecisionInput{{WorkflowID: "default-test-workflow-id", Attempt: 1, Action: "resume", By: "ops", Note: "plan upgraded"}}, f.decisions)
	// Between the pause and the answer the API saw nothing: the calls at
	// the answer are the 300 accepted plus the 412s that caused the pause
	// (jobs already in flight, before the hold was recorded).
	require.LessOrEqual(t, callsAtPause, 300+50)
	require.Equal(t, 1000, res.Completed)
	require.Empty(t, res.Outcomes)
	require.Len(t, f.accepted, 1000)
	for ref, n := range f.accepted {
		require.Equal(t, 1, n, "%s submitted once", ref)
	}
}

func TestBatchAbortRecordsTheRestAsNotSubmitted(t *testing.T) {
	f := &fakeAccount{quotaAfter: 10}
	env := newBatchEnv(t, f)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateBatchResolve, "abort-1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { t.Errorf("abort refused: %v", err) }, OnAccept: func() {}, OnComplete: func(any, error) {},
		}, BatchDecision{Action: activities.DecisionAbort, By: "ops"})
	}, time.Hour)
	res := runBatch(t, env, BatchInput{BatchID: "abort", Jobs: batchJobs("a-", 40), Concurrency: 5})
	require.True(t, res.Aborted)
	require.Equal(t, 10, res.Completed)
	require.Equal(t, 30, res.NotSubmitted)
	require.Equal(t, 40, res.Completed+res.NotSubmitted, "every job accounted for")
	require.Len(t, f.notSubmit, 30)
	require.Len(t, f.escalations, 1)
}

func TestBatchResolveRefusedWhenNotPaused(t *testing.T) {
	f := &fakeAccount{}
	env := newBatchEnv(t, f)
	var rejected error
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateBatchResolve, "r", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { rejected = err }, OnAccept: func() {}, OnComplete: func(any, error) {},
		}, BatchDecision{Action: activities.DecisionResume})
	}, time.Second)
	runBatch(t, env, BatchInput{BatchID: "calm", Jobs: batchJobs("c-", 3), Concurrency: 3})
	require.ErrorContains(t, rejected, "is not paused")
}

// TestBatchContinueAsNewCarriesProgress: a run that reaches its start
// budget hands the jobs not yet started and the jobs in flight to the next
// run; the next run follows the jobs in flight by their signals and starts
// only the rest, so no job is lost or repeated.
func TestBatchContinueAsNewCarriesProgress(t *testing.T) {
	f := &fakeAccount{}
	env := newBatchEnv(t, f)
	jobs := batchJobs("can-", 12)
	env.ExecuteWorkflow(BatchWorkflowName, BatchInput{BatchID: "can", Jobs: jobs, Concurrency: 3, StartsPerRun: 5})
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, err, &can)
	var next BatchInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(t, next.Resume)
	require.Equal(t, 12, next.Resume.Total)
	started := 12 - len(next.Jobs)
	require.Equal(t, 5, started, "the run started its budget")
	require.Equal(t, jobs[5:], next.Jobs)
	require.Equal(t, started, next.Resume.Completed+len(next.Resume.InFlight)+len(next.Resume.Outcomes))

	// The next run: the jobs still in flight report by signal.
	f2 := &fakeAccount{}
	env2 := newBatchEnv(t, f2)
	for i, j := range next.Resume.InFlight {
		ref := j.ReferenceID
		env2.RegisterDelayedCallback(func() {
			env2.SignalWorkflow(SignalBatchJob, BatchJobEvent{ReferenceID: ref, Event: EventDone, Outcome: OutcomeCompleted})
		}, time.Duration(i+1)*time.Minute)
	}
	next.StartsPerRun = 100
	res := runBatch(t, env2, next)
	require.Equal(t, 12, res.Completed)
	require.Equal(t, 2, res.Runs)
	require.Len(t, f2.accepted, 7, "the second run starts only the jobs not yet started")
	for _, j := range jobs[5:] {
		require.Equal(t, 1, f2.accepted[j.ReferenceID])
	}
}

func TestBatchInputRefusedBeforeAnySideEffect(t *testing.T) {
	for name, tc := range map[string]struct {
		in   BatchInput
		want string
	}{
		"no id":     {BatchInput{Jobs: batchJobs("x-", 1)}, "batch id is empty"},
		"duplicate": {BatchInput{BatchID: "b", Jobs: append(batchJobs("x-", 2), batchJobs("x-", 1)...)}, `job 3: duplicate reference_id "x-0000" (first in job 1)`},
		"no ref":    {BatchInput{BatchID: "b", Jobs: []LipSyncInput{{Video: "https://v", Audio: "https://a"}}}, "job 1: reference_id is empty"},
		"both":      {BatchInput{BatchID: "b", Jobs: batchJobs("x-", 1), Source: testSource(3)}, "either jobs or a source file"},
		"relative":  {BatchInput{BatchID: "b", Source: &activities.BatchSource{Path: "jobs.csv", SHA256: strings.Repeat("a", 64), Jobs: 1}}, "must be an absolute path"},
		"bad video": {BatchInput{BatchID: "b", Jobs: []LipSyncInput{{ReferenceID: "r", Video: "ftp://v", Audio: "https://a"}}}, "job 1 (r): video"},
	} {
		t.Run(name, func(t *testing.T) {
			f := &fakeAccount{}
			env := newBatchEnv(t, f)
			env.ExecuteWorkflow(BatchWorkflowName, tc.in)
			require.ErrorContains(t, env.GetWorkflowError(), tc.want)
			require.Zero(t, f.apiCalls)
		})
	}
}

func testSource(jobs int) *activities.BatchSource {
	return &activities.BatchSource{Path: "/shared/catalogue.csv", SHA256: strings.Repeat("ab", 32), Jobs: jobs}
}

// TestBatchFromASourceFileReadsItPageByPage: a batch whose jobs the
// workers read from a file runs every job once, reading 500 at a time.
func TestBatchFromASourceFileReadsItPageByPage(t *testing.T) {
	f := &fakeAccount{}
	env := newBatchEnv(t, f)
	res := runBatch(t, env, BatchInput{BatchID: "src", Source: testSource(1200), Concurrency: 100, StartsPerRun: 5000})
	require.Equal(t, 1200, res.Total)
	require.Equal(t, 1200, res.Completed)
	require.Len(t, f.accepted, 1200)
	require.Equal(t, 3, f.pageLoads)
}

// TestBatchFromASourceContinuesAsNewMidPage: the next run gets the rest of
// the page it was in and reads on from where the last run stopped.
func TestBatchFromASourceContinuesAsNewMidPage(t *testing.T) {
	f := &fakeAccount{}
	env := newBatchEnv(t, f)
	env.ExecuteWorkflow(BatchWorkflowName, BatchInput{BatchID: "src", Source: testSource(1200), Concurrency: 5, StartsPerRun: 700})
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
	var next BatchInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.Equal(t, 1000, next.Resume.Loaded)
	require.Len(t, next.Jobs, 300)
	require.Equal(t, "src-0700", next.Jobs[0].ReferenceID)
	require.Equal(t, 700, next.Resume.Completed+len(next.Resume.InFlight))
}

// TestBatchFromASourceAbortRecordsEveryUnreadJob: an abort records the
// jobs not yet read from the file as not submitted too.
func TestBatchFromASourceAbortRecordsEveryUnreadJob(t *testing.T) {
	f := &fakeAccount{quotaAfter: 10}
	env := newBatchEnv(t, f)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateBatchResolve, "abort-1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { t.Errorf("abort refused: %v", err) }, OnAccept: func() {}, OnComplete: func(any, error) {},
		}, BatchDecision{Action: activities.DecisionAbort, By: "ops"})
	}, time.Hour)
	res := runBatch(t, env, BatchInput{BatchID: "src-abort", Source: testSource(1100), Concurrency: 5, StartsPerRun: 5000})
	require.Equal(t, 10, res.Completed)
	require.Equal(t, 1090, res.NotSubmitted)
	require.Len(t, f.notSubmit, 1090)
	require.Len(t, res.Outcomes, MaxListedOutcomes, "the result lists a bounded number of failures")
	require.False(t, res.OutcomesListed)
}

// TestBatchPausedBehindAnotherBatchsHoldResumesByItself: a batch whose jobs
// are held back by another batch's account hold raises no escalation or
// hold of its own and resumes by itself once that hold is released (found
// by review: with a hold each, answering one batch paused the other again,
// and so on, each pause escalated and notified anew).
func TestBatchPausedBehindAnotherBatchsHoldResumesByItself(t *testing.T) {
	f := &fakeAccount{foreignHold: "batch-other"}
	env := newBatchEnv(t, f)
	var during BatchProgress
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryBatchProgress)
		require.NoError(t, err)
		require.NoError(t, v.Get(&during))
		f.mu.Lock()
		f.foreignHold = "" // the other batch was answered
		f.mu.Unlock()
	}, 2*time.Hour)
	res := runBatch(t, env, BatchInput{BatchID: "behind", Jobs: batchJobs("bh-", 12), Concurrency: 4, MaxPending: 4})
	require.Equal(t, BatchPaused, during.Status)
	require.Equal(t, "batch-other", during.Pause.HeldBy)
	require.Equal(t, 12, res.Completed)
	require.Empty(t, f.escalations, "no escalation of its own")
	require.Len(t, f.decisions, 1)
	require.Equal(t, activities.DecisionInput{WorkflowID: "default-test-workflow-id", Attempt: 1, Action: "resume", By: "worker", Note: "the account hold of batch-other was released"}, f.decisions[0])
	for ref, n := range f.accepted {
		require.Equal(t, 1, n, ref)
	}
}
