package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

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
}

// LipSync runs one job: record it, submit it idempotently, poll its status
// on durable timers with backoff until it completes, fails, or passes its
// deadline, and escalate every permanent failure to a human. It continues as
// new every MaxPollsPerRun checks so its history stays bounded however long
// the job runs.
func (w *Workflows) LipSync(ctx workflow.Context, in LipSyncInput) (LipSyncResult, error) {
	j := &job{in: in, workflowID: workflow.GetInfo(ctx).WorkflowExecution.ID}
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
	return res, err
}

func (w *Workflows) lipSync(ctx workflow.Context, j *job) (LipSyncResult, error) {
	in := j.in
	if err := ValidateInput(in); err != nil {
		return LipSyncResult{}, temporal.NewNonRetryableApplicationError("invalid input: "+err.Error(), ReasonInvalidInput, nil)
	}
	if in.Resume != nil {
		j.state = *in.Resume
		j.state.Runs++
	} else {
		var s Settings
		defaults := w.Defaults
		// The settings are recorded in the history, so replays and
		// restarted workers with another configuration decide alike.
		if err := workflow.SideEffect(ctx, func(workflow.Context) any {
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
			return DecisionResult{Action: d.Action, Attempt: j.state.Attempt}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, d Decision) error {
			if err := ValidateDecision(d); err != nil {
				return err
			}
			if !j.waiting || j.decision != nil {
				return fmt.Errorf("job %s is not waiting for a decision (status %s)", j.state.ReferenceID, j.state.Status)
			}
			return nil
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
		if err != nil {
			return LipSyncResult{}, err
		}
		if d.Action != activities.DecisionRetry {
			return LipSyncResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("job abandoned by %s after escalation (%s): %s", orUnknown(d.By), esc.details.Reason, d.Note),
				ReasonAbandoned, nil, esc.details)
		}
		j.retry(ctx)
	}
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
	j.waiting, j.decision = true, nil
	j.publish(ctx)
	workflow.GetLogger(ctx).Info("escalated job waiting for a decision", "Reason", esc.details.Reason, "Wait", wait)
	answered, err := workflow.AwaitWithTimeout(ctx, wait, func() bool { return j.decision != nil })
	j.waiting = false
	if err != nil {
		return Decision{}, err
	}
	d := Decision{Action: activities.DecisionExpired, By: "timeout", Note: fmt.Sprintf("no decision within %s", wait)}
	if answered {
		d = *j.decision
	}
	if err := workflow.ExecuteActivity(j.storeOptions(ctx), a.RecordDecision, activities.DecisionInput{
		WorkflowID: j.workflowID, Attempt: j.state.Attempt, Action: d.Action, By: d.By, Note: d.Note,
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

// retry starts a new attempt of the job: a new submission, a fresh
// deadline, and the earlier requests never adopted.
func (j *job) retry(ctx workflow.Context) {
	if j.state.RequestID != "" {
		j.state.PreviousRequestIDs = append(j.state.PreviousRequestIDs, j.state.RequestID)
	}
	j.state.Attempt++
	j.state.RequestID = ""
	j.state.Adopted = false
	j.state.StuckNotified = false
	j.state.StartedAt = workflow.Now(ctx)
	j.state.SubmittedAt = time.Time{}
	j.escalated, j.lastError = "", ""
	j.setStatus(ctx, "pending")
	j.publish(ctx)
	j.tellRetrying(ctx)
	workflow.GetLogger(ctx).Info("retrying the job after a human's decision", "Attempt", j.state.Attempt)
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
	// abortNote says why a held-back job was given up without its
	// batch's answer.
	abortNote string
}

func (j *job) status() JobStatus {
	return JobStatus{
		ReferenceID:        j.state.ReferenceID,
		RequestID:          j.state.RequestID,
		Status:             j.state.Status,
		Attempt:            j.state.Attempt,
		StatusChecks:       j.state.StatusChecks,
		StuckNotified:      j.state.StuckNotified,
		Escalated:          j.escalated,
		LastError:          j.lastError,
		StartedAt:          j.state.StartedAt,
		Runs:               j.state.Runs,
		WaitingForDecision: j.waiting,
		BlockedOnAccount:   j.blocked,
	}
}

// a is the nil receiver through which activities are named.
var a *activities.Activities

func (j *job) record(ctx workflow.Context) error {
	err := workflow.ExecuteActivity(j.storeOptions(ctx), a.RecordJob, activities.RecordJobInput{
		WorkflowID:  j.workflowID,
		ReferenceID: j.state.ReferenceID,
		BatchID:     j.in.BatchID,
		Video:       j.in.Video,
		Audio:       j.in.Audio,
	}).Get(ctx, nil)
	if err != nil {
		return fmt.Errorf("record job: %w", err)
	}
	return nil
}

func (j *job) submit(ctx workflow.Context) error {
	var res activities.SubmitResult
	for {
		err := workflow.ExecuteActivity(j.apiOptions(ctx, j.state.Settings.SubmitTaskQueue), a.Submit, activities.SubmitInput{
			WorkflowID:                    j.workflowID,
			ReferenceID:                   j.state.ReferenceID,
			Attempt:                       j.state.Attempt,
			Video:                         j.in.Video,
			Audio:                         j.in.Audio,
			DisableActiveSpeakerDetection: j.in.DisableActiveSpeakerDetection,
			KnownRequestIDs:               j.state.PreviousRequestIDs,
		}).Get(ctx, &res)
		if err == nil {
			break
		}
		reason, status, msg := classifyActivityFailure("submit", err, j.state.Settings.RetryMaxElapsed)
		if j.batchWorkflowID == "" || !IsAccountWide(reason) || temporal.IsCanceledError(err) {
			return j.failActivity(ctx, "submit", err)
		}
		// Every further submission of the account would fail alike: the
		// batch escalates once and answers for every job it holds back.
		d, err := j.awaitAccountDecision(ctx, reason, status, msg)
		if err != nil {
			return err
		}
		if d.Action != activities.DecisionResume {
			return j.notSubmitted(ctx, reason, msg)
		}
	}
	j.state.RequestID = res.RequestID
	j.state.Adopted = res.Adopted
	j.setStatus(ctx, "submitted")
	j.state.SubmittedAt = workflow.Now(ctx)
	if !res.Adopted {
		j.state.SubmitAnsweredAt = res.SubmittedAt
	}
	j.state.NextPoll = j.state.Settings.Poll.Initial
	j.publish(ctx)
	workflow.GetLogger(ctx).Info("job submitted", "RequestId", res.RequestID, "Adopted", res.Adopted)
	j.tellBatch(ctx, BatchJobEvent{ReferenceID: j.state.ReferenceID, Event: EventSubmitted})
	return nil
}

// versionLearnedPolls marks runs that may poll on a learned plan.
const versionLearnedPolls = "learned-poll-plan"

// poll checks the job's status on durable timers until it ends.
func (j *job) poll(ctx workflow.Context) (LipSyncResult, error) {
	s := j.state.Settings
	deadline := j.state.StartedAt.Add(s.Deadline)
	if workflow.GetVersion(ctx, versionLearnedPolls, workflow.DefaultVersion, 1) >= 1 {
		j.plan(ctx)
	}
	for polls := 0; ; polls++ {
		if polls >= s.MaxPollsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			next := j.in
			state := j.state
			next.Resume = &state
			return LipSyncResult{}, workflow.NewContinueAsNewError(ctx, WorkflowName, next)
		}
		remaining := deadline.Sub(workflow.Now(ctx))
		if remaining <= 0 {
			return LipSyncResult{}, j.escalateFailure(ctx, ReasonDeadlineExceeded, 0,
				fmt.Sprintf("job not finished within its deadline of %s (last status %s)", s.Deadline, j.state.Status))
		}
		wait := min(j.nextWait(ctx), remaining)
		if err := workflow.Sleep(ctx, wait); err != nil {
			return LipSyncResult{}, err
		}
		j.state.NextPoll = nextInterval(j.state.NextPoll, s.Poll)
		j.state.StatusChecks++

		var res activities.CheckStatusResult
		err := workflow.ExecuteActivity(j.apiOptions(ctx, s.StatusTaskQueue), a.CheckStatus, activities.CheckStatusInput{
			WorkflowID:   j.workflowID,
			Attempt:      j.state.Attempt,
			RequestID:    j.state.RequestID,
			StatusChecks: j.state.StatusChecks,
		}).Get(ctx, &res)
		if err != nil {
			return LipSyncResult{}, j.failActivity(ctx, "check status", err)
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
						workflow.Now(ctx).Sub(j.state.SubmittedAt).Round(time.Second), s.StuckAfter)); err != nil {
					return LipSyncResult{}, err
				}
			}
		}
	}
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
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second},
	})
	var res activities.PlanPollsResult
	err := workflow.ExecuteActivity(actx, a.PlanPolls, activities.PlanPollsInput{
		TargetLatency: p.TargetLatency, MaxInterval: p.Max,
	}).Get(ctx, &res)
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
	if err := j.escalate(ctx, activities.KindFailure, reason, status, msg); err != nil {
		return err
	}
	return &escalation{details: EscalationDetails{Reason: reason, HTTPStatus: status, Message: msg, RequestID: j.state.RequestID}}
}

// escalate records the escalation durably, then notifies a human. A failed
// notification is logged, never fatal: the record is what counts.
func (j *job) escalate(ctx workflow.Context, kind, reason string, status int, msg string) error {
	in := activities.EscalateInput{
		WorkflowID:  j.workflowID,
		ReferenceID: j.state.ReferenceID,
		RequestID:   j.state.RequestID,
		Attempt:     j.state.Attempt,
		Kind:        kind,
		Reason:      reason,
		HTTPStatus:  status,
		Message:     msg,
	}
	var res activities.EscalateResult
	if err := workflow.ExecuteActivity(j.storeOptions(ctx), a.Escalate, in).Get(ctx, &res); err != nil {
		return fmt.Errorf("record escalation: %w", err)
	}
	if kind == activities.KindFailure {
		j.escalated = reason
		j.tellBatch(ctx, BatchJobEvent{ReferenceID: j.state.ReferenceID, Event: EventEscalated, Reason: reason, HTTPStatus: status, Message: msg})
	}
	j.publish(ctx)
	nctx := notifyActivityOptions(ctx, j.state.Settings.NotifyTimeout)
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
