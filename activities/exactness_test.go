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

// Issue 13: one job, exactly the wait advised, no second vendor job on any
// path, and rows that tell the truth. These run the real workflow and
// activities against PostgreSQL and the emulator on the time-skipping
// environment.

// flakyAPI is the emulator's API with an outage of our making: while down,
// every generation and list call answers 503. loseNext makes the next
// generation create its job and then report a timeout, as an answer lost
// after the request landed; the API goes down right after.
type flakyAPI struct {
	activities.API
	mu       sync.Mutex
	down     bool
	loseNext bool
}

func (f *flakyAPI) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

var unavailable = &chamelaion.APIError{Endpoint: "POST /v1/lipsync/generate", StatusCode: 503, Message: "service unavailable"}

func (f *flakyAPI) Generate(ctx context.Context, req chamelaion.GenerateRequest) (chamelaion.GenerateResponse, error) {
	f.mu.Lock()
	down, lose := f.down, f.loseNext
	f.loseNext = false
	f.mu.Unlock()
	if down {
		return chamelaion.GenerateResponse{}, unavailable
	}
	resp, err := f.API.Generate(ctx, req)
	if lose && err == nil {
		f.setDown(true)
		return chamelaion.GenerateResponse{}, &chamelaion.TransportError{Endpoint: "POST /v1/lipsync/generate", Timeout: true, Reason: "no answer before the request timeout"}
	}
	return resp, err
}

func (f *flakyAPI) ListRequests(ctx context.Context, opts chamelaion.ListOptions) (chamelaion.RequestPage, error) {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return chamelaion.RequestPage{}, unavailable
	}
	return f.API.ListRequests(ctx, opts)
}

// answer sends a human's decision after delay (workflow time) and reports
// whether the job accepted it.
func (f *fixture) answer(delay time.Duration, d workflows.Decision, before func()) *error {
	refused := new(error)
	*refused = errors.New("never sent")
	f.env.RegisterDelayedCallback(func() {
		if before != nil {
			before()
		}
		f.env.UpdateWorkflow(workflows.UpdateResolve, "answer-"+d.Action, &testsuite.TestUpdateCallback{
			OnAccept:   func() { *refused = nil },
			OnReject:   func(err error) { *refused = err },
			OnComplete: func(any, error) {},
		}, d)
	}, delay)
	return refused
}

// TestARetryAfterRetriesRanOutAdoptsTheJobTheLastRequestCreated: the
// submission's answer is lost after its request landed, and the API is
// down until the retries run out, so the job is escalated. A human's retry
// then schedules Submit afresh: it must look for the request the lost
// answer had created, and adopt it, not pay for a second job.
func TestARetryAfterRetriesRanOutAdoptsTheJobTheLastRequestCreated(t *testing.T) {
	f := newFixture(t)
	api := &flakyAPI{API: f.acts.API, loseNext: true}
	f.acts.API = api
	f.wfs.Defaults.RetryMaxElapsed = 2 * time.Second
	f.wfs.Defaults.RetryMax = 5 * time.Second
	f.wfs.Defaults.DecisionWait = 72 * time.Hour
	refused := f.answer(48*time.Hour, workflows.Decision{Action: "retry", By: "ops"}, func() { api.setDown(false) })
	res, err := f.run("exhausted")
	require.NoError(t, err)
	require.NoError(t, *refused)
	require.Equal(t, "completed", res.Status)
	require.True(t, res.Adopted, "the retry adopted the request the lost answer created")
	require.Equal(t, 1, f.emu.Stats().JobsByReferenceID["exhausted"], "exactly one vendor job")
}

// flakyStore is the store with a PostgreSQL outage of our making: the
// updates that match fail from the first one for a while (workflow time).
type flakyStore struct {
	activities.Store
	now   func() time.Time
	match func(store.JobUpdate) bool
	lasts time.Duration
	mu    sync.Mutex
	until time.Time
	fails int
}

