package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Custom search attributes: what an operator filters on in the Web UI. The
// worker registers them in its namespace at start-up.
var (
	// AttrStatus is the job's status: pending, submitted, queued,
	// processing, completed, failed.
	AttrStatus = temporal.NewSearchAttributeKeyKeyword("LipsyncStatus")
	// AttrStatusSince is when the job entered its status (workflow time).
	AttrStatusSince = temporal.NewSearchAttributeKeyTime("LipsyncStatusSince")
	// AttrRequestID is the vendor's request id.
	AttrRequestID = temporal.NewSearchAttributeKeyKeyword("LipsyncRequestId")
	// AttrReferenceID is the job's reference_id.
	AttrReferenceID = temporal.NewSearchAttributeKeyKeyword("LipsyncReferenceId")
	// AttrBatchID is the job's batch id, if any.
	AttrBatchID = temporal.NewSearchAttributeKeyKeyword("LipsyncBatchId")
	// AttrEscalated is the reason the job was escalated (set only then).
	AttrEscalated = temporal.NewSearchAttributeKeyKeyword("LipsyncEscalated")
	// AttrBatchCompleted is a batch's count of completed jobs (updated
	// every twentieth of the batch).
	AttrBatchCompleted = temporal.NewSearchAttributeKeyInt64("LipsyncBatchCompleted")
	// AttrBatchRemaining is a batch's count of jobs not yet ended.
	AttrBatchRemaining = temporal.NewSearchAttributeKeyInt64("LipsyncBatchRemaining")
)

// SearchAttributes lists the custom search attributes and their types, for
// registration in the namespace.
func SearchAttributes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		AttrStatus.GetName():         enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrStatusSince.GetName():    enumspb.INDEXED_VALUE_TYPE_DATETIME,
		AttrRequestID.GetName():      enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrReferenceID.GetName():    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrBatchID.GetName():        enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrEscalated.GetName():      enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrBatchCompleted.GetName(): enumspb.INDEXED_VALUE_TYPE_INT,
		AttrBatchRemaining.GetName(): enumspb.INDEXED_VALUE_TYPE_INT,
	}
}

// versionSearchAttributes guards the search-attribute upserts, which runs
// recorded before them never made.
const versionSearchAttributes = "search-attributes"

// publish keeps the search attributes and the current-details text in step
// with the job, upserting only what changed.
func (j *job) publish(ctx workflow.Context) {
	if j.version(ctx, versionSearchAttributes) == workflow.DefaultVersion {
		return
	}
	if !j.published && j.epoch >= 1 {
		j.adoptStartAttributes(ctx)
	}
	var updates []temporal.SearchAttributeUpdate
	if !j.published {
		updates = append(updates, AttrReferenceID.ValueSet(j.state.ReferenceID))
		if j.in.BatchID != "" {
			updates = append(updates, AttrBatchID.ValueSet(j.in.BatchID))
		}
	}
	if !j.published || j.state.Status != j.publishedStatus {
		since := j.state.StatusSince
		if since.IsZero() {
			since = workflow.Now(ctx)
		}
		updates = append(updates, AttrStatus.ValueSet(j.state.Status), AttrStatusSince.ValueSet(since.UTC()))
	}
	if j.state.RequestID != "" && j.state.RequestID != j.publishedRequest {
		updates = append(updates, AttrRequestID.ValueSet(j.state.RequestID))
	}
	switch {
	case j.escalated != "" && j.escalated != j.publishedEscalated:
		updates = append(updates, AttrEscalated.ValueSet(j.escalated))
	case j.escalated == "" && j.publishedEscalated != "":
		updates = append(updates, AttrEscalated.ValueUnset())
	}
	if len(updates) > 0 {
		if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
			workflow.GetLogger(ctx).Warn("search attributes not updated", "Error", err)
		}
	}
	j.published, j.publishedStatus, j.publishedRequest, j.publishedEscalated = true, j.state.Status, j.state.RequestID, j.escalated
	workflow.SetCurrentDetails(ctx, j.details(workflow.Now(ctx)))
}

// adoptStartAttributes takes the search attributes the run started with
// as published when they name this job: a client that set them at the
// start (lipsync.Client does), or the run this one continues, saves the
// run's first upsert, an event and a visibility write. Anything else is
// upserted as before.
func (j *job) adoptStartAttributes(ctx workflow.Context) {
	sa := workflow.GetTypedSearchAttributes(ctx)
	ref, ok := sa.GetKeyword(AttrReferenceID)
	if !ok || ref != j.state.ReferenceID {
		return
	}
	if batch, _ := sa.GetKeyword(AttrBatchID); batch != j.in.BatchID {
		return
	}
	status, ok := sa.GetKeyword(AttrStatus)
	if _, since := sa.GetTime(AttrStatusSince); !ok || !since {
		status = ""
	}
	j.published, j.publishedStatus = true, status
	j.publishedRequest, _ = sa.GetKeyword(AttrRequestID)
}

// StartAttributes are the search attributes a client sets when it starts
// a job's workflow (its reference_id, its batch if any, status pending
// since now): the workflow then need not upsert them itself.
func StartAttributes(referenceID, batchID string, now time.Time) temporal.SearchAttributes {
	updates := []temporal.SearchAttributeUpdate{
		AttrReferenceID.ValueSet(referenceID),
		AttrStatus.ValueSet("pending"),
		AttrStatusSince.ValueSet(now.UTC()),
	}
	if batchID != "" {
		updates = append(updates, AttrBatchID.ValueSet(batchID))
	}
	return temporal.NewSearchAttributes(updates...)
}

// details is the Web UI's current-details text.
func (j *job) details(now time.Time) string {
	s := fmt.Sprintf("**%s** · reference_id `%s`", j.state.Status, j.state.ReferenceID)
	if j.state.RequestID != "" {
		s += fmt.Sprintf(" · request `%s`", j.state.RequestID)
	}
	if j.state.StatusChecks > 0 {
		s += fmt.Sprintf(" · %d status checks", j.state.StatusChecks)
	}
	if !j.state.SubmittedAt.IsZero() {
		s += fmt.Sprintf(" · submitted %s ago", now.Sub(j.state.SubmittedAt).Round(time.Second))
	}
	if j.state.StuckNotified {
		s += " · stuck notification sent"
	}
	if j.state.Attempt > 1 {
		s += fmt.Sprintf(" · attempt %d", j.state.Attempt)
	}
	if j.escalated != "" {
		s += fmt.Sprintf(" · ESCALATED: %s: %s", j.escalated, j.lastError)
	}
	if j.waiting {
		s += fmt.Sprintf(" · WAITING for a human: starter resolve %s retry|abandon", j.state.ReferenceID)
	}
	return s
}
