package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/chamelaion-lipsync/worker/activities"
)

// block holds a job back on an account-wide failure; the first one pauses
// the batch. A job held back after an abort is told to give up at once.
func (b *batch) block(ctx workflow.Context, i int, ev BatchJobEvent) {
	j := &b.state.InFlight[i]
	if j.Status == jobBlocked {
		return // a duplicate of the news that held it back
	}
	j.Status, j.Submitted = jobBlocked, false
	if b.state.Aborted {
		b.tell(j, AccountDecision{Action: activities.DecisionAbort, Note: "the batch was aborted", By: "batch"})
		return
	}
	if b.state.Pause == nil {
		b.pauseHeldOnly = ev.Held
		b.state.Pauses++
		b.state.Pause = &AccountPause{
			Reason: ev.Reason, HTTPStatus: ev.HTTPStatus, Message: capMessage(ev.Message),
			ReferenceID: ev.ReferenceID, Since: workflow.Now(ctx),
		}
		workflow.GetLogger(ctx).Warn("account-wide failure: the batch stops submitting", "Reason", ev.Reason, "ReferenceId", ev.ReferenceID)
	}
	if !ev.Held {
		b.pauseHeldOnly = false
	}
	if !slices.Contains(b.state.Pause.Blocked, ev.ReferenceID) {
		b.state.Pause.Blocked = append(b.state.Pause.Blocked, ev.ReferenceID)
	}
}

// versionHeldNewsResumes marks batch runs that resume by themselves a
// pause opened only by news of submissions refused by a hold no longer in
// force (before: escalated again, with a new hold, after its human had
// answered).
const versionHeldNewsResumes = "batch-held-news-resumes"

// tell queues the batch's answer for a held-back job; the loop delivers it
// (and waits for the delivery) before it does anything else.
func (b *batch) tell(j *InFlightJob, d AccountDecision) {
	if d.Action == activities.DecisionResume {
		j.Status = jobPending // it submits again; it may be held back again
	}
	b.tells = append(b.tells, jobTell{ref: j.ReferenceID, decision: d})
}

// deliverTells signals every queued answer and waits for each delivery. A
// job that has ended cannot hear it; that is logged, never fatal.
func (b *batch) deliverTells(ctx workflow.Context) error {
	tells := b.tells
	b.tells = nil
	futures := make([]workflow.Future, len(tells))
	for i, t := range tells {
		futures[i] = workflow.SignalExternalWorkflow(ctx, WorkflowID(t.ref), "", SignalAccountDecision, t.decision)
	}
	for i, f := range futures {
		if err := f.Get(ctx, nil); err != nil {
			if temporal.IsCanceledError(err) {
				return err
			}
			workflow.GetLogger(ctx).Warn("could not tell a held-back job the decision", "ReferenceId", tells[i].ref, "Error", err)
		}
	}
	return nil
}

