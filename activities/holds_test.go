package activities_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/store"
)

// fakeWorkflows answers WorkflowEnd from a map (a missing id runs).
type fakeWorkflows struct {
	mu    sync.Mutex
	ended map[string]activities.WorkflowEnd
	err   error
}

func (f *fakeWorkflows) WorkflowEnd(_ context.Context, id string) (activities.WorkflowEnd, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return activities.WorkflowEnd{}, f.err
	}
	if e, ok := f.ended[id]; ok {
		return e, nil
	}
	return activities.WorkflowEnd{Status: activities.WorkflowRunning}, nil
}

func (f *fakeWorkflows) end(id, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended[id] = activities.WorkflowEnd{Status: status}
}

// TestAHoldEndsWithItsOwner: a batch paused on a 412 holds every
// submission; its resume releases its own hold only; and once the batch
// that raised a hold is terminated, the next submission releases the hold
// instead of failing for good (before owners, a terminated batch's hold
// stopped every submission of every worker until someone deleted the row).
func TestAHoldEndsWithItsOwner(t *testing.T) {
	f := newFixture(t)
	wfs := &fakeWorkflows{ended: map[string]activities.WorkflowEnd{}}
	f.acts.Workflows = wfs
	ctx := context.Background()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(quiet))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	escalateAccount := func(batch string) {
		t.Helper()
		_, err := env.ExecuteActivity(f.acts.Escalate, activities.EscalateInput{
			WorkflowID: "batch-" + batch, ReferenceID: batch + "-1", Attempt: 1, Kind: activities.KindAccount,
			Reason: chamelaion.TypeQuotaExceeded, HTTPStatus: 412, Message: "token limit reached", BatchID: batch,
		})
		require.NoError(t, err)
	}
	submit := func(ref string) error {
		t.Helper()
		require.NoError(t, f.acts.RecordJob(ctx, activities.RecordJobInput{WorkflowID: "lipsync-" + ref, ReferenceID: ref, Video: "https://v/x.mp4", Audio: "https://a/y.wav"}))
		_, err := env.ExecuteActivity(f.acts.Submit, activities.SubmitInput{
			WorkflowID: "lipsync-" + ref, ReferenceID: ref, Attempt: 1, Video: "https://v/x.mp4", Audio: "https://a/y.wav",
		})
		return err
	}
	held := func(err error) bool {
		var appErr *temporal.ApplicationError
		return errors.As(err, &appErr) && appErr.Type() == chamelaion.TypeQuotaExceeded && appErr.NonRetryable()
	}

	escalateAccount("a")
	escalateAccount("b")
	require.True(t, held(submit("j1")), "held while batch a waits")

	_, err := env.ExecuteActivity(f.acts.RecordDecision, activities.DecisionInput{WorkflowID: "batch-a", Attempt: 1, Action: activities.DecisionResume, By: "ops"})
	require.NoError(t, err)
	err = submit("j2")
	require.True(t, held(err), "a's resume leaves b's hold standing: %v", err)
	require.Contains(t, err.Error(), "batch-b")

	wfs.err = errors.New("frontend unreachable")
	require.True(t, held(submit("j3")), "when Temporal cannot say, the hold stands")
	wfs.err = nil

	wfs.end("batch-b", activities.WorkflowTerminated)
	require.NoError(t, submit("j4"), "b was terminated: its hold goes with it")
	holds, err := f.store.AccountHolds(ctx, "")
	require.NoError(t, err)
	require.Empty(t, holds)
	require.Equal(t, 1, f.emu.Stats().JobsByReferenceID["j4"])
	require.Zero(t, f.emu.Stats().JobsByReferenceID["j1"]+f.emu.Stats().JobsByReferenceID["j2"]+f.emu.Stats().JobsByReferenceID["j3"])
	job, err := f.store.GetJob(ctx, "lipsync-j4")
	require.NoError(t, err)
	require.Equal(t, store.StatusSubmitted, job.Status)
}
