package main

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
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
