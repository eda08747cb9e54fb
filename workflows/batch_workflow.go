package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// versionBatchLoop marks batch runs whose main loop is the one consumer of
// their events (runs that began before it replay batchV1).
const versionBatchLoop = "batch-one-consumer"

// Batch runs every job of a batch as a child LipSync workflow, at most
// Concurrency at a time (a sliding window: the next job starts when one
// settles) and at most MaxPending not yet accepted by the vendor,
// continuing as new every StartsPerRun starts so that its history stays
// bounded however large the batch. Jobs tell the batch their progress by
// signal, so jobs started by an earlier run are followed alike; a job not
// heard from for ReconcileAfter is looked up in Temporal, so that a job
// cancelled or terminated without a word never keeps the batch open.
//
// One bad job never stops the others. An account-wide failure (401, 412)
// pauses the batch: no further job starts, one account-level escalation is
// raised, jobs in flight go on, and the batch waits for a human's resume
// or abort. The batch ends when every job has settled: completed,
// abandoned, not submitted, duplicate, cancelled, or escalated and waiting
// for a human (those stay resolvable one by one).
//
// The main loop is the batch's only consumer of events: it drains the
// signal channel and the child-start futures without blocking, acts, and
// only then waits; nothing else changes the batch's state, except the
// resolve update's handler, which only records an answer.
func (w *Workflows) Batch(ctx workflow.Context, in BatchInput) (BatchResult, error) {
	if err := ValidateBatchInput(in); err != nil {
		return BatchResult{}, temporal.NewNonRetryableApplicationError("invalid batch: "+err.Error(), ReasonInvalidInput, nil)
	}
	in.legacy = legacyShape(workflow.GetVersion(ctx, versionWireContract, workflow.DefaultVersion, 1), in.legacy)
	if workflow.GetVersion(ctx, versionBatchLoop, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return w.batchV1(ctx, in)
	}
	b := newBatch(ctx, in)
	if err := b.registerHandlers(ctx); err != nil {
		return BatchResult{}, err
	}
	return b.run(ctx)
}

// batch is one batch run's working state.
type batch struct {
	in         BatchInput
	workflowID string
	state      BatchState
	events     workflow.ReceiveChannel
	// cursor indexes in.Jobs: the next job to start (or to record as not
	// submitted, after an abort).
	cursor int
	// startsThisRun counts this run's starts and abort records.
	startsThisRun int
	// starts are the child starts not yet confirmed.
	starts []childStart
	// tells are answers not yet delivered to held-back jobs.
	tells []jobTell
	// reconcileTimer fires when it is time to look up jobs not heard from.
	reconcileTimer workflow.Future
	// holdTimer fires when it is time to look whether the hold a pause
	// waits behind was released.
	holdTimer workflow.Future
	// pauseHeldOnly: every job held back by the pause not yet escalated
	// was refused by an account hold (nothing was sent). A pause is
	// escalated in the run that opened it (the loop escalates before it
	// may continue as new), so this need not be carried over.
	pauseHeldOnly bool
	// escalating: the pause's escalation is being recorded; whoever sees
	// its row may answer it already.
	escalating bool
	// What publish last told Temporal's visibility.
	publishedStatus    string
	publishedEscalated string
	publishedCompleted int
	published          bool
}

type childStart struct {
	ref    string
	future workflow.Future
}

type jobTell struct {
	ref      string
	decision AccountDecision
}

func newBatch(ctx workflow.Context, in BatchInput) *batch {
	b := &batch{in: in, workflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, events: workflow.GetSignalChannel(ctx, SignalBatchJob)}
	if in.Concurrency == 0 {
		b.in.Concurrency = DefaultBatchConcurrency
	}
	if in.StartsPerRun == 0 {
		b.in.StartsPerRun = DefaultBatchStartsPerRun
	}
	if in.MaxPending == 0 {
		b.in.MaxPending = DefaultBatchMaxPending
	}
	if in.ReconcileAfter == 0 {
		b.in.ReconcileAfter = DefaultBatchReconcileAfter
	}
	if in.Resume != nil {
		b.state = *in.Resume
		b.state.Runs++
		// A run of the previous loop carried no Counted and no HeardAt:
		// its submitted jobs are counted already, and heard from now.
		for i := range b.state.InFlight {
			j := &b.state.InFlight[i]
			if j.Submitted {
				j.Counted = true
			}
			if j.HeardAt.IsZero() {
				j.HeardAt = workflow.Now(ctx)
			}
		}
	} else {
		b.state = BatchState{Total: len(in.Jobs), StartedAt: workflow.Now(ctx), Runs: 1}
		if in.Source != nil {
			b.state.Total = in.Source.Jobs
		}
	}
	return b
}

