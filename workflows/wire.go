package workflows

// The wire contract: how the values another service sends to the
// workflows, or reads from them, are spelled in JSON. It is documented in
// docs/contract.schema.json (kept in step with the wire structs below by
// TestSchemaMatchesTheWireTypes) and in the README's "Starting jobs from
// another language".
//
//   - Members are named in the vendor's vocabulary, in snake_case
//     (reference_id, video_url, audio_url, request_id, output_url,
//     error_message).
//   - Times are RFC 3339 strings in UTC ("2026-04-07T10:00:00Z", with a
//     fraction of a second when there is one).
//   - Durations are strings in the form Go's time.ParseDuration reads and
//     time.Duration.String writes: a sequence of decimal numbers with a unit
//     each, "ns", "us", "ms", "s", "m" or "h" ("90s", "10m", "1h30m",
//     "1h0m0s", "1.5s").
//   - Nothing the worker keeps only for itself (the state a run carries into
//     the next, its settings) is part of it.
//
// Values recorded before the contract were spelled with Go's field names
// and durations in integer nanoseconds. Decoding accepts both shapes, so
// the histories of running jobs still decode, and a workflow answers in the
// shape it was started with (see wireShape): a service built against the
// old shape keeps reading what it expects until it is rebuilt.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/chamelaion-lipsync/worker/activities"
)

// versionWireContract marks runs that may answer in the wire contract's
// shape. Runs recorded before it answer in Go's field names, whatever
// their input.
const versionWireContract = "wire-contract"

// legacyShape says whether a run answers in the shape before the contract:
// when its input was spelled that way (its caller expects that shape), or
// when the run was recorded before the contract (v, its version of
// versionWireContract, asked for before anything else the run records).
func legacyShape(v workflow.Version, legacyInput bool) bool {
	return legacyInput || v == workflow.DefaultVersion
}

// inShape rewrites an escalated job's failure so that its details are
// written in the run's shape; any other error is returned as it is.
func inShape(err error, legacy bool) error {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.HasDetails() {
		return err
	}
	var d EscalationDetails
	if appErr.Details(&d) != nil || d.legacy == legacy {
		return err
	}
	d.legacy = legacy
	if appErr.NonRetryable() {
		return temporal.NewNonRetryableApplicationError(appErr.Message(), appErr.Type(), errors.Unwrap(appErr), d)
	}
	return temporal.NewApplicationError(appErr.Message(), appErr.Type(), d)
}

// Duration is a duration on the wire: the form time.ParseDuration reads
// ("10m", "1h30m", "1.5s").
type Duration string

// wireDuration writes d; zero is written as "" (and omitted).
func wireDuration(d time.Duration) Duration {
	if d == 0 {
		return ""
	}
	return Duration(d.String())
}

// parse reads a duration of the contract; "" is zero.
func (d Duration) parse(name string) (time.Duration, error) {
	if d == "" {
		return 0, nil
	}
	v, err := time.ParseDuration(string(d))
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a duration such as \"90s\", \"10m\" or \"1h30m\"", name, string(d))
	}
	return v, nil
}

// isContract says whether a JSON object is spelled as the contract's wire
// struct w: at least one of its members has one of w's names (the shape
// before the contract used Go's field names, none of which is snake_case
// or lower case). An empty object is taken as the contract's.
func isContract(data []byte, w any) (bool, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return false, err
	}
	if len(members) == 0 {
		return true, nil
	}
	names := jsonNames(reflect.TypeOf(w))
	for k := range members {
		if names[k] {
			return true, nil
		}
	}
	return false, nil
}

// jsonNames lists the JSON member names of a struct type's fields.
func jsonNames(t reflect.Type) map[string]bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	names := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names[name] = true
		}
	}
	return names
}

// The job input.

type wireJob struct {
	ReferenceID                   string    `json:"reference_id,omitempty"`
	VideoURL                      string    `json:"video_url"`
	AudioURL                      string    `json:"audio_url"`
	DisableActiveSpeakerDetection bool      `json:"disable_active_speaker_detection,omitempty"`
	BatchID                       string    `json:"batch_id,omitempty"`
	Poll                          *wirePoll `json:"poll,omitempty"`
	StuckAfter                    Duration  `json:"stuck_after,omitempty"`
	Deadline                      Duration  `json:"deadline,omitempty"`
}

