// Package workflows holds the lip-sync workflow: one Chamelaion job, made
// durable. Workflow code here is deterministic: it reads time only through
// workflow.Now, waits only on durable timers, and leaves every effect on the
// world to the activities package.
package workflows

import (
	"fmt"
	"time"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/config"
	"github.com/chamelaion-lipsync/worker/pollplan"
)

// Names by which clients address the workflow.
const (
	// WorkflowName is the lip-sync workflow's registered type name.
	WorkflowName = "LipSync"
	// QueryStatus answers a JobStatus.
	QueryStatus = "status"
	// UpdateResolve delivers a human's Decision to an escalated job.
	UpdateResolve = "resolve"
	// ReasonAbandoned: a human abandoned the escalated job.
	ReasonAbandoned = "Abandoned"
	// WorkflowIDPrefix prefixes a job's reference_id to make its workflow ID.
	WorkflowIDPrefix = "lipsync-"
)

// Reasons a job is escalated, beside the API failure types of the
// chamelaion package (QuotaExceeded, BadRequest, ...).
const (
	// ReasonJobFailed: the vendor reported the job failed.
	ReasonJobFailed = activities.TypeJobFailed
	// ReasonDeadlineExceeded: the job did not finish before its deadline.
	ReasonDeadlineExceeded = "DeadlineExceeded"
	// ReasonRetriesExhausted: a retryable failure outlasted the retry budget.
	ReasonRetriesExhausted = "RetriesExhausted"
	// ReasonStuck: the job stayed queued longer than the stuck threshold.
	ReasonStuck = "Stuck"
	// ReasonInvalidInput: the workflow input was refused before anything ran.
	ReasonInvalidInput = activities.TypeInvalidInput
)

// PollSchedule is when to check a job's status. With a TargetLatency and
// enough completed jobs to learn from, the checks follow a plan learned
// from their processing times (package pollplan); otherwise the first wait
// is Initial, each next one Coefficient times longer, capped at Max (which
// caps the plan's gaps too).
type PollSchedule struct {
	Initial     time.Duration
	Max         time.Duration
	Coefficient float64
	// TargetLatency is how soon after finishing 95% of jobs should be seen
	// finished (0 = back off geometrically only).
	TargetLatency time.Duration `json:",omitempty"`
}

// Settings are the knobs of one job, fixed when the job starts (recorded in
// its history, so that a worker restarted with another configuration does
// not change a running job's decisions).
type Settings struct {
	Poll            PollSchedule
	StuckAfter      time.Duration
	Deadline        time.Duration
	RequestTimeout  time.Duration
	RetryInitial    time.Duration
	RetryMax        time.Duration
	RetryMaxElapsed time.Duration
	NotifyTimeout   time.Duration
	// DecisionWait is how long an escalated job waits for a human's
	// answer before it ends failed (0 = it ends at once).
	DecisionWait   time.Duration
	MaxPollsPerRun int
	// SubmitTaskQueue is the rate-limited task queue of Submit activities.
	SubmitTaskQueue string
	// StatusTaskQueue is the rate-limited task queue of status checks
	// ("" = the workflow's own task queue, as runs before it had).
	StatusTaskQueue string `json:",omitempty"`
}

// SettingsFromConfig derives the default job settings from the worker's
// configuration.
func SettingsFromConfig(c config.Config) Settings {
	return Settings{
		Poll: PollSchedule{
			Initial:       c.Jobs.PollInitialInterval,
			Max:           c.Jobs.PollMaxInterval,
			Coefficient:   c.Jobs.PollBackoffCoefficient,
			TargetLatency: c.Jobs.PollTargetLatency,
		},
		StuckAfter:      c.Jobs.StuckAfter,
		Deadline:        c.Jobs.Deadline,
		RequestTimeout:  c.API.RequestTimeout,
		RetryInitial:    c.Jobs.RetryInitialInterval,
		RetryMax:        c.Jobs.RetryMaxInterval,
		RetryMaxElapsed: c.Jobs.RetryMaxElapsed,
		NotifyTimeout:   c.Notify.Timeout,
		DecisionWait:    c.Jobs.DecisionWait,
		MaxPollsPerRun:  c.Jobs.MaxPollsPerRun,
		SubmitTaskQueue: SubmitTaskQueue(c.Temporal.TaskQueue),
		StatusTaskQueue: StatusTaskQueue(c.Temporal.TaskQueue),
	}
}

// StatusTaskQueue names the task queue of the status checks for a worker's
// main task queue.
func StatusTaskQueue(taskQueue string) string { return taskQueue + "-status" }

// SubmitTaskQueue names the task queue of the submission activities for a
// worker's main task queue.
func SubmitTaskQueue(taskQueue string) string { return taskQueue + "-submit" }

