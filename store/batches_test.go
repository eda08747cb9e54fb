package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chamelaion-lipsync/worker/store"
)

// TestRecordNotSubmittedLeavesOtherBatchesAlone: an aborted batch records
// its own unstarted jobs as not submitted and never flips the pending row
// of a job that belongs to another batch or to nobody (before, any pending
// row with the workflow ID flipped, a live standalone job's included).
func TestRecordNotSubmittedLeavesOtherBatchesAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := open(t)
	standalone := newJob("lipsync-shared")
	standalone.BatchID = ""
	require.NoError(t, st.RecordJob(ctx, standalone))
	other := newJob("lipsync-other")
	other.BatchID = "b2"
	require.NoError(t, st.RecordJob(ctx, other))
	mine := newJob("lipsync-mine")
	mine.BatchID = "b1"
	require.NoError(t, st.RecordJob(ctx, mine))

	var jobs []store.NewJob
	for _, id := range []string{"lipsync-shared", "lipsync-other", "lipsync-mine"} {
		j := newJob(id)
		j.BatchID = "b1"
		jobs = append(jobs, j)
	}
	n, err := st.RecordNotSubmitted(ctx, jobs, "batch b1 aborted")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	for id, want := range map[string]store.Status{"lipsync-shared": store.StatusPending, "lipsync-other": store.StatusPending, "lipsync-mine": store.StatusNotSubmitted} {
		j, err := st.GetJob(ctx, id)
		require.NoError(t, err)
		require.Equal(t, want, j.Status, id)
	}
	counts, err := st.BatchJobCounts(ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, map[store.Status]int{store.StatusNotSubmitted: 1}, counts)
}
