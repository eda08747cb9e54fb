package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	// ExecutionID names the execution of the job's workflow that answers
	// ("" before executions were named, and for a batch): a row a later
	// execution has taken over is never touched.
	ExecutionID string `json:",omitempty"`
	Attempt     int
	// Action is DecisionRetry, DecisionAbandon or DecisionExpired.
	Action string
	// By says who or what sent the answer.
	By   string
	Note string
	// Reason and Message are the escalation's, for an expired one whose
	// job's row is still in flight (an account-wide escalation of a job
	// on its own leaves the row as the last status read): the row ends
	// failed with them.
	Reason  string `json:",omitempty"`
	Message string `json:",omitempty"`
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
	// Any answer ends the answering workflow's own hold (a job that
	// escalated a rejected key, a batch): only its own, another's hold on
	// the account stands until that one is answered. A hold kept after a
	// retry would hold the retrying job back behind itself.
	if _, err := a.Store.ReleaseHold(ctx, store.DefaultAccount, in.WorkflowID); err != nil {
		return storeError("release submissions", err)
	}
	if in.Action == DecisionExpired && in.Reason != "" {
		now := time.Now().UTC()
		applied, err := a.Store.UpdateJob(ctx, store.JobUpdate{
			WorkflowID: in.WorkflowID, ExecutionID: in.ExecutionID, Attempt: in.Attempt, Status: store.StatusFailed,
			ErrorType: in.Reason, ErrorMessage: in.Message, FinishedAt: &now,
			Message: fmt.Sprintf("%s: %s (no answer in time: %s)", in.Reason, in.Message, in.Note),
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return storeError("record the expired escalation", err)
		}
		if applied {
			a.metrics().JobFinished("escalated", 0)
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
			WorkflowID: in.WorkflowID, ExecutionID: in.ExecutionID, Attempt: in.Attempt, Status: store.StatusAbandoned, Message: msg,
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
