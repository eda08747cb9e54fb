package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/chamelaion"
)

// Workflows holds the defaults the workflows start from. Register its
// methods with RegisterOptions{Name: WorkflowName}.
type Workflows struct {
	// Defaults are every job's settings unless its input overrides them.
	Defaults Settings
}

// EscalationDetails rides in the error of a workflow that ended escalated.
type EscalationDetails struct {
	Reason       string
	HTTPStatus   int
	Message      string
	EscalationID int64
	RequestID    string
	// legacy: written in Go's field names, as before the wire contract
	// (wire.go).
	legacy bool
}

// LipSync runs one job: record it, submit it idempotently, poll its status
// on durable timers with backoff until it completes, fails, or passes its
// deadline, and escalate every permanent failure to a human. It continues as
// new every MaxPollsPerRun checks so its history stays bounded however long
// the job runs.
func (w *Workflows) LipSync(ctx workflow.Context, in LipSyncInput) (LipSyncResult, error) {
	j := &job{in: in, workflowID: workflow.GetInfo(ctx).WorkflowExecution.ID}
	j.epoch = workflow.GetVersion(ctx, versionJobEpoch, workflow.DefaultVersion, 1)
	in.legacy = legacyShape(j.version(ctx, versionWireContract), in.legacy)
	j.in.legacy, j.legacy = in.legacy, in.legacy
	if parent := workflow.GetInfo(ctx).ParentWorkflowExecution; parent != nil && in.BatchID != "" {
		j.batchWorkflowID = parent.ID
	}
	res, err := w.lipSync(ctx, j)
	if !workflow.IsContinueAsNewError(err) {
		ref := j.state.ReferenceID
		if ref == "" {
			ref = in.ReferenceID
		}
		j.ended(ctx, ref, err)
	}
	res.legacy = j.legacy
	return res, inShape(err, j.legacy)
}

func (w *Workflows) lipSync(ctx workflow.Context, j *job) (LipSyncResult, error) {
	in := j.in
	if err := ValidateInput(in); err != nil {
		msg := "invalid input: " + err.Error()
		return LipSyncResult{}, temporal.NewNonRetryableApplicationError(msg, ReasonInvalidInput, nil,
			EscalationDetails{Reason: ReasonInvalidInput, Message: msg})
	}
	// Runs recorded before issue 13's fixes replay as they ran.
	j.v = j.version(ctx, versionExactness)
	j.v2 = j.version(ctx, versionHeldNotLate)
	if in.Resume != nil {
		j.state = *in.Resume
		j.state.Runs++
	} else {
		var s Settings
		defaults := w.Defaults
		// The settings are recorded in the history, so replays and
		// restarted workers with another configuration decide alike.
		// A run of the epoch records the execution's name with them: one
		// marker for both.
		var executionID string
		if j.epoch >= 1 {
			// The execution is named after its first run: a workflow task
			// retried after its local activity wrote the row (its worker
			// died before completing it) names it alike, where a random
			// name would make the row look taken over by another
			// execution.
			info := workflow.GetInfo(ctx)
			name := executionName(info.WorkflowExecution.RunID, info.WorkflowStartTime)
			var sv startValues
			if err := workflow.SideEffect(ctx, func(workflow.Context) any {
				return startValues{Settings: defaults.withOverrides(in), ExecutionID: name}
			}).Get(&sv); err != nil {
				return LipSyncResult{}, fmt.Errorf("record settings: %w", err)
			}
			s, executionID = sv.Settings, sv.ExecutionID
		} else if err := workflow.SideEffect(ctx, func(workflow.Context) any {
			return defaults.withOverrides(in)
		}).Get(&s); err != nil {
			return LipSyncResult{}, fmt.Errorf("record settings: %w", err)
		}
		ref := in.ReferenceID
		if ref == "" {
			ref = j.workflowID
		}
		j.state = JobState{
			Settings:    s,
			ReferenceID: ref,
			Attempt:     1,
			Status:      "pending",
			StatusSince: workflow.Now(ctx),
			StartedAt:   workflow.Now(ctx),
			NextPoll:    s.Poll.Initial,
			Runs:        1,
			ExecutionID: executionID,
		}
	}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (JobStatus, error) {
		return j.status(), nil
	}); err != nil {
		return LipSyncResult{}, fmt.Errorf("register status query: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateResolve,
		func(ctx workflow.Context, d Decision) (DecisionResult, error) {
			j.decision = &d
			return DecisionResult{Action: d.Action, Attempt: j.state.Attempt, legacy: j.legacy}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, d Decision) error {
			if err := ValidateDecision(d); err != nil {
				return err
			}
			if !j.waiting || j.decision != nil {
				return fmt.Errorf("job %s is not waiting for a decision (status %s)", j.state.ReferenceID, j.state.Status)
			}
			return j.offers(d.Action)
		}},
	); err != nil {
		return LipSyncResult{}, fmt.Errorf("register resolve update: %w", err)
	}

	j.publish(ctx)
	for {
		res, err := j.attempt(ctx)
		var esc *escalation
		if !errors.As(err, &esc) {
			return res, err
		}
		d, err := j.awaitDecision(ctx, esc)
		j.pending = nil
		if err != nil {
			return LipSyncResult{}, err
		}
		switch d.Action {
		case activities.DecisionRetry:
			j.retry(ctx)
		case activities.DecisionResume:
			if err := j.resume(ctx, d); err != nil {
				return LipSyncResult{}, err
			}
		default:
			return LipSyncResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("job abandoned by %s after escalation (%s): %s", orUnknown(d.By), esc.details.Reason, d.Note),
				ReasonAbandoned, nil, esc.details)
		}
	}
}

