package workflows

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
)

func TestAJobInTheContractsShapeDecodes(t *testing.T) {
	var in LipSyncInput
	require.NoError(t, json.Unmarshal([]byte(`{
		"reference_id": "ep-42", "video_url": "https://cdn/v.mp4?sig=1", "audio_url": "https://cdn/a.wav",
		"disable_active_speaker_detection": true, "batch_id": "cat-1",
		"poll": {"initial": "5s", "max": "1m", "coefficient": 2, "target_latency": "30s"},
		"stuck_after": "10m", "deadline": "1h30m"}`), &in))
	require.NoError(t, ValidateInput(in))
	require.Equal(t, LipSyncInput{
		ReferenceID: "ep-42", Video: "https://cdn/v.mp4?sig=1", Audio: "https://cdn/a.wav",
		DisableActiveSpeakerDetection: true, BatchID: "cat-1",
		Poll:       &PollSchedule{Initial: 5 * time.Second, Max: time.Minute, Coefficient: 2, TargetLatency: 30 * time.Second},
		StuckAfter: 10 * time.Minute, Deadline: 90 * time.Minute,
	}, in)

	b, err := json.Marshal(in)
	require.NoError(t, err)
	require.JSONEq(t, `{"reference_id":"ep-42","video_url":"https://cdn/v.mp4?sig=1","audio_url":"https://cdn/a.wav",
		"disable_active_speaker_detection":true,"batch_id":"cat-1",
		"poll":{"initial":"5s","max":"1m0s","coefficient":2,"target_latency":"30s"},
		"stuck_after":"10m0s","deadline":"1h30m0s"}`, string(b))
}

func TestAJobInGosOldShapeDecodesWithDurationsInNanoseconds(t *testing.T) {
	var in LipSyncInput
	old := `{"Video":"https://v","Audio":"https://a","ReferenceID":"ep-1","DisableActiveSpeakerDetection":false,` +
		`"BatchID":"","StuckAfter":600000000000,"Deadline":0}`
	require.NoError(t, json.Unmarshal([]byte(old), &in))
	require.Equal(t, "ep-1", in.ReferenceID)
	require.Equal(t, "https://v", in.Video)
	require.Equal(t, 10*time.Minute, in.StuckAfter)
	require.True(t, in.legacy, "a job sent in the old shape is answered in it")

	b, err := json.Marshal(in)
	require.NoError(t, err)
	require.JSONEq(t, old, string(b), "written back exactly as it came")
}

func TestAJobThatCannotBeReadFailsValidationNamingTheMember(t *testing.T) {
	for doc, want := range map[string]string{
		`{"video_url":"https://v","audio_url":"https://a","stuck_after":"ten minutes"}`:         `stuck_after: "ten minutes" is not a duration`,
		`{"video_url":"https://v","audio_url":"https://a","deadline":600}`:                      `member "deadline": a JSON number where the contract wants a duration string`,
		`{"video_url":"https://v","audio_url":"https://a","poll":{"initial":"5 s"}}`:            `poll.initial: "5 s" is not a duration`,
		`{"reference_id":"x","video_url":"https://v","audio_url":"https://a","stuck_after":-1}`: `member "stuck_after": a JSON number`,
	} {
		var in LipSyncInput
		require.NoError(t, json.Unmarshal([]byte(doc), &in), "decoding never fails the workflow task")
		err := ValidateInput(in)
		require.ErrorContains(t, err, want, doc)
	}
	var b BatchInput
	require.NoError(t, json.Unmarshal([]byte(`{"batch_id":"b","jobs":[{"reference_id":"j","video_url":"https://v","audio_url":"https://a","deadline":"soon"}]}`), &b))
	require.ErrorContains(t, ValidateBatchInput(b), `job 1 (j): deadline: "soon" is not a duration`)
}

