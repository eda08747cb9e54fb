package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/chamelaion-lipsync/worker/store"
)

// Answers to an escalation.
const (
	// DecisionRetry resubmits the job as a new attempt.
	DecisionRetry = "retry"
	// DecisionAbandon ends the job, recorded as abandoned.
	DecisionAbandon = "abandon"
	// DecisionExpired records that no answer came in time.
	DecisionExpired = "expired"
)

// DecisionInput is a human's answer to a job's escalation.
type DecisionInput struct {
	WorkflowID string
	Attempt    int
	// Action is DecisionRetry, DecisionAbandon or DecisionExpired.
	Action string
	// By says who or what sent the answer.
	By   string
	Note string
}

// RecordDecision records the answer on the escalation row; an abandoned
// job's row moves to status abandoned.
func (a *Activities) RecordDecision(ctx context.Context, in DecisionInput) error {
	switch in.Action {
	case DecisionRetry, DecisionAbandon, DecisionExpired:
	default:
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("record decision: unknown action %q", in.Action), TypeInvalidInput, nil)
	}
	if err := a.Store.ResolveEscalation(ctx, in.WorkflowID, in.Attempt, in.Action, in.By, in.Note); err != nil {
		return storeError("record decision", err)
	}
	if in.Action == DecisionAbandon {
		msg := "abandoned"
		if in.By != "" {
			msg += " by " + in.By
		}
		if in.Note != "" {
			msg += ": " + in.Note
		}
		applied, err := a.Store.UpdateJob(ctx, store.JobUpdate{
			WorkflowID: in.WorkflowID, Attempt: in.Attempt, Status: store.StatusAbandoned, Message: msg,
		})
		if err != nil {
			return storeError("record abandonment", err)
		}
		if applied {
			a.metrics().JobFinished("abandoned", 0)
		}
	}
	a.logger().Info("escalation answered", "workflow_id", in.WorkflowID, "attempt", in.Attempt, "action", in.Action, "by", in.By, "note", in.Note)
	return nil
}
