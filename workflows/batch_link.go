package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/chamelaion"
)

// The signals between a batch and the jobs it started.
const (
	// SignalBatchJob carries a BatchJobEvent from a job to its batch.
	SignalBatchJob = "batch-job"
	// SignalAccountDecision carries an AccountDecision from a batch to a
	// job that waits on an account-wide failure.
	SignalAccountDecision = "account-decision"
)

// What a job tells its batch.
const (
	// EventSubmitted: the vendor accepted the job.
	EventSubmitted = "submitted"
	// EventProcessing: the vendor started processing the job.
	EventProcessing = "processing"
	// EventEscalated: the job failed permanently and went to a human (it
	// may still be retried by the human's decision).
	EventEscalated = "escalated"
	// EventBlocked: a submission met an account-wide failure; the job waits
	// for its batch's AccountDecision.
	EventBlocked = "blocked"
	// EventDone: the job's workflow ended; Outcome says how.
	EventDone = "done"
	// EventRetrying: a human answered the job's escalation with retry; the
	// job is pending again.
	EventRetrying = "retrying"
)

// Job outcomes, as a batch reports them.
const (
	OutcomeCompleted    = "completed"
	OutcomeEscalated    = "escalated"
	OutcomeAbandoned    = "abandoned"
	OutcomeNotSubmitted = "not_submitted"
	// OutcomeDuplicate: the reference_id already belongs to a job that
	// ran (or runs) outside this batch; the batch did not start it again.
	OutcomeDuplicate = "duplicate"
	// OutcomeCancelled: the job's workflow was cancelled, terminated or
	// timed out before the job ended.
	OutcomeCancelled = "cancelled"
)

// ReasonNotSubmitted is the error type of a batch job whose batch was
// aborted before the vendor accepted it.
const ReasonNotSubmitted = "NotSubmitted"

// BatchJobEvent is what a job started by a batch tells the batch.
type BatchJobEvent struct {
	ReferenceID string
	Event       string
	// Seq numbers a job's events, from 1 (0 = a job that does not number
	// them): the batch applies each once and in order.
	Seq int `json:",omitempty"`
	// Outcome is set for EventDone.
	Outcome string `json:",omitempty"`
	// Held is set for EventBlocked when nothing was sent: the submission
	// was refused by an account hold in force at the time.
	Held       bool   `json:",omitempty"`
	Reason     string `json:",omitempty"`
	HTTPStatus int    `json:",omitempty"`
	Message    string `json:",omitempty"`
}

// AccountDecision is a batch's answer to a job blocked on an account-wide
// failure: DecisionResume (submit again) or DecisionAbort.
type AccountDecision struct {
	Action string
	Note   string
	By     string
}

// IsAccountWide says whether a failure type means every submission of the
// account fails alike: a rejected key (401) or an exhausted quota (412).
func IsAccountWide(reason string) bool {
	return reason == chamelaion.TypeUnauthorized || reason == chamelaion.TypeQuotaExceeded
}

// tellBatch signals the job's batch, numbering the event so that the
// batch applies it once and in order. A batch that has ended (settled, or
// terminated by an operator) cannot hear it; that is logged, never fatal.
func (j *job) tellBatch(ctx workflow.Context, ev BatchJobEvent) {
	if j.batchWorkflowID == "" {
		return
	}
	j.state.BatchSeq++
	ev.Seq = j.state.BatchSeq
	err := workflow.SignalExternalWorkflow(ctx, j.batchWorkflowID, "", SignalBatchJob, ev).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("could not tell the batch", "Batch", j.batchWorkflowID, "Event", ev.Event, "Error", err)
	}
}

// versionBlockedWatchesBatch marks job runs that, while held back, look
// now and then whether their batch still runs.
const versionBlockedWatchesBatch = "blocked-watches-batch"

