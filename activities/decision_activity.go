package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/chamelaion-lipsync/worker/config"
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
	// DecisionResume answers an account-wide escalation of a batch: the
	// cause was fixed, submissions go on.
	DecisionResume = "resume"
	// DecisionAbort answers an account-wide escalation of a batch: the
	// jobs not yet submitted are recorded as not submitted.
	DecisionAbort = "abort"
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
	case DecisionRetry, DecisionAbandon, DecisionExpired, DecisionResume, DecisionAbort:
	default:
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("record decision: unknown action %q", in.Action), TypeInvalidInput, nil)
	}
	if err := a.Store.ResolveEscalation(ctx, in.WorkflowID, in.Attempt, in.Action, in.By, in.Note); err != nil {
		return storeError("record decision", err)
	}
	if in.Action == DecisionResume || in.Action == DecisionAbort {
		// Only the answering workflow's own hold: another batch's hold on
		// the account stands until that batch is answered.
		if _, err := a.Store.ReleaseHold(ctx, store.DefaultAccount, in.WorkflowID); err != nil {
			return storeError("release submissions", err)
		}
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

// NotSubmittedInput lists jobs of an aborted batch that the vendor never
// accepted.
type NotSubmittedInput struct {
	BatchID string
	Jobs    []RecordJobInput
	// Reason is recorded as each job's error message.
	Reason string
}

// RecordNotSubmitted records the jobs as not submitted (rows are created
// for jobs that never started; pending rows move there). Idempotent.
func (a *Activities) RecordNotSubmitted(ctx context.Context, in NotSubmittedInput) (int, error) {
	jobs := make([]store.NewJob, len(in.Jobs))
	for i, j := range in.Jobs {
		jobs[i] = store.NewJob{
			WorkflowID:  j.WorkflowID,
			ReferenceID: j.ReferenceID,
			BatchID:     in.BatchID,
			VideoSource: config.RedactURL(j.Video),
			AudioSource: config.RedactURL(j.Audio),
		}
	}
	n, err := a.Store.RecordNotSubmitted(ctx, jobs, in.Reason)
	if err != nil {
		return 0, storeError("record jobs not submitted", err)
	}
	for range n {
		a.metrics().JobFinished("not_submitted", 0)
	}
	a.logger().Info("jobs recorded as not submitted", "batch_id", in.BatchID, "jobs", len(in.Jobs), "written", n, "reason", in.Reason)
	return n, nil
}