func TestAContinuedRunKeepsItsCallersShape(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		next := LipSyncInput{Video: "https://v", Audio: "https://a", ReferenceID: "r", legacy: legacy,
			Resume: &JobState{ReferenceID: "r", Attempt: 2, NextPoll: time.Second}}
		b, err := json.Marshal(next)
		require.NoError(t, err)
		require.Contains(t, string(b), `"Resume":{`, "the worker's own carry-over is written in Go's names")
		var got LipSyncInput
		require.NoError(t, json.Unmarshal(b, &got))
		require.Equal(t, next, got)
	}
	batch := BatchInput{BatchID: "b", Jobs: []LipSyncInput{{Video: "https://v", Audio: "https://a", ReferenceID: "j"}},
		Resume: &BatchState{Total: 3, Runs: 1}}
	b, err := json.Marshal(batch)
	require.NoError(t, err)
	var got BatchInput
	require.NoError(t, json.Unmarshal(b, &got))
	require.Equal(t, batch, got)
	require.False(t, got.Jobs[0].legacy, "its jobs keep the contract's shape")
}

func TestOutputsRoundTripInBothShapes(t *testing.T) {
	at := time.Date(2026, 4, 7, 10, 0, 0, 0, time.UTC)
	later := at.Add(time.Minute)
	values := []any{
		&LipSyncResult{ReferenceID: "r", RequestID: "q", Status: "completed", OutputURL: "https://out", Adopted: true,
			StartedAt: at, SubmittedAt: at.Add(time.Second), ProcessingStartedAt: &later, FinishedAt: at.Add(3 * time.Minute),
			Duration: 3 * time.Minute, StatusChecks: 4, Runs: 2},
		&JobStatus{ReferenceID: "r", RequestID: "q", Status: "failed", Attempt: 2, StatusChecks: 3, StuckNotified: true,
			Escalated: "JobFailed", LastError: "bad video", StartedAt: at, Runs: 1, WaitingForDecision: true, BlockedOnAccount: "QuotaExceeded"},
		&EscalationDetails{Reason: "QuotaExceeded", HTTPStatus: 412, Message: "token limit reached", EscalationID: 7, RequestID: "q"},
		&Decision{Action: "retry", Note: "plan upgraded", By: "ops"},
		&DecisionResult{Action: "retry", Attempt: 2},
		&BatchProgress{BatchID: "b", Status: "paused", Total: 9, Submitted: 3, Pending: 2, Blocked: 1, Queued: 1, Processing: 1,
			Completed: 1, Escalated: 1, Abandoned: 1, NotSubmitted: 1, Duplicate: 1, Cancelled: 1, Waiting: 1, Remaining: 2, InFlight: 4,
			Pause: &AccountPause{Reason: "Unauthorized", HTTPStatus: 401, Message: "key revoked", ReferenceID: "j", Since: at,
				EscalationID: 3, Escalated: true, HeldBy: "batch-x", Blocked: []string{"j", "k"}}, Runs: 2},
		&BatchResult{BatchID: "b", Total: 3, Completed: 1, Escalated: 1, Abandoned: 1, Aborted: true,
			Outcomes:       []JobOutcome{{ReferenceID: "j", Outcome: "escalated", Reason: "BadRequest", HTTPStatus: 400, Message: "no"}},
			OutcomesListed: true, Cancelled: 0, Waiting: 1, Runs: 1},
		&BatchDecision{Action: "abort", Note: "n", By: "ops"},
	}
	for _, v := range values {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		require.NotContains(t, string(b), `"Reference`, "%T is written in the contract's names", v)
		require.NotRegexp(t, `"[A-Z][A-Za-z]*":`, string(b), "%T: no Go field name on the wire", v)
		got := newOf(v)
		require.NoError(t, json.Unmarshal(b, got), "%T", v)
		require.Equal(t, v, got, "%T round-trips in the contract's shape", v)
	}
	// In Go's old shape: each output written with its legacy flag reads back
	// the same, flag included.
	old := []any{
		&LipSyncResult{ReferenceID: "r", Duration: time.Minute, StartedAt: at, legacy: true},
		&JobStatus{ReferenceID: "r", LastError: "x", StartedAt: at, legacy: true},
		&EscalationDetails{Reason: "BadRequest", Message: "m", legacy: true},
		&DecisionResult{Action: "abandon", Attempt: 1, legacy: true},
		&BatchProgress{BatchID: "b", legacy: true},
		&BatchResult{BatchID: "b", legacy: true},
	}
	for _, v := range old {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		require.Contains(t, string(b), `":`, "%T", v)
		require.Regexp(t, `^\{"[A-Z]`, string(b), "%T is written in Go's names", v)
		got := newOf(v)
		require.NoError(t, json.Unmarshal(b, got), "%T", v)
		require.Equal(t, v, got, "%T round-trips in the old shape", v)
	}
}

