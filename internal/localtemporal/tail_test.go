package localtemporal

import (
	"strings"
	"testing"
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
