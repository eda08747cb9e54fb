package main

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/emulator"
)

func TestPercentileIsNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Second)
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Second, 0.95: 95 * time.Second, 1: 100 * time.Second, 0: time.Second} {
		if got := percentile(ds, q); got != want {
			t.Errorf("percentile %g = %v, want %v", q, got, want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}

func TestRateOfCountsTheRollingMinute(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ts []time.Time
	for i := range 180 { // one every second for three minutes
		ts = append(ts, t0.Add(time.Duration(i)*time.Second))
	}
	span, perMinute, most := rateOf(ts)
	if span != 179*time.Second || perMinute < 59.9 || perMinute > 60 || most != 60 {
		t.Fatalf("paced: rateOf = %v, %v, %d; want 2m59s, 60, 60", span, perMinute, most)
	}
	// A burst of 120, then 60 a minute later: the budget (120) was used
	// in full during the first minute only, then sat idle until the window
	// rolled: the mean rolling minute is well below the limit.
	var burst []time.Time
	for i := range 180 {
		at := t0
		if i >= 120 {
			at = t0.Add(time.Minute + time.Duration(i-120)*100*time.Millisecond)
		}
		burst = append(burst, at)
	}
	_, perMinute, most = rateOf(burst)
	if most != 120 || perMinute > 60 || perMinute < 20 {
		t.Fatalf("burst: %v per minute, %d most in a minute; want 20..60, and 120", perMinute, most)
	}
	if _, perMinute, _ = rateOf(ts[:10]); perMinute != 10 {
		t.Fatalf("ten in one minute: %v per minute, want 10", perMinute)
	}
}

// TestNaiveLoopGivesUpAfterThreeRetriesOf429 runs the vendor loop against
// the emulator with a budget of 2: the third job is given up after its
// 1-2-4 backoff (scaled), the others complete.
func TestNaiveLoopGivesUpAfterThreeRetriesOf429(t *testing.T) {
	emu, err := emulator.New(emulator.Config{APIKeys: map[string]string{apiKey("t"): "t"}, RateLimitPerMinute: 2,
		QueuedFor: 10 * time.Millisecond, ProcessingFor: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu.Handler())
	defer srv.Close()
	api, err := chamelaion.New(chamelaion.Options{BaseURL: srv.URL + "/api", APIKey: apiKey("t"), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res := runNaive(context.Background(), api, naiveOptions{Jobs: 3, Prefix: "t", Interval: 20 * time.Millisecond, Backoff: 10 * time.Millisecond, Deadline: time.Minute})
	if res != (naiveResult{Completed: 2, Lost: 1}) {
		t.Fatalf("result %+v, want 2 completed and 1 lost", res)
	}
	st := emu.Stats()
	if n := st.Count(emulator.EndpointGenerate, 429); n != 4 {
		t.Fatalf("%d generation requests answered 429, want 4 (the first try and 3 retries)", n)
	}
	if st.JobsCreated != 2 {
		t.Fatalf("%d jobs created, want 2", st.JobsCreated)
	}
}

// TestEventKindsGroupAnEventsType: the three events of a workflow task
// are one kind, as are an activity's, a timer's; a marker, an upsert and
// the signals are kinds of their own.
func TestEventKindsGroupAnEventsType(t *testing.T) {
	for typ, kind := range map[enumspb.EventType]string{
		enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:                      kindWorkflowTask,
		enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:                      kindWorkflowTask,
		enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:                        kindActivity,
		enumspb.EVENT_TYPE_TIMER_FIRED:                                  kindTimer,
		enumspb.EVENT_TYPE_MARKER_RECORDED:                              kindMarker,
		enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:            kindUpsert,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:                  kindSignal,
		enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: kindSignal,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:                   kindLifecycle,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:           kindLifecycle,
		enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:     kindOther,
	} {
		if got := eventKind(typ); got != kind {
			t.Errorf("%s: kind %q, want %q", typ, got, kind)
		}
	}
}

// TestTimerEventsAreInterpolatedAtALatency: between two settings the
// timer sample's events lie on the line through them; outside, the
// nearest setting's.
func TestTimerEventsAreInterpolatedAtALatency(t *testing.T) {
	rows := []pollRow{{P95: 10 * time.Second, Events: 200}, {P95: 30 * time.Second, Events: 100}, {P95: 60 * time.Second, Events: 50}}
	for _, c := range []struct {
		p95  time.Duration
		want float64
	}{{5 * time.Second, 200}, {10 * time.Second, 200}, {20 * time.Second, 150}, {45 * time.Second, 75}, {90 * time.Second, 50}} {
		if got := timerEventsAt(rows, c.p95); got != c.want {
			t.Errorf("at %s: %.1f, want %.1f", c.p95, got, c.want)
		}
	}
}
