//go:build integration

// Package integration runs the product end to end against real parts it
// starts itself: Temporal, a throwaway PostgreSQL cluster, the emulator,
// worker and starter binaries. Temporal is the dev server (the pinned CLI)
// unless LIPSYNC_TEMPORAL_BACKEND=cluster asks for the production server:
// PostgreSQL persistence and SQL visibility, each service in its own
// process (internal/localcluster).
//
//	go test -tags integration ./integration/
//	LIPSYNC_TEMPORAL_BACKEND=cluster go test -tags integration -run 'TestEndToEnd|TestBatch' ./integration/
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chamelaion-lipsync/worker/internal/localcluster"
	"github.com/chamelaion-lipsync/worker/internal/localpg"
	"github.com/chamelaion-lipsync/worker/internal/localtemporal"
	"github.com/chamelaion-lipsync/worker/internal/readyline"
)

// apiKey is the emulator's token; the tests grep for it where it must
// never appear.
const apiKey = "itest-SECRET-key-4f1d9c"

// taskQueue is the stack's TEMPORAL_TASK_QUEUE: the configuration's default,
// whose rate-limited queues the dynamic configuration deploy/ ships gives
// one partition on the cluster.
const taskQueue = "lipsync"

// backendVar names the variable that chooses the stack's Temporal: "dev"
// (the default) or "cluster".
const backendVar = "LIPSYNC_TEMPORAL_BACKEND"

// Temporal backends of the stack.
const (
	backendDev     = "dev"
	backendCluster = "cluster"
)

// temporalBackend is the backend LIPSYNC_TEMPORAL_BACKEND asks for.
func temporalBackend(t testing.TB) string {
	switch b := os.Getenv(backendVar); b {
	case "", backendDev:
		return backendDev
	case backendCluster:
		return backendCluster
	default:
		t.Fatalf("%s=%q: want %q or %q", backendVar, b, backendDev, backendCluster)
		return ""
	}
}

// temporalServer is a stack's running Temporal: the dev server or the
// cluster.
type temporalServer struct {
	// Address is the frontend's host:port.
	Address string
	// Backend is backendDev or backendCluster.
	Backend string
	dev     *localtemporal.Server
	devLog  string
	cluster *localcluster.Cluster
}

// LogFiles are the paths of the Temporal server's logs: the dev server's,
// or each service's and the set-up scripts' of the cluster.
func (ts *temporalServer) LogFiles() []string {
	if ts.cluster == nil {
		return []string{ts.devLog}
	}
	paths, _ := filepath.Glob(filepath.Join(ts.cluster.Dir(), "logs", "*.log"))
	return paths
}

// startTemporal starts the backend LIPSYNC_TEMPORAL_BACKEND asks for until
// the test ends: the dev server, or the cluster on pg (in its own
// databases), with its configuration and logs in dir.
func startTemporal(ctx context.Context, t testing.TB, pg *localpg.Cluster, dir string) *temporalServer {
	t.Helper()
	if temporalBackend(t) == backendCluster {
		return startCluster(ctx, t, pg, dir)
	}
	logFile := filepath.Join(dir, "temporal.log")
	dev, err := localtemporal.Start(ctx, localtemporal.Options{Headless: true, LogFile: logFile})
	require.NoError(t, err, "start Temporal dev server")
	t.Cleanup(func() { _ = dev.Stop() })
	return &temporalServer{Address: dev.Address, Backend: backendDev, dev: dev, devLog: logFile}
}

// startCluster starts the cluster on pg until the test ends.
func startCluster(ctx context.Context, t testing.TB, pg *localpg.Cluster, dir string) *temporalServer {
	t.Helper()
	p, err := localcluster.PostgresFromURL(pg.URL("postgres"))
	require.NoError(t, err)
	c, err := localcluster.Start(ctx, localcluster.Options{Postgres: p, Dir: filepath.Join(dir, "cluster"), Headless: true})
	require.NoError(t, err, "start the Temporal cluster")
	t.Cleanup(func() {
		if t.Failed() {
			for _, svc := range localcluster.Services() {
				t.Logf("--- Temporal %s log tail ---\n%s", svc, c.LogTail(svc))
			}
		}
		_ = c.Stop()
	})
	t.Logf("Temporal backend: the cluster (PostgreSQL, SQL visibility, one process per service) at %s", c.Address)
	return &temporalServer{Address: c.Address, Backend: backendCluster, cluster: c}
}

// stack is one running set of real parts.
type stack struct {
	t           testing.TB
	dir         string
	bin         string
	pg          *localpg.Cluster
	databaseURL string
	temporal    *temporalServer
	emulatorURL string // http://host:port (API under /api)
	opsURL      string // the worker's /metrics and /healthz
	workerEnv   []string
	starterEnv  []string
	workerLog   string
	procs       []*exec.Cmd
}

// startStack builds the binaries and starts PostgreSQL, Temporal, the
// emulator and one worker with the given extra worker environment.
func startStack(t *testing.T, workerEnv ...string) *stack {
	t.Helper()
	return startStackWith(t, stackOptions{race: true}, workerEnv...)
}

// stackOptions vary the stack.
type stackOptions struct {
	// emulatorArgs are extra emulator flags (later flags win).
	emulatorArgs []string
	// race builds the binaries with the race detector (tests do; the
	// benchmarks measure the binaries as shipped).
	race bool
}

