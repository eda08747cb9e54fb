package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

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