// newOf returns a new zero value of v's pointed-to type.
func newOf(v any) any {
	switch v.(type) {
	case *LipSyncResult:
		return new(LipSyncResult)
	case *JobStatus:
		return new(JobStatus)
	case *EscalationDetails:
		return new(EscalationDetails)
	case *Decision:
		return new(Decision)
	case *DecisionResult:
		return new(DecisionResult)
	case *BatchProgress:
		return new(BatchProgress)
	case *BatchResult:
		return new(BatchResult)
	case *BatchDecision:
		return new(BatchDecision)
	}
	panic("newOf: unexpected type")
}

func TestAnEscalationIsRewrittenInTheRunsShape(t *testing.T) {
	err := temporal.NewNonRetryableApplicationError("job escalated", "QuotaExceeded", nil,
		EscalationDetails{Reason: "QuotaExceeded", HTTPStatus: 412, Message: "limit"})
	legacy := inShape(err, true)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, legacy, &appErr)
	require.True(t, appErr.NonRetryable())
	require.Equal(t, "QuotaExceeded", appErr.Type())
	require.Equal(t, "job escalated", appErr.Message())
	var d EscalationDetails
	require.NoError(t, appErr.Details(&d))
	require.True(t, d.legacy)
	b, jerr := json.Marshal(d)
	require.NoError(t, jerr)
	require.JSONEq(t, `{"Reason":"QuotaExceeded","HTTPStatus":412,"Message":"limit","EscalationID":0,"RequestID":""}`, string(b))
	require.Same(t, err, inShape(err, false), "already in the contract's shape: unchanged")
	plain := temporal.NewApplicationError("x", "T")
	require.Same(t, plain, inShape(plain, true), "no details: unchanged")
}

