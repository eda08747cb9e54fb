package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chamelaion-lipsync/worker/activities"
)

// Names by which clients address the batch workflow.
const (
	// BatchWorkflowName is the batch workflow's registered type name.
	BatchWorkflowName = "LipSyncBatch"
	// BatchWorkflowIDPrefix prefixes a batch id to make its workflow ID.
	BatchWorkflowIDPrefix = "batch-"
	// QueryBatchProgress answers a BatchProgress.
	QueryBatchProgress = "progress"
	// UpdateBatchResolve delivers a human's BatchDecision to a batch paused
	// by an account-wide failure.
	UpdateBatchResolve = "resolve-account"
	// DefaultBatchConcurrency bounds the jobs of a batch in flight when the
	// input does not say. Jobs in flight mostly wait on the vendor: at 60
	// submissions a minute and jobs of a few minutes, several hundred are
	// in flight at once.
	DefaultBatchConcurrency = 500
	// DefaultBatchMaxPending bounds the jobs started and not yet accepted
	// by the vendor when the input does not say: enough to keep the
	// rate-limited submission queue fed, few enough that it never holds a
	// deep backlog (whose dispatch is uneven) and that an account-wide
	// failure holds few jobs back.
	DefaultBatchMaxPending = 30
	// DefaultBatchStartsPerRun is how many jobs one run of a batch starts
	// before it continues as new.
	DefaultBatchStartsPerRun = 500
	// batchHistoryBound and batchHistorySizeBound continue a run as new
	// when its history grows past this many events or bytes, whatever
	// else happens.
	batchHistoryBound     = 20000
	batchHistorySizeBound = 8 << 20
	// DefaultBatchReconcileAfter is how long a batch waits to hear from a
	// job before it asks Temporal how the job stands (a job cancelled or
	// terminated without a word, a signal that never arrived).
	DefaultBatchReconcileAfter = 10 * time.Minute
	// maxOutcomeMessage bounds each message a batch keeps of a job's end
	// (listed outcomes), and maxWaitingMessage the message it keeps of a
	// job waiting for a human, so that state and result stay within a
	// payload however long the messages (1,000 listed outcomes and
	// maxWaiting jobs with 200-byte reference_ids: about 1.5 MB at most).
	maxOutcomeMessage = 300
	maxWaitingMessage = 160
	// MaxDecisionBy bounds who answered a decision.
	MaxDecisionBy = 200
)

// Batch statuses, as the progress query and LipsyncStatus report them.
const (
	BatchRunning   = "running"
	BatchPaused    = "paused"
	BatchCompleted = "completed"
	BatchAborted   = "aborted"
)

// BatchWorkflowID is the workflow ID of the batch with this id.
func BatchWorkflowID(batchID string) string { return BatchWorkflowIDPrefix + batchID }

// BatchInput is a batch of jobs.
type BatchInput struct {
	// BatchID names the batch; it is unique, and starting a batch id again
	// never starts its jobs twice.
	BatchID string
	// Jobs are the jobs not yet started, in order; each needs its own
	// ReferenceID.
	Jobs []LipSyncInput
	// Source, instead of Jobs, names a batch file the workers read page by
	// page: for batches too large to ride in a workflow input (about 1.5
	// MB, some 5,000 jobs).
	Source *activities.BatchSource `json:",omitempty"`
	// Concurrency bounds the jobs in flight (started, not ended); the next
	// job starts as soon as one ends.
	Concurrency int
	// MaxPending bounds the jobs started and not yet accepted by the
	// vendor (0 = DefaultBatchMaxPending).
	MaxPending int
	// StartsPerRun is how many jobs a run starts (or records as not
	// submitted, after an abort) before it continues as new
	// (0 = DefaultBatchStartsPerRun).
	StartsPerRun int
	// PageSize is how many jobs of a Source one page holds at most
	// (0 = 500).
	PageSize int `json:",omitempty"`
	// ReconcileAfter is how long the batch waits to hear from a job before
	// it asks Temporal how the job stands (0 = DefaultBatchReconcileAfter).
	ReconcileAfter time.Duration `json:",omitempty"`
	// Resume carries the batch's state into a continued run. Callers leave
	// it nil.
	Resume *BatchState `json:",omitempty"`
	// legacy: written in Go's field names, as before the wire contract
	// (wire.go).
	legacy bool
	// wireErr is why the batch, sent in the contract's shape, could not
	// be read (ValidateBatchInput reports it).
	wireErr error
}