// executionName names a job's execution after its first run: a UUID
// derived from the run's ID and start time, the same however often the
// run's first workflow task is tried, and another for every new start of
// the workflow (a run ID never repeats; the start time tells apart the
// executions of test environments, which all share one run ID).
func executionName(runID string, started time.Time) string {
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte("lipsync-execution/"+runID+"/"+started.UTC().Format(time.RFC3339Nano))).String()
}

// startValues are what a run of the epoch records in one side effect when
// the job starts: its settings and the execution's name.
type startValues struct {
	Settings    Settings
	ExecutionID string
}

// versionJobEpoch marks runs begun on a worker that knows every change
// the job's workflow had when it was introduced (wire-contract,
// job-exactness, job-held-not-late, search-attributes, learned-poll-plan,
// blocked-watches-batch, job-end-told): such a run records this one
// version marker instead of one per change. Each version marker costs two
// history events (the marker and the SDK's TemporalChangeVersion
// search-attribute upsert) and a visibility write. Runs recorded before it
// ask for each change as they did. A change made after it adds its own
// GetVersion as usual.
const versionJobEpoch = "job-epoch-1"

// version is the run's version of one of the changes versionJobEpoch
// stands for: the latest in a run of the epoch, else as the run recorded
// it.
func (j *job) version(ctx workflow.Context, changeID string) workflow.Version {
	if j.epoch >= 1 {
		return 1
	}
	return workflow.GetVersion(ctx, changeID, workflow.DefaultVersion, 1)
}

// versionExactness marks runs with issue 13's fixes: a submission looks
// for the request an earlier one may have created, attempts of a re-run
// reference_id get rows of their own, API and database retries are
// separate, a rejected key while polling holds the account, and an
// escalation after submission may be resumed.
const versionExactness = "job-exactness"

// versionHeldNotLate marks runs in which time held behind another
// workflow's account hold does not count against the deadline, and an
// aborted batch's job whose submission may have reached the vendor looks
// for its request before it is recorded not submitted.
const versionHeldNotLate = "job-held-not-late"

// offers says whether the job, waiting on its escalation, takes action.
func (j *job) offers(action string) error {
	esc := j.pending
	switch {
	case esc == nil:
		return nil
	case action == activities.DecisionResume && (j.v < 1 || !esc.resumable):
		why := "it has no request to poll (it failed before the vendor accepted it)"
		switch {
		case j.v < 1:
			why = "it started on a worker version that cannot resume"
		case esc.details.Reason == ReasonJobFailed:
			why = "the vendor ended its request failed"
		}
		return fmt.Errorf("job %s cannot resume: %s; answer retry or abandon", j.state.ReferenceID, why)
	case action == activities.DecisionRetry && esc.account:
		return fmt.Errorf("job %s holds the account after %s: answer resume once the key works again (its request is polled on; nothing is resubmitted), or abandon",
			j.state.ReferenceID, esc.details.Reason)
	}
	return nil
}

// attempt submits the job (unless a request exists) and polls it to its
// end. A failure that went to a human returns an *escalation.
func (j *job) attempt(ctx workflow.Context) (LipSyncResult, error) {
	if j.state.RequestID == "" {
		if err := j.record(ctx); err != nil {
			return LipSyncResult{}, err
		}
		if err := j.submit(ctx); err != nil {
			return LipSyncResult{}, err
		}
	}
	return j.poll(ctx)
}

// escalation is a failure that was put in front of a human.
type escalation struct {
	details EscalationDetails
	// resumable: the job has a request the vendor has not ended, which a
	// resume polls on.
	resumable bool
	// account: the job holds the account after a rejected key (only
	// resume or abandon answer it).
	account bool
}

func (e *escalation) Error() string { return e.details.Reason + ": " + e.details.Message }

// finalError is the workflow's error for an escalated job that ends.
func (e *escalation) finalError() error {
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("job escalated to a human: %s: %s", e.details.Reason, e.details.Message), e.details.Reason, nil, e.details)
}

// awaitDecision waits up to DecisionWait for a human's answer. Without one
// it records the escalation as expired and returns the final error.
func (j *job) awaitDecision(ctx workflow.Context, esc *escalation) (Decision, error) {
	wait := j.state.Settings.DecisionWait
	if wait <= 0 {
		return Decision{}, esc.finalError()
	}
	if j.pending != esc || !j.waiting {
		j.openForAnswers(esc)
	}
	j.publish(ctx)
	workflow.GetLogger(ctx).Info("escalated job waiting for a decision", "Reason", esc.details.Reason, "Wait", wait)
	answered, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{Timeout: wait, TimerOptions: workflow.TimerOptions{
		Summary: fmt.Sprintf("wait up to %s for a human's answer to %s (starter resolve %s)", readable(wait), esc.details.Reason, j.state.ReferenceID),
	}}, func() bool { return j.decision != nil })
	j.waiting = false
	if err != nil {
		return Decision{}, err
	}
	d := Decision{Action: activities.DecisionExpired, By: "timeout", Note: fmt.Sprintf("no decision within %s", wait)}
	if answered {
		d = *j.decision
	}
	if err := workflow.ExecuteActivity(withSummary(j.storeOptions(ctx), fmt.Sprintf("record the answer: %s by %s", d.Action, orUnknown(d.By))), a.RecordDecision, activities.DecisionInput{
		WorkflowID: j.workflowID, ExecutionID: j.state.ExecutionID, Attempt: j.state.Attempt, Action: d.Action, By: d.By, Note: d.Note,
		Reason: esc.details.Reason, Message: esc.details.Message,
	}).Get(ctx, nil); err != nil {
		return Decision{}, fmt.Errorf("record decision: %w", err)
	}
	if !answered {
		return Decision{}, esc.finalError()
	}
	if d.Action == activities.DecisionAbandon {
		j.setStatus(ctx, "abandoned")
		j.publish(ctx)
	}
	return d, nil
}