func (s *flakyStore) UpdateJob(ctx context.Context, u store.JobUpdate) (bool, error) {
	s.mu.Lock()
	if s.match(u) && s.until.IsZero() {
		s.until = s.now().Add(s.lasts)
	}
	down := s.now().Before(s.until)
	if down {
		s.fails++
	}
	s.mu.Unlock()
	if down {
		return false, errors.New("store: update job: dial tcp 127.0.0.1:5432: connect: connection refused")
	}
	return s.Store.UpdateJob(ctx, u)
}

// TestADatabaseOutageNeverSpendsTheAPIRetryBudget: PostgreSQL is down for
// 2 minutes (the API's retry budget is 20 s) from the moment a submission,
// or a status, is to be recorded. The vendor's answers are good: the job
// waits for the database and completes, with one vendor job and no
// escalation; its row ends completed.
func TestADatabaseOutageNeverSpendsTheAPIRetryBudget(t *testing.T) {
	for _, when := range []store.Status{store.StatusSubmitted, store.StatusQueued} {
		t.Run(string(when), func(t *testing.T) {
			f := newFixture(t)
			f.wfs.Defaults.RetryMaxElapsed = 20 * time.Second
			// (The test environment retries an activity 10 times at most:
			// the store's backoff covers 4 minutes.)
			fs := &flakyStore{Store: f.acts.Store, now: func() time.Time { return f.currentEnv().Now() }, lasts: 2 * time.Minute,
				match: func(u store.JobUpdate) bool { return u.Status == when }}
			f.acts.Store = fs
			ref := "db-" + string(when)
			res, err := f.run(ref)
			require.NoError(t, err)
			require.Equal(t, "completed", res.Status)
			require.Positive(t, fs.fails, "the outage happened")
			require.Equal(t, 1, f.emu.Stats().JobsByReferenceID[ref], "exactly one vendor job")
			escs, err := f.store.ListEscalations(context.Background(), workflowID)
			require.NoError(t, err)
			require.Empty(t, escs, "a database outage is not the vendor's failure")
			job, err := f.store.GetJob(context.Background(), workflowID)
			require.NoError(t, err)
			require.Equal(t, store.StatusCompleted, job.Status)
			require.Equal(t, res.RequestID, *job.RequestID)
		})
	}
}

// TestAReRunReferenceIDGetsRowsOfItsOwn: a reference_id whose job ended
// failed runs again (a later batch re-runs it), twice. The second
// execution's escalation is a row of its own and the human's answer is
// recorded on it; the third completes and its row says so, with its
// output and without the earlier attempts' error; the earlier executions'
// events and escalations stay.
func TestAReRunReferenceIDGetsRowsOfItsOwn(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	require.NoError(t, f.emu.SetScenario(emulator.Scenario{ReferenceID: "rerun", Outcome: "failed", ErrorMessage: "video URL is not accessible"}))
	_, err := f.run("rerun")
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, workflows.ReasonJobFailed, appErr.Type())

	// Second execution: fails again, a human abandons it.
	f.wfs.Defaults.DecisionWait = time.Hour
	f.newEnv()
	refused := f.answer(30*time.Minute, workflows.Decision{Action: "abandon", By: "ops", Note: "second try"}, nil)
	_, err = f.run("rerun")
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, workflows.ReasonAbandoned, appErr.Type())
	require.NoError(t, *refused)
	escs, err := f.store.ListEscalations(ctx, workflowID)
	require.NoError(t, err)
	require.Len(t, escs, 2, "the second execution's escalation is a row of its own")
	require.Equal(t, "abandon", *escs[1].Resolution, "the answer is recorded on the second execution's escalation")
	require.NotEqual(t, "abandon", deref(escs[0].Resolution), "not on the first's")

	// Third execution: completes.
	f.emu.ClearScenarios()
	f.wfs.Defaults.DecisionWait = 0
	f.newEnv()
	res, err := f.run("rerun")
	require.NoError(t, err)
	job, err := f.store.GetJob(ctx, workflowID)
	require.NoError(t, err)
	require.Equal(t, store.StatusCompleted, job.Status, "the row tells the re-run's truth")
	require.Equal(t, res.OutputURL, deref(job.OutputURL))
	require.Equal(t, res.RequestID, deref(job.RequestID))
	require.Nil(t, job.ErrorType, "no earlier attempt's error on the completed row")
	require.Nil(t, job.ErrorMessage)
	events, err := f.store.ListJobEvents(ctx, workflowID)
	require.NoError(t, err)
	var failed, completed, abandoned int
	for _, e := range events {
		switch e.Status {
		case store.StatusFailed:
			failed++
		case store.StatusCompleted:
			completed++
		case store.StatusAbandoned:
			abandoned++
		}
	}
	require.Equal(t, []int{2, 1, 1}, []int{failed, abandoned, completed}, "every execution's history stays readable")
	require.Equal(t, 3, f.emu.Stats().JobsByReferenceID["rerun"], "one vendor job per execution")
}

