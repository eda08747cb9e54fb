package workflows

// This file is the batch loop as it was before the batch got one consumer
// of its events (versionBatchLoop). It is frozen: it runs only to replay
// and finish batch runs whose history began under it; their next run
// (continue-as-new) takes the current loop. Do not change it; delete it
// once no such run remains (Temporal's visibility: LipsyncBatchId set,
// ExecutionStatus = "Running", started before the release that added
// versionBatchLoop).

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/chamelaion-lipsync/worker/activities"
)

// batchV1 runs every job of a batch as a child LipSync workflow, at most
// Concurrency at a time (a sliding window: the next job starts when one
// ends), continuing as new every StartsPerRun starts so that its history
// stays bounded however large the batch. Jobs tell the batch their progress
// by signal, so jobs started by an earlier run are followed alike. One bad
// job never stops the others. An account-wide failure (401, 412) pauses the
// batch: no further job starts, one account-level escalation is raised,
// jobs in flight go on, and the batch waits for a human's resume or abort.
func (w *Workflows) batchV1(ctx workflow.Context, in BatchInput) (BatchResult, error) {
	if err := ValidateBatchInput(in); err != nil {
		return BatchResult{}, temporal.NewNonRetryableApplicationError("invalid batch: "+err.Error(), ReasonInvalidInput, nil)
	}
	b := &batchV1{in: in, workflowID: workflow.GetInfo(ctx).WorkflowExecution.ID}
	if in.Concurrency == 0 {
		b.in.Concurrency = DefaultBatchConcurrency
	}
	if in.StartsPerRun == 0 {
		b.in.StartsPerRun = DefaultBatchStartsPerRun
	}
	if in.MaxPending == 0 {
		b.in.MaxPending = DefaultBatchMaxPending
	}
	if in.Resume != nil {
		b.state = *in.Resume
		b.state.Runs++
	} else {
		b.state = BatchState{Total: len(in.Jobs), StartedAt: workflow.Now(ctx), Runs: 1}
		if in.Source != nil {
			b.state.Total = in.Source.Jobs
		}
	}
	if err := workflow.SetQueryHandler(ctx, QueryBatchProgress, func() (BatchProgress, error) {
		return b.progress(), nil
	}); err != nil {
		return BatchResult{}, fmt.Errorf("register progress query: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateBatchResolve,
		func(ctx workflow.Context, d BatchDecision) (BatchDecision, error) {
			b.state.Decision = &d
			b.changed = true
			return d, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, d BatchDecision) error {
			if err := ValidateBatchDecision(d); err != nil {
				return err
			}
			if b.state.Pause == nil || !b.state.Pause.Escalated || b.state.Decision != nil {
				return fmt.Errorf("batch %s is not paused on an account-wide failure (status %s)", in.BatchID, b.status())
			}
			return nil
		}},
	); err != nil {
		return BatchResult{}, fmt.Errorf("register resolve update: %w", err)
	}
	events := workflow.GetSignalChannel(ctx, SignalBatchJob)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var ev BatchJobEvent
			events.Receive(ctx, &ev)
			b.apply(ctx, ev)
		}
	})

	b.publish(ctx)
	for {
		if err := b.loadPageIfNeeded(ctx); err != nil {
			return BatchResult{}, err
		}
		b.startWhileRoom(ctx)
		if b.ended() {
			break
		}
		if p := b.state.Pause; p != nil && !p.Escalated {
			if err := b.escalateAccount(ctx); err != nil {
				return BatchResult{}, err
			}
			continue
		}
		if b.state.Decision != nil {
			if err := b.applyDecision(ctx); err != nil {
				return BatchResult{}, err
			}
			continue
		}
		if b.shouldContinueAsNew(ctx) {
			return BatchResult{}, b.continueAsNew(ctx, events)
		}
		b.changed = false
		if err := workflow.Await(ctx, func() bool { return b.changed }); err != nil {
			return BatchResult{}, err
		}
		b.publish(ctx)
	}
	b.publish(ctx)
	res := b.result()
	workflow.GetLogger(ctx).Info("batch ended", "Total", res.Total, "Completed", res.Completed, "Escalated", res.Escalated, "NotSubmitted", res.NotSubmitted)
	return res, nil
}

// batchV1 is one batch run's working state.
type batchV1 struct {
	in         BatchInput
	workflowID string
	state      BatchState
	// cursor indexes in.Jobs: the next job to start.
	cursor        int
	startsThisRun int
	pendingStarts int
	changed       bool
	// What publish last told Temporal's visibility.
	publishedStatus    string
	publishedEscalated string
	publishedCompleted int
	published          bool
}