// awaitAccountDecision holds the job, visibly blocked, until its batch
// answers the account-wide failure (held: the submission was refused by
// an account hold, nothing was sent). Now and then (blockedCheckEvery,
// doubling) it asks whether the batch still runs: a batch that ended
// without answering (terminated by an operator) leaves its held-back jobs
// not submitted rather than hanging. A long wait continues as new.
func (j *job) awaitAccountDecision(ctx workflow.Context, reason string, status int, msg string, held bool) (AccountDecision, error) {
	j.blocked, j.lastError = reason, msg
	j.setStatus(ctx, "blocked")
	j.publish(ctx)
	workflow.GetLogger(ctx).Warn("submission met an account-wide failure; waiting for the batch's decision", "Reason", reason)
	j.tellBatch(ctx, BatchJobEvent{ReferenceID: j.state.ReferenceID, Event: EventBlocked, Held: held, Reason: reason, HTTPStatus: status, Message: msg})
	var d AccountDecision
	ch := workflow.GetSignalChannel(ctx, SignalAccountDecision)
	if j.version(ctx, versionBlockedWatchesBatch) == workflow.DefaultVersion {
		ch.Receive(ctx, &d)
	} else {
		every := j.blockedCheckEvery()
		for {
			ok, _ := ch.ReceiveWithTimeout(ctx, every, &d)
			if ok || ctx.Err() != nil {
				break
			}
			if info := workflow.GetInfo(ctx); info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > blockedHistoryBound {
				// A pause of weeks: a fresh run submits again, meets the
				// hold (nothing is sent) and is held back again.
				next, state := j.in, j.state
				next.Resume = &state
				return AccountDecision{}, workflow.NewContinueAsNewError(ctx, WorkflowName, next)
			}
			var end activities.WorkflowEnd
			if err := workflow.ExecuteActivity(storeActivityOptions(ctx), a.DescribeWorkflow, j.batchWorkflowID).Get(ctx, &end); err != nil {
				if temporal.IsCanceledError(err) {
					break
				}
				continue
			}
			every = min(2*every, time.Hour)
			if !end.Running() {
				d = AccountDecision{Action: activities.DecisionAbort, By: "worker",
					Note: fmt.Sprintf("its batch ended (%s) while the job was held back", end.Status)}
				j.abortNote = d.Note
				break
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return AccountDecision{}, temporal.NewCanceledError()
	}
	j.blocked = ""
	j.setStatus(ctx, "pending")
	j.publish(ctx)
	workflow.GetLogger(ctx).Info("the batch answered the account-wide failure", "Action", d.Action, "By", d.By)
	return d, nil
}

// blockedHistoryBound continues a held-back job as new when its history
// grows past this many events (each check of its batch costs about ten).
const blockedHistoryBound = 5000

// blockedCheckEvery is how often a held-back job first asks whether its
// batch still runs: ten poll intervals, from a minute to an hour; each
// answer that it runs doubles the wait, up to an hour (about 30 checks a
// day in a long pause).
func (j *job) blockedCheckEvery() time.Duration {
	return min(max(10*j.state.Settings.Poll.Max, time.Minute), time.Hour)
}

// notSubmitted ends a job held back by an aborted batch.
func (j *job) notSubmitted(ctx workflow.Context, reason, msg string) error {
	why := fmt.Sprintf("batch %s aborted after an account-wide failure (%s): %s", j.in.BatchID, reason, msg)
	if j.abortNote != "" {
		why = fmt.Sprintf("not submitted after an account-wide failure (%s): %s", reason, j.abortNote)
	}
	var n int
	err := workflow.ExecuteActivity(j.storeOptions(ctx), a.RecordNotSubmitted, activities.NotSubmittedInput{
		BatchID: j.in.BatchID,
		Jobs: []activities.RecordJobInput{{
			WorkflowID: j.workflowID, ReferenceID: j.state.ReferenceID, BatchID: j.in.BatchID, Video: j.in.Video, Audio: j.in.Audio,
		}},
		Reason: why,
	}).Get(ctx, &n)
	if err != nil {
		return fmt.Errorf("record job not submitted: %w", err)
	}
	j.setStatus(ctx, "not_submitted")
	j.publish(ctx)
	return temporal.NewNonRetryableApplicationError(why, ReasonNotSubmitted, nil, EscalationDetails{Reason: ReasonNotSubmitted, Message: why})
}

// versionJobEndTold marks job runs that tell their batch when they are
// cancelled, end their row, and tell it of a human's retry.
const versionJobEndTold = "job-end-told"

// ended tells the batch how the job's workflow ended, whatever ended it: a
// cancelled job ends its row and tells the batch on a disconnected context
// (the cancelled one can do neither).
func (j *job) ended(ctx workflow.Context, ref string, err error) {
	if !temporal.IsCanceledError(err) {
		if j.batchWorkflowID != "" {
			j.tellBatch(ctx, finalEvent(ref, err))
		}
		return
	}
	if j.version(ctx, versionJobEndTold) == workflow.DefaultVersion {
		return
	}
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	msg := "the job's workflow was cancelled"
	if err := workflow.ExecuteActivity(storeActivityOptions(dctx), a.EndJob, activities.EndJobInput{
		WorkflowID: j.workflowID, Reason: "Canceled", Message: msg,
	}).Get(dctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("could not end the cancelled job's row", "Error", err)
	}
	if j.batchWorkflowID != "" {
		j.tellBatch(dctx, BatchJobEvent{ReferenceID: ref, Event: EventDone, Outcome: OutcomeCancelled, Reason: "Canceled", Message: msg})
	}
}

// tellRetrying tells the batch a human's retry made the job pending again.
func (j *job) tellRetrying(ctx workflow.Context) {
	if j.batchWorkflowID == "" || j.version(ctx, versionJobEndTold) == workflow.DefaultVersion {
		return
	}
	j.tellBatch(ctx, BatchJobEvent{ReferenceID: j.state.ReferenceID, Event: EventRetrying})
}

// finalEvent describes how a job's workflow ended, for its batch.
func finalEvent(ref string, err error) BatchJobEvent {
	ev := BatchJobEvent{ReferenceID: ref, Event: EventDone, Outcome: OutcomeCompleted}
	if err == nil {
		return ev
	}
	ev.Outcome, ev.Message = OutcomeEscalated, err.Error()
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		ev.Reason, ev.Message = appErr.Type(), appErr.Message()
		var d EscalationDetails
		if appErr.HasDetails() && appErr.Details(&d) == nil {
			ev.HTTPStatus = d.HTTPStatus
		}
		switch appErr.Type() {
		case ReasonAbandoned:
			ev.Outcome = OutcomeAbandoned
		case ReasonNotSubmitted:
			ev.Outcome = OutcomeNotSubmitted
		}
	}
	return ev
}
