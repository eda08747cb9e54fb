package activities

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/chamelaion-lipsync/worker/chamelaion"
)

// Failure types the activities raise themselves, beside the API client's
// type strings (chamelaion.Type*), which they pass through unchanged.
const (
	// TypeMediaUnreadable: a media reference the worker was asked to upload
	// cannot be opened. Permanent.
	TypeMediaUnreadable = "MediaUnreadable"
	// TypeInvalidInput: an activity input is malformed. Permanent.
	TypeInvalidInput = "InvalidInput"
	// TypeStoreUnavailable: PostgreSQL could not be written. Retried.
	TypeStoreUnavailable = "StoreUnavailable"
	// TypeSendBudget: a submission found the account's rolling minute
	// full (Activities.SendBudget) and nothing was sent. Retried when a
	// slot frees.
	TypeSendBudget = "SendBudgetFull"
)

// ErrorDetails rides in every ApplicationError an activity builds from an API
// failure, so that the workflow can record and escalate the cause precisely.
type ErrorDetails struct {
	// StatusCode is the HTTP status, 0 when no answer arrived.
	StatusCode int
	// Message is the server's message (already scrubbed of secrets).
	Message string
	// RetryAfter is the wait the server advised, 0 if none.
	RetryAfter time.Duration
	// MayHaveCreated is set on a failed submission when a request it sent
	// may have created a job at the vendor: the next submission of the job
	// must look for that job before sending another.
	MayHaveCreated bool `json:",omitempty"`
	// Held is set on a submission refused before anything was sent
	// because the account is held after an account-wide failure.
	Held bool `json:",omitempty"`
}

// ClassifiedError converts an error of the API client into the Temporal
// error that makes the retry policy do the right thing: non-retryable for a
// permanent cause, retryable otherwise, with NextRetryDelay set to the wait
// the server advised. The client's error itself is
// not attached as a cause: its text is already in the message, and nothing
// else of it belongs in a workflow history.
func ClassifiedError(op string, err error) error {
	c := chamelaion.Classify(err)
	text := c.Message
	if text == "" {
		text = err.Error()
	}
	msg := fmt.Sprintf("%s: %s", op, text)
	if c.StatusCode != 0 {
		msg = fmt.Sprintf("%s: HTTP %d: %s", op, c.StatusCode, text)
	}
	details := ErrorDetails{StatusCode: c.StatusCode, Message: text, RetryAfter: c.RetryAfter}
	if !c.Retryable {
		return temporal.NewNonRetryableApplicationError(msg, c.Type, nil, details)
	}
	return temporal.NewApplicationErrorWithOptions(msg, c.Type, temporal.ApplicationErrorOptions{
		NextRetryDelay: c.RetryAfter,
		Details:        []any{details},
	})
}

// storeError marks a failed database write as retryable.
func storeError(op string, err error) error {
	return temporal.NewApplicationError(fmt.Sprintf("%s: %v", op, err), TypeStoreUnavailable)
}

// PermanentErrorTypes lists the failure types that are never retried. The
// workflow's retry policies name them too, as a second line of defence.
func PermanentErrorTypes() []string {
	return []string{
		chamelaion.TypeBadRequest,
		chamelaion.TypeUnauthorized,
		chamelaion.TypeForbidden,
		chamelaion.TypeNotFound,
		chamelaion.TypeConflict,
		chamelaion.TypeQuotaExceeded,
		chamelaion.TypeUnprocessable,
		chamelaion.TypeClientError,
		TypeMediaUnreadable,
		TypeInvalidInput,
		TypeRetriesExhausted,
	}
}