// openForAnswers makes the job take a human's answer to esc from now
// on. An escalation opens it before it is recorded: whoever sees the
// escalation (its row, its notification) finds the job answerable, also
// while the record or the notification is still being retried.
func (j *job) openForAnswers(esc *escalation) {
	if j.state.Settings.DecisionWait <= 0 {
		return
	}
	j.pending, j.waiting, j.decision = esc, true, nil
}

// escalatedReason is the reason the job is escalated for, as the status
// query tells it: also while the escalation it is open for answers is
// still being recorded. (j.escalated itself is set where it always was: it
// decides the search-attribute upserts, whose order replays check.)
func (j *job) escalatedReason() string {
	if j.escalated == "" && j.waiting && j.pending != nil {
		return j.pending.details.Reason
	}
	return j.escalated
}

// retry starts a new attempt of the job: a new submission, a fresh
// deadline, and the earlier requests never adopted.
func (j *job) retry(ctx workflow.Context) {
	if j.state.RequestID != "" {
		j.state.PreviousRequestIDs = append(j.state.PreviousRequestIDs, j.state.RequestID)
	}
	j.state.Attempt++
	j.state.RequestID = ""
	j.state.HeldSince, j.state.HeldFor = time.Time{}, 0
	j.state.Adopted = false
	j.state.StuckNotified = false
	j.state.StartedAt = workflow.Now(ctx)
	j.state.SubmittedAt = time.Time{}
	// The new request's poll plan is anchored on the new request alone.
	j.state.ProcessingStarted, j.state.VendorCreated, j.state.SubmitAnsweredAt = nil, nil, time.Time{}
	j.escalated, j.lastError = "", ""
	j.setStatus(ctx, "pending")
	j.publish(ctx)
	j.tellRetrying(ctx)
	workflow.GetLogger(ctx).Info("retrying the job after a human's decision", "Attempt", j.state.Attempt)
}

// resume goes on polling the job's request after a human's answer, as a
// new attempt (its own row state, events and escalations) with a fresh
// deadline; nothing is resubmitted.
func (j *job) resume(ctx workflow.Context, d Decision) error {
	j.state.Attempt++
	j.state.StartedAt = workflow.Now(ctx)
	j.state.HeldSince, j.state.HeldFor = time.Time{}, 0
	j.escalated, j.lastError, j.blocked = "", "", ""
	status := "submitted"
	switch {
	case j.state.ProcessingStarted != nil:
		status = string(chamelaion.StatusProcessing)
	case j.state.StatusChecks > 0:
		status = string(chamelaion.StatusQueued)
	}
	j.setStatus(ctx, status)
	in := activities.RecordProgressInput{
		WorkflowID: j.workflowID, ExecutionID: j.state.ExecutionID, Attempt: j.state.Attempt, RequestID: j.state.RequestID, StatusChecks: j.state.StatusChecks,
		Status: status, StartedAt: j.state.ProcessingStarted,
		Message: fmt.Sprintf("resumed by %s: %s", orUnknown(d.By), d.Note),
	}
	if !j.state.SubmittedAt.IsZero() {
		at := j.state.SubmittedAt
		in.SubmittedAt = &at
	}
	if err := j.recordProgress(ctx, in, "record the resumed attempt"); err != nil {
		return err
	}
	j.publish(ctx)
	workflow.GetLogger(ctx).Info("polling the same request again after a human's decision", "Attempt", j.state.Attempt, "RequestId", j.state.RequestID)
	return nil
}

// recordProgress writes progress the API activities could not, with the
// database's retry policy.
func (j *job) recordProgress(ctx workflow.Context, in activities.RecordProgressInput, summary string) error {
	if err := workflow.ExecuteActivity(withSummary(j.storeOptions(ctx), summary), a.RecordProgress, in).Get(ctx, nil); err != nil {
		return fmt.Errorf("%s: %w", summary, err)
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "an unnamed operator"
	}
	return s
}

// job is one workflow run's working state.
type job struct {
	in         LipSyncInput
	workflowID string
	state      JobState
	escalated  string
	lastError  string
	// What publish last told Temporal's visibility.
	published          bool
	publishedStatus    string
	publishedRequest   string
	publishedEscalated string
	// waiting is true while the job waits for a human's decision.
	waiting  bool
	decision *Decision
	// batchWorkflowID is the workflow of the batch that started the job
	// ("" for a job started on its own).
	batchWorkflowID string
	// blocked names the account-wide failure the job waits on.
	blocked string
	// v is the run's version of the workflow's behaviour
	// (versionExactness), v2 of versionHeldNotLate.
	v  workflow.Version
	v2 workflow.Version
	// pending is the escalation waiting for a human's answer.
	pending *escalation
	// abortNote says why a held-back job was given up without its
	// batch's answer.
	abortNote string
	// legacy: the run answers in the shape before the wire contract.
	legacy bool
	// epoch is the run's versionJobEpoch.
	epoch workflow.Version
}

func (j *job) status() JobStatus {
	return JobStatus{
		ReferenceID:        j.state.ReferenceID,
		RequestID:          j.state.RequestID,
		Status:             j.state.Status,
		Attempt:            j.state.Attempt,
		StatusChecks:       j.state.StatusChecks,
		StuckNotified:      j.state.StuckNotified,
		Escalated:          j.escalatedReason(),
		LastError:          j.lastError,
		StartedAt:          j.state.StartedAt,
		Runs:               j.state.Runs,
		WaitingForDecision: j.waiting,
		BlockedOnAccount:   j.blocked,
		legacy:             j.legacy,
	}
}