// registerHandlers answers the progress query and accepts one answer per
// pause: the validator refuses a second answer from the moment the first
// is accepted until the pause is over, however many arrive at once.
func (b *batch) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryBatchProgress, func() (BatchProgress, error) {
		return b.progress(), nil
	}); err != nil {
		return fmt.Errorf("register progress query: %w", err)
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateBatchResolve,
		func(ctx workflow.Context, d BatchDecision) (BatchDecision, error) {
			b.state.Decision = &d
			return d, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, d BatchDecision) error {
			if err := ValidateBatchDecision(d); err != nil {
				return err
			}
			switch p := b.state.Pause; {
			case p == nil:
				return fmt.Errorf("batch %s is not paused on an account-wide failure (status %s)", b.in.BatchID, b.status())
			case !p.Escalated && !b.escalating:
				return fmt.Errorf("batch %s is pausing on %s: its escalation is not recorded yet; answer once it is", b.in.BatchID, p.Reason)
			case b.state.Decision != nil:
				return fmt.Errorf("batch %s: the pause on %s was answered already (%s by %s); it is being carried out",
					b.in.BatchID, p.Reason, b.state.Decision.Action, orUnknown(b.state.Decision.By))
			}
			return nil
		}},
	)
	if err != nil {
		return fmt.Errorf("register resolve update: %w", err)
	}
	return nil
}

// run is the batch's loop: take in every event received, act on what
// needs acting on (one step at a time, each of which may block), and wait
// only when nothing is left to do.
func (b *batch) run(ctx workflow.Context) (BatchResult, error) {
	b.publish(ctx)
	for {
		b.drain(ctx)
		acted, err := b.step(ctx)
		if err != nil {
			return BatchResult{}, err
		}
		if acted {
			continue // a step may block: take in what arrived meanwhile
		}
		if b.settled() {
			return b.finish(ctx), nil
		}
		if b.shouldContinueAsNew(ctx) {
			return BatchResult{}, b.continueAsNew(ctx)
		}
		b.publish(ctx)
		b.armReconcile(ctx)
		b.armHoldWatch(ctx)
		if err := workflow.Await(ctx, b.woken); err != nil {
			return BatchResult{}, err
		}
	}
}

// step does the first thing that needs doing and says whether it did
// anything. Only starting jobs never blocks, so it comes last.
func (b *batch) step(ctx workflow.Context) (bool, error) {
	switch {
	case len(b.tells) > 0:
		return true, b.deliverTells(ctx)
	case b.state.Pause != nil && !b.state.Pause.Escalated:
		return true, b.escalateAccount(ctx)
	case b.state.Decision != nil:
		return true, b.applyDecision(ctx)
	case b.reconcileTimer != nil && b.reconcileTimer.IsReady():
		b.reconcileTimer = nil
		return true, b.reconcile(ctx)
	case b.holdTimer != nil && b.holdTimer.IsReady():
		b.holdTimer = nil
		return true, b.watchHold(ctx)
	case b.state.Aborted && b.remaining() > 0 && b.startsThisRun < b.in.StartsPerRun:
		return true, b.recordNotSubmitted(ctx)
	case b.needsPage():
		return true, b.loadPage(ctx)
	}
	b.startWhileRoom(ctx)
	return false, nil
}

// woken says whether anything arrived that the loop must take in.
func (b *batch) woken() bool {
	if b.events.Len() > 0 || b.state.Decision != nil {
		return true
	}
	if b.reconcileTimer != nil && b.reconcileTimer.IsReady() || b.holdTimer != nil && b.holdTimer.IsReady() {
		return true
	}
	return slices.ContainsFunc(b.starts, func(s childStart) bool { return s.future.IsReady() })
}

// drain takes in every confirmed start and every signal received, without
// blocking.
func (b *batch) drain(ctx workflow.Context) {
	for i := 0; i < len(b.starts); {
		s := b.starts[i]
		if !s.future.IsReady() {
			i++
			continue
		}
		b.starts = slices.Delete(b.starts, i, i+1)
		b.startConfirmed(ctx, s.ref, s.future.Get(ctx, nil))
	}
	for {
		var ev BatchJobEvent
		if !b.events.ReceiveAsync(&ev) {
			return
		}
		b.apply(ctx, ev)
	}
}

