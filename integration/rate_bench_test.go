//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// BenchmarkRateBudget measures how much of the account's submission budget
// a batch uses: the emulator and the worker are given a scaled-up limit of
// LIMIT per minute (600 unless LIPSYNC_RATE_LIMIT says otherwise), two
// worker processes share it, and a batch of as many jobs as the limit
// (LIPSYNC_RATE_JOBS) runs with the batch's default window, so that the
// rate limiter alone paces the submissions. It reports the achieved rate
// over the run as a share of the limit, the most submissions the emulator
// accepted in any rolling minute, and the share of generation requests
// answered 429.
//
//	go test -tags integration -run XXX -bench RateBudget -benchtime 1x ./integration/
func BenchmarkRateBudget(b *testing.B) {
	limit := envInt("LIPSYNC_RATE_LIMIT", 600)
	jobs := envInt("LIPSYNC_RATE_JOBS", limit)
	// The batch's defaults unless LIPSYNC_RATE_CONCURRENCY says otherwise.
	var extra []string
	if c := envInt("LIPSYNC_RATE_CONCURRENCY", 0); c > 0 {
		extra = append(extra, "--concurrency", fmt.Sprint(c))
	}
	s := startStackWith(b,
		stackOptions{emulatorArgs: []string{"--rate-limit", fmt.Sprint(limit), "--queued-for", "1s", "--processing-for", "1s", "--log-level", "warn"}},
		fmt.Sprintf("CHAMELAION_RATE_LIMIT_PER_MINUTE=%d", limit), "CHAMELAION_STATUS_RATE_LIMIT_PER_MINUTE=60000", "LOG_LEVEL=info")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	env := slices.Clone(s.workerEnv)
	env = append(env, "METRICS_ADDR="+freeAddr(b))
	s.start(ctx, "worker#2", env, `"msg":"worker started"`)

	var rows []string
	for i := range jobs {
		ref := fmt.Sprintf("rate-%04d", i)
		rows = append(rows, fmt.Sprintf("%s,%s,%s", ref, mediaURL(ref, "video"), mediaURL(ref, "audio")))
	}
	file := filepath.Join(s.dir, "rate.csv")
	require.NoError(b, os.WriteFile(file, []byte("reference_id,video_url,audio_url\n"+strings.Join(rows, "\n")+"\n"), 0o600))

	b.ResetTimer()
	start := time.Now()
	_, errOut, code := s.starter(ctx, append([]string{"batch", "--file", file, "--batch-id", "rate",
		"--wait", "--results", filepath.Join(s.dir, "rate.results.csv")}, extra...)...)
	wall := time.Since(start)
	b.StopTimer()
	require.Equal(b, 0, code, errOut)

	conn, err := pgx.Connect(ctx, s.databaseURL)
	require.NoError(b, err)
	defer conn.Close(ctx)
	var times []time.Time
	r, err := conn.Query(ctx, `SELECT submitted_at FROM lipsync_jobs WHERE batch_id = 'rate' ORDER BY submitted_at`)
	require.NoError(b, err)
	for r.Next() {
		var t time.Time
		require.NoError(b, r.Scan(&t))
		times = append(times, t)
	}
	require.NoError(b, r.Err())
	require.Len(b, times, jobs)
	span := times[len(times)-1].Sub(times[0])
	buckets := map[int]int{}
	for _, t := range times {
		buckets[int(t.Sub(times[0])/(5*time.Second))]++
	}
	var hist []string
	for i := 0; i <= int(span/(5*time.Second)); i++ {
		hist = append(hist, fmt.Sprint(buckets[i]))
	}
	b.Logf("submissions per 5 s: %s", strings.Join(hist, " "))
	perMinute := float64(len(times)-1) / span.Minutes()
	maxInMinute := 0
	for i := range times {
		j, _ := slices.BinarySearchFunc(times, times[i].Add(time.Minute), func(a, t time.Time) int { return a.Compare(t) })
		maxInMinute = max(maxInMinute, j-i)
	}
	st := s.stats()
	generate, limited := 0, 0
	for _, q := range st.Requests {
		if strings.Contains(q.Endpoint, "generate") {
			generate += q.Count
			if q.Status == 429 {
				limited += q.Count
			}
		}
	}
	use := perMinute / float64(limit)
	share429 := float64(limited) / float64(generate)
	b.ReportMetric(use, "budget-use")
	b.ReportMetric(share429*100, "%429")
	b.ReportMetric(float64(maxInMinute), "max/rolling-min")
	fmt.Printf("\n| limit/min | jobs | workers | submissions/min | share of limit | max in a rolling minute | 429s | generation requests | wall |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %d | %d | 2 | %.1f | %.3f | %d | %d (%.2f%%) | %d | %s |\n\n",
		limit, jobs, perMinute, use, maxInMinute, limited, share429*100, generate, wall.Round(time.Second))
	require.Equal(b, jobs, st.JobsCreated, "one vendor job per reference_id")
	require.GreaterOrEqual(b, use, 0.95, "the batch uses at least 95%% of the budget")
	require.LessOrEqual(b, share429, 0.01, "at most 1%% of submissions answered 429")
}

func envInt(name string, def int) int {
	var n int
	if v := os.Getenv(name); v != "" {
		if _, err := fmt.Sscan(v, &n); err == nil && n > 0 {
			return n
		}
	}
	return def
}
