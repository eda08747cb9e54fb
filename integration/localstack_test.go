//go:build integration

package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRunCommand starts the local stack as `make run` does, waits for the
// demo jobs to reach their expected ends, stops it with SIGINT, and checks
// that no process of the stack is left. With LIPSYNC_SCREENSHOT=file.png and
// Chromium installed, it also photographs the Web UI listing the stuck job.
func TestRunCommand(t *testing.T) {
	root := repoRoot(t)
	// Not t.TempDir(): its parent is closed to the postgres user.
	dir, err := os.MkdirTemp("", "lipsync-run-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin := filepath.Join(dir, "localstack")
	build := exec.Command("go", "build", "-o", bin, "./cmd/localstack")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	ports := []string{freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)}
	port := func(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }
	stackDir := filepath.Join(dir, "stack")
	cmd := exec.Command(bin, "--dir", stackDir,
		"--temporal-port", port(ports[0]), "--ui-port", port(ports[1]),
		"--emulator-addr", ports[2], "--codec-addr", ports[3], "--metrics-addr", ports[4])
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CHAMELAION_BASE_URL=", "CHAMELAION_API_KEY=")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = io.Discard
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	var mu sync.Mutex
	var lines []string
	finished := make(chan struct{})
	stuckQueued := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			lines = append(lines, line)
			mu.Unlock()
			if strings.Contains(line, "stuck jobs: ") {
				stuckQueued <- strings.TrimSpace(strings.SplitN(line, "stuck jobs: ", 2)[1])
			}
			if strings.Contains(line, "demo batch finished") {
				close(finished)
			}
		}
		exited <- cmd.Wait()
	}()

	select {
	case url := <-stuckQueued:
		if shot := os.Getenv("LIPSYNC_SCREENSHOT"); shot != "" {
			time.Sleep(25 * time.Second) // past JOB_STUCK_AFTER (20s): the stuck job is queued and notified
			screenshot(t, url, shot)
		}
	case <-time.After(5 * time.Minute):
		t.Fatalf("the stack did not start:\n%s", strings.Join(lines, "\n"))
	}
	select {
	case <-finished:
	case <-time.After(4 * time.Minute):
		mu.Lock()
		t.Fatalf("the demo did not finish:\n%s", strings.Join(lines, "\n"))
	}
	mu.Lock()
	all := strings.Join(lines, "\n")
	mu.Unlock()
	for suffix, want := range map[string]string{
		"ok-1":         "completed after",
		"ok-2":         "completed after",
		"rate-limited": "completed after",
		"unavailable":  "completed after",
		"lost-answer":  "completed after",
		"stuck":        "completed after",
		"quota":        "ESCALATED QuotaExceeded",
		"bad-media":    "ESCALATED JobFailed",
	} {
		found := false
		for _, l := range strings.Split(all, "\n") {
			if strings.Contains(l, "done ") && strings.Contains(l, "-"+suffix+" ") && strings.Contains(l, want) {
				found = true
			}
		}
		require.True(t, found, "demo job %s: want %q in\n%s", suffix, want, all)
	}

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-exited:
		require.NoError(t, err, "a clean stop exits 0")
	case <-time.After(90 * time.Second):
		t.Fatal("the stack did not stop within 90s of SIGINT")
	}
	require.Eventually(t, func() bool { return len(processesMentioning(stackDir)) == 0 }, 15*time.Second, 200*time.Millisecond,
		"processes left behind: %v", processesMentioning(stackDir))
}

// processesMentioning lists the processes whose command line names dir.
func processesMentioning(dir string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmdline, dir) {
			found = append(found, fmt.Sprintf("%s: %s", e.Name(), cmdline))
		}
	}
	return found
}

// screenshot photographs a page with headless Chromium.
func screenshot(t *testing.T, url, out string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot(t), "scripts", "screenshot.sh"), url, out)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	t.Logf("screenshot of %s written to %s", url, out)
}