// remaining counts the jobs not yet started.
func (b *batchV1) remaining() int { return len(b.in.Jobs) - b.cursor + b.unloaded() }

// unloaded counts the jobs of the Source not yet read.
func (b *batchV1) unloaded() int {
	if b.in.Source == nil {
		return 0
	}
	return b.in.Source.Jobs - b.state.Loaded
}

// batchV1PageSize is how many jobs one LoadBatchJobs reads from a Source.
const batchV1PageSize = 500

// loadPageIfNeeded reads the next page of the Source once every loaded job
// has started and there is room for more.
func (b *batchV1) loadPageIfNeeded(ctx workflow.Context) error {
	if b.cursor < len(b.in.Jobs) || b.unloaded() == 0 || b.state.Pause != nil || b.state.Aborted || b.startsThisRun >= b.in.StartsPerRun {
		return nil
	}
	page, err := b.loadPage(ctx)
	if err != nil {
		return err
	}
	b.in.Jobs, b.cursor = page, 0
	return nil
}

// loadPage reads the next page of the Source and counts it as loaded.
func (b *batchV1) loadPage(ctx workflow.Context) ([]LipSyncInput, error) {
	var jobs []activities.BatchJob
	err := workflow.ExecuteActivity(storeActivityOptions(ctx), a.LoadBatchJobs, activities.LoadBatchJobsInput{
		Source: *b.in.Source, From: b.state.Loaded, Limit: batchV1PageSize,
	}).Get(ctx, &jobs)
	if err != nil {
		return nil, fmt.Errorf("read jobs %d+ of %s: %w", b.state.Loaded, b.in.Source.Path, err)
	}
	if len(jobs) == 0 {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s ended after %d jobs, the batch expects %d", b.in.Source.Path, b.state.Loaded, b.in.Source.Jobs), ReasonInvalidInput, nil)
	}
	page := make([]LipSyncInput, len(jobs))
	for i, j := range jobs {
		page[i] = LipSyncInput{ReferenceID: j.ReferenceID, Video: j.Video, Audio: j.Audio, DisableActiveSpeakerDetection: j.DisableActiveSpeakerDetection}
	}
	b.state.Loaded += len(page)
	return page, nil
}

func (b *batchV1) startWhileRoom(ctx workflow.Context) {
	pending := 0
	for _, j := range b.state.InFlight {
		if !j.Submitted {
			pending++
		}
	}
	for b.state.Pause == nil && !b.state.Aborted && b.cursor < len(b.in.Jobs) &&
		len(b.state.InFlight) < b.in.Concurrency && pending < b.in.MaxPending && b.startsThisRun < b.in.StartsPerRun {
		job := b.in.Jobs[b.cursor]
		b.cursor++
		b.startsThisRun++
		pending++
		b.start(ctx, job)
	}
}

// start starts one job as a child workflow that outlives this run (it tells
// the batch its progress by signal, whichever run of the batch is current).
func (b *batchV1) start(ctx workflow.Context, job LipSyncInput) {
	job.BatchID = b.in.BatchID
	ref := job.ReferenceID
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:        WorkflowID(ref),
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		// A job that completed (in this batch or another) never runs again;
		// one that failed may.
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
	})
	f := workflow.ExecuteChildWorkflow(cctx, WorkflowName, job)
	b.state.InFlight = append(b.state.InFlight, InFlightJob{ReferenceID: ref, Status: "starting"})
	b.pendingStarts++
	workflow.Go(ctx, func(ctx workflow.Context) {
		err := f.GetChildWorkflowExecution().Get(ctx, nil)
		b.pendingStarts--
		b.changed = true
		i := b.inFlight(ref)
		if i < 0 {
			return // it has told us it ended already
		}
		if err == nil {
			if b.state.InFlight[i].Status == "starting" {
				b.state.InFlight[i].Status = "pending"
			}
			return
		}
		out := JobOutcome{ReferenceID: ref, Outcome: OutcomeDuplicate, Message: fmt.Sprintf(
			"reference_id %s already belongs to workflow %s, which runs or completed; the batch did not start it again", ref, WorkflowID(ref))}
		var started *temporal.ChildWorkflowExecutionAlreadyStartedError
		if !errors.As(err, &started) {
			out = JobOutcome{ReferenceID: ref, Outcome: OutcomeEscalated, Reason: "StartFailed", Message: err.Error()}
		}
		b.finish(i, out)
		workflow.GetLogger(ctx).Warn("job not started", "ReferenceId", ref, "Error", err)
	})
}

