package workflows

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
)

// historyCounts reads a recorded history: its events, the change IDs of
// its version markers, and the SDK's upserts of TemporalChangeVersion that
// go with them.
func historyCounts(t *testing.T, name string) (events int, versions []string, upserts int) {
	events, versions, upserts, _, _ = historyShape(t, name)
	return events, versions, upserts
}

// historyShape reads a recorded history: its events, the change IDs of its
// version markers, the SDK's TemporalChangeVersion upserts, every upsert,
// and the activity types it scheduled.
func historyShape(t *testing.T, name string) (events int, versions []string, versionUpserts, allUpserts int, activities []string) {
	t.Helper()
	r, err := os.Open(filepath.Join("testdata", "histories", name))
	require.NoError(t, err)
	defer r.Close()
	h, err := client.HistoryFromJSON(r, client.HistoryJSONOptions{})
	require.NoError(t, err)
	for _, ev := range h.Events {
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			m := ev.GetMarkerRecordedEventAttributes()
			if m.GetMarkerName() != "Version" {
				continue
			}
			var id string
			require.NoError(t, converter.GetDefaultDataConverter().FromPayload(m.GetDetails()["change-id"].GetPayloads()[0], &id))
			versions = append(versions, id)
		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			allUpserts++
			if _, ok := ev.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()["TemporalChangeVersion"]; ok {
				versionUpserts++
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			activities = append(activities, ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName())
		}
	}
	return len(h.Events), versions, versionUpserts, allUpserts, activities
}

// TestAJobCostsTheServerLess: the same job (e2e-ok-1, recorded by
// TestEndToEnd through starter submit) before the epoch and in it. Before:
// RecordJob and PlanPolls were activities of their own (each three events
// and a workflow task), the starter set no search attributes (the job
// upserted them), five version markers came with five SDK upserts. In
// it: the database writes are local activities (a marker each), the job's
// first upsert is its submission's, one version marker. What remains
// scheduled on the server is what calls the API.
func TestAJobCostsTheServerLess(t *testing.T) {
	beforeEvents, _, _, beforeUpserts, beforeActivities := historyShape(t, "v4-e2e-ok-1-run1.json")
	events, _, _, upserts, activities := historyShape(t, "e2e-ok-1-run1.json")
	require.Contains(t, beforeActivities, "RecordJob")
	require.Contains(t, beforeActivities, "PlanPolls")
	require.NotContains(t, activities, "RecordJob")
	require.NotContains(t, activities, "PlanPolls")
	for _, name := range activities {
		require.Contains(t, []string{"Submit", "CheckStatus"}, name)
	}
	t.Logf("e2e-ok-1: %d events, %d upserts, activities %v before; %d events, %d upserts, activities %v after",
		beforeEvents, beforeUpserts, beforeActivities, events, upserts, activities)
	require.LessOrEqual(t, upserts, beforeUpserts-5, "upserts: %d before, %d after", beforeUpserts, upserts)
	require.LessOrEqual(t, events, beforeEvents*3/4, "events: %d before, %d after", beforeEvents, events)
}

// TestAJobRunRecordsOneVersionMarker: a job begun on this worker records
// one version marker, job-epoch-1, for every change the epoch stands for;
// the runs recorded before it (v4-*) recorded one per change, each with
// the SDK's upsert of TemporalChangeVersion (a visibility write). The same
// job takes 8 events fewer.
func TestAJobRunRecordsOneVersionMarker(t *testing.T) {
	beforeEvents, beforeVersions, beforeUpserts := historyCounts(t, "v4-e2e-ok-1-run1.json")
	events, versions, upserts := historyCounts(t, "e2e-ok-1-run1.json")
	require.Equal(t, []string{versionJobEpoch}, versions)
	require.Equal(t, []string{versionWireContract, versionExactness, versionHeldNotLate, versionSearchAttributes, versionLearnedPolls}, beforeVersions)
	require.Equal(t, 5, beforeUpserts)
	require.Equal(t, 1, upserts, "one TemporalChangeVersion upsert (a visibility write) instead of five")
	require.Less(t, events, beforeEvents)
	t.Logf("e2e-ok-1: %d events before (%s), %d after", beforeEvents, strings.Join(beforeVersions, ", "), events)
}