// a is the nil receiver through which activities are named.
var a *activities.Activities

func (j *job) record(ctx workflow.Context) error {
	in := activities.RecordJobInput{
		WorkflowID:  j.workflowID,
		ReferenceID: j.state.ReferenceID,
		BatchID:     j.in.BatchID,
		Video:       j.in.Video,
		Audio:       j.in.Audio,
	}
	summary := "record the job"
	if j.v >= 1 {
		if j.state.ExecutionID == "" {
			// The execution's name: a reference_id run again after its job
			// ended takes the row over for its own attempts.
			if err := workflow.SideEffect(ctx, func(workflow.Context) any { return uuid.NewString() }).Get(&j.state.ExecutionID); err != nil {
				return fmt.Errorf("name the execution: %w", err)
			}
		}
		in.ExecutionID, in.Attempt = j.state.ExecutionID, j.state.Attempt
		summary = fmt.Sprintf("record attempt %d", j.state.Attempt)
	}
	if j.epoch >= 1 {
		// A local activity: the write runs in the workflow task and costs
		// the history one marker, not an activity's three events and a
		// workflow task of its own. A database away longer than the local
		// activity's half minute of retries is waited for as before, by
		// an activity the server retries for as long as it takes (the
		// failure is in the marker, so a replay takes the same path).
		err := workflow.ExecuteLocalActivity(storeLocalOptions(ctx, summary), a.RecordJob, in).Get(ctx, nil)
		if err == nil {
			return nil
		}
		if !retriedByStore(err) {
			return fmt.Errorf("record job: %w", err)
		}
		workflow.GetLogger(ctx).Warn("could not record the job within half a minute; retrying until the database answers", "Error", err)
	}
	if err := workflow.ExecuteActivity(withSummary(j.storeOptions(ctx), summary), a.RecordJob, in).Get(ctx, nil); err != nil {
		return fmt.Errorf("record job: %w", err)
	}
	return nil
}

// retriedByStore says whether a failed local store activity is one the
// store activity's retry policy would retry: anything but invalid input
// or a cancellation.
func retriedByStore(err error) bool {
	if temporal.IsCanceledError(err) {
		return false
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type() != activities.TypeInvalidInput
	}
	return true
}

func (j *job) submit(ctx workflow.Context) error {
	var res activities.SubmitResult
	held := 0
	for {
		in := activities.SubmitInput{
			WorkflowID:                    j.workflowID,
			ExecutionID:                   j.state.ExecutionID,
			ReferenceID:                   j.state.ReferenceID,
			Attempt:                       j.state.Attempt,
			Video:                         j.in.Video,
			Audio:                         j.in.Audio,
			DisableActiveSpeakerDetection: j.in.DisableActiveSpeakerDetection,
			KnownRequestIDs:               j.state.PreviousRequestIDs,
		}
		summary := fmt.Sprintf("submit attempt %d", j.state.Attempt)
		if j.v >= 1 {
			in.LookFirst, in.EarlierEndedAt = j.state.SubmitMayExist, j.state.SubmitEndedAt
			in.RetryBudget, in.RecordLater = j.state.Settings.RetryMaxElapsed, true
			if in.LookFirst {
				summary += ": first look for the job an earlier submission may have created"
			}
		}
		err := workflow.ExecuteActivity(j.apiOptions(ctx, j.state.Settings.SubmitTaskQueue, summary), a.Submit, in).Get(ctx, &res)
		if err == nil {
			break
		}
		if j.v >= 1 && !temporal.IsCanceledError(err) {
			// What the failed submission may have left at the vendor: the
			// next one (after a human's retry or a batch's resume) looks
			// for it before sending.
			j.state.SubmitMayExist, j.state.SubmitEndedAt = submitMayExist(err), workflow.Now(ctx)
		}
		reason, status, msg := classifyActivityFailure("submit", err, j.state.Settings.RetryMaxElapsed)
		if j.v >= 1 && j.batchWorkflowID == "" && submitHeld(err) {
			// Nothing was sent: the account is held after an account-wide
			// failure that another workflow escalated. Wait for its answer
			// rather than escalate once more.
			if held >= j.state.Settings.MaxPollsPerRun {
				next, state := j.in, j.state
				next.Resume = &state
				return workflow.NewContinueAsNewError(ctx, WorkflowName, next)
			}
			held++
			j.heldFrom(ctx)
			if err := j.waitOnHold(ctx, reason, msg); err != nil {
				return err
			}
			continue
		}
		if j.batchWorkflowID == "" || !IsAccountWide(reason) || temporal.IsCanceledError(err) {
			return j.failActivity(ctx, "submit", err)
		}
		// Every further submission of the account would fail alike: the
		// batch escalates once and answers for every job it holds back.
		j.heldFrom(ctx)
		d, err := j.awaitAccountDecision(ctx, reason, status, msg, submitHeld(err))
		if err != nil {
			return err
		}
		j.unheld(ctx)
		if d.Action != activities.DecisionResume {
			if j.v2 >= 1 && j.state.SubmitMayExist {
				// A request sent before the failure may have created the
				// job: adopt it if the vendor has it, rather than record
				// a paid job as never submitted.
				if found, ok := j.lookOnly(ctx); ok {
					res = found
					break
				}
				msg += "; a request sent before the failure may have reached the vendor: a re-run of this reference_id looks for it before sending"
			}
			return j.notSubmitted(ctx, reason, msg)
		}
	}
	if j.blocked != "" {
		j.blocked, j.lastError = "", ""
	}
	j.unheld(ctx)
	j.state.RequestID = res.RequestID
	j.state.Adopted = res.Adopted
	j.state.SubmitMayExist, j.state.SubmitEndedAt = false, time.Time{}
	j.setStatus(ctx, "submitted")
	j.state.SubmittedAt = workflow.Now(ctx)
	if !res.Adopted {
		j.state.SubmitAnsweredAt = res.SubmittedAt
	}
	if res.Unrecorded {
		at := res.SubmittedAt
		message := "submitted"
		if res.Adopted {
			message = "adopted the request an unanswered attempt had created"
		}
		if err := j.recordProgress(ctx, activities.RecordProgressInput{
			WorkflowID: j.workflowID, ExecutionID: j.state.ExecutionID, Attempt: j.state.Attempt, RequestID: res.RequestID, Status: "submitted", SubmittedAt: &at, Message: message,
		}, "record the submission"); err != nil {
			return err
		}
	}
	j.state.NextPoll = j.state.Settings.Poll.Initial
	j.publish(ctx)
	workflow.GetLogger(ctx).Info("job submitted", "RequestId", res.RequestID, "Adopted", res.Adopted)
	j.tellBatch(ctx, BatchJobEvent{ReferenceID: j.state.ReferenceID, Event: EventSubmitted})
	return nil
}