// escalateAccount raises the batch's one escalation for its pause (the
// account is held until the answer: no worker submits meanwhile). A pause
// behind another workflow's hold (a batch paused on the same account) is
// that workflow's to answer: the batch raises nothing and waits for the
// hold to go (watchHold), so that answering one batch never pauses another
// again.
func (b *batch) escalateAccount(ctx workflow.Context) error {
	p := b.state.Pause
	var holds []activities.HoldInfo
	if err := workflow.ExecuteActivity(storeActivityOptions(ctx), a.ActiveHolds).Get(ctx, &holds); err != nil {
		return fmt.Errorf("read account holds: %w", err)
	}
	if other := b.otherHold(holds); other != nil {
		p.Escalated, p.HeldBy = true, other.Owner
		workflow.GetLogger(ctx).Warn("held back by another workflow's account hold: waiting for it", "HeldBy", other.Owner, "Reason", other.Reason)
		b.publish(ctx)
		return nil
	}
	if b.pauseHeldOnly && len(holds) == 0 && workflow.GetVersion(ctx, versionHeldNewsResumes, workflow.DefaultVersion, 1) >= 1 {
		// Its jobs were refused by a hold that is no longer in force:
		// the batch's own, released by an answer their news arrived
		// after. Nothing was sent and the vendor refused nothing new, so
		// there is nothing to escalate: the batch resumes them itself.
		// A real refusal on their next submission pauses it again.
		p.Escalated = true
		b.state.Decision = &BatchDecision{Action: activities.DecisionResume, By: "worker",
			Note: "the account hold its jobs met was released before they heard the answer"}
		workflow.GetLogger(ctx).Info("held-back news arrived after the hold was released: resuming", "ReferenceId", p.ReferenceID)
		return nil
	}
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
	b.escalating = true
	err := workflow.ExecuteActivity(storeActivityOptions(ctx), a.Escalate, in).Get(ctx, &res)
	b.escalating = false
	if err != nil {
		return fmt.Errorf("record account escalation: %w", err)
	}
	p.Escalated, p.EscalationID = true, res.EscalationID
	b.publish(ctx)
	err = workflow.ExecuteActivity(notifyActivityOptions(ctx, 10*time.Second), a.NotifyHuman, activities.NotifyInput{
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

// applyDecision carries out a human's answer to the pause. The answer and
// the pause stay set until it is recorded, so the validator refuses every
// other answer meanwhile; then both end together.
func (b *batch) applyDecision(ctx workflow.Context) error {
	d, p := *b.state.Decision, b.state.Pause
	if p == nil {
		// Only answers to a pause are accepted; nothing to carry out.
		b.state.Decision = nil
		return nil
	}
	if err := workflow.ExecuteActivity(storeActivityOptions(ctx), a.RecordDecision, activities.DecisionInput{
		WorkflowID: b.workflowID, Attempt: b.state.Pauses, Action: d.Action, By: d.By, Note: d.Note,
	}).Get(ctx, nil); err != nil {
		return fmt.Errorf("record batch decision: %w", err)
	}
	workflow.GetLogger(ctx).Info("account-wide failure answered", "Action", d.Action, "By", d.By)
	b.state.Pause, b.state.Decision = nil, nil
	if d.Action == activities.DecisionAbort {
		b.state.Aborted = true
		b.state.AbortReason = capMessage(fmt.Sprintf("batch %s aborted by %s after %s: %s", b.in.BatchID, orUnknown(d.By), p.Reason, d.Note))
	}
	for _, ref := range p.Blocked {
		if i := b.inFlight(ref); i >= 0 && b.state.InFlight[i].Status == jobBlocked {
			b.tell(&b.state.InFlight[i], AccountDecision{Action: d.Action, Note: d.Note, By: d.By})
		}
	}
	b.publish(ctx)
	return nil
}

// otherHold is the first hold in force that is not this batch's.
func (b *batch) otherHold(holds []activities.HoldInfo) *activities.HoldInfo {
	for i := range holds {
		if holds[i].Owner != b.workflowID {
			return &holds[i]
		}
	}
	return nil
}

// holdWatchEvery is how often a batch paused behind another workflow's
// hold looks whether it was released.
func (b *batch) holdWatchEvery() time.Duration { return max(b.in.ReconcileAfter/10, 10*time.Second) }

// armHoldWatch makes sure a timer wakes the loop to look at the hold a
// pause waits behind.
func (b *batch) armHoldWatch(ctx workflow.Context) {
	p := b.state.Pause
	if b.holdTimer != nil || p == nil || p.HeldBy == "" || b.state.Decision != nil {
		return
	}
	b.holdTimer = workflow.NewTimer(ctx, b.holdWatchEvery())
}

// watchHold resumes a batch paused behind another workflow's hold once no
// such hold is in force (the batch's own answer is then the worker's).
func (b *batch) watchHold(ctx workflow.Context) error {
	p := b.state.Pause
	if p == nil || p.HeldBy == "" || b.state.Decision != nil {
		return nil
	}
	var holds []activities.HoldInfo
	if err := workflow.ExecuteActivity(storeActivityOptions(ctx), a.ActiveHolds).Get(ctx, &holds); err != nil {
		return fmt.Errorf("read account holds: %w", err)
	}
	if other := b.otherHold(holds); other != nil {
		p.HeldBy = other.Owner
		return nil
	}
	b.state.Decision = &BatchDecision{Action: activities.DecisionResume, By: "worker",
		Note: fmt.Sprintf("the account hold of %s was released", p.HeldBy)}
	return nil
}