func (b *batchV1) inFlight(ref string) int {
	return slices.IndexFunc(b.state.InFlight, func(j InFlightJob) bool { return j.ReferenceID == ref })
}

// finish records a job's end and takes it out of the window.
func (b *batchV1) finish(i int, out JobOutcome) {
	b.state.InFlight = slices.Delete(b.state.InFlight, i, i+1)
	b.record(out)
	b.changed = true
}

// record counts an ended job's outcome and lists it if there is room.
func (b *batchV1) record(out JobOutcome) {
	switch out.Outcome {
	case OutcomeCompleted:
		b.state.Completed++
		return
	case OutcomeAbandoned:
		b.state.Abandoned++
	case OutcomeNotSubmitted:
		b.state.NotSubmitted++
	case OutcomeDuplicate:
		b.state.Duplicate++
	default:
		b.state.Escalated++
	}
	if len(b.state.Outcomes) < MaxListedOutcomes {
		b.state.Outcomes = append(b.state.Outcomes, out)
	}
}

// apply takes in one job's news.
func (b *batchV1) apply(ctx workflow.Context, ev BatchJobEvent) {
	i := b.inFlight(ev.ReferenceID)
	if i < 0 {
		workflow.GetLogger(ctx).Warn("news of a job not in flight", "ReferenceId", ev.ReferenceID, "Event", ev.Event)
		return
	}
	j := &b.state.InFlight[i]
	b.changed = true
	switch ev.Event {
	case EventSubmitted:
		if !j.Submitted {
			j.Submitted = true
			b.state.Submitted++
		}
		j.Status = "queued"
	case EventProcessing:
		j.Status = "processing"
	case EventEscalated:
		j.Status = "escalated"
	case EventBlocked:
		j.Status = "blocked"
		b.block(ctx, ev)
	case EventDone:
		b.finish(i, JobOutcome{ReferenceID: ev.ReferenceID, Outcome: ev.Outcome, Reason: ev.Reason, HTTPStatus: ev.HTTPStatus, Message: ev.Message})
	}
}

// block holds a job back on an account-wide failure; the first one pauses
// the batch.
func (b *batchV1) block(ctx workflow.Context, ev BatchJobEvent) {
	if b.state.Aborted {
		b.tellJob(ctx, ev.ReferenceID, AccountDecision{Action: activities.DecisionAbort, Note: "the batch was aborted", By: "batch"})
		return
	}
	if b.state.Pause == nil {
		b.state.Pauses++
		b.state.Pause = &AccountPause{
			Reason: ev.Reason, HTTPStatus: ev.HTTPStatus, Message: ev.Message,
			ReferenceID: ev.ReferenceID, Since: workflow.Now(ctx),
		}
		workflow.GetLogger(ctx).Warn("account-wide failure: the batch stops submitting", "Reason", ev.Reason, "ReferenceId", ev.ReferenceID)
	}
	b.state.Pause.Blocked = append(b.state.Pause.Blocked, ev.ReferenceID)
}

// tellJob signals a held-back job the batch's answer.
func (b *batchV1) tellJob(ctx workflow.Context, ref string, d AccountDecision) {
	if err := workflow.SignalExternalWorkflow(ctx, WorkflowID(ref), "", SignalAccountDecision, d).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("could not tell a held-back job the decision", "ReferenceId", ref, "Error", err)
	}
}

// escalateAccount raises the batch's one escalation for its pause.
func (b *batchV1) escalateAccount(ctx workflow.Context) error {
	p := b.state.Pause
	in := activities.EscalateInput{
		WorkflowID:  b.workflowID,
		ReferenceID: p.ReferenceID,
		Attempt:     b.state.Pauses,
		Kind:        activities.KindAccount,
		Reason:      p.Reason,
		HTTPStatus:  p.HTTPStatus,
		BatchID:     b.in.BatchID,
		Message: fmt.Sprintf("account-wide failure in batch %s: %s (job %s). No further job of the batch is submitted; "+
			"%d jobs are not yet submitted and %d are held back. Fix the cause, then answer: starter batch-resolve %s resume|abort",
			b.in.BatchID, p.Message, p.ReferenceID, b.remaining(), len(p.Blocked), b.in.BatchID),
	}
	var res activities.EscalateResult
	if err := workflow.ExecuteActivity(storeActivityOptions(ctx), a.Escalate, in).Get(ctx, &res); err != nil {
		return fmt.Errorf("record account escalation: %w", err)
	}
	p.Escalated, p.EscalationID = true, res.EscalationID
	b.publish(ctx)
	err := workflow.ExecuteActivity(notifyActivityOptions(ctx, 10*time.Second), a.NotifyHuman, activities.NotifyInput{
		EscalationID: res.EscalationID, Escalation: in, WebUIURL: res.WebUIURL,
	}).Get(ctx, nil)
	if err != nil {
		if temporal.IsCanceledError(err) {
			return err
		}
		workflow.GetLogger(ctx).Error("account escalation recorded but the notification failed", "EscalationId", res.EscalationID, "Error", err)
	}
	return nil
}