// lookOnly asks the vendor once for the request an earlier submission of
// the job may have created, without sending one. ok is false when none was
// found or the vendor could not be asked.
func (j *job) lookOnly(ctx workflow.Context) (res activities.SubmitResult, ok bool) {
	in := activities.SubmitInput{
		WorkflowID: j.workflowID, ExecutionID: j.state.ExecutionID, ReferenceID: j.state.ReferenceID, Attempt: j.state.Attempt,
		Video: j.in.Video, Audio: j.in.Audio, DisableActiveSpeakerDetection: j.in.DisableActiveSpeakerDetection,
		KnownRequestIDs: j.state.PreviousRequestIDs, LookOnly: true, EarlierEndedAt: j.state.SubmitEndedAt,
		RetryBudget: j.state.Settings.RetryMaxElapsed, RecordLater: true,
	}
	summary := fmt.Sprintf("submit attempt %d: the batch aborted; look (only) for the job an earlier submission may have created", j.state.Attempt)
	if err := workflow.ExecuteActivity(j.apiOptions(ctx, j.state.Settings.SubmitTaskQueue, summary), a.Submit, in).Get(ctx, &res); err != nil {
		workflow.GetLogger(ctx).Warn("could not look for the job an earlier submission may have created", "Error", err)
		return activities.SubmitResult{}, false
	}
	return res, res.RequestID != ""
}

// versionLearnedPolls marks runs that may poll on a learned plan.
const versionLearnedPolls = "learned-poll-plan"

// poll checks the job's status on durable timers until it ends.
func (j *job) poll(ctx workflow.Context) (LipSyncResult, error) {
	s := j.state.Settings
	deadline := j.state.StartedAt.Add(s.Deadline)
	if j.version(ctx, versionLearnedPolls) >= 1 {
		j.plan(ctx)
	}
	for polls := 0; ; polls++ {
		if polls >= s.MaxPollsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			next := j.in
			state := j.state
			next.Resume = &state
			return LipSyncResult{}, workflow.NewContinueAsNewError(ctx, WorkflowName, next)
		}
		remaining := deadline.Add(j.heldTime(ctx)).Sub(workflow.Now(ctx))
		if remaining <= 0 {
			return LipSyncResult{}, j.escalateFailure(ctx, ReasonDeadlineExceeded, 0,
				fmt.Sprintf("job not finished within its deadline of %s (last status %s)", readable(s.Deadline), j.state.Status))
		}
		wait := min(j.nextWait(ctx), remaining)
		if err := workflow.NewTimerWithOptions(ctx, wait, workflow.TimerOptions{Summary: j.waitSummary(ctx, wait)}).Get(ctx, nil); err != nil {
			return LipSyncResult{}, err
		}
		j.state.NextPoll = nextInterval(j.state.NextPoll, s.Poll)
		j.state.StatusChecks++

		in := activities.CheckStatusInput{
			WorkflowID:   j.workflowID,
			ExecutionID:  j.state.ExecutionID,
			Attempt:      j.state.Attempt,
			RequestID:    j.state.RequestID,
			StatusChecks: j.state.StatusChecks,
		}
		if j.v >= 1 {
			in.RetryBudget, in.RecordLater = s.RetryMaxElapsed, true
			in.HoldOnCredentials, in.BatchJob = true, j.batchWorkflowID != ""
		}
		summary := fmt.Sprintf("check %d of request %s", j.state.StatusChecks, j.state.RequestID)
		var res activities.CheckStatusResult
		err := workflow.ExecuteActivity(j.apiOptions(ctx, s.StatusTaskQueue, summary), a.CheckStatus, in).Get(ctx, &res)
		if err != nil {
			j.unheld(ctx)
			reason, status, msg := classifyActivityFailure("check status", err, s.RetryMaxElapsed)
			if j.v >= 1 && isCredentialFailure(reason) && !temporal.IsCanceledError(err) {
				resumed, err := j.credentialFailure(ctx, reason, status, msg)
				if err != nil {
					return LipSyncResult{}, err
				}
				if resumed {
					continue
				}
			}
			return LipSyncResult{}, j.failActivity(ctx, "check status", err)
		}
		if res.HeldBy != nil {
			// No API call was made: another workflow holds the account
			// after a rejected key, and answers for every job.
			j.state.StatusChecks--
			j.heldFrom(ctx)
			if j.blocked == "" {
				workflow.GetLogger(ctx).Warn("status checks held: the account's key was rejected", "Reason", res.HeldBy.Reason, "Owner", res.HeldBy.Owner)
			}
			j.blocked, j.lastError = res.HeldBy.Reason, fmt.Sprintf("status checks held since %s: %s escalated a rejected key (%s)",
				res.HeldBy.Since.UTC().Format(time.RFC3339), res.HeldBy.Owner, res.HeldBy.Reason)
			j.publish(ctx)
			continue
		}
		if j.blocked != "" {
			j.blocked, j.lastError = "", ""
		}
		j.unheld(ctx)
		if res.Unrecorded {
			if err := j.recordProgress(ctx, checkProgress(j, res), fmt.Sprintf("record check %d", j.state.StatusChecks)); err != nil {
				return LipSyncResult{}, err
			}
		}
		if res.Status == chamelaion.StatusProcessing && j.state.Status != string(chamelaion.StatusProcessing) {
			j.tellBatch(ctx, BatchJobEvent{ReferenceID: j.state.ReferenceID, Event: EventProcessing})
		}
		j.setStatus(ctx, string(res.Status))
		if res.StartedAt != nil {
			j.state.ProcessingStarted = res.StartedAt
			created := res.CreatedAt
			j.state.VendorCreated = &created
		}
		j.publish(ctx)
		switch res.Status {
		case chamelaion.StatusCompleted:
			return j.completed(ctx, res), nil
		case chamelaion.StatusFailed:
			msg := res.ErrorMessage
			if msg == "" {
				msg = "the vendor reported the job failed without a message"
			}
			return LipSyncResult{}, j.escalateFailure(ctx, ReasonJobFailed, 0, msg)
		case chamelaion.StatusQueued:
			if !j.state.StuckNotified && workflow.Now(ctx).Sub(j.state.SubmittedAt) >= s.StuckAfter {
				j.state.StuckNotified = true
				if err := j.escalate(ctx, activities.KindStuck, ReasonStuck, 0,
					fmt.Sprintf("job still queued %s after submission (threshold %s)",
						readable(workflow.Now(ctx).Sub(j.state.SubmittedAt)), readable(s.StuckAfter))); err != nil {
					return LipSyncResult{}, err
				}
			}
		}
	}
}