type wirePoll struct {
	Initial       Duration `json:"initial,omitempty"`
	Max           Duration `json:"max,omitempty"`
	Coefficient   float64  `json:"coefficient,omitempty"`
	TargetLatency Duration `json:"target_latency,omitempty"`
}

// legacyJob is LipSyncInput spelled as before the contract. A run's
// continuation (Resume set) is written this way too: it is the worker's
// own, and Contract says the job answers in the contract's shape.
type legacyJob LipSyncInput

type continuedJob struct {
	legacyJob
	Contract bool `json:",omitempty"`
}

// MarshalJSON writes the job in the contract's shape (or, for a job that
// arrived in the old shape and for a run's continuation, in Go's).
func (in LipSyncInput) MarshalJSON() ([]byte, error) {
	if in.Resume != nil || in.legacy {
		return json.Marshal(continuedJob{legacyJob: legacyJob(in), Contract: !in.legacy})
	}
	w := wireJob{
		ReferenceID:                   in.ReferenceID,
		VideoURL:                      in.Video,
		AudioURL:                      in.Audio,
		DisableActiveSpeakerDetection: in.DisableActiveSpeakerDetection,
		BatchID:                       in.BatchID,
		StuckAfter:                    wireDuration(in.StuckAfter),
		Deadline:                      wireDuration(in.Deadline),
	}
	if p := in.Poll; p != nil {
		w.Poll = &wirePoll{Initial: wireDuration(p.Initial), Max: wireDuration(p.Max),
			Coefficient: p.Coefficient, TargetLatency: wireDuration(p.TargetLatency)}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads a job in either shape. A job in the contract's shape
// that cannot be read (a member of the wrong type, a duration that does
// not parse) is kept with the reason, which ValidateInput reports: the job
// then fails at once, naming the member, rather than its workflow task
// failing over and over.
func (in *LipSyncInput) UnmarshalJSON(data []byte) error {
	contract, err := isContract(data, wireJob{})
	if err != nil {
		return fmt.Errorf("job input: %w", err)
	}
	if !contract {
		var c continuedJob
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("job input: %w", err)
		}
		*in = LipSyncInput(c.legacyJob)
		in.legacy = !c.Contract
		return nil
	}
	var w wireJob
	// What can be read is kept even when something cannot: the refusal
	// then names the member at fault, not another one left empty.
	decodeErr := decodeStrict(data, &w)
	*in = LipSyncInput{
		ReferenceID:                   w.ReferenceID,
		Video:                         w.VideoURL,
		Audio:                         w.AudioURL,
		DisableActiveSpeakerDetection: w.DisableActiveSpeakerDetection,
		BatchID:                       w.BatchID,
	}
	errs := []error{decodeErr}
	parse := func(dst *time.Duration, d Duration, name string) {
		v, err := d.parse(name)
		errs = append(errs, err)
		*dst = v
	}
	parse(&in.StuckAfter, w.StuckAfter, "stuck_after")
	parse(&in.Deadline, w.Deadline, "deadline")
	if p := w.Poll; p != nil {
		in.Poll = &PollSchedule{Coefficient: p.Coefficient}
		parse(&in.Poll.Initial, p.Initial, "poll.initial")
		parse(&in.Poll.Max, p.Max, "poll.max")
		parse(&in.Poll.TargetLatency, p.TargetLatency, "poll.target_latency")
	}
	in.wireErr = errors.Join(errs...)
	return nil
}

// The job's result.

type wireResult struct {
	ReferenceID         string     `json:"reference_id"`
	RequestID           string     `json:"request_id"`
	Status              string     `json:"status"`
	OutputURL           string     `json:"output_url"`
	StartedAt           time.Time  `json:"started_at"`
	SubmittedAt         time.Time  `json:"submitted_at"`
	ProcessingStartedAt *time.Time `json:"processing_started_at,omitempty"`
	FinishedAt          time.Time  `json:"finished_at"`
	Duration            Duration   `json:"duration"`
	Adopted             bool       `json:"adopted"`
	StatusChecks        int        `json:"status_checks"`
	Runs                int        `json:"runs"`
}

type legacyResult LipSyncResult

// MarshalJSON writes the result in the run's shape.
func (r LipSyncResult) MarshalJSON() ([]byte, error) {
	if r.legacy {
		return json.Marshal(legacyResult(r))
	}
	return json.Marshal(wireResult{
		ReferenceID:         r.ReferenceID,
		RequestID:           r.RequestID,
		Status:              r.Status,
		OutputURL:           r.OutputURL,
		StartedAt:           r.StartedAt.UTC(),
		SubmittedAt:         r.SubmittedAt.UTC(),
		ProcessingStartedAt: utcPtr(r.ProcessingStartedAt),
		FinishedAt:          r.FinishedAt.UTC(),
		Duration:            Duration(r.Duration.String()),
		Adopted:             r.Adopted,
		StatusChecks:        r.StatusChecks,
		Runs:                r.Runs,
	})
}

// UnmarshalJSON reads a result in either shape.
func (r *LipSyncResult) UnmarshalJSON(data []byte) error {
	var w wireResult
	contract, err := decodeEither(data, &w, (*legacyResult)(r))
	if err != nil || !contract {
		r.legacy = err == nil
		return wrap("job result", err)
	}
	d, err := w.Duration.parse("duration")
	if err != nil {
		return wrap("job result", err)
	}
	*r = LipSyncResult{
		ReferenceID:         w.ReferenceID,
		RequestID:           w.RequestID,
		Status:              w.Status,
		OutputURL:           w.OutputURL,
		Adopted:             w.Adopted,
		StartedAt:           w.StartedAt,
		SubmittedAt:         w.SubmittedAt,
		ProcessingStartedAt: w.ProcessingStartedAt,
		FinishedAt:          w.FinishedAt,
		Duration:            d,
		StatusChecks:        w.StatusChecks,
		Runs:                w.Runs,
	}
	return nil
}

// The status query's answer.

type wireStatus struct {
	ReferenceID        string    `json:"reference_id"`
	RequestID          string    `json:"request_id"`
	Status             string    `json:"status"`
	Attempt            int       `json:"attempt"`
	StatusChecks       int       `json:"status_checks"`
	StuckNotified      bool      `json:"stuck_notified"`
	Escalated          string    `json:"escalated,omitempty"`
	ErrorMessage       string    `json:"error_message,omitempty"`
	StartedAt          time.Time `json:"started_at"`
	Runs               int       `json:"runs"`
	WaitingForDecision bool      `json:"waiting_for_decision"`
	BlockedOnAccount   string    `json:"blocked_on_account,omitempty"`
}

type legacyStatus JobStatus

// MarshalJSON writes the status in the run's shape.
func (s JobStatus) MarshalJSON() ([]byte, error) {
	if s.legacy {
		return json.Marshal(legacyStatus(s))
	}
	return json.Marshal(wireStatus{
		ReferenceID:        s.ReferenceID,
		RequestID:          s.RequestID,
		Status:             s.Status,
		Attempt:            s.Attempt,
		StatusChecks:       s.StatusChecks,
		StuckNotified:      s.StuckNotified,
		Escalated:          s.Escalated,
		ErrorMessage:       s.LastError,
		StartedAt:          s.StartedAt.UTC(),
		Runs:               s.Runs,
		WaitingForDecision: s.WaitingForDecision,
		BlockedOnAccount:   s.BlockedOnAccount,
	})
}

// UnmarshalJSON reads a status in either shape.
func (s *JobStatus) UnmarshalJSON(data []byte) error {
	var w wireStatus
	contract, err := decodeEither(data, &w, (*legacyStatus)(s))
	if err != nil || !contract {
		s.legacy = err == nil
		return wrap("job status", err)
	}
	*s = JobStatus{
		ReferenceID:        w.ReferenceID,
		RequestID:          w.RequestID,
		Status:             w.Status,
		Attempt:            w.Attempt,
		StatusChecks:       w.StatusChecks,
		StuckNotified:      w.StuckNotified,
		Escalated:          w.Escalated,
		LastError:          w.ErrorMessage,
		StartedAt:          w.StartedAt,
		Runs:               w.Runs,
		WaitingForDecision: w.WaitingForDecision,
		BlockedOnAccount:   w.BlockedOnAccount,
	}
	return nil
}

// The details of an escalated job's failure.

type wireEscalation struct {
	Reason       string `json:"reason"`
	HTTPStatus   int    `json:"http_status,omitempty"`
	ErrorMessage string `json:"error_message"`
	EscalationID int64  `json:"escalation_id,omitempty"`
	RequestID    string `json:"request_id,omitempty"`
}

type legacyEscalation EscalationDetails

// MarshalJSON writes the details in the run's shape.
func (d EscalationDetails) MarshalJSON() ([]byte, error) {
	if d.legacy {
		return json.Marshal(legacyEscalation(d))
	}
	return json.Marshal(wireEscalation{Reason: d.Reason, HTTPStatus: d.HTTPStatus, ErrorMessage: d.Message,
		EscalationID: d.EscalationID, RequestID: d.RequestID})
}

// UnmarshalJSON reads the details in either shape.
func (d *EscalationDetails) UnmarshalJSON(data []byte) error {
	var w wireEscalation
	contract, err := decodeEither(data, &w, (*legacyEscalation)(d))
	if err != nil || !contract {
		d.legacy = err == nil
		return wrap("escalation details", err)
	}
	*d = EscalationDetails{Reason: w.Reason, HTTPStatus: w.HTTPStatus, Message: w.ErrorMessage,
		EscalationID: w.EscalationID, RequestID: w.RequestID}
	return nil
}

// The resolve update's argument and answer.

type wireDecision struct {
	Action string `json:"action"`
	Note   string `json:"note,omitempty"`
	By     string `json:"by,omitempty"`
}

type legacyDecision Decision

// MarshalJSON writes the decision in the contract's shape (or in the shape
// it arrived in).
func (d Decision) MarshalJSON() ([]byte, error) {
	if d.legacy {
		return json.Marshal(legacyDecision(d))
	}
	return json.Marshal(wireDecision{Action: d.Action, Note: d.Note, By: d.By})
}

// UnmarshalJSON reads a decision in either shape.
func (d *Decision) UnmarshalJSON(data []byte) error {
	var w wireDecision
	contract, err := decodeEither(data, &w, (*legacyDecision)(d))
	if err != nil || !contract {
		d.legacy = err == nil
		return wrap("decision", err)
	}
	*d = Decision{Action: w.Action, Note: w.Note, By: w.By}
	return nil
}

type wireDecisionResult struct {
	Action  string `json:"action"`
	Attempt int    `json:"attempt"`
}

type legacyDecisionResult DecisionResult

// MarshalJSON writes the answer in the run's shape.
func (r DecisionResult) MarshalJSON() ([]byte, error) {
	if r.legacy {
		return json.Marshal(legacyDecisionResult(r))
	}
	return json.Marshal(wireDecisionResult{Action: r.Action, Attempt: r.Attempt})
}

// UnmarshalJSON reads the answer in either shape.
func (r *DecisionResult) UnmarshalJSON(data []byte) error {
	var w wireDecisionResult
	contract, err := decodeEither(data, &w, (*legacyDecisionResult)(r))
	if err != nil || !contract {
		r.legacy = err == nil
		return wrap("decision result", err)
	}
	*r = DecisionResult{Action: w.Action, Attempt: w.Attempt}
	return nil
}

// The batch input.

type wireBatch struct {
	BatchID        string         `json:"batch_id"`
	Jobs           []LipSyncInput `json:"jobs,omitempty"`
	Source         *wireSource    `json:"source,omitempty"`
	Concurrency    int            `json:"concurrency,omitempty"`
	MaxPending     int            `json:"max_pending,omitempty"`
	StartsPerRun   int            `json:"starts_per_run,omitempty"`
	PageSize       int            `json:"page_size,omitempty"`
	ReconcileAfter Duration       `json:"reconcile_after,omitempty"`
}

type wireSource struct {
	Path        string `json:"path"`
	SHA256      string `json:"sha256"`
	Jobs        int    `json:"jobs"`
	SkipInvalid bool   `json:"skip_invalid,omitempty"`
}

type legacyBatch BatchInput

type continuedBatch struct {
	legacyBatch
	Contract bool `json:",omitempty"`
}

// MarshalJSON writes the batch in the contract's shape (or, for a batch
// that arrived in the old shape and for a run's continuation, in Go's; its
// jobs each in their own).
func (in BatchInput) MarshalJSON() ([]byte, error) {
	if in.Resume != nil || in.legacy {
		return json.Marshal(continuedBatch{legacyBatch: legacyBatch(in), Contract: !in.legacy})
	}
	w := wireBatch{
		BatchID:        in.BatchID,
		Jobs:           in.Jobs,
		Concurrency:    in.Concurrency,
		MaxPending:     in.MaxPending,
		StartsPerRun:   in.StartsPerRun,
		PageSize:       in.PageSize,
		ReconcileAfter: wireDuration(in.ReconcileAfter),
	}
	if s := in.Source; s != nil {
		w.Source = &wireSource{Path: s.Path, SHA256: s.SHA256, Jobs: s.Jobs, SkipInvalid: s.SkipInvalid}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads a batch in either shape; like a job, a batch in the
// contract's shape that cannot be read is kept with the reason, which
// ValidateBatchInput reports.
func (in *BatchInput) UnmarshalJSON(data []byte) error {
	contract, err := isContract(data, wireBatch{})
	if err != nil {
		return fmt.Errorf("batch input: %w", err)
	}
	if !contract {
		var c continuedBatch
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("batch input: %w", err)
		}
		*in = BatchInput(c.legacyBatch)
		in.legacy = !c.Contract
		return nil
	}
	var w wireBatch
	decodeErr := decodeStrict(data, &w)
	*in = BatchInput{
		BatchID:      w.BatchID,
		Jobs:         w.Jobs,
		Concurrency:  w.Concurrency,
		MaxPending:   w.MaxPending,
		StartsPerRun: w.StartsPerRun,
		PageSize:     w.PageSize,
	}
	if s := w.Source; s != nil {
		in.Source = &activities.BatchSource{Path: s.Path, SHA256: s.SHA256, Jobs: s.Jobs, SkipInvalid: s.SkipInvalid}
	}
	var parseErr error
	in.ReconcileAfter, parseErr = w.ReconcileAfter.parse("reconcile_after")
	if err := errors.Join(decodeErr, parseErr); err != nil {
		in.wireErr = fmt.Errorf("batch input: %w", err)
	}
	return nil
}

// The batch's progress and result.

type wirePause struct {
	Reason       string    `json:"reason"`
	HTTPStatus   int       `json:"http_status,omitempty"`
	ErrorMessage string    `json:"error_message"`
	ReferenceID  string    `json:"reference_id"`
	Since        time.Time `json:"since"`
	EscalationID int64     `json:"escalation_id,omitempty"`
	Escalated    bool      `json:"escalated"`
	HeldBy       string    `json:"held_by,omitempty"`
	Blocked      []string  `json:"blocked"`
}

func toWirePause(p *AccountPause) *wirePause {
	if p == nil {
		return nil
	}
	return &wirePause{Reason: p.Reason, HTTPStatus: p.HTTPStatus, ErrorMessage: p.Message, ReferenceID: p.ReferenceID,
		Since: p.Since.UTC(), EscalationID: p.EscalationID, Escalated: p.Escalated, HeldBy: p.HeldBy, Blocked: nonNil(p.Blocked)}
}

func fromWirePause(p *wirePause) *AccountPause {
	if p == nil {
		return nil
	}
	return &AccountPause{Reason: p.Reason, HTTPStatus: p.HTTPStatus, Message: p.ErrorMessage, ReferenceID: p.ReferenceID,
		Since: p.Since, EscalationID: p.EscalationID, Escalated: p.Escalated, HeldBy: p.HeldBy, Blocked: p.Blocked}
}

type wireProgress struct {
	BatchID      string     `json:"batch_id"`
	Status       string     `json:"status"`
	Total        int        `json:"total"`
	Submitted    int        `json:"submitted"`
	Pending      int        `json:"pending"`
	Blocked      int        `json:"blocked"`
	Queued       int        `json:"queued"`
	Processing   int        `json:"processing"`
	Completed    int        `json:"completed"`
	Escalated    int        `json:"escalated"`
	Abandoned    int        `json:"abandoned"`
	NotSubmitted int        `json:"not_submitted"`
	Duplicate    int        `json:"duplicate"`
	Cancelled    int        `json:"cancelled"`
	Waiting      int        `json:"waiting"`
	Remaining    int        `json:"remaining"`
	InFlight     int        `json:"in_flight"`
	Pause        *wirePause `json:"pause,omitempty"`
	Runs         int        `json:"runs"`
}

type legacyProgress BatchProgress

// MarshalJSON writes the progress in the batch's shape.
func (p BatchProgress) MarshalJSON() ([]byte, error) {
	if p.legacy {
		return json.Marshal(legacyProgress(p))
	}
	return json.Marshal(wireProgress{
		BatchID: p.BatchID, Status: p.Status, Total: p.Total, Submitted: p.Submitted, Pending: p.Pending,
		Blocked: p.Blocked, Queued: p.Queued, Processing: p.Processing, Completed: p.Completed,
		Escalated: p.Escalated, Abandoned: p.Abandoned, NotSubmitted: p.NotSubmitted, Duplicate: p.Duplicate,
		Cancelled: p.Cancelled, Waiting: p.Waiting, Remaining: p.Remaining, InFlight: p.InFlight,
		Pause: toWirePause(p.Pause), Runs: p.Runs,
	})
}

// UnmarshalJSON reads the progress in either shape.
func (p *BatchProgress) UnmarshalJSON(data []byte) error {
	var w wireProgress
	contract, err := decodeEither(data, &w, (*legacyProgress)(p))
	if err != nil || !contract {
		p.legacy = err == nil
		return wrap("batch progress", err)
	}
	*p = BatchProgress{
		BatchID: w.BatchID, Status: w.Status, Total: w.Total, Submitted: w.Submitted, Pending: w.Pending,
		Blocked: w.Blocked, Queued: w.Queued, Processing: w.Processing, Completed: w.Completed,
		Escalated: w.Escalated, Abandoned: w.Abandoned, NotSubmitted: w.NotSubmitted, Duplicate: w.Duplicate,
		Cancelled: w.Cancelled, Waiting: w.Waiting, Remaining: w.Remaining, InFlight: w.InFlight,
		Pause: fromWirePause(w.Pause), Runs: w.Runs,
	}
	return nil
}

type wireOutcome struct {
	ReferenceID  string `json:"reference_id"`
	Outcome      string `json:"outcome"`
	Reason       string `json:"reason,omitempty"`
	HTTPStatus   int    `json:"http_status,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
}

type wireBatchResult struct {
	BatchID        string        `json:"batch_id"`
	Total          int           `json:"total"`
	Completed      int           `json:"completed"`
	Escalated      int           `json:"escalated"`
	Abandoned      int           `json:"abandoned"`
	NotSubmitted   int           `json:"not_submitted"`
	Duplicate      int           `json:"duplicate"`
	Cancelled      int           `json:"cancelled"`
	Waiting        int           `json:"waiting"`
	Aborted        bool          `json:"aborted"`
	Outcomes       []wireOutcome `json:"outcomes"`
	OutcomesListed bool          `json:"outcomes_listed"`
	Runs           int           `json:"runs"`
}

type legacyBatchResult BatchResult

// MarshalJSON writes the result in the batch's shape.
func (r BatchResult) MarshalJSON() ([]byte, error) {
	if r.legacy {
		return json.Marshal(legacyBatchResult(r))
	}
	w := wireBatchResult{
		BatchID: r.BatchID, Total: r.Total, Completed: r.Completed, Escalated: r.Escalated,
		Abandoned: r.Abandoned, NotSubmitted: r.NotSubmitted, Duplicate: r.Duplicate, Cancelled: r.Cancelled,
		Waiting: r.Waiting, Aborted: r.Aborted, OutcomesListed: r.OutcomesListed, Runs: r.Runs,
		Outcomes: make([]wireOutcome, 0, len(r.Outcomes)),
	}
	for _, o := range r.Outcomes {
		w.Outcomes = append(w.Outcomes, wireOutcome{ReferenceID: o.ReferenceID, Outcome: o.Outcome, Reason: o.Reason,
			HTTPStatus: o.HTTPStatus, ErrorMessage: o.Message})
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads the result in either shape.
func (r *BatchResult) UnmarshalJSON(data []byte) error {
	var w wireBatchResult
	contract, err := decodeEither(data, &w, (*legacyBatchResult)(r))
	if err != nil || !contract {
		r.legacy = err == nil
		return wrap("batch result", err)
	}
	*r = BatchResult{
		BatchID: w.BatchID, Total: w.Total, Completed: w.Completed, Escalated: w.Escalated,
		Abandoned: w.Abandoned, NotSubmitted: w.NotSubmitted, Duplicate: w.Duplicate, Cancelled: w.Cancelled,
		Waiting: w.Waiting, Aborted: w.Aborted, OutcomesListed: w.OutcomesListed, Runs: w.Runs,
	}
	for _, o := range w.Outcomes {
		r.Outcomes = append(r.Outcomes, JobOutcome{ReferenceID: o.ReferenceID, Outcome: o.Outcome, Reason: o.Reason,
			HTTPStatus: o.HTTPStatus, Message: o.ErrorMessage})
	}
	return nil
}

// The resolve-account update's argument (and answer: the decision taken).

type legacyBatchDecision BatchDecision

// MarshalJSON writes the decision in the contract's shape (or in the shape
// it arrived in).
func (d BatchDecision) MarshalJSON() ([]byte, error) {
	if d.legacy {
		return json.Marshal(legacyBatchDecision(d))
	}
	return json.Marshal(wireDecision{Action: d.Action, Note: d.Note, By: d.By})
}

// UnmarshalJSON reads a decision in either shape.
func (d *BatchDecision) UnmarshalJSON(data []byte) error {
	var w wireDecision
	contract, err := decodeEither(data, &w, (*legacyBatchDecision)(d))
	if err != nil || !contract {
		d.legacy = err == nil
		return wrap("batch decision", err)
	}
	*d = BatchDecision{Action: w.Action, Note: w.Note, By: w.By}
	return nil
}

// decodeEither decodes data into wire when it is spelled as the contract,
// into legacy (the type's own fields) otherwise, and says which.
func decodeEither(data []byte, wire, legacy any) (contract bool, err error) {
	contract, err = isContract(data, wire)
	if err != nil {
		return false, err
	}
	if contract {
		return true, json.Unmarshal(data, wire)
	}
	return false, json.Unmarshal(data, legacy)
}

// decodeStrict reads a value sent in the contract's shape into its wire
// struct w, refusing members the contract does not have (a caller's
// "referenceId" or "ReferenceID" beside "video_url" would otherwise be
// dropped without a word). encoding/json reads on past a member of the
// wrong type or an unknown one, so w holds everything that could be read;
// the error names the first member at fault, never its value.
func decodeStrict(data []byte, w any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(w)
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &typeErr):
		return fmt.Errorf("member %q: a JSON %s where the contract wants %s", typeErr.Field, typeErr.Value, wantOf(typeErr.Type))
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("unknown member %s: the contract's members are spelled in snake_case (docs/contract.schema.json)", name)
	}
	return err
}

// wantOf says what JSON the contract wants for a Go type.
func wantOf(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(Duration("")):
		return `a duration string such as "90s", "10m" or "1h30m"`
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.Slice:
		return "an array"
	}
	return "an object"
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