// startStackWith is startStack with options.
func startStackWith(t testing.TB, opts stackOptions, workerEnv ...string) *stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := &stack{t: t, dir: t.TempDir()}
	s.bin = filepath.Join(s.dir, "bin")
	args := []string{"build", "-o", s.bin + "/", "./worker", "./starter", "./cmd/emulator"}
	if opts.race {
		args = slices.Insert(args, 1, "-race")
	}
	build := exec.CommandContext(ctx, "go", args...)
	build.Dir = repoRoot(t)
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build binaries: %s", out)

	pg, err := localpg.Start(ctx, localpg.Options{Fast: true})
	require.NoError(t, err, "start PostgreSQL")
	t.Cleanup(func() { _ = pg.Close(context.Background()) })
	s.pg = pg
	s.databaseURL, err = pg.CreateDatabase(ctx, "lipsync")
	require.NoError(t, err)

	s.temporal = startTemporal(ctx, t, pg, s.dir)
	tmp := s.temporal

	emuAddr := freeAddr(t)
	s.emulatorURL = "http://" + emuAddr
	s.start(ctx, "emulator", nil, "emulator listening on", append([]string{
		"--addr", emuAddr, "--api-key", apiKey + "=itest", "--queued-for", "1s", "--processing-for", "2s"}, opts.emulatorArgs...)...)

	opsAddr := freeAddr(t)
	s.opsURL = "http://" + opsAddr
	s.workerEnv = append([]string{
		"METRICS_ADDR=" + opsAddr,
		"CHAMELAION_API_KEY=" + apiKey,
		"CHAMELAION_BASE_URL=" + s.emulatorURL + "/api",
		"CHAMELAION_REQUEST_TIMEOUT=3s",
		"DATABASE_URL=" + s.databaseURL,
		"TEMPORAL_ADDRESS=" + tmp.Address,
		"TEMPORAL_NAMESPACE=default",
		"TEMPORAL_TASK_QUEUE=" + taskQueue,
		"POLL_INITIAL_INTERVAL=500ms",
		"POLL_MAX_INTERVAL=2s",
		"RETRY_INITIAL_INTERVAL=200ms",
		"RETRY_MAX_INTERVAL=2s",
		"RETRY_MAX_ELAPSED=2m",
		"LOG_LEVEL=debug",
		// Batch files the tests write (--worker-file) are read here.
		"MEDIA_ROOT=" + s.dir,
	}, workerEnv...)
	s.workerLog = filepath.Join(s.dir, "worker.log")
	s.start(ctx, "worker", s.workerEnv, `"msg":"worker started"`)
	return s
}

// start runs one of the built binaries until the test ends, waiting for a
// line of its output that says it is ready.
func (s *stack) start(ctx context.Context, name string, env []string, ready string, args ...string) {
	t := s.t
	t.Helper()
	// "worker#2" runs a second worker binary with its own log.
	binary, _, _ := strings.Cut(name, "#")
	cmd := exec.Command(filepath.Join(s.bin, binary), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logPath := filepath.Join(s.dir, name+".log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(logFile, pw)
	cmd.Stderr = io.MultiWriter(logFile, pw)
	require.NoError(t, cmd.Start(), "start %s", name)
	s.procs = append(s.procs, cmd)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = pw.Close()
		_ = logFile.Close()
		if t.Failed() {
			tail, _ := os.ReadFile(logPath)
			if len(tail) > 8000 {
				tail = tail[len(tail)-8000:]
			}
			t.Logf("--- %s log tail ---\n%s", name, tail)
		}
	})
	found := readyline.Watch(pr, ready)
	select {
	case <-found:
	case <-time.After(60 * time.Second):
		tail, _ := os.ReadFile(logPath)
		t.Fatalf("%s did not become ready (waiting for %q):\n%s", name, ready, tail)
	case <-ctx.Done():
		t.Fatalf("%s: %v", name, ctx.Err())
	}
}

// starter runs the starter binary and returns its stdout, stderr and exit code.
func (s *stack) starter(ctx context.Context, args ...string) (string, string, int) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "starter"), args...)
	cmd.Env = append(append(os.Environ(), "TEMPORAL_ADDRESS="+s.temporal.Address, "TEMPORAL_TASK_QUEUE="+taskQueue), s.starterEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		exitErr, ok := err.(*exec.ExitError)
		require.True(s.t, ok, "starter: %v", err)
		code = exitErr.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// scenarios installs per-job behaviour in the emulator.
func (s *stack) scenarios(body string) {
	req, err := http.NewRequest(http.MethodPut, s.emulatorURL+"/_emulator/scenarios", strings.NewReader(body))
	require.NoError(s.t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Less(s.t, resp.StatusCode, 300, "install scenarios: %s", b)
}

// emulatorStats is the part of GET /_emulator/stats the tests read.
type emulatorStats struct {
	JobsCreated     int            `json:"jobs_created"`
	JobsByReference map[string]int `json:"jobs_by_reference_id"`
	LostResponses   int            `json:"lost_responses"`
	RateLimited     int            `json:"rate_limited"`
	Requests        []struct {
		Endpoint string `json:"endpoint"`
		Status   int    `json:"status"`
		Count    int    `json:"count"`
	} `json:"requests"`
}

func (s *stack) stats() emulatorStats {
	resp, err := http.Get(s.emulatorURL + "/_emulator/stats")
	require.NoError(s.t, err)
	defer resp.Body.Close()
	var st emulatorStats
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func repoRoot(t testing.TB) string {
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "go.mod not found")
		dir = parent
	}
}

// parallel runs fn for every item at once and waits for all.
func parallel[T any](items []T, fn func(T)) {
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Add(1)
		go func() { defer wg.Done(); fn(it) }()
	}
	wg.Wait()
}

func mediaURL(ref, kind string) string {
	return fmt.Sprintf("https://media.example.com/%s/%s.bin?X-Amz-Signature=SIGSECRET%s", kind, ref, ref)
}