// heldFrom marks the job held from now (if it is not already), on a run
// that counts held time (versionHeldNotLate): its status checks or its
// submission wait behind another workflow's account hold, or for its
// batch's answer to an account-wide failure.
func (j *job) heldFrom(ctx workflow.Context) {
	if j.v2 >= 1 && j.state.HeldSince.IsZero() {
		j.state.HeldSince = workflow.Now(ctx)
	}
}

// heldTime is how long the job has been held (behind another workflow's
// account hold, or waiting for its batch's answer) since its attempt
// started: the deadline moves by as much.
func (j *job) heldTime(ctx workflow.Context) time.Duration {
	held := j.state.HeldFor
	if !j.state.HeldSince.IsZero() {
		held += workflow.Now(ctx).Sub(j.state.HeldSince)
	}
	return held
}

// unheld ends a hold's time: the status check ran.
func (j *job) unheld(ctx workflow.Context) {
	if !j.state.HeldSince.IsZero() {
		j.state.HeldFor += workflow.Now(ctx).Sub(j.state.HeldSince)
		j.state.HeldSince = time.Time{}
	}
}

// checkProgress is a status read for RecordProgress.
func checkProgress(j *job, res activities.CheckStatusResult) activities.RecordProgressInput {
	return activities.RecordProgressInput{
		WorkflowID: j.workflowID, ExecutionID: j.state.ExecutionID, Attempt: j.state.Attempt, RequestID: j.state.RequestID, StatusChecks: j.state.StatusChecks,
		Status: string(res.Status), StartedAt: res.StartedAt, FinishedAt: res.FinishedAt,
		OutputURL: res.OutputURL, ErrorMessage: res.ErrorMessage, VendorCreatedAt: res.CreatedAt,
	}
}

// isCredentialFailure says whether a failure type means the account's key
// was rejected, for reads as for submissions.
func isCredentialFailure(reason string) bool {
	return slices.Contains(activities.CredentialFailures, reason)
}

// credentialFailure handles a rejected key met while polling: an
// account-wide failure, escalated once for every job. A job on its own
// holds the account (CheckStatus claimed the hold for it) and escalates
// for it: the *escalation it returns is answered by resume or abandon. A
// job of a batch waits for its batch's answer: resumed is true when the
// batch resumes (polling goes on); an aborted batch leaves the job to be
// escalated on its own.
func (j *job) credentialFailure(ctx workflow.Context, reason string, status int, msg string) (resumed bool, err error) {
	if j.batchWorkflowID == "" {
		j.lastError = msg
		text := fmt.Sprintf("the account's key was rejected while polling request %s: %s. Status checks and submissions of every job are held until the answer; "+
			"once the key works again: starter resolve %s resume (or abandon)", j.state.RequestID, msg, j.state.ReferenceID)
		esc := &escalation{details: EscalationDetails{Reason: reason, HTTPStatus: status, Message: text, RequestID: j.state.RequestID},
			resumable: true, account: true}
		j.openForAnswers(esc)
		if err := j.escalate(ctx, activities.KindAccount, reason, status, text); err != nil {
			return false, err
		}
		j.escalated = reason
		j.publish(ctx)
		return false, esc
	}
	prev := j.state.Status
	j.heldFrom(ctx)
	d, err := j.awaitAccountDecision(ctx, reason, status, msg, false)
	if err != nil {
		return false, err
	}
	j.unheld(ctx)
	j.setStatus(ctx, prev)
	j.publish(ctx)
	return d.Action == activities.DecisionResume, nil
}

