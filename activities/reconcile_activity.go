package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/chamelaion-lipsync/worker/store"
)

// ReconcileJobsInput names jobs of a batch that it has not heard from for
// a while.
type ReconcileJobsInput struct {
	BatchID     string
	WorkflowIDs []string
}

// ReconcileJobs tells how each job's workflow stands, in the order asked.
// A job whose workflow was cancelled, terminated or timed out without
// ending its row gets its row ended (status cancelled), so that no row
// stays in flight after its workflow has ended.
func (a *Activities) ReconcileJobs(ctx context.Context, in ReconcileJobsInput) ([]WorkflowEnd, error) {
	if a.Workflows == nil {
		return nil, temporal.NewNonRetryableApplicationError("reconcile jobs: the worker cannot ask Temporal about workflows", TypeInvalidInput, nil)
	}
	ends := make([]WorkflowEnd, len(in.WorkflowIDs))
	for i, id := range in.WorkflowIDs {
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, i)
		}
		end, err := a.Workflows.WorkflowEnd(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("reconcile jobs: %w", err)
		}
		ends[i] = end
		reason := map[string]string{WorkflowCanceled: "Canceled", WorkflowTerminated: "Terminated", WorkflowTimedOut: "TimedOut"}[end.Status]
		if reason == "" {
			continue
		}
		wrote, err := a.Store.MarkJobEnded(ctx, id, store.StatusCancelled, reason, fmt.Sprintf("the job's workflow was %s before the job ended", end.Status))
		if err != nil {
			return nil, storeError("end the row of a job that ended without a word", err)
		}
		if wrote {
			a.metrics().JobFinished("cancelled", 0)
			a.logger().Warn("job ended without ending its row; row ended", "workflow_id", id, "batch_id", in.BatchID, "status", end.Status)
		}
	}
	return ends, nil
}

// EndJobInput ends the row of a job whose workflow is being cancelled.
type EndJobInput struct {
	WorkflowID string
	// Reason is the error type recorded (Canceled).
	Reason  string
	Message string
}

// EndJob moves a job's row, if still in flight, to status cancelled.
func (a *Activities) EndJob(ctx context.Context, in EndJobInput) error {
	wrote, err := a.Store.MarkJobEnded(ctx, in.WorkflowID, store.StatusCancelled, in.Reason, in.Message)
	if err != nil {
		return storeError("end job", err)
	}
	if wrote {
		a.metrics().JobFinished("cancelled", 0)
	}
	return nil
}
