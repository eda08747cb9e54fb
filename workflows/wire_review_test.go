package workflows

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/chamelaion-lipsync/worker/chamelaion"
)

// A contract-shaped job with a member spelled the way a TS/Python caller
// would spell it (camelCase) or in Go's spelling: the member is silently
// dropped. The schema says additionalProperties:false, so a caller
// validating against it is told otherwise; the worker neither refuses nor
// reports it, and the vendor gets another reference_id and the other
// speaker-detection mode.
func TestUnknownMembersOfAContractJobAreRefused(t *testing.T) {
	for _, doc := range []string{
		`{"video_url":"https://v","audio_url":"https://a","referenceId":"ep-42","disableActiveSpeakerDetection":true}`,
		`{"video_url":"https://v","audio_url":"https://a","ReferenceID":"ep-42","DisableActiveSpeakerDetection":true}`,
		`{"video_url":"https://v","audio_url":"https://a","reference_id":"ep-42","stuckAfter":"10m"}`,
	} {
		var in LipSyncInput
		require.NoError(t, json.Unmarshal([]byte(doc), &in))
		if ValidateInput(in) == nil {
			t.Errorf("%s\n  accepted; decoded as ReferenceID=%q ASD=%v StuckAfter=%v (members silently dropped)",
				doc, in.ReferenceID, in.DisableActiveSpeakerDetection, in.StuckAfter)
		}
	}
}

// README: "A job that ends any other way fails with a non-retryable
// application failure whose type is the reason (..., InvalidInput, ...) and
// whose first detail is an escalation_details". The InvalidInput failure
// has no details: the README's Python snippet (err.cause.details[0]) raises
// IndexError.
func TestAnInvalidInputFailureCarriesEscalationDetails(t *testing.T) {
	h := newHarness(t, testSettings())
	h.submitReturns()
	h.env.ExecuteWorkflow(WorkflowName, map[string]any{"video_url": "https://v", "audio_url": "https://a", "deadline": 600})
	err := h.env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "%v", err)
	require.Equal(t, ReasonInvalidInput, appErr.Type())
	require.True(t, appErr.HasDetails(), "InvalidInput failure has no details[0]")
}

// an old Go caller (Go field names) gets old-shape answers.
func TestALegacyCallerGetsLegacyAnswers(t *testing.T) {
	h := newHarness(t, testSettings())
	h.submitReturns()
	h.statusReturns(sequence(chamelaion.StatusProcessing, chamelaion.StatusCompleted))
	var status json.RawMessage
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow(QueryStatus)
		require.NoError(t, err)
		require.NoError(t, v.Get(&status))
	}, 6*time.Second)
	h.env.ExecuteWorkflow(WorkflowName, map[string]any{"Video": "https://v", "Audio": "https://a", "ReferenceID": "r1",
		"DisableActiveSpeakerDetection": false, "BatchID": "", "StuckAfter": 0, "Deadline": 0})
	require.NoError(t, h.env.GetWorkflowError())
	var res json.RawMessage
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Contains(t, string(status), `"ReferenceID":"r1"`)
	require.Contains(t, string(res), `"Duration":`)
	require.NotContains(t, string(res), `"duration"`)
}

// a contract caller keeps contract answers across continue-as-new.
func TestAContractJobAnswersInTheContractAfterContinueAsNew(t *testing.T) {
	s := testSettings()
	s.MaxPollsPerRun = 2
	h := newHarness(t, s)
	h.submitReturns()
	h.statusReturns(sequence(chamelaion.StatusProcessing))
	h.env.ExecuteWorkflow(WorkflowName, map[string]any{"video_url": "https://v", "audio_url": "https://a", "reference_id": "r2"})
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(h.env.GetWorkflowError(), &can))
	require.Contains(t, string(can.Input.Payloads[0].Data), `"Contract":true`)
	var next LipSyncInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.False(t, next.legacy)
	h2 := newHarness(t, s)
	h2.statusReturns(sequence(chamelaion.StatusCompleted))
	h2.env.ExecuteWorkflow(WorkflowName, next)
	require.NoError(t, h2.env.GetWorkflowError())
	var res json.RawMessage
	require.NoError(t, h2.env.GetWorkflowResult(&res))
	require.Contains(t, string(res), `"reference_id":"r2"`)
}

// A batch job whose member has the wrong JSON type (a number for a
// duration, as the old shape wrote it) loses its other members on decode
// (wire.go:206), so the batch is refused for the wrong reason: "reference_id
// is empty" instead of naming deadline.
func TestABatchJobWithAWrongTypeIsRefusedNamingTheMember(t *testing.T) {
	var b BatchInput
	require.NoError(t, json.Unmarshal([]byte(`{"batch_id":"b","jobs":[{"reference_id":"j","video_url":"https://v","audio_url":"https://a","deadline":600}]}`), &b))
	require.ErrorContains(t, ValidateBatchInput(b), "deadline")
}