// waitSummary says, on the timer before a status check, why it waits so
// long.
func (j *job) waitSummary(ctx workflow.Context, wait time.Duration) string {
	n := j.state.StatusChecks + 1
	at := workflow.Now(ctx).Add(wait).UTC().Format("15:04:05")
	switch {
	case j.blocked != "":
		return fmt.Sprintf("check %d at %s UTC: status checks are held (%s) until a human answers", n, at, j.blocked)
	case j.state.Plan == nil:
		return fmt.Sprintf("check %d at %s UTC, in %s (backing off: no plan learned yet)", n, at, readable(wait))
	case j.state.ProcessingStarted == nil:
		return fmt.Sprintf("check %d at %s UTC: queued at the vendor; a job like it takes %s to %s once started", n, at,
			readable(j.state.Plan.Earliest), readable(j.state.Plan.Latest))
	}
	done := j.state.ProcessingStarted.Add(j.state.Plan.Latest).UTC().Format("15:04")
	return fmt.Sprintf("check %d at %s UTC: plan says done by %s (97%% of past jobs, vendor clock)", n, at, done)
}

// plan asks once per job for a poll plan learned from past jobs. Without
// one (too few past jobs, no target, or the store unavailable for a
// minute) the job backs off geometrically.
func (j *job) plan(ctx workflow.Context) {
	p := j.state.Settings.Poll
	if j.state.Planned || p.TargetLatency <= 0 {
		return
	}
	j.state.Planned = true
	in := activities.PlanPollsInput{TargetLatency: p.TargetLatency, MaxInterval: p.Max}
	retry := &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second}
	var f workflow.Future
	if j.epoch >= 1 {
		// A local activity, in the workflow task that saw the submission
		// answered: one marker event.
		f = workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout:    10 * time.Second,
			ScheduleToCloseTimeout: time.Minute,
			RetryPolicy:            retry,
			Summary:                "plan the status checks",
		}), a.PlanPolls, in)
	} else {
		f = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout:    10 * time.Second,
			ScheduleToCloseTimeout: time.Minute,
			RetryPolicy:            retry,
		}), a.PlanPolls, in)
	}
	var res activities.PlanPollsResult
	err := f.Get(ctx, &res)
	if err != nil {
		workflow.GetLogger(ctx).Warn("no poll plan; backing off geometrically", "Error", err)
		return
	}
	j.state.Plan = res.Plan
	if res.Plan == nil {
		workflow.GetLogger(ctx).Info("too few completed jobs to learn a poll plan from; backing off geometrically", "Samples", res.Samples)
	}
}

// nextWait is how long to wait before the next status check. On a plan:
// while the vendor has not started the job, the plan's queued gap; once it
// has, until the plan's next check, counted from the moment the vendor
// started the job (when the submission's answer arrived plus the queue
// wait the vendor reports, so that the skew between the vendor's clock and
// ours does not matter).
func (j *job) nextWait(ctx workflow.Context) time.Duration {
	p := j.state.Plan
	if p == nil {
		return j.state.NextPoll
	}
	started, created := j.state.ProcessingStarted, j.state.VendorCreated
	if started == nil || created == nil || j.state.SubmittedAt.IsZero() {
		return p.QueuedWait()
	}
	created0 := j.state.SubmittedAt
	if !j.state.SubmitAnsweredAt.IsZero() && j.state.SubmitAnsweredAt.Before(created0) {
		// The answer's arrival is nearer the vendor's creation than the
		// workflow task that followed it.
		created0 = j.state.SubmitAnsweredAt
	}
	anchor := created0.Add(max(started.Sub(*created), 0))
	elapsed := workflow.Now(ctx).Sub(anchor)
	return max(p.Next(elapsed)-elapsed, time.Millisecond)
}

// setStatus records a status and, when it changed, since when.
func (j *job) setStatus(ctx workflow.Context, status string) {
	if status != j.state.Status {
		j.state.Status = status
		j.state.StatusSince = workflow.Now(ctx)
	}
}

// nextInterval grows a poll interval by the schedule's coefficient.
func nextInterval(cur time.Duration, p PollSchedule) time.Duration {
	next := time.Duration(float64(cur) * p.Coefficient)
	if next > p.Max || next <= 0 {
		next = p.Max
	}
	return next
}

func (j *job) completed(ctx workflow.Context, res activities.CheckStatusResult) LipSyncResult {
	now := workflow.Now(ctx)
	workflow.GetLogger(ctx).Info("job completed", "RequestId", j.state.RequestID, "StatusChecks", j.state.StatusChecks)
	return LipSyncResult{
		ReferenceID:         j.state.ReferenceID,
		RequestID:           j.state.RequestID,
		Status:              string(chamelaion.StatusCompleted),
		OutputURL:           res.OutputURL,
		Adopted:             j.state.Adopted,
		StartedAt:           j.state.StartedAt,
		SubmittedAt:         j.state.SubmittedAt,
		ProcessingStartedAt: j.state.ProcessingStarted,
		FinishedAt:          now,
		Duration:            now.Sub(j.state.StartedAt),
		StatusChecks:        j.state.StatusChecks,
		Runs:                j.state.Runs,
	}
}

