package activities

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/store"
)

// CheckStatusInput names the request whose status to read.
type CheckStatusInput struct {
	WorkflowID string
	// ExecutionID names the execution of the job's workflow ("" before
	// executions were named): its writes never touch another's row.
	ExecutionID string `json:",omitempty"`
	Attempt     int
	RequestID   string
	// StatusChecks is the job's number of status checks including this
	// one; it is recorded with the status.
	StatusChecks int
	// RetryBudget bounds the time the check is retried, counted from its
	// first attempt's start (0 = the activity's ScheduleToClose does).
	RetryBudget time.Duration `json:",omitempty"`
	// RecordLater: when the status cannot be recorded in PostgreSQL,
	// return it unrecorded (CheckStatusResult.Unrecorded) for the workflow
	// to record with RecordProgress, rather than retrying within the API's
	// retry budget.
	RecordLater bool `json:",omitempty"`
	// HoldOnCredentials: while the account is held after a rejected key
	// (401/403), do not call the API; answer HeldBy instead. A standalone
	// job (not BatchJob) meeting a 401/403 itself claims the hold, unless
	// one stands (then HeldBy): exactly one job escalates for the account.
	HoldOnCredentials bool `json:",omitempty"`
	BatchJob          bool `json:",omitempty"`
}

// CheckStatusResult is the vendor's view of the job.
type CheckStatusResult struct {
	// Status is queued, processing, completed or failed.
	Status       chamelaion.Status
	CreatedAt    time.Time
	StartedAt    *time.Time
	FinishedAt   *time.Time
	OutputURL    string
	ErrorMessage string
	// Unrecorded is true when the status could not be written (with
	// RecordLater): the workflow records it itself.
	Unrecorded bool `json:",omitempty"`
	// HeldBy is set, and nothing else, when the API was not called: the
	// account is held after a rejected key until a human answers.
	HeldBy *HoldNotice `json:",omitempty"`
}

// HoldNotice names the hold a status check waits on.
type HoldNotice struct {
	Reason string
	// Owner is the workflow whose escalation answers it.
	Owner string
	Since time.Time
}

// CredentialFailures are the account-wide failures that stop status reads
// as well as submissions: the key was rejected.
var CredentialFailures = []string{chamelaion.TypeUnauthorized, chamelaion.TypeForbidden}

// CheckStatus reads the job's status from the API and records it in
// PostgreSQL. A status the client does not know never reaches here: the
// client refuses it as an invalid (retryable) response.
func (a *Activities) CheckStatus(ctx context.Context, in CheckStatusInput) (CheckStatusResult, error) {
	if in.RequestID == "" {
		return CheckStatusResult{}, temporal.NewNonRetryableApplicationError("check status: request id is required", TypeInvalidInput, nil)
	}
	p, known := progressOf(ctx)
	switch {
	case known:
		p.unanswered()
	case activity.GetInfo(ctx).Attempt > 1:
		// The previous attempt ended without a result and left nothing:
		// from here on the attempts leave their progress, so that checks
		// that keep timing out run out of budget like any other failure.
		p = attemptProgress{FirstAttemptAt: time.Now()}
		p.unanswered()
		leave(ctx, p)
	default:
		p = attemptProgress{FirstAttemptAt: time.Now()}
	}
	if known || activity.GetInfo(ctx).Attempt > 1 {
		if spent := budgetSpent("check status", p, in.RetryBudget, 0, time.Now()); spent != nil {
			return CheckStatusResult{}, spent
		}
	}
	if in.HoldOnCredentials {
		if h := a.credentialHold(ctx, in.WorkflowID); h != nil {
			return CheckStatusResult{HeldBy: h}, nil
		}
	}
	req, err := a.API.GetRequest(ctx, in.RequestID)
	if err != nil {
		ferr := a.apiFailure("check status", err)
		typ, status, msg := failureOf(ferr)
		if in.HoldOnCredentials && !in.BatchJob && slices.Contains(CredentialFailures, typ) {
			h, _, cerr := a.Store.ClaimAccountHold(ctx, store.NewHold{Owner: in.WorkflowID, Reason: typ, HTTPStatus: status, Message: msg}, CredentialFailures)
			switch {
			case cerr != nil:
				// The workflow escalates for the account all the same.
				a.logger().Warn("could not claim the account hold; escalating", "workflow_id", in.WorkflowID, "error", cerr)
			case h.Owner != in.WorkflowID:
				return CheckStatusResult{HeldBy: &HoldNotice{Reason: h.Reason, Owner: h.Owner, Since: h.Since}}, nil
			}
		}
		p.note(ferr)
		if !retryable(ferr) {
			// A permanent failure (a rejected key above all, whose hold
			// this workflow may now own) keeps its own type: no budget
			// turns it into RetriesExhausted.
			leave(ctx, p)
			return CheckStatusResult{}, ferr
		}
		if spent := budgetSpent("check status", p, in.RetryBudget, advisedWait(ferr), time.Now()); spent != nil {
			return CheckStatusResult{}, spent
		}
		p.Next = fmt.Sprintf("the last check met %s", describe(ferr))
		leave(ctx, p)
		return CheckStatusResult{}, ferr
	}
	res := CheckStatusResult{
		Status:       req.Status,
		CreatedAt:    req.CreatedAt,
		StartedAt:    req.StartedAt,
		FinishedAt:   req.FinishedAt,
		OutputURL:    req.OutputURL,
		ErrorMessage: req.ErrorMessage,
	}
	if !isKnownStatus(req.Status) {
		return CheckStatusResult{}, temporal.NewApplicationError(fmt.Sprintf("check status: unknown status %q", req.Status), chamelaion.TypeInvalidResponse)
	}
	u := statusUpdate(in.WorkflowID, in.Attempt, in.RequestID, in.StatusChecks, res)
	u.ExecutionID = in.ExecutionID
	applied, err := a.Store.UpdateJob(ctx, u)
	if err != nil {
		if in.RecordLater {
			// Recorded by the workflow with the database's own retries:
			// an outage of PostgreSQL spends none of the API's budget.
			activity.GetLogger(ctx).Warn("status read but not recorded; the workflow records it", "RequestId", in.RequestID, "Error", err)
			res.Unrecorded = true
			return res, nil
		}
		return CheckStatusResult{}, storeError("record status", err)
	}
	if applied && req.Status == chamelaion.StatusCompleted {
		a.metrics().JobFinished("completed", time.Since(req.CreatedAt))
	}
	return res, nil
}

