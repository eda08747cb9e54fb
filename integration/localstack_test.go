//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRunCommand starts the local stack as `make run` does (with
// LIPSYNC_TEMPORAL_BACKEND=cluster, as `make run CLUSTER=1` does), waits for
// the demo jobs to reach their expected ends, asks the Web UI for the
// escalated ones, stops it with SIGINT, and checks that no process of the
// stack is left. With LIPSYNC_SCREENSHOT=file.png and Chromium installed, it
// also photographs the Web UI listing the stuck job.
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
	args := []string{"--dir", stackDir,
		"--temporal-port", port(ports[0]), "--ui-port", port(ports[1]),
		"--emulator-addr", ports[2], "--codec-addr", ports[3], "--metrics-addr", ports[4]}
	cluster := temporalBackend(t) == backendCluster
	if cluster {
		args = append(args, "--cluster")
	}
	cmd := exec.Command(bin, args...)
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

	// The Web UI lists the escalated demo jobs (read from visibility).
	run := ""
	for _, l := range strings.Split(all, "\n") {
		if _, rest, ok := strings.Cut(l, "==> demo batch "); ok && run == "" {
			run, _, _ = strings.Cut(rest, ":")
		}
	}
	query := fmt.Sprintf(`WorkflowId STARTS_WITH "lipsync-demo-%s" AND LipsyncEscalated IS NOT NULL`, run)
	require.Eventually(t, func() bool {
		ids := webUIWorkflows(t, "http://"+ports[1], query)
		slices.Sort(ids)
		return slices.Equal(ids, []string{"lipsync-demo-" + run + "-bad-media", "lipsync-demo-" + run + "-quota"})
	}, 30*time.Second, time.Second, "the Web UI lists the escalated demo jobs: %v", webUIWorkflows(t, "http://"+ports[1], query))

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-exited:
		require.NoError(t, err, "a clean stop exits 0")
	case <-time.After(90 * time.Second):
		t.Fatal("the stack did not stop within 90s of SIGINT")
	}
	require.Eventually(t, func() bool { return len(processesMentioning(stackDir)) == 0 }, 15*time.Second, 200*time.Millisecond,
		"processes left behind: %v", processesMentioning(stackDir))
	if cluster {
		// The services' command lines name the server build, not the
		// stack: every port the cluster listened on is free again.
		b, err := os.ReadFile(filepath.Join(stackDir, "cluster", "ports.json"))
		require.NoError(t, err)
		var listened map[string]int
		require.NoError(t, json.Unmarshal(b, &listened))
		listened["ui"], _ = strconv.Atoi(port(ports[1]))
		for name, p := range listened {
			require.Eventually(t, func() bool { return !tcpUp(net.JoinHostPort("127.0.0.1", strconv.Itoa(p))) }, 15*time.Second, 200*time.Millisecond,
				"the cluster's %s port %d still listens", name, p)
		}
	}
}

// webUIWorkflows asks the Web UI server's API for the workflows a
// visibility query finds and returns their ids.
func webUIWorkflows(t *testing.T, uiURL, query string) []string {
	t.Helper()
	resp, err := http.Get(uiURL + "/api/v1/namespaces/default/workflows?query=" + url.QueryEscape(query))
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Executions []struct {
			Execution struct {
				WorkflowID string `json:"workflowId"`
			} `json:"execution"`
		} `json:"executions"`
	}
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	var ids []string
	for _, e := range body.Executions {
		ids = append(ids, e.Execution.WorkflowID)
	}
	return ids
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
