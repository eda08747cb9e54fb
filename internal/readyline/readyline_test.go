package readyline

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestWatchSignalsTheReadyLineAndKeepsDraining(t *testing.T) {
	pr, pw := io.Pipe()
	found := Watch(pr, "listening on")
	written := make(chan struct{})
	go func() {
		defer close(written)
		_, _ = io.WriteString(pw, "starting\n"+strings.Repeat("x", 2<<20)+"\nlistening on :8080\n")
		for range 1000 { // keeps writing after the line: must never block
			_, _ = io.WriteString(pw, "request served\n")
		}
		_ = pw.Close()
	}()
	select {
	case <-found:
	case <-time.After(5 * time.Second):
		t.Fatal("the ready line was not seen")
	}
	select {
	case <-written:
	case <-time.After(5 * time.Second):
		t.Fatal("the writer blocked after the ready line")
	}
}

func TestWatchNeverSignalsWithoutTheLine(t *testing.T) {
	found := Watch(strings.NewReader("starting\nfailed\n"), "listening on")
	select {
	case <-found:
		t.Fatal("signalled without the ready line")
	case <-time.After(100 * time.Millisecond):
	}
}
