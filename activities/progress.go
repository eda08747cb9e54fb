package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/chamelaion-lipsync/worker/chamelaion"
)

// TypeRetriesExhausted: a retryable failure outlasted the call's retry
// budget, counted from its first attempt's start. Permanent.
const TypeRetriesExhausted = "RetriesExhausted"

// attemptProgress is what an attempt of an API activity leaves for the next
// one, in its heartbeat details (Temporal keeps them across the attempts of
// one activity, and shows them on the pending activity in the Web UI).
type attemptProgress struct {
	// FirstAttemptAt is when the activity's first attempt started (the
	// worker's clock): the retry budget counts from here, not from the
	// scheduling, so that waiting in a rate-limited task queue spends none
	// of it.
	FirstAttemptAt time.Time
	// Look says a generation request of an earlier attempt may have
	// created a job at the vendor: the next attempt looks for it before
	// sending, and not before LookAfter (until then it may still be
	// landing).
	Look      bool      `json:",omitempty"`
	LookAfter time.Time `json:",omitempty"`
	// RequestID and AnsweredAt are the request the vendor accepted for an
	// earlier attempt whose recording failed: the next attempt adopts it
	// without asking.
	RequestID  string    `json:",omitempty"`
	AnsweredAt time.Time `json:",omitempty"`
	// The last failure: its type, HTTP status and message.
	LastType    string `json:",omitempty"`
	LastStatus  int    `json:",omitempty"`
	LastMessage string `json:",omitempty"`
	// Next tells a person reading the pending activity what the last
	// attempt met and what the next one does.
	Next string `json:",omitempty"`
	// Paced is the time spent waiting, nothing sent, for a slot in the
	// account's rolling minute (SendBudgetFull): it spends none of the
	// retry budget. PacedSince is when the last such wait began.
	Paced      time.Duration `json:",omitempty"`
	PacedSince time.Time     `json:",omitempty"`
}

// progressOf reads the progress the previous attempt left; known is false
// for a first attempt, or when the previous attempt left nothing (it died
// before its first heartbeat).
func progressOf(ctx context.Context) (p attemptProgress, known bool) {
	if !activity.HasHeartbeatDetails(ctx) {
		return attemptProgress{}, false
	}
	if err := activity.GetHeartbeatDetails(ctx, &p); err != nil {
		return attemptProgress{}, false
	}
	return p, !p.FirstAttemptAt.IsZero()
}

// leave records the progress for the next attempt. The first heartbeat of
// an attempt reaches Temporal at once; later ones are sent when the
// attempt fails.
func leave(ctx context.Context, p attemptProgress) {
	activity.RecordHeartbeat(ctx, p)
}

// unanswered counts, for the budget, a previous attempt that left its
// progress but no failure: it ended without a result (it timed out, or its
// worker stopped), which is a retryable failure like any other (before,
// such attempts were retried until the job's deadline).
func (p *attemptProgress) unanswered() {
	if p.LastType == "" {
		p.LastType = chamelaion.TypeTimeout
		p.LastMessage = "an attempt ended without a result (it timed out, or its worker stopped)"
	}
}

// note records what a failed attempt met.
func (p *attemptProgress) note(err error) {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		var d ErrorDetails
		if appErr.HasDetails() {
			_ = appErr.Details(&d)
		}
		p.LastType, p.LastStatus, p.LastMessage = appErr.Type(), d.StatusCode, d.Message
		if p.LastMessage == "" {
			p.LastMessage = appErr.Message()
		}
		return
	}
	p.LastType, p.LastStatus, p.LastMessage = "", 0, err.Error()
}

// budgetSpent returns a RetriesExhausted error when the call has been
// retried for its whole budget since its first attempt started (budget 0 =
// no budget of its own: the activity's ScheduleToClose bounds it), counting
// the wait the server advised before the next attempt.
func budgetSpent(op string, p attemptProgress, budget, advised time.Duration, now time.Time) error {
	if budget <= 0 || p.FirstAttemptAt.IsZero() || p.LastType == "" || p.LastType == TypeStoreUnavailable || p.LastType == TypeSendBudget {
		// PostgreSQL's failures are not the API's, nor is the worker's own
		// pacing: they spend none of its budget (the job's deadline bounds
		// them).
		return nil
	}
	elapsed := now.Sub(p.FirstAttemptAt) - p.Paced
	if elapsed+advised < budget {
		return nil
	}
	what := p.LastMessage
	if p.LastStatus != 0 {
		what = fmt.Sprintf("HTTP %d: %s", p.LastStatus, p.LastMessage)
	}
	msg := fmt.Sprintf("%s: %s (%s), still failing after retrying for up to %s", op, what, p.LastType, budget)
	return temporal.NewNonRetryableApplicationError(msg, TypeRetriesExhausted, nil, ErrorDetails{
		StatusCode: p.LastStatus, Message: fmt.Sprintf("%s (%s), still failing after retrying for up to %s", what, p.LastType, budget),
		MayHaveCreated: p.Look || p.RequestID != "",
	})
}

