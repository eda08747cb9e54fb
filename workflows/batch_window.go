package workflows

import (
	"errors"
	"fmt"
	"slices"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/chamelaion-lipsync/worker/activities"
)

// batchPageSize is how many jobs one page of a Source holds at most (unless
// BatchInput.PageSize says), and batchPageBytes how many bytes of jobs: a
// page, and the rest of it a continued run carries, stay well within a
// payload however long the pre-signed URLs.
const (
	batchPageSize  = 500
	batchPageBytes = 512 << 10
)

func (b *batch) pageSize() int {
	if b.in.PageSize > 0 {
		return b.in.PageSize
	}
	return batchPageSize
}

// maxWaiting bounds the escalated jobs waiting for a human that a batch
// follows at once: beyond it, the batch starts nothing more until humans
// answer, so that its state stays bounded (and so many escalations are a
// cause to look at before spending more).
const maxWaiting = 2000

// remaining counts the jobs not yet started (nor recorded as not
// submitted).
func (b *batch) remaining() int { return len(b.in.Jobs) - b.cursor + b.unloaded() }

// unloaded counts the jobs of the Source not yet read.
func (b *batch) unloaded() int {
	if b.in.Source == nil {
		return 0
	}
	return b.in.Source.Jobs - b.state.Loaded
}

// counts returns the jobs in flight that hold a slot, those of them not
// yet accepted by the vendor, and those waiting for a human.
func (b *batch) counts() (active, pending, waiting int) {
	for _, j := range b.state.InFlight {
		switch {
		case !j.active():
			waiting++
		case j.pending():
			active++
			pending++
		default:
			active++
		}
	}
	return active, pending, waiting
}

// needsPage says whether the next page of the Source should be read: every
// loaded job has started (or been recorded) and there is room for more.
func (b *batch) needsPage() bool {
	if b.cursor < len(b.in.Jobs) || b.unloaded() == 0 || b.startsThisRun >= b.in.StartsPerRun {
		return false
	}
	return b.state.Aborted || b.state.Pause == nil
}

// loadPage reads the next page of the Source from where the last one
// ended (the first page checks the whole file first).
func (b *batch) loadPage(ctx workflow.Context) error {
	cursor := activities.SourceCursor{}
	if b.state.Cursor != nil {
		cursor = *b.state.Cursor
	}
	var res activities.LoadBatchPageResult
	err := workflow.ExecuteActivity(pageActivityOptions(ctx), a.LoadBatchPage, activities.LoadBatchPageInput{
		Source: *b.in.Source, Cursor: cursor, From: b.state.Loaded, Limit: b.pageSize(), MaxBytes: batchPageBytes,
	}).Get(ctx, &res)
	if err != nil {
		return fmt.Errorf("read jobs %d+ of the batch file: %w", b.state.Loaded+1, err)
	}
	if len(res.Jobs) == 0 {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("the batch file ended after %d jobs, the batch expects %d", b.state.Loaded, b.in.Source.Jobs), ReasonInvalidInput, nil)
	}
	page := make([]LipSyncInput, len(res.Jobs))
	for i, j := range res.Jobs {
		page[i] = LipSyncInput{ReferenceID: j.ReferenceID, Video: j.Video, Audio: j.Audio, DisableActiveSpeakerDetection: j.DisableActiveSpeakerDetection}
	}
	b.in.Jobs, b.cursor = page, 0
	b.state.Loaded += len(page)
	next := res.Next
	b.state.Cursor = &next
	return nil
}

// startWhileRoom starts jobs while the window, the pending bound and the
// run's budget allow, unless the batch is paused or aborted.
func (b *batch) startWhileRoom(ctx workflow.Context) {
	if b.state.Pause != nil || b.state.Aborted {
		return
	}
	active, pending, waiting := b.counts()
	for b.cursor < len(b.in.Jobs) && active < b.in.Concurrency && pending < b.in.MaxPending &&
		b.startsThisRun < b.in.StartsPerRun && waiting < maxWaiting {
		job := b.in.Jobs[b.cursor]
		b.cursor++
		b.startsThisRun++
		active++
		pending++
		b.start(ctx, job)
	}
}

