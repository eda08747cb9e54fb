package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/chamelaion"
)

// TestCancelledJobEndsItsRow: a job cancelled while it polls ends its row
// (status cancelled) on a disconnected context before its workflow closes;
// before, the row stayed "queued" for good. (A batch job also tells its
// batch, on the same context; Temporal's test environment completes a
// cancelled child at once, so that part is proven on real parts, in
// integration/batch_test.go.)
func TestCancelledJobEndsItsRow(t *testing.T) {
	h := newHarness(t, testSettings())
	h.submitReturns()
	h.statusReturns(sequence(chamelaion.StatusQueued))
	var ended []activities.EndJobInput
	h.env.OnActivity(a.EndJob, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.EndJobInput) error {
		ended = append(ended, in)
		return nil
	})
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 10*time.Minute)
	_, err := h.run(testInput())
	require.True(t, temporal.IsCanceledError(err), "%v", err)
	require.Equal(t, []activities.EndJobInput{{WorkflowID: "default-test-workflow-id", Reason: "Canceled", Message: "the job's workflow was cancelled"}}, ended)
}

// TestHeldBackJobOfAnEndedBatchIsNotSubmitted: a job held back on an
// account-wide failure whose batch ends without answering (terminated by an
// operator) is recorded as not submitted within ten poll intervals, instead
// of waiting for an answer that can never come.
func TestHeldBackJobOfAnEndedBatchIsNotSubmitted(t *testing.T) {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestWorkflowEnvironment()
	wfs := &Workflows{Defaults: testSettings()}
	env.RegisterWorkflowWithOptions(wfs.LipSync, workflow.RegisterOptions{Name: WorkflowName})
	parent := func(ctx workflow.Context) error {
		in := testInput()
		in.BatchID = "gone"
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: "lipsync-job-1"})
		return workflow.ExecuteChildWorkflow(cctx, WorkflowName, in).Get(ctx, nil)
	}
	env.RegisterWorkflowWithOptions(parent, workflow.RegisterOptions{Name: "parent"})
	env.RegisterActivity(&activities.Activities{})
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "batch-gone"})
	env.OnActivity(a.RecordJob, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(a.Submit, mock.Anything, mock.Anything).Return(activities.SubmitResult{}, apiErr(412, "token limit reached", 0))
	var asked []string
	env.OnActivity(a.DescribeWorkflow, mock.Anything, mock.Anything).Return(func(_ context.Context, id string) (activities.WorkflowEnd, error) {
		asked = append(asked, id)
		if len(asked) < 3 {
			return activities.WorkflowEnd{Status: activities.WorkflowRunning}, nil
		}
		return activities.WorkflowEnd{Status: activities.WorkflowTerminated}, nil
	})
	var notSubmitted []activities.NotSubmittedInput
	env.OnActivity(a.RecordNotSubmitted, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.NotSubmittedInput) (int, error) {
		notSubmitted = append(notSubmitted, in)
		return 1, nil
	})
	env.OnSignalExternalWorkflow(mock.Anything, "batch-gone", mock.Anything, mock.Anything, mock.Anything).Return(errors.New("workflow not found"))
	start := env.Now()
	env.ExecuteWorkflow("parent")
	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, ReasonNotSubmitted, appErr.Type())
	require.Contains(t, appErr.Message(), "its batch ended (terminated) while the job was held back")
	require.Equal(t, []string{"batch-gone", "batch-gone", "batch-gone"}, asked)
	require.Len(t, notSubmitted, 1)
	require.Less(t, env.Now().Sub(start), 71*time.Minute, "three checks, after 10, 20 and 40 minutes")
}

// TestBatchMessagesAreBounded: every message a batch keeps is cut to a
// bound (never inside a UTF-8 sequence), and an answer's name is bounded
// like its note, so 1,000 listed outcomes can never outgrow a payload
// (before, a megabyte error message or a long --by was kept whole).
func TestBatchMessagesAreBounded(t *testing.T) {
	long := strings.Repeat("é", 400_000)
	got := capMessage(long)
	require.LessOrEqual(t, len(got), maxOutcomeMessage+len("…"))
	require.True(t, utf8.ValidString(got))
	require.Equal(t, "short", capMessage("short"))
	require.ErrorContains(t, ValidateBatchDecision(BatchDecision{Action: "resume", By: strings.Repeat("x", MaxDecisionBy+1)}), "by is 201 bytes long")
	require.NoError(t, ValidateBatchDecision(BatchDecision{Action: "abort", By: strings.Repeat("x", MaxDecisionBy)}))

	b := &batch{}
	for i := range MaxListedOutcomes + 50 {
		b.record(JobOutcome{ReferenceID: fmt.Sprintf("%0200d", i), Outcome: OutcomeEscalated, Message: long})
	}
	raw, err := json.Marshal(b.result())
	require.NoError(t, err)
	require.Less(t, len(raw), 600_000, "a result listing 1,000 failures with megabyte messages")
	require.Equal(t, MaxListedOutcomes+50, b.state.Escalated)
}
