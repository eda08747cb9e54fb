package activities_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/emulator"
	"github.com/chamelaion-lipsync/worker/store"
)

// emulatorServer serves an emulator that knows testKey, and returns it
// with its base URL.
func emulatorServer(t *testing.T, cfg emulator.Config) (*emulator.Emulator, string) {
	t.Helper()
	cfg.APIKeys = map[string]string{testKey: "test"}
	emu, err := emulator.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	return emu, srv.URL
}

// apiClient is an API client of the emulator at url.
func apiClient(t *testing.T, url string) *chamelaion.Client {
	t.Helper()
	api, err := chamelaion.New(chamelaion.Options{BaseURL: url + "/api", APIKey: testKey, Timeout: 2 * time.Second})
	require.NoError(t, err)
	return api
}

// TestSubmissionsSentLateKeepTheRollingMinute: the submit task queue paced
// eight submissions over time, but they reach the point of sending
// together (their activities were held up after dispatch: a history
// service restarting under them, a slow database, a settle wait), on two
// workers. The account allows 6 generation requests per rolling minute.
// Six are sent; the other two send nothing and are retried when a slot
// frees, the wait as their next retry delay, spending none of the retry
// budget. The vendor answers no 429 (before: all eight were sent and two
// answered 429, a rolling minute over the budget; seen once in CI after
// the cluster's history service was killed and restarted mid-batch).
func TestSubmissionsSentLateKeepTheRollingMinute(t *testing.T) {
	ctx := context.Background()
	st := migratedStore(t)
	emu, url := emulatorServer(t, emulator.Config{RateLimitPerMinute: 6})
	workers := make([]*activities.Activities, 2)
	for i := range workers {
		workers[i] = &activities.Activities{API: apiClient(t, url), Store: st, Logger: quiet, SendBudget: 6, SendWaitMax: time.Second}
	}

	const n = 8
	for i := range n {
		require.NoError(t, st.RecordJob(ctx, store.NewJob{WorkflowID: fmt.Sprint("wf-late-", i), ReferenceID: fmt.Sprint("late-", i), Attempt: 1}))
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var suite testsuite.WorkflowTestSuite
			suite.SetLogger(tlog.NewStructuredLogger(quiet))
			env := suite.NewTestActivityEnvironment()
			acts := workers[i%2]
			env.RegisterActivity(acts)
			_, errs[i] = env.ExecuteActivity(acts.Submit, activities.SubmitInput{
				WorkflowID: fmt.Sprint("wf-late-", i), ReferenceID: fmt.Sprint("late-", i), Attempt: 1, RetryBudget: time.Minute,
				Video: "https://cdn.example.com/v.mp4", Audio: "https://cdn.example.com/a.wav",
			})
		})
	}
	wg.Wait()

	stats := emu.Stats()
	require.Zero(t, stats.RateLimited, "requests answered 429")
	require.Equal(t, 6, stats.JobsCreated)
	var refused int
	for i, err := range errs {
		if err == nil {
			continue
		}
		refused++
		require.Equal(t, activities.TypeSendBudget, errorType(err), "%v", err)
		var appErr *temporal.ApplicationError
		require.True(t, errors.As(err, &appErr))
		require.False(t, appErr.NonRetryable())
		require.InDelta(t, time.Minute.Seconds(), appErr.NextRetryDelay().Seconds(), 10, "retried when the oldest send leaves the minute")
		var d activities.ErrorDetails
		require.NoError(t, appErr.Details(&d))
		require.False(t, d.MayHaveCreated, "nothing was sent")
		require.Zero(t, stats.JobsByReferenceID[fmt.Sprint("late-", i)])
	}
	require.Equal(t, 2, refused)
}

// TestWaitingForASendSlotSpendsNoRetryBudget: a submission whose first
// attempt began 31 minutes ago spent 30 of them waiting, nothing sent, for
// a slot in the account's rolling minute (its attempts refused with
// SendBudgetFull, waiting in the submit queue between them). Its first
// real request now meets a 503: one minute of a 30-minute retry budget is
// spent, so it is retried (before: RetriesExhausted at once, the worker's
// own pacing counted as the API's failure).
func TestWaitingForASendSlotSpendsNoRetryBudget(t *testing.T) {
	ctx := context.Background()
	st := migratedStore(t)
	emu, url := emulatorServer(t, emulator.Config{})
	require.NoError(t, emu.SetScenario(emulator.Scenario{ReferenceID: "paced", SubmitFaults: []emulator.Fault{{Status: 503}}}))
	acts := &activities.Activities{API: apiClient(t, url), Store: st, Logger: quiet, SendBudget: 60}
	require.NoError(t, st.RecordJob(ctx, store.NewJob{WorkflowID: "wf-paced", ReferenceID: "paced", Attempt: 1}))

	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(quiet))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	now := time.Now()
	env.SetHeartbeatDetails(map[string]any{
		"FirstAttemptAt": now.Add(-31 * time.Minute), "PacedSince": now.Add(-30 * time.Minute),
		"LastType": activities.TypeSendBudget, "LastMessage": "the account's rolling minute is full",
	})
	_, err := env.ExecuteActivity(acts.Submit, activities.SubmitInput{
		WorkflowID: "wf-paced", ReferenceID: "paced", Attempt: 1, RetryBudget: 30 * time.Minute,
		Video: "https://cdn.example.com/v.mp4", Audio: "https://cdn.example.com/a.wav",
	})
	require.Equal(t, chamelaion.TypeUnavailable, errorType(err), "%v", err)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	require.False(t, appErr.NonRetryable())
}