// BatchState is what a batch carries across continue-as-new.
type BatchState struct {
	Total     int
	StartedAt time.Time
	// Loaded counts the jobs read from the Source so far.
	Loaded int
	// InFlight are the jobs started and not yet ended, in start order.
	InFlight  []InFlightJob
	Submitted int
	Completed int
	// Ended jobs that did not complete, by outcome.
	Escalated    int
	Abandoned    int
	NotSubmitted int
	Duplicate    int
	Cancelled    int `json:",omitempty"`
	// Outcomes lists the first MaxListedOutcomes ended jobs that did not
	// complete (the counts above cover all of them).
	Outcomes []JobOutcome
	// Pause is the account-wide failure the batch waits on, if any.
	Pause *AccountPause `json:",omitempty"`
	// Pauses counts the account-wide escalations so far.
	Pauses int
	// Decision is a human's answer accepted and not yet carried out (it
	// survives a continue-as-new).
	Decision *BatchDecision `json:",omitempty"`
	Aborted  bool
	// AbortReason is recorded for every job the abort leaves unsubmitted.
	AbortReason string `json:",omitempty"`
	Runs        int
	// Reconciled is when the batch last looked up jobs it had not heard
	// from.
	Reconciled time.Time `json:",omitempty"`
	// Cursor is where the next page of a Source starts.
	Cursor *activities.SourceCursor `json:",omitempty"`
}

// InFlightJob is a started job the batch has not heard the end of.
type InFlightJob struct {
	ReferenceID string
	// Status is starting, pending, blocked, queued, processing or
	// escalated (in front of a human: settled, holding no slot).
	Status string
	// Submitted is true while the vendor holds the job (not after a
	// human's retry, until it is submitted again).
	Submitted bool
	// Counted says the job counts in BatchState.Submitted.
	Counted bool `json:",omitempty"`
	// Seq is the sequence number of the job's last event applied (0 =
	// jobs that do not number their events).
	Seq int `json:",omitempty"`
	// HeardAt is when the batch last heard of the job (or started it).
	HeardAt time.Time `json:",omitempty"`
	// Why the job is in front of a human, for the result if the batch
	// settles first.
	Reason     string `json:",omitempty"`
	HTTPStatus int    `json:",omitempty"`
	Message    string `json:",omitempty"`
}

// active says whether the job holds a slot of the window (an escalated job
// waiting for a human does not).
func (j InFlightJob) active() bool { return j.Status != jobEscalated }

// pending says whether the job is started and not held by the vendor.
func (j InFlightJob) pending() bool { return j.active() && !j.Submitted }

// The statuses of a job in flight, as the batch knows it.
const (
	jobStarting   = "starting"
	jobPending    = "pending"
	jobBlocked    = "blocked"
	jobQueued     = "queued"
	jobProcessing = "processing"
	jobEscalated  = "escalated"
)

// JobOutcome is how a job of a batch ended.
type JobOutcome struct {
	ReferenceID string
	// Outcome is one of the Outcome* constants.
	Outcome    string
	Reason     string `json:",omitempty"`
	HTTPStatus int    `json:",omitempty"`
	Message    string `json:",omitempty"`
}

// AccountPause is an account-wide failure a batch waits on.
type AccountPause struct {
	Reason     string
	HTTPStatus int
	Message    string
	// ReferenceID is the job that met the failure first.
	ReferenceID  string
	Since        time.Time
	EscalationID int64
	// Escalated is true once the escalation is recorded (or, for a pause
	// behind another owner's hold, once that is known).
	Escalated bool
	// HeldBy names the workflow whose hold held the jobs back, when it is
	// not this batch's: the batch raises no escalation or hold of its own
	// and resumes by itself once that hold is released.
	HeldBy string `json:",omitempty"`
	// Blocked are the jobs waiting on the decision.
	Blocked []string
}

// BatchProgress answers the progress query.
type BatchProgress struct {
	BatchID string
	// Status is running, paused, completed or aborted.
	Status string
	Total  int
	// Submitted counts the jobs the vendor accepted.
	Submitted int
	// Pending jobs are started but not yet accepted (Blocked among them
	// wait on an account-wide failure).
	Pending    int
	Blocked    int
	Queued     int
	Processing int
	Completed  int
	// Escalated counts jobs in front of a human or ended escalated.
	Escalated    int
	Abandoned    int
	NotSubmitted int
	Duplicate    int
	Cancelled    int `json:",omitempty"`
	// Waiting counts the escalated jobs waiting for a human (among
	// Escalated): settled, they hold no slot and the batch ends without
	// them.
	Waiting int `json:",omitempty"`
	// Remaining jobs have not been started.
	Remaining int
	InFlight  int
	// Pause says why the batch is paused.
	Pause *AccountPause `json:",omitempty"`
	Runs  int
	// legacy: written in Go's field names, as before the wire contract
	// (wire.go).
	legacy bool
}