// start starts one job as a child workflow that outlives this run (it tells
// the batch its progress by signal, whichever run of the batch is current).
func (b *batch) start(ctx workflow.Context, job LipSyncInput) {
	job.BatchID = b.in.BatchID
	ref := job.ReferenceID
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:        WorkflowID(ref),
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		// A job that completed (in this batch or another) never runs again;
		// one that failed may.
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		StaticSummary:         fmt.Sprintf("lip-sync job `%s` of batch `%s`", ref, b.in.BatchID),
	})
	f := workflow.ExecuteChildWorkflow(cctx, WorkflowName, job)
	b.state.InFlight = append(b.state.InFlight, InFlightJob{ReferenceID: ref, Status: jobStarting, HeardAt: workflow.Now(ctx)})
	b.starts = append(b.starts, childStart{ref: ref, future: f.GetChildWorkflowExecution()})
}

// startConfirmed takes in the outcome of a child start.
func (b *batch) startConfirmed(ctx workflow.Context, ref string, err error) {
	i := b.inFlight(ref)
	if i < 0 {
		return // it has told us it ended already
	}
	if err == nil {
		if b.state.InFlight[i].Status == jobStarting {
			b.state.InFlight[i].Status = jobPending
		}
		return
	}
	out := JobOutcome{ReferenceID: ref, Outcome: OutcomeDuplicate, Message: fmt.Sprintf(
		"reference_id %s already belongs to workflow %s, which runs or completed; the batch did not start it again", ref, WorkflowID(ref))}
	var started *temporal.ChildWorkflowExecutionAlreadyStartedError
	if !errors.As(err, &started) {
		out = JobOutcome{ReferenceID: ref, Outcome: OutcomeEscalated, Reason: "StartFailed", Message: err.Error()}
	}
	b.finishJob(i, out)
	workflow.GetLogger(ctx).Warn("job not started", "ReferenceId", ref, "Error", err)
}

func (b *batch) inFlight(ref string) int {
	return slices.IndexFunc(b.state.InFlight, func(j InFlightJob) bool { return j.ReferenceID == ref })
}

// finishJob records a job's end and takes it out of the window.
func (b *batch) finishJob(i int, out JobOutcome) {
	b.state.InFlight = slices.Delete(b.state.InFlight, i, i+1)
	b.record(out)
}

// record counts an ended job's outcome and lists it if there is room.
func (b *batch) record(out JobOutcome) {
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
	case OutcomeCancelled:
		b.state.Cancelled++
	default:
		out.Outcome = OutcomeEscalated
		b.state.Escalated++
	}
	if len(b.state.Outcomes) < MaxListedOutcomes {
		out.Message = capMessage(out.Message)
		b.state.Outcomes = append(b.state.Outcomes, out)
	}
}

// apply takes in one job's news. Events a job numbers (Seq) are applied
// once and in order; a duplicate or a stale one is dropped.
func (b *batch) apply(ctx workflow.Context, ev BatchJobEvent) {
	i := b.inFlight(ev.ReferenceID)
	if i < 0 {
		workflow.GetLogger(ctx).Info("news of a job not in flight (ended already)", "ReferenceId", ev.ReferenceID, "Event", ev.Event)
		return
	}
	j := &b.state.InFlight[i]
	if ev.Seq > 0 {
		if ev.Seq <= j.Seq {
			return
		}
		j.Seq = ev.Seq
	}
	j.HeardAt = workflow.Now(ctx)
	switch ev.Event {
	case EventSubmitted:
		j.Submitted = true
		if !j.Counted {
			j.Counted = true
			b.state.Submitted++
		}
		if j.Status != jobProcessing && j.Status != jobEscalated {
			j.Status = jobQueued
		}
	case EventProcessing:
		if j.Status != jobEscalated {
			j.Status = jobProcessing
		}
	case EventEscalated:
		j.Status, j.Reason, j.HTTPStatus, j.Message = jobEscalated, capText(ev.Reason, 60), ev.HTTPStatus, capText(ev.Message, maxWaitingMessage)
	case EventRetrying:
		j.Status, j.Submitted, j.Reason, j.HTTPStatus, j.Message = jobPending, false, "", 0, ""
	case EventBlocked:
		b.block(ctx, i, ev)
	case EventDone:
		b.finishJob(i, JobOutcome{ReferenceID: ev.ReferenceID, Outcome: ev.Outcome, Reason: ev.Reason, HTTPStatus: ev.HTTPStatus, Message: ev.Message})
	}
}