// applyDecision carries out a human's answer to the pause.
func (b *batchV1) applyDecision(ctx workflow.Context) error {
	d := *b.state.Decision
	b.state.Decision = nil
	p := b.state.Pause
	if err := workflow.ExecuteActivity(storeActivityOptions(ctx), a.RecordDecision, activities.DecisionInput{
		WorkflowID: b.workflowID, Attempt: b.state.Pauses, Action: d.Action, By: d.By, Note: d.Note,
	}).Get(ctx, nil); err != nil {
		return fmt.Errorf("record batch decision: %w", err)
	}
	workflow.GetLogger(ctx).Info("account-wide failure answered", "Action", d.Action, "By", d.By)
	b.state.Pause = nil
	if d.Action == activities.DecisionAbort {
		b.state.Aborted = true
		if err := b.recordNotSubmitted(ctx, fmt.Sprintf("batch %s aborted by %s after %s: %s", b.in.BatchID, orUnknown(d.By), p.Reason, d.Note)); err != nil {
			return err
		}
	}
	for _, ref := range p.Blocked {
		b.tellJob(ctx, ref, AccountDecision{Action: d.Action, Note: d.Note, By: d.By})
	}
	b.changed = true
	b.publish(ctx)
	return nil
}

// recordNotSubmitted records every job not yet started as not submitted,
// in the database and in the batch's outcomes.
func (b *batchV1) recordNotSubmitted(ctx workflow.Context, why string) error {
	const chunk = 200
	for b.cursor < len(b.in.Jobs) || b.unloaded() > 0 {
		if b.cursor == len(b.in.Jobs) {
			page, err := b.loadPage(ctx)
			if err != nil {
				return err
			}
			b.in.Jobs, b.cursor = page, 0
		}
		end := min(b.cursor+chunk, len(b.in.Jobs))
		var jobs []activities.RecordJobInput
		for _, j := range b.in.Jobs[b.cursor:end] {
			jobs = append(jobs, activities.RecordJobInput{
				WorkflowID: WorkflowID(j.ReferenceID), ReferenceID: j.ReferenceID, BatchID: b.in.BatchID, Video: j.Video, Audio: j.Audio,
			})
		}
		if err := workflow.ExecuteActivity(storeActivityOptions(ctx), a.RecordNotSubmitted, activities.NotSubmittedInput{
			BatchID: b.in.BatchID, Jobs: jobs, Reason: why,
		}).Get(ctx, nil); err != nil {
			return fmt.Errorf("record jobs not submitted: %w", err)
		}
		for _, j := range jobs {
			b.record(JobOutcome{ReferenceID: j.ReferenceID, Outcome: OutcomeNotSubmitted, Reason: ReasonNotSubmitted, Message: why})
		}
		b.cursor = end
	}
	return nil
}

func (b *batchV1) ended() bool {
	return (b.remaining() == 0 || b.state.Aborted) && len(b.state.InFlight) == 0 && b.pendingStarts == 0 && b.state.Pause == nil
}

func (b *batchV1) shouldContinueAsNew(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	full := b.startsThisRun >= b.in.StartsPerRun && b.remaining() > 0
	return full || info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > batchHistoryBound
}

