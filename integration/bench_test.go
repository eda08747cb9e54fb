//go:build integration

package integration

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBenchPollingPhaseRuns runs the benchmark's polling phase at its quick
// size (every strategy at every setting, 20 jobs each, through the real
// dev server, PostgreSQL, emulator and worker processes) and checks that
// every strategy detected every job and that the report and chart are
// written: `make bench` must not rot between the runs that produce
// docs/benchmarks.md. The figures themselves are not asserted (they are
// measurements, not pass marks).
func TestBenchPollingPhaseRuns(t *testing.T) {
	dir := t.TempDir()
	md, svg := filepath.Join(dir, "b.md"), filepath.Join(dir, "b.svg")
	cmd := exec.Command("go", "run", "./bench", "--quick", "--phases", "polling", "--out", md, "--svg", svg)
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	if len(out) > 6000 {
		out = out[len(out)-6000:]
	}
	require.NoError(t, err, "bench:\n%s", out)

	report, err := os.ReadFile(md)
	require.NoError(t, err)
	rows := 0
	for _, line := range strings.Split(string(report), "\n") {
		for _, s := range []string{"vendor docs loop", "Temporal timer sample", "Temporal activity-retry sample", "this worker"} {
			if strings.HasPrefix(line, "| "+s+" |") {
				rows++
				require.Contains(t, line, "| 20 / 20 |", "every job detected: %s", line)
			}
		}
	}
	require.Equal(t, 14, rows, "4 vendor-loop, 4 timer-sample, 2 retry-sample and 4 worker settings:\n%s", report)

	chart, err := os.ReadFile(svg)
	require.NoError(t, err)
	dec := xml.NewDecoder(bytes.NewReader(chart))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		require.NoError(t, err, "the chart is well-formed XML")
	}
	require.Contains(t, string(chart), "this worker")
}