// recordNotSubmitted records the next chunk of the jobs an abort left
// unstarted as not submitted, in the database and in the outcomes (the
// loop continues as new between chunks when the run's budget is spent).
func (b *batch) recordNotSubmitted(ctx workflow.Context) error {
	const chunk = 200
	if b.cursor == len(b.in.Jobs) {
		return b.loadPage(ctx)
	}
	end := min(b.cursor+chunk, len(b.in.Jobs), b.cursor+b.in.StartsPerRun-b.startsThisRun)
	var jobs []activities.RecordJobInput
	for _, j := range b.in.Jobs[b.cursor:end] {
		jobs = append(jobs, activities.RecordJobInput{
			WorkflowID: WorkflowID(j.ReferenceID), ReferenceID: j.ReferenceID, BatchID: b.in.BatchID, Video: j.Video, Audio: j.Audio,
		})
	}
	if err := workflow.ExecuteActivity(storeActivityOptions(ctx), a.RecordNotSubmitted, activities.NotSubmittedInput{
		BatchID: b.in.BatchID, Jobs: jobs, Reason: b.state.AbortReason,
	}).Get(ctx, nil); err != nil {
		return fmt.Errorf("record jobs not submitted: %w", err)
	}
	for _, j := range jobs {
		b.record(JobOutcome{ReferenceID: j.ReferenceID, Outcome: OutcomeNotSubmitted, Reason: ReasonNotSubmitted, Message: b.state.AbortReason})
	}
	b.startsThisRun += end - b.cursor
	b.cursor = end
	return nil
}

// maxReconcile bounds the jobs one reconciliation looks up.
const maxReconcile = 200

// reconcile asks Temporal how the jobs not heard from for ReconcileAfter
// stand, and ends those that have ended (a job cancelled or terminated
// without a word, or whose last signal never arrived).
func (b *batch) reconcile(ctx workflow.Context) error {
	var ids []string
	for _, j := range b.state.InFlight {
		if since(ctx, j.HeardAt) >= b.in.ReconcileAfter && len(ids) < maxReconcile {
			ids = append(ids, WorkflowID(j.ReferenceID))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	b.state.Reconciled = workflow.Now(ctx)
	var ends []activities.WorkflowEnd
	err := workflow.ExecuteActivity(reconcileActivityOptions(ctx), a.ReconcileJobs, activities.ReconcileJobsInput{BatchID: b.in.BatchID, WorkflowIDs: ids}).Get(ctx, &ends)
	if err != nil || len(ends) != len(ids) {
		workflow.GetLogger(ctx).Warn("could not look up jobs not heard from; trying again later", "Jobs", len(ids), "Error", err)
		return nil
	}
	for k, id := range ids {
		ref := id[len(WorkflowIDPrefix):]
		i := b.inFlight(ref)
		if i < 0 {
			continue
		}
		end := ends[k]
		if end.Running() {
			b.state.InFlight[i].HeardAt = workflow.Now(ctx)
			continue
		}
		out := outcomeOfEnd(ref, end)
		workflow.GetLogger(ctx).Warn("a job ended without telling the batch", "ReferenceId", ref, "Status", end.Status, "Outcome", out.Outcome)
		b.finishJob(i, out)
	}
	return nil
}

// outcomeOfEnd is the outcome of a job whose workflow ended as end says.
func outcomeOfEnd(ref string, end activities.WorkflowEnd) JobOutcome {
	switch end.Status {
	case activities.WorkflowCompleted:
		return JobOutcome{ReferenceID: ref, Outcome: OutcomeCompleted}
	case activities.WorkflowFailed:
		o := JobOutcome{ReferenceID: ref, Outcome: OutcomeEscalated, Reason: end.FailureType, Message: end.FailureMessage}
		switch end.FailureType {
		case ReasonAbandoned:
			o.Outcome = OutcomeAbandoned
		case ReasonNotSubmitted:
			o.Outcome = OutcomeNotSubmitted
		}
		return o
	}
	reason := map[string]string{
		activities.WorkflowCanceled: "Canceled", activities.WorkflowTerminated: "Terminated",
		activities.WorkflowTimedOut: "TimedOut", activities.WorkflowNotFound: "NotFound",
	}[end.Status]
	return JobOutcome{ReferenceID: ref, Outcome: OutcomeCancelled, Reason: reason,
		Message: fmt.Sprintf("the job's workflow ended %s before the job did", end.Status)}
}
