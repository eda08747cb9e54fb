package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"--help"}, io.Discard, &stderr)
	require.True(t, errors.Is(err, flag.ErrHelp))
	for _, f := range []string{"addr", "api-key", "rate-limit", "token-quota", "queued-for", "processing-for",
		"fault-rate", "fault-statuses", "slow-rate", "slow-delay", "fault-seed", "scenarios", "state-file", "log-level"} {
		require.Contains(t, stderr.String(), "-"+f)
	}
	require.Contains(t, stderr.String(), "EMULATOR_RATE_LIMIT_PER_MINUTE")
}

func TestServesUntilCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--api-key", "k-SECRET=demo"}, &stdout, &stderr)
	}()
	var base string
	require.Eventually(t, func() bool {
		line := stdout.String()
		if !strings.HasPrefix(line, "emulator listening on ") {
			return false
		}
		base = strings.TrimSpace(strings.TrimPrefix(line, "emulator listening on "))
		return true
	}, 5*time.Second, 10*time.Millisecond)
	req, _ := http.NewRequest("GET", base+"/v1/users/me", nil)
	req.Header.Set("x-api-key", "k-SECRET")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, string(body), "demo")
	cancel()
	require.NoError(t, <-done)
	require.NotContains(t, stderr.String(), "k-SECRET", "logs never show a token")
}

func TestBadFlagValues(t *testing.T) {
	err := run(context.Background(), []string{"--queued-for", "soon"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "--queued-for")
	err = run(context.Background(), []string{"--fault-rate", "2"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "fault rates")
}