// settled says whether the batch may end: nothing left to start or record,
// nothing unconfirmed or undelivered, no pause or answer outstanding, and
// every job in flight settled (escalated and waiting for a human).
func (b *batch) settled() bool {
	if b.remaining() > 0 || len(b.starts) > 0 || len(b.tells) > 0 || b.state.Pause != nil || b.state.Decision != nil {
		return false
	}
	return !slices.ContainsFunc(b.state.InFlight, InFlightJob.active)
}

func (b *batch) shouldContinueAsNew(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	full := b.startsThisRun >= b.in.StartsPerRun && b.remaining() > 0
	return full || info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > batchHistoryBound ||
		info.GetCurrentHistorySize() > batchHistorySizeBound
}

// continueAsNew hands the batch to a fresh run once every start it made is
// confirmed, every signal received is applied and every answer to a job is
// delivered; whatever remains (a pause, an accepted answer) rides in the
// state.
func (b *batch) continueAsNew(ctx workflow.Context) error {
	for {
		if err := workflow.Await(ctx, func() bool {
			return !slices.ContainsFunc(b.starts, func(s childStart) bool { return !s.future.IsReady() }) && workflow.AllHandlersFinished(ctx)
		}); err != nil {
			return err
		}
		b.drain(ctx)
		if len(b.tells) == 0 {
			break
		}
		if err := b.deliverTells(ctx); err != nil {
			return err
		}
	}
	next := b.in
	next.Jobs = b.in.Jobs[b.cursor:]
	state := b.state
	next.Resume = &state
	b.publish(ctx)
	workflow.GetLogger(ctx).Info("batch continues as new", "Run", b.state.Runs, "Remaining", b.remaining(), "InFlight", len(b.state.InFlight))
	return workflow.NewContinueAsNewError(ctx, BatchWorkflowName, next)
}

// finish ends the settled batch: the jobs still waiting for a human are
// listed as escalated, with the command that answers them.
func (b *batch) finish(ctx workflow.Context) BatchResult {
	waiting := 0
	for _, j := range b.state.InFlight {
		waiting++
		b.record(JobOutcome{ReferenceID: j.ReferenceID, Outcome: OutcomeEscalated, Reason: j.Reason, HTTPStatus: j.HTTPStatus,
			Message: capMessage(j.Message) + fmt.Sprintf(" (waiting for a human: starter resolve %s retry|abandon)", j.ReferenceID)})
	}
	b.state.InFlight = nil
	b.publish(ctx)
	res := b.result()
	res.Waiting = waiting
	workflow.GetLogger(ctx).Info("batch ended", "Total", res.Total, "Completed", res.Completed, "Escalated", res.Escalated,
		"Waiting", waiting, "NotSubmitted", res.NotSubmitted, "Cancelled", res.Cancelled)
	return res
}

// armReconcile makes sure a timer will wake the loop when the job heard
// from longest ago has not been heard from for ReconcileAfter (at most
// every quarter of it), while any job is in flight. The times ride in the
// state, so a batch that continues as new often still reconciles.
func (b *batch) armReconcile(ctx workflow.Context) {
	if b.reconcileTimer != nil || len(b.state.InFlight) == 0 {
		return
	}
	oldest := b.state.InFlight[0].HeardAt
	for _, j := range b.state.InFlight[1:] {
		if j.HeardAt.Before(oldest) {
			oldest = j.HeardAt
		}
	}
	due := oldest.Add(b.in.ReconcileAfter)
	if next := b.state.Reconciled.Add(b.in.ReconcileAfter / 4); next.After(due) {
		due = next
	}
	b.reconcileTimer = workflow.NewTimer(ctx, max(due.Sub(workflow.Now(ctx)), time.Second))
}

// capMessage bounds a message kept in the batch's state or result.
func capMessage(s string) string { return capText(s, maxOutcomeMessage) }

// capText cuts s to at most n bytes (and an ellipsis), never inside a
// UTF-8 sequence.
func capText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// since is how long ago t was, in workflow time.
func since(ctx workflow.Context, t time.Time) time.Duration { return workflow.Now(ctx).Sub(t) }