// withProgress attaches to an activity error what the workflow needs to
// know about the vendor's side: whether a request this activity sent may
// have created a job (then the next submission must look for it first).
func withProgress(err error, p attemptProgress) error {
	may := p.Look || p.RequestID != ""
	return withDetails(err, func(d *ErrorDetails) { d.MayHaveCreated = may })
}

// withDetails rebuilds an activity's ApplicationError with its details
// changed (other errors pass unchanged).
func withDetails(err error, change func(*ErrorDetails)) error {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		return err
	}
	var d ErrorDetails
	if appErr.HasDetails() {
		_ = appErr.Details(&d)
	}
	change(&d)
	return temporal.NewApplicationErrorWithOptions(appErr.Message(), appErr.Type(), temporal.ApplicationErrorOptions{
		NonRetryable:   appErr.NonRetryable(),
		NextRetryDelay: appErr.NextRetryDelay(),
		Details:        []any{d},
	})
}

// advisedWait is the wait a retryable error asks for before the next
// attempt (0 = the retry policy's backoff).
func advisedWait(err error) time.Duration {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && !appErr.NonRetryable() {
		return appErr.NextRetryDelay()
	}
	return 0
}

// Landing is what a failed generation request says about a job at the
// vendor.
type Landing int

const (
	// NothingCreated: the request was refused before anything was
	// created (429, 408, any other 4xx) or never sent (connection refused,
	// DNS failure).
	NothingCreated Landing = iota
	// MayHaveCreated: the server answered (500, 503, any other 5xx but 502
	// and 504, or a 2xx that cannot be trusted): it may have created the
	// job before failing, and whatever it did is done. Look at once.
	MayHaveCreated
	// MayStillLand: no answer (a timeout, a connection dropped after the
	// request was sent), or a gateway answered for a server that may still
	// be working on it (502, 504): the job may appear later. Look once the
	// request can no longer be in flight.
	MayStillLand
)

// LandingOf sorts a failed generation request by what it may have left
// at the vendor. It reads the API client's errors, and the activity errors
// made of them (ClassifiedError).
func LandingOf(err error) Landing {
	typ, status, msg := failureOf(err)
	switch typ {
	case chamelaion.TypeRateLimited, chamelaion.TypeBadRequest, chamelaion.TypeUnauthorized, chamelaion.TypeForbidden,
		chamelaion.TypeNotFound, chamelaion.TypeConflict, chamelaion.TypeQuotaExceeded, chamelaion.TypeUnprocessable,
		chamelaion.TypeClientError, TypeMediaUnreadable, TypeInvalidInput:
		return NothingCreated
	case chamelaion.TypeTimeout:
		if status == 408 { // the server gave up reading the request
			return NothingCreated
		}
		return MayStillLand
	case chamelaion.TypeServerError, chamelaion.TypeUnavailable, chamelaion.TypeInvalidResponse:
		return MayHaveCreated
	case chamelaion.TypeBadGateway, chamelaion.TypeGatewayTimeout:
		return MayStillLand
	case chamelaion.TypeConnectionFailed:
		// Refused, or the host unknown: the request never left.
		if strings.HasPrefix(msg, "connection refused") || strings.HasPrefix(msg, "cannot resolve host") {
			return NothingCreated
		}
		return MayStillLand
	}
	return MayStillLand
}

// failureOf returns a failure's type, HTTP status and message, from an
// activity error or an API client error.
func failureOf(err error) (typ string, status int, msg string) {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		var d ErrorDetails
		if appErr.HasDetails() {
			_ = appErr.Details(&d)
		}
		return appErr.Type(), d.StatusCode, d.Message
	}
	c := chamelaion.Classify(err)
	return c.Type, c.StatusCode, c.Message
}
