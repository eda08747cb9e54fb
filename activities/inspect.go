package activities

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// WorkflowInspector tells how a workflow's latest run stands.
type WorkflowInspector interface {
	WorkflowEnd(ctx context.Context, workflowID string) (WorkflowEnd, error)
}

// Workflow statuses, as WorkflowEnd reports them.
const (
	WorkflowRunning    = "running"
	WorkflowCompleted  = "completed"
	WorkflowFailed     = "failed"
	WorkflowCanceled   = "canceled"
	WorkflowTerminated = "terminated"
	WorkflowTimedOut   = "timed_out"
	// WorkflowNotFound: Temporal has no such workflow (never started, or
	// past the namespace's retention).
	WorkflowNotFound = "not_found"
)

// WorkflowEnd is how a workflow's latest run stands.
type WorkflowEnd struct {
	// Status is one of the Workflow* statuses.
	Status string
	// FailureType and FailureMessage are, for a failed workflow, its
	// ApplicationError's type and message.
	FailureType    string `json:",omitempty"`
	FailureMessage string `json:",omitempty"`
}

// Running says whether the workflow still runs.
func (e WorkflowEnd) Running() bool { return e.Status == WorkflowRunning }

// TemporalInspector answers from a Temporal client.
type TemporalInspector struct {
	Client client.Client
}

// WorkflowEnd describes the workflow's latest run and, for a failed one,
// reads its failure.
func (t TemporalInspector) WorkflowEnd(ctx context.Context, workflowID string) (WorkflowEnd, error) {
	resp, err := t.Client.DescribeWorkflowExecution(ctx, workflowID, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return WorkflowEnd{Status: WorkflowNotFound}, nil
	}
	if err != nil {
		return WorkflowEnd{}, fmt.Errorf("describe workflow %s: %w", workflowID, err)
	}
	info := resp.GetWorkflowExecutionInfo()
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return WorkflowEnd{Status: WorkflowRunning}, nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return WorkflowEnd{Status: WorkflowCompleted}, nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return WorkflowEnd{Status: WorkflowCanceled}, nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return WorkflowEnd{Status: WorkflowTerminated}, nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return WorkflowEnd{Status: WorkflowTimedOut}, nil
	}
	end := WorkflowEnd{Status: WorkflowFailed}
	werr := t.Client.GetWorkflow(ctx, workflowID, info.GetExecution().GetRunId()).Get(ctx, nil)
	var appErr *temporal.ApplicationError
	if errors.As(werr, &appErr) {
		end.FailureType, end.FailureMessage = appErr.Type(), appErr.Message()
	} else if werr != nil {
		end.FailureMessage = werr.Error()
	}
	return end, nil
}

// DescribeWorkflow tells how a workflow's latest run stands (a held-back
// job asks whether its batch still runs).
func (a *Activities) DescribeWorkflow(ctx context.Context, workflowID string) (WorkflowEnd, error) {
	if a.Workflows == nil {
		return WorkflowEnd{}, temporal.NewNonRetryableApplicationError("describe workflow: the worker cannot ask Temporal about workflows", TypeInvalidInput, nil)
	}
	end, err := a.Workflows.WorkflowEnd(ctx, workflowID)
	if err != nil {
		return WorkflowEnd{}, fmt.Errorf("describe workflow: %w", err)
	}
	return end, nil
}