// TestRecordedHistoriesDecode reads every payload of the contract's types in
// the recorded histories with today's types: they decode, carry what they
// carried, are known to be in the shape they were recorded in (Go's field
// names before the contract, the contract's after), and are written back
// with every member as recorded (a run answers in the shape it began in).
func TestRecordedHistoriesDecode(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	dc := converter.GetDefaultDataConverter()
	counts := map[string]int{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := os.Open(f)
			require.NoError(t, err)
			defer r.Close()
			h, err := client.HistoryFromJSON(r, client.HistoryJSONOptions{})
			require.NoError(t, err)
			started := h.Events[0].GetWorkflowExecutionStartedEventAttributes()
			wfType := started.GetWorkflowType().GetName()
			// The shape the run began in: its caller's, or the one its
			// continuation carried on.
			var legacy bool
			if wfType == BatchWorkflowName {
				var in BatchInput
				require.NoError(t, dc.FromPayload(started.GetInput().GetPayloads()[0], &in))
				legacy = in.legacy
			} else {
				var in LipSyncInput
				require.NoError(t, dc.FromPayload(started.GetInput().GetPayloads()[0], &in))
				legacy = in.legacy
			}
			if legacy {
				counts["histories before the contract"]++
			} else {
				counts["histories after the contract"]++
			}
			decode := func(kind string, p *commonpb.Payload, v any) {
				t.Helper()
				require.NoError(t, dc.FromPayload(p, v), "%s", kind)
				again, err := json.Marshal(v)
				require.NoError(t, err)
				var was, is map[string]any
				require.NoError(t, json.Unmarshal(p.GetData(), &was))
				require.NoError(t, json.Unmarshal(again, &is))
				for k, w := range was {
					if k == "Resume" {
						continue // the worker's carry-over: older runs' lack fields added since
					}
					require.Equal(t, w, is[k], "%s: %s written back as recorded", kind, k)
				}
				counts[kind]++
			}
			input := func(kind string, p *commonpb.Payload, workflowType string) {
				t.Helper()
				if workflowType == BatchWorkflowName {
					var in BatchInput
					decode(kind, p, &in)
					require.NotEmpty(t, in.BatchID)
					require.Equal(t, legacy, in.legacy)
					for _, j := range in.Jobs {
						require.True(t, strings.HasPrefix(j.Video, "https://"), j.ReferenceID)
						require.Equal(t, legacy, j.legacy)
					}
					return
				}
				var in LipSyncInput
				decode(kind, p, &in)
				require.NotEmpty(t, in.ReferenceID)
				require.True(t, strings.HasPrefix(in.Video, "https://") && strings.HasPrefix(in.Audio, "https://"))
				require.Equal(t, legacy, in.legacy)
				require.NoError(t, ValidateInput(in))
			}
			for _, e := range h.Events {
				switch e.GetEventType() {
				case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
					input("input", e.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0], wfType)
				case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
					input("continuation", e.GetWorkflowExecutionContinuedAsNewEventAttributes().GetInput().GetPayloads()[0], wfType)
				case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
					input("child input", e.GetStartChildWorkflowExecutionInitiatedEventAttributes().GetInput().GetPayloads()[0], WorkflowName)
				case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
					p := e.GetWorkflowExecutionCompletedEventAttributes().GetResult().GetPayloads()[0]
					if wfType == BatchWorkflowName {
						var res BatchResult
						decode("batch result", p, &res)
						require.NotEmpty(t, res.BatchID)
						require.Equal(t, legacy, res.legacy)
						continue
					}
					var res LipSyncResult
					decode("result", p, &res)
					require.Equal(t, "completed", res.Status)
					require.Positive(t, res.Duration)
					require.Equal(t, legacy, res.legacy)
				case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
					app := e.GetWorkflowExecutionFailedEventAttributes().GetFailure().GetApplicationFailureInfo()
					if ps := app.GetDetails().GetPayloads(); len(ps) > 0 {
						var d EscalationDetails
						decode("escalation", ps[0], &d)
						require.NotEmpty(t, d.Reason)
						if app.GetType() != ReasonAbandoned {
							require.Equal(t, app.GetType(), d.Reason, "the failure's type is the escalation's reason")
						}
						require.Equal(t, legacy, d.legacy)
					}
				case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
					in := e.GetWorkflowExecutionUpdateAcceptedEventAttributes().GetAcceptedRequest().GetInput()
					p := in.GetArgs().GetPayloads()[0]
					if in.GetName() == UpdateBatchResolve {
						var d BatchDecision
						decode("batch decision", p, &d)
						require.NoError(t, ValidateBatchDecision(d))
						continue
					}
					var d Decision
					decode("decision", p, &d)
					require.NoError(t, ValidateDecision(d))
				case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
					if wfType == BatchWorkflowName {
						continue
					}
					var res DecisionResult
					decode("decision result", e.GetWorkflowExecutionUpdateCompletedEventAttributes().GetOutcome().GetSuccess().GetPayloads()[0], &res)
					require.Positive(t, res.Attempt)
				}
			}
		})
	}
	t.Logf("decoded from %d histories: %v", len(files), counts)
	for _, kind := range []string{"input", "continuation", "child input", "result", "batch result", "escalation", "decision", "decision result",
		"histories before the contract", "histories after the contract"} {
		require.Positive(t, counts[kind], "the recorded histories hold a %s", kind)
	}
}

// TestEveryFieldOfTheContractsTypesCrossesTheWire fills every exported
// field of each contract type (but the worker's own carry-over, Resume) and
// round-trips it through the contract's shape: a field added to a Go type
// and not to its wire struct fails here.
func TestEveryFieldOfTheContractsTypesCrossesTheWire(t *testing.T) {
	for _, v := range []any{&LipSyncInput{}, &LipSyncResult{}, &JobStatus{}, &EscalationDetails{}, &Decision{},
		&DecisionResult{}, &BatchInput{}, &BatchProgress{}, &BatchResult{}, &BatchDecision{}} {
		fill(reflect.ValueOf(v).Elem())
		b, err := json.Marshal(v)
		require.NoError(t, err)
		got := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		require.NoError(t, json.Unmarshal(b, got))
		require.Equal(t, v, got, "%T: every field crosses the wire (%s)", v, b)
	}
}

// fill sets every exported field of v to a value that is not zero.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 4, 7, 10, 0, 1, 500, time.UTC)))
			return
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.IsExported() && f.Name != "Resume" {
				fill(v.Field(i))
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(3)
		if v.Type() == reflect.TypeFor[time.Duration]() {
			v.SetInt(int64(90 * time.Second))
		}
	case reflect.Float64:
		v.SetFloat(2)
	}
}
