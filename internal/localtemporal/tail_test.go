package localtemporal

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTailShowsAPanicsReason: a dev server that panics during start-up
// prints its reason, then a goroutine dump longer than the tail; the tail
// starts at the reason (before: the dump's last 4,000 bytes, the reason
// cut off, as in a CI run whose Temporal restart failed).
func TestTailShowsAPanicsReason(t *testing.T) {
	dump := strings.Repeat("goroutine 1 [running]:\n\tgo.uber.org/dig.(*Container).Invoke(...)\n", 200)
	out := "time=... level=INFO msg=starting\npanic: listen tcp 127.0.0.1:7233: bind: address already in use\n\n" + dump
	got := tail(out, 4000)
	if !strings.HasPrefix(got, "panic: listen tcp 127.0.0.1:7233: bind: address already in use") || len(got) != 4000 {
		t.Errorf("tail starts %q (%d bytes)", got[:min(len(got), 80)], len(got))
	}
	if got := tail("short output", 4000); got != "short output" {
		t.Errorf("tail of short output = %q", got)
	}
	long := strings.Repeat("x", 5000) + "end"
	if got := tail(long, 4000); len(got) != 4000 || !strings.HasSuffix(got, "end") {
		t.Errorf("tail of long output without a panic: %d bytes", len(got))
	}
}

// TestTheTailIsTheLatestStarts: the log file is appended to by every
// start; a failure's tail is the latest start's output, never an earlier
// start's panic.
func TestTheTailIsTheLatestStarts(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "temporal.log")
	first := "panic: an earlier start's reason\n" + strings.Repeat("goroutine dump\n", 400)
	require.NoError(t, os.WriteFile(log, []byte(first), 0o644))
	s := &Server{opts: Options{LogFile: log}, logFrom: int64(len(first))}
	f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	_, err = f.WriteString("Error: unable to open the database file\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.Equal(t, "Error: unable to open the database file\n", s.logTail())
}
