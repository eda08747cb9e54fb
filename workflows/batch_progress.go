package workflows

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

func (b *batch) status() string {
	switch {
	case b.state.Pause != nil:
		return BatchPaused
	case b.settled() && b.state.Aborted:
		return BatchAborted
	case b.settled():
		return BatchCompleted
	}
	return BatchRunning
}

func (b *batch) progress() BatchProgress {
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
		case jobStarting, jobPending:
			p.Pending++
		case jobBlocked:
			p.Pending++
			p.Blocked++
		case jobQueued:
			p.Queued++
		case jobProcessing:
			p.Processing++
		case jobEscalated:
			p.Escalated++
			p.Waiting++
		}
	}
	p.Escalated += b.state.Escalated
	p.Abandoned, p.NotSubmitted, p.Duplicate, p.Cancelled = b.state.Abandoned, b.state.NotSubmitted, b.state.Duplicate, b.state.Cancelled
	return p
}

func (b *batch) result() BatchResult {
	p := b.progress()
	return BatchResult{
		BatchID:        b.in.BatchID,
		Total:          b.state.Total,
		Completed:      b.state.Completed,
		Escalated:      p.Escalated,
		Abandoned:      p.Abandoned,
		NotSubmitted:   p.NotSubmitted,
		Duplicate:      p.Duplicate,
		Cancelled:      p.Cancelled,
		Aborted:        b.state.Aborted,
		Outcomes:       b.state.Outcomes,
		OutcomesListed: len(b.state.Outcomes) == p.Escalated+p.Abandoned+p.NotSubmitted+p.Duplicate+p.Cancelled,
		Runs:           b.state.Runs,
		legacy:         b.in.legacy,
	}
}

// publish keeps the batch's search attributes (status, pause reason, and
// every twentieth of progress) and current details in step.
func (b *batch) publish(ctx workflow.Context) {
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
func (b *batch) details(p BatchProgress) string {
	var s strings.Builder
	fmt.Fprintf(&s, "**%s** · batch `%s` · %d/%d completed · %d submitted · %d in flight (%d pending, %d queued, %d processing) · %d escalated · %d remaining",
		p.Status, p.BatchID, p.Completed, p.Total, p.Submitted, p.InFlight, p.Pending, p.Queued, p.Processing, p.Escalated, p.Remaining)
	if p.Waiting > 0 {
		fmt.Fprintf(&s, " · %d waiting for a human (settled: the batch ends without them)", p.Waiting)
	}
	if p.NotSubmitted > 0 {
		fmt.Fprintf(&s, " · %d not submitted", p.NotSubmitted)
	}
	if p.Cancelled > 0 {
		fmt.Fprintf(&s, " · %d cancelled", p.Cancelled)
	}
	switch {
	case p.Pause != nil && p.Pause.HeldBy != "":
		fmt.Fprintf(&s, " · PAUSED behind the account hold of %s (%s) · %d jobs held back · resumes by itself when that hold is released",
			p.Pause.HeldBy, p.Pause.Reason, len(p.Pause.Blocked))
	case p.Pause != nil:
		fmt.Fprintf(&s, " · PAUSED on %s (HTTP %d): %s · %d jobs held back · answer: starter batch-resolve %s resume|abort",
			p.Pause.Reason, p.Pause.HTTPStatus, p.Pause.Message, len(p.Pause.Blocked), p.BatchID)
	}
	return s.String()
}