// withOverrides applies a job's own overrides to the defaults.
func (s Settings) withOverrides(in LipSyncInput) Settings {
	if p := in.Poll; p != nil {
		if p.Initial > 0 {
			s.Poll.Initial = p.Initial
		}
		if p.Max > 0 {
			s.Poll.Max = p.Max
		}
		if p.Coefficient >= 1 {
			s.Poll.Coefficient = p.Coefficient
		}
		if p.TargetLatency > 0 {
			s.Poll.TargetLatency = p.TargetLatency
		}
		if s.Poll.Max < s.Poll.Initial {
			s.Poll.Max = s.Poll.Initial
		}
	}
	if in.StuckAfter > 0 {
		s.StuckAfter = in.StuckAfter
	}
	if in.Deadline > 0 {
		s.Deadline = in.Deadline
	}
	return s
}

// LipSyncInput is one job. Only Video, Audio and (usually) ReferenceID are
// needed; the rest overrides the worker's defaults.
type LipSyncInput struct {
	// Video and Audio are http(s) URLs the vendor downloads (pre-signed URLs
	// are fine: their query strings are never logged or stored), or
	// file:///absolute/path references to files the worker uploads.
	Video string
	Audio string
	// ReferenceID is the caller's identifier of the job, unique per job.
	// When empty, the workflow ID is used.
	ReferenceID string
	// DisableActiveSpeakerDetection selects the vendor's max-face mode.
	DisableActiveSpeakerDetection bool
	// BatchID groups jobs submitted together (optional).
	BatchID string
	// Poll overrides the poll schedule (zero fields keep the defaults).
	Poll *PollSchedule `json:",omitempty"`
	// StuckAfter overrides JOB_STUCK_AFTER (0 keeps the default).
	StuckAfter time.Duration
	// Deadline overrides JOB_DEADLINE (0 keeps the default).
	Deadline time.Duration
	// Resume carries the job's state into a continued run. Callers leave
	// it nil.
	Resume *JobState `json:",omitempty"`
	// legacy: written in Go's field names, as before the wire contract
	// (wire.go).
	legacy bool
	// wireErr is why the job, sent in the contract's shape, could not be
	// read (ValidateInput reports it).
	wireErr error
}

// JobState is what a job knows about itself; it is carried across
// continue-as-new and answered (in part) by the status query.
type JobState struct {
	Settings    Settings
	ReferenceID string
	Attempt     int
	RequestID   string
	// PreviousRequestIDs are the requests of earlier attempts.
	PreviousRequestIDs []string
	Adopted            bool
	Status             string
	// StatusSince is when the job entered Status (workflow time).
	StatusSince       time.Time
	StartedAt         time.Time
	SubmittedAt       time.Time
	ProcessingStarted *time.Time
	// SubmitAnsweredAt is when the vendor's answer to the submission
	// arrived (the activity's clock; zero for an adopted request): the
	// moment the vendor created the job, give or take half a round trip.
	SubmitAnsweredAt time.Time `json:",omitempty"`
	// VendorCreated is the vendor's created_at of the request: with
	// ProcessingStarted it gives the queue wait on the vendor's own clock.
	VendorCreated *time.Time `json:",omitempty"`
	// Plan is the job's learned poll plan (nil = geometric backoff);
	// Planned says it was asked for.
	Plan          *pollplan.Plan `json:",omitempty"`
	Planned       bool           `json:",omitempty"`
	StatusChecks  int
	NextPoll      time.Duration
	StuckNotified bool
	// Runs counts the workflow runs of this job (1 + continue-as-new count).
	Runs int
	// ExecutionID names this execution of the job (one workflow start, all
	// its runs): a reference_id run again after its job ended is a new
	// execution, whose attempts get rows and events of their own.
	ExecutionID string `json:",omitempty"`
	// SubmitMayExist says an earlier submission of the job may have
	// created a job at the vendor although it failed (its answer was lost,
	// or its retries ran out after its request landed): the next
	// submission looks for it first. SubmitEndedAt is when that
	// submission ended.
	SubmitMayExist bool      `json:",omitempty"`
	SubmitEndedAt  time.Time `json:",omitempty"`
	// BatchSeq numbers the events the job has told its batch.
	BatchSeq int `json:",omitempty"`
	// HeldSince is when the job's status checks were first found held by
	// another workflow's account hold (zero when not held), and HeldFor
	// the time they were held before: neither counts against the job's
	// deadline (the job waits on a human's answer, not the vendor).
	HeldSince time.Time     `json:",omitempty"`
	HeldFor   time.Duration `json:",omitempty"`
}

// LipSyncResult is a completed job.
type LipSyncResult struct {
	ReferenceID string
	RequestID   string
	// Status is "completed".
	Status    string
	OutputURL string
	// Adopted is true when the request was created by an attempt whose
	// answer was lost, and adopted rather than submitted twice.
	Adopted bool
	// StartedAt is when the workflow started, SubmittedAt when the vendor
	// accepted the job, ProcessingStartedAt when the vendor started it (if
	// it said), FinishedAt when the workflow saw it complete.
	StartedAt           time.Time
	SubmittedAt         time.Time
	ProcessingStartedAt *time.Time `json:",omitempty"`
	FinishedAt          time.Time
	// Duration is FinishedAt - StartedAt.
	Duration time.Duration
	// StatusChecks is the number of status checks the job took.
	StatusChecks int
	// Runs is the number of workflow runs (continue-as-new) the job took.
	Runs int
	// legacy: written in Go's field names, as before the wire contract
	// (wire.go).
	legacy bool
}

