package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chamelaion-lipsync/worker/lipsync"
	"github.com/chamelaion-lipsync/worker/store"
)

// TestBadInputIsRefusedBeforeConnecting: usage errors and invalid jobs exit
// with status 2 before any connection (TEMPORAL_ADDRESS points nowhere).
func TestBadInputIsRefusedBeforeConnecting(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	cases := []struct {
		args []string
		want string
	}{
		{nil, "usage"},
		{[]string{"launch"}, "unknown command"},
		{[]string{"submit"}, "--video-url and --audio-url are required"},
		{[]string{"submit", "--video-url", "https://v/x.mp4"}, "required"},
		{[]string{"submit", "--video-url", "https://v/x.mp4", "--audio-url", "https://a/x.wav", "extra"}, "unexpected argument"},
		{[]string{"submit", "--nope"}, "flag provided but not defined"},
		{[]string{"status"}, "--reference-id is required"},
		{[]string{"submit", "--video-url", "ftp://v/x.mp4?sig=SECRET", "--audio-url", "https://a/x.wav"}, "video must be an http(s) URL"},
		{[]string{"submit", "--video-url", "https://v/x.mp4", "--audio-url", "https://a/x.wav", "--reference-id", "has space"}, "reference_id has a space"},
	}
	for _, tc := range cases {
		var stderr bytes.Buffer
		code := run(context.Background(), tc.args, io.Discard, &stderr)
		require.Equal(t, 2, code, tc.args)
		require.Contains(t, stderr.String(), tc.want, tc.args)
	}
	t.Setenv("TEMPORAL_TASK_QUEUE", "")
	var stderr bytes.Buffer
	require.Equal(t, 2, run(context.Background(), []string{"status", "--reference-id", "x"}, io.Discard, &stderr))
	require.Contains(t, stderr.String(), "TEMPORAL_TASK_QUEUE")
}

func TestACompletedJobIsPrintedWithReadableDurations(t *testing.T) {
	start := time.Date(2026, 4, 7, 10, 0, 0, 0, time.UTC)
	res := lipsync.Result{ReferenceID: "ep-1", RequestID: "req-1", Status: "completed", StartedAt: start,
		SubmittedAt: start.Add(1500 * time.Millisecond), FinishedAt: start.Add(3*time.Minute + 15*time.Second),
		Duration: 3*time.Minute + 15*time.Second, StatusChecks: 6, Runs: 1}
	require.Equal(t, "job ep-1 completed in 3m15s: submitted 2s after it started, 6 status checks", describe(res))
	b, err := json.Marshal(res)
	require.NoError(t, err)
	require.Contains(t, string(b), `"duration":"3m15s"`, "the result's JSON is the wire contract's")
	require.Contains(t, string(b), `"started_at":"2026-04-07T10:00:00Z"`)
	require.Equal(t, "26h5m", readable(26*time.Hour+5*time.Minute+10*time.Second))
	require.Equal(t, "850ms", readable(850*time.Millisecond))
}

func TestBatchStatusPrintsTheProgressWithHowTheJobsStandNow(t *testing.T) {
	out, err := withNow(lipsync.BatchProgress{BatchID: "b", Status: "completed", Total: 2, Completed: 1},
		&batchNow{Jobs: map[store.Status]int{"completed": 1, "abandoned": 1}})
	require.NoError(t, err)
	b, err := json.Marshal(out)
	require.NoError(t, err)
	require.Contains(t, string(b), `"batch_id":"b"`, "the progress in the contract's names")
	require.Contains(t, string(b), `"now":{"Jobs":{"abandoned":1,"completed":1}}`, "and how the jobs stand now beside it")
}