// continueAsNew hands the batch to a fresh run, once every start it made
// is confirmed and every signal received is applied.
func (b *batchV1) continueAsNew(ctx workflow.Context, events workflow.ReceiveChannel) error {
	if err := workflow.Await(ctx, func() bool { return b.pendingStarts == 0 && workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	for {
		var ev BatchJobEvent
		if !events.ReceiveAsync(&ev) {
			break
		}
		b.apply(ctx, ev)
	}
	next := b.in
	next.Jobs = b.in.Jobs[b.cursor:]
	state := b.state
	next.Resume = &state
	b.publish(ctx)
	return workflow.NewContinueAsNewError(ctx, BatchWorkflowName, next)
}

func (b *batchV1) status() string {
	switch {
	case b.state.Pause != nil:
		return BatchPaused
	case b.ended() && b.state.Aborted:
		return BatchAborted
	case b.ended():
		return BatchCompleted
	}
	return BatchRunning
}

func (b *batchV1) progress() BatchProgress {
	p := BatchProgress{
		BatchID:   b.in.BatchID,
		Status:    b.status(),
		Total:     b.state.Total,
		Submitted: b.state.Submitted,
		Completed: b.state.Completed,
		Remaining: b.remaining(),
		InFlight:  len(b.state.InFlight),
		Runs:      b.state.Runs,
		legacy:    b.in.legacy,
	}
	if b.state.Aborted {
		p.Remaining = 0
	}
	if b.state.Pause != nil {
		pause := *b.state.Pause
		p.Pause = &pause
	}
	for _, j := range b.state.InFlight {
		switch j.Status {
		case "starting", "pending":
			p.Pending++
		case "blocked":
			p.Pending++
			p.Blocked++
		case "queued":
			p.Queued++
		case "processing":
			p.Processing++
		case "escalated":
			p.Escalated++
		}
	}
	p.Escalated += b.state.Escalated
	p.Abandoned, p.NotSubmitted, p.Duplicate = b.state.Abandoned, b.state.NotSubmitted, b.state.Duplicate
	return p
}

func (b *batchV1) result() BatchResult {
	p := b.progress()
	return BatchResult{
		BatchID:        b.in.BatchID,
		Total:          b.state.Total,
		Completed:      b.state.Completed,
		Escalated:      p.Escalated,
		Abandoned:      p.Abandoned,
		NotSubmitted:   p.NotSubmitted,
		Duplicate:      p.Duplicate,
		Aborted:        b.state.Aborted,
		Outcomes:       b.state.Outcomes,
		OutcomesListed: len(b.state.Outcomes) == p.Escalated+p.Abandoned+p.NotSubmitted+p.Duplicate,
		Runs:           b.state.Runs,
		legacy:         b.in.legacy,
	}
}

// publish keeps the batch's search attributes (status, pause reason, and
// every twentieth of progress) and current details in step.
func (b *batchV1) publish(ctx workflow.Context) {
	p := b.progress()
	var updates []temporal.SearchAttributeUpdate
	if !b.published {
		updates = append(updates, AttrBatchID.ValueSet(b.in.BatchID))
	}
	if p.Status != b.publishedStatus {
		updates = append(updates, AttrStatus.ValueSet(p.Status), AttrStatusSince.ValueSet(workflow.Now(ctx).UTC()))
	}
	escalated := ""
	if p.Pause != nil {
		escalated = p.Pause.Reason
	}
	switch {
	case escalated != "" && escalated != b.publishedEscalated:
		updates = append(updates, AttrEscalated.ValueSet(escalated))
	case escalated == "" && b.publishedEscalated != "":
		updates = append(updates, AttrEscalated.ValueUnset())
	}
	step := max(1, p.Total/20)
	if !b.published || p.Completed/step != b.publishedCompleted/step || p.Ended() {
		updates = append(updates, AttrBatchCompleted.ValueSet(int64(p.Completed)), AttrBatchRemaining.ValueSet(int64(p.Remaining+p.InFlight)))
	}
	if len(updates) > 0 {
		if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
			workflow.GetLogger(ctx).Warn("search attributes not updated", "Error", err)
		}
	}
	b.published, b.publishedStatus, b.publishedEscalated, b.publishedCompleted = true, p.Status, escalated, p.Completed
	workflow.SetCurrentDetails(ctx, b.details(p))
}

// details is the Web UI's current-details text.
func (b *batchV1) details(p BatchProgress) string {
	var s strings.Builder
	fmt.Fprintf(&s, "**%s** · batch `%s` · %d/%d completed · %d submitted · %d in flight (%d pending, %d queued, %d processing) · %d escalated · %d remaining",
		p.Status, p.BatchID, p.Completed, p.Total, p.Submitted, p.InFlight, p.Pending, p.Queued, p.Processing, p.Escalated, p.Remaining)
	if p.NotSubmitted > 0 {
		fmt.Fprintf(&s, " · %d not submitted", p.NotSubmitted)
	}
	if p.Pause != nil {
		fmt.Fprintf(&s, " · PAUSED on %s (HTTP %d): %s · %d jobs held back · answer: starter batch-resolve %s resume|abort",
			p.Pause.Reason, p.Pause.HTTPStatus, p.Pause.Message, len(p.Pause.Blocked), p.BatchID)
	}
	return s.String()
}