// failures lists the job's escalations that are not stuck notices.
func failures(t *testing.T, f *fixture) []store.Escalation {
	escs, err := f.store.ListEscalations(context.Background(), workflowID)
	require.NoError(t, err)
	var out []store.Escalation
	for _, e := range escs {
		if e.Kind != activities.KindStuck {
			out = append(out, e)
		}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestARejectedKeyWhilePollingIsAnsweredByResume: the vendor rejects the
// key on a status check (401). That is the account's failure, not the
// job's: it is escalated as such (kind account) and holds the account;
// once the key works again a human answers resume, and the job polls the
// same request on to its end. Nothing is submitted again.
func TestARejectedKeyWhilePollingIsAnsweredByResume(t *testing.T) {
	f := newFixture(t)
	f.wfs.Defaults.DecisionWait = time.Hour
	require.NoError(t, f.emu.SetScenario(emulator.Scenario{ReferenceID: "key", StatusFaults: []emulator.Fault{{Status: 401, Body: `{"error":"invalid token"}`}}}))
	refused := f.answer(10*time.Minute, workflows.Decision{Action: "resume", By: "ops", Note: "key rotated back"}, nil)
	res, err := f.run("key")
	require.NoError(t, err)
	require.NoError(t, *refused)
	require.Equal(t, "completed", res.Status)
	require.Equal(t, 1, f.emu.Stats().JobsByReferenceID["key"], "nothing submitted again")
	ctx := context.Background()
	escs, err := f.store.ListEscalations(ctx, workflowID)
	require.NoError(t, err)
	require.Len(t, escs, 1)
	require.Equal(t, activities.KindAccount, escs[0].Kind)
	require.Equal(t, chamelaion.TypeUnauthorized, escs[0].Reason)
	require.Equal(t, "resume", deref(escs[0].Resolution))
	holds, err := f.store.AccountHolds(ctx, "")
	require.NoError(t, err)
	require.Empty(t, holds, "the answer released the hold")
	job, err := f.store.GetJob(ctx, workflowID)
	require.NoError(t, err)
	require.Equal(t, store.StatusCompleted, job.Status)
	require.Equal(t, res.RequestID, deref(job.RequestID))
}

// TestADeadlineIsAnsweredByResume: a job queued past its deadline is
// escalated; resume polls the same request with a fresh deadline, where
// retry would have paid for a second job.
func TestADeadlineIsAnsweredByResume(t *testing.T) {
	f := newFixture(t)
	f.wfs.Defaults.DecisionWait = 3 * time.Hour
	require.NoError(t, f.emu.SetScenario(emulator.Scenario{ReferenceID: "late", QueuedFor: emulator.D(2 * time.Hour)}))
	refused := f.answer(90*time.Minute, workflows.Decision{Action: "resume", By: "ops"}, nil)
	f.env.ExecuteWorkflow(workflows.WorkflowName, workflows.LipSyncInput{
		Video: "https://cdn.example.com/late.mp4", Audio: "https://cdn.example.com/late.wav", ReferenceID: "late", Deadline: time.Hour,
	})
	require.True(t, f.env.IsWorkflowCompleted())
	require.NoError(t, f.env.GetWorkflowError())
	require.NoError(t, *refused)
	require.Equal(t, 1, f.emu.Stats().JobsByReferenceID["late"], "the same request, polled on")
	escs := failures(t, f)
	require.Len(t, escs, 1)
	require.Equal(t, workflows.ReasonDeadlineExceeded, escs[0].Reason)
	require.Equal(t, "resume", deref(escs[0].Resolution))
}