func isKnownStatus(s chamelaion.Status) bool {
	switch s {
	case chamelaion.StatusQueued, chamelaion.StatusProcessing, chamelaion.StatusCompleted, chamelaion.StatusFailed:
		return true
	}
	return false
}

// statusUpdate is the row update of a status read.
func statusUpdate(workflowID string, attempt int, requestID string, checks int, res CheckStatusResult) store.JobUpdate {
	u := store.JobUpdate{
		WorkflowID:   workflowID,
		Attempt:      attempt,
		RequestID:    requestID,
		StatusChecks: checks,
		StartedAt:    res.StartedAt,
		FinishedAt:   res.FinishedAt,
	}
	switch res.Status {
	case chamelaion.StatusQueued:
		u.Status = store.StatusQueued
	case chamelaion.StatusProcessing:
		u.Status = store.StatusProcessing
	case chamelaion.StatusCompleted:
		u.Status = store.StatusCompleted
		u.OutputURL = res.OutputURL
	case chamelaion.StatusFailed:
		u.Status = store.StatusFailed
		u.ErrorType = TypeJobFailed
		u.ErrorMessage = res.ErrorMessage
		u.Message = res.ErrorMessage
	}
	return u
}

// credentialHold returns the hold on the account after a rejected key
// that another workflow owns and that still stands, or nil. A hold whose
// owner has ended is released. The holds are read best effort: a database
// that cannot answer never stops a status read (the API will tell).
func (a *Activities) credentialHold(ctx context.Context, self string) *HoldNotice {
	holds, err := a.Store.AccountHolds(ctx, store.DefaultAccount)
	if err != nil {
		a.logger().Warn("could not read the account holds; checking the status anyway", "error", err)
		return nil
	}
	for _, h := range holds {
		if h.Owner == self || !slices.Contains(CredentialFailures, h.Reason) {
			continue
		}
		if a.Workflows != nil {
			end, err := a.Workflows.WorkflowEnd(ctx, h.Owner)
			if err == nil && !end.Running() {
				if _, err := a.Store.ReleaseHold(ctx, h.Account, h.Owner); err == nil {
					a.logger().Warn("account hold released: its owner has ended", "account", h.Account, "owner", h.Owner, "owner_status", end.Status, "reason", h.Reason)
				}
				continue
			}
		}
		return &HoldNotice{Reason: h.Reason, Owner: h.Owner, Since: h.Since}
	}
	return nil
}

// RecordProgressInput is a job's progress for the workflow to record
// itself: a submission or status the API activity could not write, or a
// human's resume.
type RecordProgressInput struct {
	WorkflowID   string
	ExecutionID  string `json:",omitempty"`
	Attempt      int
	RequestID    string
	StatusChecks int
	// Status is submitted, queued, processing, completed or failed.
	Status       string
	SubmittedAt  *time.Time `json:",omitempty"`
	StartedAt    *time.Time `json:",omitempty"`
	FinishedAt   *time.Time `json:",omitempty"`
	OutputURL    string     `json:",omitempty"`
	ErrorMessage string     `json:",omitempty"`
	// VendorCreatedAt is the vendor's created_at, for the job duration
	// metric of a completed job.
	VendorCreatedAt time.Time `json:",omitempty"`
	// Message goes into the status-change event.
	Message string `json:",omitempty"`
}

// RecordProgress writes a job's progress to its row (idempotent, like
// every write of the store). It runs with the database's retry policy, so
// an outage of PostgreSQL delays the job without spending the API's retry
// budget or escalating it.
func (a *Activities) RecordProgress(ctx context.Context, in RecordProgressInput) error {
	u := store.JobUpdate{
		WorkflowID: in.WorkflowID, ExecutionID: in.ExecutionID, Attempt: in.Attempt, Status: store.Status(in.Status), RequestID: in.RequestID,
		StatusChecks: in.StatusChecks, SubmittedAt: in.SubmittedAt, StartedAt: in.StartedAt, FinishedAt: in.FinishedAt,
		OutputURL: in.OutputURL, ErrorMessage: in.ErrorMessage, Message: in.Message,
	}
	if u.Status == store.StatusFailed {
		u.ErrorType = TypeJobFailed
		if u.Message == "" {
			u.Message = in.ErrorMessage
		}
	}
	applied, err := a.Store.UpdateJob(ctx, u)
	if err != nil {
		return storeError("record progress", err)
	}
	if applied && u.Status == store.StatusCompleted && !in.VendorCreatedAt.IsZero() {
		a.metrics().JobFinished("completed", time.Since(in.VendorCreatedAt))
	}
	return nil
}

// TypeJobFailed is the reason recorded when the vendor reports the job
// failed (its error_message says why).
const TypeJobFailed = "JobFailed"
