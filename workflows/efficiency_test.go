package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/chamelaion-lipsync/worker/chamelaion"
)

// upsertedKeys runs a job to completion and returns, upsert by upsert, the
// names of the search attributes the workflow set.
func upsertedKeys(t *testing.T, start *temporal.SearchAttributes) [][]string {
	t.Helper()
	h := newHarness(t, testSettings())
	if start != nil {
		require.NoError(t, h.env.SetTypedSearchAttributesOnStart(*start))
	}
	var upserts [][]string
	h.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		var keys []string
		for k := range sa.GetUntypedValues() {
			keys = append(keys, k.GetName())
		}
		upserts = append(upserts, keys)
	}).Return(nil)
	h.submitReturns()
	h.statusReturns(sequence(chamelaion.StatusProcessing, chamelaion.StatusCompleted))
	res, err := h.run(testInput())
	require.NoError(t, err)
	require.Equal(t, "completed", res.Status)
	return upserts
}

// TestAJobStartedWithItsAttributesDoesNotUpsertThem: lipsync.Client sets
// the job's reference_id and pending status when it starts the workflow
// (StartAttributes); the workflow takes them as published and its first
// upsert is the submission's. A job started without them (another
// language's client, a batch's child) upserts them itself, as before.
func TestAJobStartedWithItsAttributesDoesNotUpsertThem(t *testing.T) {
	in := testInput()
	start := StartAttributes(in.ReferenceID, in.BatchID, time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC))
	with := upsertedKeys(t, &start)
	without := upsertedKeys(t, nil)
	require.Len(t, with, len(without)-1, "one upsert fewer: %v against %v", with, without)
	require.ElementsMatch(t, []string{AttrReferenceID.GetName(), AttrStatus.GetName(), AttrStatusSince.GetName()}, without[0])
	require.NotContains(t, with[0], AttrReferenceID.GetName())
	require.Contains(t, with[0], AttrRequestID.GetName(), "the first upsert is the submission's")

	// Attributes of another job are not taken for this one's.
	other := StartAttributes("someone-else", "", time.Now())
	require.Len(t, upsertedKeys(t, &other), len(without))
	// Nor those of the same reference_id in another batch.
	batch := StartAttributes(in.ReferenceID, "another-batch", time.Now())
	require.Len(t, upsertedKeys(t, &batch), len(without))
}

// TestAJobIsRecordedThroughADatabaseOutage: RecordJob runs as a local
// activity, whose retries last half a minute; a database away for longer
// (here ten failures, about 45 s of backoff) is waited for by an activity
// the server retries, and the job completes (before: the local activity
// gave up after 15 s and the job failed with no row and no escalation).
func TestAJobIsRecordedThroughADatabaseOutage(t *testing.T) {
	h := newHarness(t, testSettings())
	h.recordFails = 10
	h.submitReturns()
	h.statusReturns(sequence(chamelaion.StatusCompleted))
	res, err := h.run(testInput())
	require.NoError(t, err)
	require.Equal(t, "completed", res.Status)
	require.Zero(t, h.recordFails)
	require.Len(t, h.recorded, 1)
	require.Greater(t, h.submits[0].Sub(h.start), 30*time.Second, "the submission waited for the record, beyond the local activity's half minute")
}

// TestTheExecutionIsNamedAfterItsFirstRun: the name a workflow task gives
// the execution does not change when the task is retried (its local
// activity may already have written the row under it): it is derived from
// the run, and another run or start gets another.
func TestTheExecutionIsNamedAfterItsFirstRun(t *testing.T) {
	h := newHarness(t, testSettings())
	h.submitReturns()
	h.statusReturns(sequence(chamelaion.StatusCompleted))
	_, err := h.run(testInput())
	require.NoError(t, err)
	require.Len(t, h.recorded, 1)
	require.Equal(t, executionName("default-test-run-id", h.start), h.recorded[0].ExecutionID, "the test environment's run ID and start")
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	require.Equal(t, executionName("run-1", start), executionName("run-1", start))
	require.NotEqual(t, executionName("run-1", start), executionName("run-2", start))
	require.NotEqual(t, executionName("run-1", start), executionName("run-1", start.Add(time.Nanosecond)))
}