// failActivity turns an activity's final failure into an escalation: a
// permanent failure escalates with its own type; a retryable one that
// outlasted the retry budget escalates as RetriesExhausted.
func (j *job) failActivity(ctx workflow.Context, op string, err error) error {
	if temporal.IsCanceledError(err) {
		return err
	}
	reason, status, msg := classifyActivityFailure(op, err, j.state.Settings.RetryMaxElapsed)
	j.lastError = msg
	return j.escalateFailure(ctx, reason, status, msg)
}

// classifyActivityFailure extracts the reason, HTTP status and message of an
// activity's final failure.
func classifyActivityFailure(op string, err error, budget time.Duration) (reason string, status int, msg string) {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		var d activities.ErrorDetails
		if appErr.HasDetails() {
			_ = appErr.Details(&d)
		}
		msg = appErr.Message()
		if d.Message != "" {
			msg = op + ": " + d.Message
		}
		if appErr.NonRetryable() || slices.Contains(activities.PermanentErrorTypes(), appErr.Type()) {
			// RetriesExhausted (the activity's own budget) names the last
			// failure in its message.
			return appErr.Type(), d.StatusCode, msg
		}
		return ReasonRetriesExhausted, d.StatusCode, fmt.Sprintf("%s (%s), still failing after retrying for up to %s", msg, appErr.Type(), budget)
	}
	return ReasonRetriesExhausted, 0, fmt.Sprintf("%s: still failing after retrying for up to %s: %v", op, budget, err)
}

// escalateFailure escalates and returns the workflow's final error, which
// names the cause.
func (j *job) escalateFailure(ctx workflow.Context, reason string, status int, msg string) error {
	j.setStatus(ctx, "failed")
	j.lastError = msg
	esc := &escalation{details: EscalationDetails{Reason: reason, HTTPStatus: status, Message: msg, RequestID: j.state.RequestID},
		resumable: j.state.RequestID != "" && reason != ReasonJobFailed}
	j.openForAnswers(esc)
	if err := j.escalate(ctx, activities.KindFailure, reason, status, msg); err != nil {
		return err
	}
	return esc
}

// escalate records the escalation durably, then notifies a human. A failed
// notification is logged, never fatal: the record is what counts.
func (j *job) escalate(ctx workflow.Context, kind, reason string, status int, msg string) error {
	in := activities.EscalateInput{
		WorkflowID:  j.workflowID,
		ExecutionID: j.state.ExecutionID,
		ReferenceID: j.state.ReferenceID,
		RequestID:   j.state.RequestID,
		Attempt:     j.state.Attempt,
		Kind:        kind,
		Reason:      reason,
		HTTPStatus:  status,
		Message:     msg,
	}
	var res activities.EscalateResult
	if err := workflow.ExecuteActivity(withSummary(j.storeOptions(ctx), fmt.Sprintf("escalate (%s): %s", kind, reason)), a.Escalate, in).Get(ctx, &res); err != nil {
		return fmt.Errorf("record escalation: %w", err)
	}
	if res.Stale {
		// A later execution owns the job's row: this one has ended, and
		// its escalation is nobody's to answer.
		workflow.GetLogger(ctx).Warn("escalation not recorded: a later execution of the job owns its row", "Reason", reason)
		return nil
	}
	if kind == activities.KindFailure {
		j.escalated = reason
		j.tellBatch(ctx, BatchJobEvent{ReferenceID: j.state.ReferenceID, Event: EventEscalated, Reason: reason, HTTPStatus: status, Message: msg})
	}
	j.publish(ctx)
	nctx := withSummary(notifyActivityOptions(ctx, j.state.Settings.NotifyTimeout), fmt.Sprintf("notify a human: %s", reason))
	err := workflow.ExecuteActivity(nctx, a.NotifyHuman, activities.NotifyInput{
		EscalationID: res.EscalationID,
		Escalation:   in,
		WebUIURL:     res.WebUIURL,
	}).Get(ctx, nil)
	if err != nil {
		if temporal.IsCanceledError(err) {
			return err
		}
		workflow.GetLogger(ctx).Error("escalation recorded but the notification failed", "EscalationId", res.EscalationID, "Error", err)
	}
	return nil
}

// submitHeld says whether a Submit was refused, before sending anything,
// by an account hold.
func submitHeld(err error) bool {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.HasDetails() {
		var d activities.ErrorDetails
		return appErr.Details(&d) == nil && d.Held
	}
	return false
}

// waitOnHold waits, visibly blocked, before submitting again while the
// account is held.
func (j *job) waitOnHold(ctx workflow.Context, reason, msg string) error {
	if j.blocked == "" {
		workflow.GetLogger(ctx).Warn("submission held: the account waits for a human's answer", "Reason", reason)
	}
	j.blocked, j.lastError = reason, msg
	j.publish(ctx)
	wait := max(j.state.Settings.RetryMax, time.Second)
	return workflow.NewTimerWithOptions(ctx, wait, workflow.TimerOptions{
		Summary: fmt.Sprintf("submit again in %s: the account is held (%s) until a human answers", readable(wait), reason),
	}).Get(ctx, nil)
}

// submitMayExist says whether a failed Submit may have left a job at the
// vendor: as the activity said (ErrorDetails.MayHaveCreated), or its last
// heartbeat for an attempt that timed out; when nothing says, it may
// (looking costs one list request, a second job the customer's tokens).
func submitMayExist(err error) bool {
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) && timeout.HasLastHeartbeatDetails() {
		var p struct {
			Look      bool
			RequestID string
		}
		if timeout.LastHeartbeatDetails(&p) == nil {
			return p.Look || p.RequestID != ""
		}
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.HasDetails() {
		var d activities.ErrorDetails
		if appErr.Details(&d) == nil {
			return d.MayHaveCreated
		}
	}
	return true
}
