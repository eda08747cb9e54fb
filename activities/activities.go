// Package activities holds everything the lip-sync workflow does to the
// world: calls to the Chamelaion API, writes to PostgreSQL and notifications
// to humans. Each activity is a method on Activities, which holds the
// dependencies; the workflow calls them through a nil *Activities.
//
// Activities turn the API client's error classification into Temporal
// errors: permanent causes become non-retryable ApplicationErrors whose type
// is the client's stable type string; retryable causes become retryable
// ApplicationErrors, with NextRetryDelay set to the wait the server advised.
package activities

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/store"
)

// API is the part of the Chamelaion client the activities use.
type API interface {
	Generate(ctx context.Context, req chamelaion.GenerateRequest) (chamelaion.GenerateResponse, error)
	GenerateWithMedia(ctx context.Context, req chamelaion.GenerateWithMediaRequest) (chamelaion.GenerateResponse, error)
	GetRequest(ctx context.Context, idOrReferenceID string) (chamelaion.Request, error)
	ListRequests(ctx context.Context, opts chamelaion.ListOptions) (chamelaion.RequestPage, error)
}

// Store is the part of the job store the activities use.
type Store interface {
	RecordJob(ctx context.Context, j store.NewJob) error
	EarlierRequestIDs(ctx context.Context, workflowID, executionID string, attempt int) ([]string, error)
	PriorRuns(ctx context.Context, workflowID, executionID string, attempt int) (store.PriorRuns, error)
	ClaimAccountHold(ctx context.Context, h store.NewHold, reasons []string) (store.AccountHold, bool, error)
	UpdateJob(ctx context.Context, u store.JobUpdate) (bool, error)
	RecordEscalation(ctx context.Context, e store.NewEscalation) (store.Escalation, bool, error)
	MarkEscalationNotified(ctx context.Context, id int64, notifyErr string) error
	ResolveEscalation(ctx context.Context, workflowID string, attempt int, resolution, by, note string) error
	RecordNotSubmitted(ctx context.Context, jobs []store.NewJob, reason string) (int, error)
	HoldAccount(ctx context.Context, h store.NewHold) (bool, error)
	ReleaseHold(ctx context.Context, account, owner string) (bool, error)
	AccountHolds(ctx context.Context, account string) ([]store.AccountHold, error)
	MarkJobEnded(ctx context.Context, workflowID string, status store.Status, reason, message string) (bool, error)
	RecentProcessingTimes(ctx context.Context, limit int) ([]time.Duration, error)
	ReserveSend(ctx context.Context, account string, limit int, window time.Duration) (time.Duration, error)
}

// Activities holds the dependencies of every activity.
type Activities struct {
	// API is the Chamelaion client. Required by Submit and CheckStatus.
	API API
	// Store records jobs and escalations. Required.
	Store Store
	// Logger receives one structured line per escalation and per notable
	// event. Defaults to slog.Default().
	Logger *slog.Logger
	// WebhookURL receives a Slack-compatible message for every escalation;
	// "" means escalations are recorded and logged only.
	WebhookURL string
	// Media confines the files file:// media are read from (MEDIA_ROOT,
	// MEDIA_MAX_BYTES). The zero value refuses file:// media.
	Media MediaRoot
	// HTTPClient delivers webhooks. Defaults to a client with a 10s timeout.
	HTTPClient *http.Client
	// WebUIURL is the Temporal Web UI's base URL, for links in escalations.
	WebUIURL string
	// Namespace is the Temporal namespace, for links in escalations.
	Namespace string
	// Metrics records the product's metrics (nil = none).
	Metrics Metrics
	// Workflows tells whether a hold's owner still runs and how a batch's
	// jobs ended (nil = holds are released by their owners' answers only,
	// and batches cannot reconcile).
	Workflows WorkflowInspector
	// SubmitSettle is how long a retried submission waits before it looks
	// for a request an earlier attempt created: a request whose answer timed out may still be
	// landing at the server. The worker sets it to
	// CHAMELAION_REQUEST_TIMEOUT, which covers a server that finishes a
	// request within twice the client's timeout. 0 = no wait.
	SubmitSettle time.Duration
	// SendBudget caps the generation requests sent per rolling minute,
	// counted at the moment each is sent, across every worker (a log in
	// PostgreSQL): the submit task queue paces the activities, but one may
	// send later than it was dispatched (after a settle wait, a slow
	// database, a Temporal service restarting under it). 0 = no cap.
	SendBudget int
	// SendWaitMax is the longest a submission waits for a slot in
	// SendBudget before it hands the wait to Temporal as a retry (nothing
	// sent). Defaults to 10s.
	SendWaitMax time.Duration
}

// Metrics is what the activities report (package metrics implements it).
type Metrics interface {
	ObserveRetryable(failureType string, advised time.Duration)
	JobFinished(outcome string, d time.Duration)
	Escalated(kind, reason string)
}

// noMetrics discards everything.
type noMetrics struct{}

func (noMetrics) ObserveRetryable(string, time.Duration) {}
func (noMetrics) JobFinished(string, time.Duration)      {}
func (noMetrics) Escalated(string, string)               {}

func (a *Activities) metrics() Metrics {
	if a.Metrics != nil {
		return a.Metrics
	}
	return noMetrics{}
}

// apiFailure converts an API client error into the Temporal error for the
// retry policy (see ClassifiedError) and counts it when it is retried.
func (a *Activities) apiFailure(op string, err error) error {
	if c := chamelaion.Classify(err); c.Retryable {
		a.metrics().ObserveRetryable(c.Type, c.RetryAfter)
	}
	return ClassifiedError(op, err)
}

func (a *Activities) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}
