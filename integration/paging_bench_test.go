//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkBatchPaging pages a --worker-file batch through the worker on
// real parts, for each size of file: the account's quota runs out after
// the first window of submissions, the batch pauses, the operator aborts,
// and the worker reads every remaining page of the file and records each
// job as not submitted (no vendor call beyond the window). It reports the
// time from the abort to the batch's end and the worker's peak resident
// memory (VmHWM), which must grow no faster than the file.
//
//	make bench-paging   (PAGING_ROWS=50000,100000,200000 by default)
func BenchmarkBatchPaging(b *testing.B) {
	sizes := []int{50_000, 100_000, 200_000}
	if v := os.Getenv("PAGING_ROWS"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			require.NoError(b, err)
			sizes = append(sizes, n)
		}
	}
	var lines []string
	for _, rows := range sizes {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			for range b.N {
				d, rss, runs := pageThrough(b, rows)
				b.ReportMetric(d.Seconds(), "s")
				b.ReportMetric(float64(rss)/(1<<20), "worker-peak-RSS-MiB")
				lines = append(lines, fmt.Sprintf("| %d | %.1f | %.1f | %.0f | %d |", rows, d.Seconds(), d.Seconds()/float64(rows)*100_000, float64(rss)/(1<<20), runs))
			}
		})
	}
	fmt.Println("| rows | abort to end (s) | s per 100,000 rows | worker peak RSS (MiB) | batch runs |")
	fmt.Println("| ---: | ---: | ---: | ---: | ---: |")
	for _, l := range lines {
		fmt.Println(l)
	}
}

func pageThrough(b *testing.B, rows int) (time.Duration, int64, int) {
	const window = 20
	s := startStackWith(b, stackOptions{emulatorArgs: []string{"--rate-limit", "6000", "--token-quota", strconv.Itoa(window)}},
		"CHAMELAION_RATE_LIMIT_PER_MINUTE=6000", "CHAMELAION_STATUS_RATE_LIMIT_PER_MINUTE=60000", "LOG_LEVEL=info")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	path := filepath.Join(s.dir, "catalogue.csv")
	f, err := os.Create(path)
	require.NoError(b, err)
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "reference_id,video_url,audio_url")
	for i := range rows {
		ref := fmt.Sprintf("pg-%07d", i)
		fmt.Fprintf(w, "%s,%s,%s\n", ref, mediaURL(ref, "video"), mediaURL(ref, "audio"))
	}
	require.NoError(b, w.Flush())
	require.NoError(b, f.Close())

	_, errOut, code := s.starter(ctx, "batch", "--file", path, "--worker-file", path, "--batch-id", "paging",
		"--concurrency", strconv.Itoa(window), "--max-pending", strconv.Itoa(window))
	require.Equal(b, 0, code, errOut)
	var p struct {
		Status string
		Pause  *struct{ Escalated bool }
		Runs   int
	}
	require.Eventually(b, func() bool {
		out, _, code := s.starter(ctx, "batch-status", "paging")
		return code == 0 && json.Unmarshal([]byte(out), &p) == nil && p.Pause != nil && p.Pause.Escalated
	}, 5*time.Minute, 200*time.Millisecond, "the batch pauses on the quota")
	start := time.Now()
	_, errOut, code = s.starter(ctx, "batch-resolve", "paging", "abort", "--by", "bench")
	require.Equal(b, 0, code, errOut)
	require.Eventually(b, func() bool {
		out, _, code := s.starter(ctx, "batch-status", "paging")
		return code == 0 && json.Unmarshal([]byte(out), &p) == nil && p.Status == "aborted"
	}, 55*time.Minute, 500*time.Millisecond, "the aborted batch ends")
	d := time.Since(start)
	require.LessOrEqual(b, s.stats().JobsCreated, window, "no vendor call beyond the window")
	return d, peakRSS(b, s.procs[1].Process.Pid), p.Runs
}

// peakRSS reads a process's peak resident set size (VmHWM).
func peakRSS(b testing.TB, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(b, err)
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(b, err)
			return kb << 10
		}
	}
	b.Fatalf("no VmHWM for %d", pid)
	return 0
}
