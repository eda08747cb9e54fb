package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/store"
)

// CheckStatusInput names the request whose status to read.
type CheckStatusInput struct {
	WorkflowID string
	Attempt    int
	RequestID  string
	// StatusChecks is the job's number of status checks including this
	// one; it is recorded with the status.
	StatusChecks int
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
}

// CheckStatus reads the job's status from the API and records it in
// PostgreSQL. A status the client does not know never reaches here: the
// client refuses it as an invalid (retryable) response.
func (a *Activities) CheckStatus(ctx context.Context, in CheckStatusInput) (CheckStatusResult, error) {
	if in.RequestID == "" {
		return CheckStatusResult{}, temporal.NewNonRetryableApplicationError("check status: request id is required", TypeInvalidInput, nil)
	}
	req, err := a.API.GetRequest(ctx, in.RequestID)
	if err != nil {
		return CheckStatusResult{}, a.apiFailure("check status", err)
	}
	res := CheckStatusResult{
		Status:       req.Status,
		CreatedAt:    req.CreatedAt,
		StartedAt:    req.StartedAt,
		FinishedAt:   req.FinishedAt,
		OutputURL:    req.OutputURL,
		ErrorMessage: req.ErrorMessage,
	}
	update := store.JobUpdate{
		WorkflowID:   in.WorkflowID,
		Attempt:      in.Attempt,
		RequestID:    in.RequestID,
		StatusChecks: in.StatusChecks,
		StartedAt:    req.StartedAt,
		FinishedAt:   req.FinishedAt,
	}
	switch req.Status {
	case chamelaion.StatusQueued:
		update.Status = store.StatusQueued
	case chamelaion.StatusProcessing:
		update.Status = store.StatusProcessing
	case chamelaion.StatusCompleted:
		update.Status = store.StatusCompleted
		update.OutputURL = req.OutputURL
	case chamelaion.StatusFailed:
		update.Status = store.StatusFailed
		update.ErrorType = TypeJobFailed
		update.ErrorMessage = req.ErrorMessage
		update.Message = req.ErrorMessage
	default:
		return CheckStatusResult{}, temporal.NewApplicationError(fmt.Sprintf("check status: unknown status %q", req.Status), chamelaion.TypeInvalidResponse)
	}
	applied, err := a.Store.UpdateJob(ctx, update)
	if err != nil {
		return CheckStatusResult{}, storeError("record status", err)
	}
	if applied && req.Status == chamelaion.StatusCompleted {
		a.metrics().JobFinished("completed", time.Since(req.CreatedAt))
	}
	return res, nil
}

// TypeJobFailed is the reason recorded when the vendor reports the job
// failed (its error_message says why).
const TypeJobFailed = "JobFailed"
