package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBatchFileWithEveryDefectIsRefusedWhole: one precise error per defect,
// with its line, no URL repeated, exit status 2, and nothing started
// (TEMPORAL_ADDRESS points nowhere, so any start would fail differently).
func TestBatchFileWithEveryDefectIsRefusedWhole(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	dir := t.TempDir()
	csvFile := filepath.Join(dir, "jobs.csv")
	require.NoError(t, os.WriteFile(csvFile, []byte(strings.Join([]string{
		"reference_id,video_url,audio_url,disable_active_speaker_detection",
		"ep-1,https://v/1.mp4?X-Amz-Signature=SECRET,https://a/1.wav,false",
		"ep-1,https://v/2.mp4,https://a/2.wav,false",
		"ep 3,https://v/3.mp4,https://a/3.wav,false",
		"ep-4,https://v/4.mp4,file:///a/4.wav,false",
		"ep-5,notaurl?X-Amz-Signature=SECRET,https://a/5.wav,false",
		"ep-6,https://v/6.mp4,https://a/6.wav,perhaps",
		"ep-7,https://v/7.mp4",
		"ep-8,https://v/8.mp4,https://a/8.wav,true",
	}, "\n")+"\n"), 0o600))
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"batch", "--file", csvFile}, io.Discard, &stderr)
	require.Equal(t, 2, code)
	out := stderr.String()
	for _, want := range []string{
		"batch refused, nothing started",
		"6 invalid row(s)",
		`line 3: duplicate reference_id "ep-1" (first on line 2)`,
		"line 4: reference_id has a space",
		"line 5: video and audio must both be URLs or both be file:// references",
		"line 6: video_url is not an http(s) URL or a file:/// reference",
		`line 7: disable_active_speaker_detection must be true or false, got "perhaps"`,
		"line 8: has 2 fields, the header has 4",
	} {
		require.Contains(t, out, want)
	}
	require.NotContains(t, out, "SECRET")
	require.NotContains(t, out, "connect", "nothing was dialled")
}

func TestBatchUsageErrors(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.jsonl")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"batch"}, "--file is required"},
		{[]string{"batch", "--file", filepath.Join(dir, "missing.csv")}, "no such file"},
		{[]string{"batch", "--file", filepath.Join(dir, "jobs.xlsx")}, `unknown file type ".xlsx"`},
		{[]string{"batch", "--file", empty}, "the file holds no jobs"},
		{[]string{"batch", "--file", empty, "--concurrency", "0"}, "--concurrency must be at least 1"},
		{[]string{"batch", "--file", empty, "--max-pending", "-1"}, "--max-pending must be at least 1"},
		{[]string{"batch", "--file", empty, "--worker-file", "shared/jobs.csv"}, "--worker-file must be an absolute path"},
		{[]string{"batch-status"}, "want <batch-id>"},
		{[]string{"batch-resolve", "b1"}, "want <batch-id> resume|abort"},
		{[]string{"batch-resolve", "b1", "retry"}, `unknown action "retry": want resume or abort`},
	} {
		var stderr bytes.Buffer
		require.Equal(t, 2, run(context.Background(), tc.args, io.Discard, &stderr), tc.args)
		require.Contains(t, stderr.String(), tc.want, tc.args)
	}
}

func TestBatchSkipInvalidListsRowsAndKeepsTheRest(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "jobs.jsonl")
	require.NoError(t, os.WriteFile(f, []byte(
		`{"reference_id":"a","video_url":"https://v/a","audio_url":"https://a/a"}`+"\n"+
			`{"reference_id":"b","video_url":"https://v/b"}`+"\n"+
			`{"reference_id":"c","video_url":"https://v/c","audio_url":"https://a/c"}`+"\n"), 0o600))
	var stderr bytes.Buffer
	in, refs, err := readBatch(batchOptions{file: f, skipInvalid: true, concurrency: 5, maxPending: 5}, &stderr)
	require.NoError(t, err)
	require.Len(t, in.Jobs, 2)
	require.Equal(t, []string{"a", "c"}, refs)
	require.Equal(t, "a", in.Jobs[0].ReferenceID)
	require.Equal(t, "c", in.Jobs[1].ReferenceID)
	require.Contains(t, stderr.String(), `line 2: missing field "audio_url"`)
	require.True(t, strings.HasPrefix(in.BatchID, "jobs-"), in.BatchID)

	again, _, err := readBatch(batchOptions{file: f, skipInvalid: true, concurrency: 5, maxPending: 5, workerFile: "/shared/jobs.jsonl"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, in.BatchID, again.BatchID, "the same file gets the same batch id")
	require.Empty(t, again.Jobs, "with --worker-file the workers read the jobs")
	require.Equal(t, "/shared/jobs.jsonl", again.Source.Path)
	require.Equal(t, 2, again.Source.Jobs)
	require.Len(t, again.Source.SHA256, 64)
}