// JobStatus answers the status query.
type JobStatus struct {
	ReferenceID   string
	RequestID     string
	Status        string
	Attempt       int
	StatusChecks  int
	StuckNotified bool
	// Escalated names the reason when the job is in front of a human.
	Escalated string `json:",omitempty"`
	LastError string `json:",omitempty"`
	StartedAt time.Time
	Runs      int
	// WaitingForDecision is true while an escalated job waits for a
	// human's answer (UpdateResolve).
	WaitingForDecision bool
	// BlockedOnAccount names the account-wide failure (Unauthorized,
	// QuotaExceeded) a batch job waits on until its batch is resumed or
	// aborted.
	BlockedOnAccount string `json:",omitempty"`
	// legacy: written in Go's field names, as before the wire contract
	// (wire.go).
	legacy bool
}

// Decision is a human's answer to an escalated job.
type Decision struct {
	// Action is "retry" (resubmit as a new attempt), "resume" (keep
	// polling the request the job has, for failures after submission and
	// for a deadline) or "abandon".
	Action string
	// Note is recorded with the answer.
	Note string
	// By says who or what sent it.
	By string
	// legacy: written in Go's field names, as before the wire contract
	// (wire.go).
	legacy bool
}

// DecisionResult acknowledges a Decision.
type DecisionResult struct {
	Action string
	// Attempt is the attempt the decision answered.
	Attempt int
	// legacy: written in Go's field names, as before the wire contract
	// (wire.go).
	legacy bool
}

// ValidateDecision refuses an unknown action. Whether the job offers the
// action is the job's to say (a job escalated before any request was
// accepted has nothing to resume).
func ValidateDecision(d Decision) error {
	switch d.Action {
	case activities.DecisionRetry, activities.DecisionResume, activities.DecisionAbandon:
	default:
		return fmt.Errorf("unknown action %q: want retry, resume or abandon", d.Action)
	}
	return validateNote(d.Note)
}

// validateNote bounds the note recorded with a human's answer.
func validateNote(note string) error {
	if len(note) > 2000 {
		return fmt.Errorf("note is %d bytes long; at most 2000 are allowed", len(note))
	}
	return nil
}

// ValidateInput refuses a job that can never run, before any side effect,
// with a message that says what is wrong (and never repeats a media URL,
// which may carry credentials).
func ValidateInput(in LipSyncInput) error {
	if in.wireErr != nil {
		return in.wireErr
	}
	if err := activities.ValidateMedia(in.Video, in.Audio); err != nil {
		return err
	}
	if err := ValidateReferenceID(in.ReferenceID); err != nil {
		return err
	}
	if p := in.Poll; p != nil {
		if p.Initial < 0 || p.Max < 0 || p.TargetLatency < 0 {
			return fmt.Errorf("poll intervals must not be negative")
		}
		if p.Coefficient != 0 && p.Coefficient < 1 {
			return fmt.Errorf("poll coefficient must be at least 1, got %g", p.Coefficient)
		}
	}
	if in.StuckAfter < 0 {
		return fmt.Errorf("stuck_after must not be negative")
	}
	if in.Deadline < 0 {
		return fmt.Errorf("deadline must not be negative")
	}
	return nil
}

// ValidateNewJob is ValidateInput and the checks a job is held to when it
// starts, which a running job's continued runs are not (it was accepted
// without them): its own stuck_after must be shorter than its own
// deadline, as JOB_STUCK_AFTER must be shorter than JOB_DEADLINE, or the
// stuck notice could never come.
func ValidateNewJob(in LipSyncInput) error {
	if err := ValidateInput(in); err != nil {
		return err
	}
	if in.StuckAfter > 0 && in.Deadline > 0 && in.StuckAfter >= in.Deadline {
		return fmt.Errorf("stuck_after (%s) must be shorter than the deadline (%s)", readable(in.StuckAfter), readable(in.Deadline))
	}
	return nil
}

// MaxReferenceIDLength bounds a reference_id.
const MaxReferenceIDLength = activities.MaxReferenceIDLength

// ValidateReferenceID accepts "" (derived later) or up to 200 printable,
// non-space characters.
func ValidateReferenceID(ref string) error { return activities.ValidateReferenceID(ref) }

// WorkflowID is the workflow ID of the job with this reference_id.
func WorkflowID(referenceID string) string { return WorkflowIDPrefix + referenceID }

// isTerminal says whether a vendor status ends the job.
func isTerminal(s chamelaion.Status) bool {
	return s == chamelaion.StatusCompleted || s == chamelaion.StatusFailed
}
