package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chamelaion-lipsync/worker/emulator"
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
		"fault-rate", "fault-statuses", "slow-rate", "slow-delay", "fault-seed", "scenarios", "state-file", "log-level",
		"durations", "timestamp-precision"} {
		require.Contains(t, stderr.String(), "-"+f)
	}
	require.Contains(t, stderr.String(), "EMULATOR_RATE_LIMIT_PER_MINUTE")
	require.Contains(t, stderr.String(), durationsExample, "the --durations help shows an example")
	for _, key := range []string{"queue-median", "queue-sigma", "processing-median", "processing-sigma", "max", "scale", "seed"} {
		require.Contains(t, stderr.String(), key)
	}
}

func TestServesUntilCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--api-key", "k-SECRET=demo"}, &stdout, &stderr)
	}()
	base := listeningURL(t, &stdout)
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

func TestParseDurations(t *testing.T) {
	m, err := parseDurations(durationsExample)
	require.NoError(t, err)
	require.Equal(t, &emulator.DurationModel{
		QueueMedian: 75 * time.Second, QueueSigma: 1.3,
		ProcessingMedian: 45 * time.Second, ProcessingSigma: 0.3,
		Max: 30 * time.Minute, Scale: 0.05, Seed: 1,
	}, m)

	m, err = parseDurations(" processing-median = 2s , queue-median=1s, ")
	require.NoError(t, err, "spaces and a trailing comma are fine")
	require.Equal(t, &emulator.DurationModel{QueueMedian: time.Second, ProcessingMedian: 2 * time.Second}, m)

	m, err = parseDurations("")
	require.NoError(t, err)
	require.Nil(t, m, "no flag, no model")

	for _, tc := range []struct{ value, want string }{
		{"queue-median=1s,processing-median=1s,jitter=2", `unknown key "jitter"`},
		{"queue-median=soon,processing-median=1s", "queue-median: "},
		{"queue-median=1s,processing-median=0s", "processing-median: 0s is not positive"},
		{"queue-median=1s,processing-median=1s,queue-sigma=x", "queue-sigma: "},
		{"queue-median=1s,processing-median=1s,processing-sigma=-1", "processing-sigma: -1 is not a finite number >= 0"},
		{"queue-median=1s,processing-median=1s,scale=NaN", "scale: NaN is not a finite number >= 0"},
		{"queue-median=1s,processing-median=1s,max=-1m", "max: -1m is negative"},
		{"queue-median=1s,processing-median=1s,seed=1.5", "seed: "},
		{"queue-median=1s,processing-median=1s,seed", `"seed": want key=value`},
		{"queue-median=1s,queue-median=2s,processing-median=1s", "queue-median: given twice"},
		{"queue-median=1s", "processing-median is required"},
	} {
		_, err := parseDurations(tc.value)
		require.ErrorContains(t, err, tc.want, tc.value)
	}
}

func TestBadDurationAndPrecisionFlags(t *testing.T) {
	err := run(context.Background(), []string{"--durations", "queue-median=1s,processing-median=1s,queue-sigma=wide"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "--durations: queue-sigma")
	err = run(context.Background(), []string{"--timestamp-precision", "fine"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "--timestamp-precision")
	err = run(context.Background(), []string{"--timestamp-precision", "-1ms"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "TimestampPrecision")
}

// serve runs the command with args on a free port until the test ends, and
// returns the base URL of its API.
func serve(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--addr", "127.0.0.1:0"}, args...), &stdout, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return listeningURL(t, &stdout)
}

// listeningURL waits for the command's "listening on" line and returns the
// URL it names.
func listeningURL(t *testing.T, stdout *syncBuffer) string {
	t.Helper()
	var base string
	require.Eventually(t, func() bool {
		line := stdout.String()
		if !strings.HasPrefix(line, "emulator listening on ") {
			return false
		}
		base = strings.TrimSpace(strings.TrimPrefix(line, "emulator listening on "))
		return true
	}, 5*time.Second, 10*time.Millisecond)
	return base
}

// getJSON GETs url with the token (if any) and decodes the answer into out.
func getJSON(t *testing.T, url, token string, out any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("x-api-key", token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
}

func TestServesDrawnDurationsAndPreciseTimestamps(t *testing.T) {
	base := serve(t, "--api-key", "k-1=demo", "--timestamp-precision", "1ms",
		"--durations", "queue-median=1h,processing-median=1m,scale=0.5,seed=9")
	req, err := http.NewRequest(http.MethodPost, base+"/v1/lipsync/generate",
		strings.NewReader(`{"reference_id":"d","inputs":[{"type":"video","url":"https://v/x.mp4"},{"type":"audio","url":"https://a/x.wav"}]}`))
	require.NoError(t, err)
	req.Header.Set("x-api-key", "k-1")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	var jobs struct {
		Jobs []emulator.JobRecord `json:"jobs"`
	}
	getJSON(t, strings.TrimSuffix(base, "/api")+"/_emulator/jobs", "", &jobs)
	require.Len(t, jobs.Jobs, 1)
	j := jobs.Jobs[0]
	require.Equal(t, "demo", j.Account)
	require.Equal(t, 30*time.Minute, j.StartedAt.Sub(j.CreatedAt), "1h median, sigma 0, scale 0.5")
	require.Equal(t, 30*time.Second, j.FinishedAt.Sub(j.StartedAt))

	var view map[string]any
	getJSON(t, base+"/v1/lipsync/requests/d", "k-1", &view)
	require.Equal(t, "queued", view["status"])
	require.Equal(t, j.CreatedAt.Truncate(time.Millisecond).Format(time.RFC3339Nano), view["created_at"])
}

// TestHelpNeverShowsTheTokens: --help lists the flags with their defaults;
// the accepted tokens, read from EMULATOR_API_KEYS, are not shown (found by
// a review: they were the --api-key flag's default).
func TestHelpNeverShowsTheTokens(t *testing.T) {
	t.Setenv("EMULATOR_API_KEYS", "sk-live-REALKEY123=prod")
	var out strings.Builder
	_ = run(context.Background(), []string{"--help"}, &out, &out)
	require.Contains(t, out.String(), "-api-key")
	require.NotContains(t, out.String(), "REALKEY123")
}