// Ended says whether the batch has ended: every job settled (completed,
// abandoned, not submitted, duplicate, cancelled, or escalated and waiting
// for a human).
func (p BatchProgress) Ended() bool {
	return p.Status == BatchCompleted || p.Status == BatchAborted
}

// BatchResult is a batch that ended.
type BatchResult struct {
	BatchID      string
	Total        int
	Completed    int
	Escalated    int
	Abandoned    int
	NotSubmitted int
	Duplicate    int
	Aborted      bool
	// Outcomes lists the jobs that did not complete, up to
	// MaxListedOutcomes of them (OutcomesListed is false when there were
	// more); every job's own workflow holds its result (see
	// lipsync.Client.BatchOutcomes).
	Outcomes       []JobOutcome
	OutcomesListed bool
	// Cancelled counts jobs whose workflow was cancelled or terminated.
	Cancelled int `json:",omitempty"`
	// Waiting counts the escalated jobs still waiting for a human when the
	// batch settled; each stays resolvable on its own (starter resolve),
	// and its later outcome is recorded in PostgreSQL.
	Waiting int `json:",omitempty"`
	Runs    int
	// legacy: written in Go's field names, as before the wire contract
	// (wire.go).
	legacy bool
}

// BatchDecision is a human's answer to an account-wide failure.
type BatchDecision struct {
	// Action is "resume" (the key was fixed or the plan upgraded: the
	// held-back jobs are submitted again) or "abort" (the jobs not yet
	// submitted are recorded as not submitted).
	Action string
	Note   string
	By     string
	// legacy: written in Go's field names, as before the wire contract
	// (wire.go).
	legacy bool
}

// ValidateBatchDecision refuses an unknown action and an oversized note or
// name.
func ValidateBatchDecision(d BatchDecision) error {
	if d.Action != activities.DecisionResume && d.Action != activities.DecisionAbort {
		return fmt.Errorf("unknown action %q: want resume or abort", d.Action)
	}
	if len(d.By) > MaxDecisionBy {
		return fmt.Errorf("by is %d bytes long; at most %d are allowed", len(d.By), MaxDecisionBy)
	}
	return validateNote(d.Note)
}

// ValidateBatchInput refuses a batch that can never run, naming the job.
func ValidateBatchInput(in BatchInput) error {
	if in.wireErr != nil {
		return in.wireErr
	}
	if in.BatchID == "" {
		return errors.New("batch id is empty")
	}
	if err := ValidateReferenceID(in.BatchID); err != nil {
		return fmt.Errorf("batch id: %w", err)
	}
	if in.Concurrency < 0 || in.StartsPerRun < 0 || in.MaxPending < 0 || in.ReconcileAfter < 0 || in.PageSize < 0 {
		return errors.New("concurrency, max pending, starts per run, page size and reconcile after must not be negative")
	}
	if src := in.Source; src != nil {
		switch {
		case len(in.Jobs) > 0 && in.Resume == nil:
			return errors.New("a batch has either jobs or a source file, not both")
		case !strings.HasPrefix(src.Path, "/"):
			return fmt.Errorf("source file must be an absolute path, got %q", src.Path)
		case len(src.SHA256) != 64:
			return errors.New("source file needs its SHA-256 digest (64 hex digits)")
		case src.Jobs < 1:
			return errors.New("source file must hold at least one job")
		}
	}
	seen := make(map[string]int, len(in.Jobs))
	for i, j := range in.Jobs {
		if j.ReferenceID == "" {
			return fmt.Errorf("job %d: reference_id is empty", i+1)
		}
		if first, dup := seen[j.ReferenceID]; dup {
			return fmt.Errorf("job %d: duplicate reference_id %q (first in job %d)", i+1, j.ReferenceID, first)
		}
		seen[j.ReferenceID] = i + 1
		if err := ValidateInput(j); err != nil {
			return fmt.Errorf("job %d (%s): %w", i+1, j.ReferenceID, err)
		}
	}
	return nil
}

// MaxListedOutcomes bounds the non-completed outcomes a batch lists in its
// state and result, so that neither outgrows a payload however many jobs
// fail.
const MaxListedOutcomes = 1000
