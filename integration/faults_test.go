//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/chamelaion-lipsync/worker/internal/localpg"
	"github.com/chamelaion-lipsync/worker/internal/localtemporal"
	"github.com/chamelaion-lipsync/worker/lipsync"
)

// proc is a restartable child process.
type proc struct {
	t    *testing.T
	name string
	path string
	args []string
	env  []string
	log  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(p.t, err)
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(p.t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

// stop signals the process and waits for it.
func (p *proc) stop(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// faultScenario is one row of the fault table.
type faultScenario struct {
	name string
	// emulatorArgs are extra emulator flags for the scenario.
	emulatorArgs []string
	// lose installs lost-answer scenarios on every fifth job.
	lose bool
	// inject runs while the jobs run.
	inject func(t *testing.T, f *faultStack)
}

// faultStack is the real parts of the fault suite.
type faultStack struct {
	dir      string
	pg       *localpg.Cluster
	dbURL    string
	temporal *localtemporal.Server
	emulator *proc
	emuAddr  string
	workers  []*proc
}

// TestFaults runs a batch per scenario while breaking the parts under it, and
// checks that nothing is lost or duplicated: every job ends completed or
// escalated as expected, the emulator created exactly one job per
// reference_id, lipsync_jobs holds one row per job in the state the workflow
// ended in, and only permanent failures have (exactly one) escalation row.
// LIPSYNC_FAULT_JOBS sets the jobs per scenario (200 by default).
func TestFaults(t *testing.T) {
	jobs := 200
	if v := os.Getenv("LIPSYNC_FAULT_JOBS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err)
		jobs = n
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "lipsync-faults-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-o", bin+"/", "./worker", "./cmd/emulator")
	build.Dir = repoRoot(t)
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	f := &faultStack{dir: dir}
	f.pg, err = localpg.Start(ctx, localpg.Options{Dir: filepath.Join(dir, "pg"), Fast: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.pg.Close(context.Background()) })
	f.dbURL, err = f.pg.CreateDatabase(ctx, "lipsync")
	require.NoError(t, err)
	f.temporal, err = localtemporal.Start(ctx, localtemporal.Options{Headless: true, DBFile: filepath.Join(dir, "temporal.db"), LogFile: filepath.Join(dir, "temporal.log")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.temporal.Stop() })
	f.emuAddr = freeAddr(t)

	workerEnv := []string{
		"CHAMELAION_API_KEY=" + apiKey,
		"CHAMELAION_BASE_URL=http://" + f.emuAddr + "/api",
		"CHAMELAION_REQUEST_TIMEOUT=2s",
		"CHAMELAION_RATE_LIMIT_PER_MINUTE=12000",
		"DATABASE_URL=" + f.dbURL,
		"TEMPORAL_ADDRESS=" + f.temporal.Address,
		"TEMPORAL_TASK_QUEUE=faults",
		"POLL_INITIAL_INTERVAL=300ms",
		"POLL_MAX_INTERVAL=1s",
		"RETRY_INITIAL_INTERVAL=200ms",
		"RETRY_MAX_INTERVAL=2s",
		"RETRY_MAX_ELAPSED=15m",
		"ESCALATION_DECISION_WAIT=0",
		"METRICS_ADDR=off",
		"LOG_LEVEL=warn",
	}
	for i := range 2 {
		w := &proc{t: t, name: fmt.Sprint("worker-", i), path: filepath.Join(bin, "worker"), env: workerEnv, log: filepath.Join(dir, fmt.Sprintf("worker-%d.log", i))}
		w.start()
		t.Cleanup(func() { w.stop(syscall.SIGTERM) })
		f.workers = append(f.workers, w)
	}

	tc, err := client.Dial(client.Options{HostPort: f.temporal.Address})
	require.NoError(t, err)
	defer tc.Close()
	jobsClient := lipsync.NewClient(tc, "faults")
	// A pool, not one connection: it reconnects after the PostgreSQL restart.
	conn, err := pgxpool.New(ctx, f.dbURL)
	require.NoError(t, err)
	defer conn.Close()

	scenarios := []faultScenario{
		{name: "worker SIGKILL x3", inject: func(t *testing.T, f *faultStack) {
			for i := range 3 {
				time.Sleep(1500 * time.Millisecond)
				w := f.workers[i%2]
				w.stop(syscall.SIGKILL)
				time.Sleep(500 * time.Millisecond)
				w.start()
			}
		}},
		{name: "30% random 429/500/503/504 + slow", emulatorArgs: []string{"--fault-rate", "0.3", "--slow-rate", "0.03", "--slow-delay", "3s", "--fault-seed", "7"}},
		{name: "lost submission answers", lose: true},
		{name: "PostgreSQL restart", inject: func(t *testing.T, f *faultStack) {
			time.Sleep(2 * time.Second)
			require.NoError(t, f.pg.Restart(context.Background()))
		}},
		{name: "Temporal restart", inject: func(t *testing.T, f *faultStack) {
			time.Sleep(2 * time.Second)
			require.NoError(t, f.temporal.Restart(context.Background()))
		}},
		{name: "emulator down 60s", inject: func(t *testing.T, f *faultStack) {
			time.Sleep(2 * time.Second)
			f.emulator.stop(syscall.SIGTERM)
			time.Sleep(60 * time.Second)
			f.emulator.start()
		}},
	}
	var table []string
	for si, sc := range scenarios {
		ok := t.Run(sc.name, func(t *testing.T) {
			row := runFaultScenario(t, f, jobsClient, conn, fmt.Sprintf("s%d", si), sc, jobs, bin)
			table = append(table, row)
		})
		if !ok {
			break
		}
	}
	t.Logf("\n| scenario | jobs | completed | escalated | duplicates | lost | wall time |\n| --- | --- | --- | --- | --- | --- | --- |\n%s", strings.Join(table, "\n"))
}

// runFaultScenario runs one scenario and returns its table row.
func runFaultScenario(t *testing.T, f *faultStack, jobs *lipsync.Client, conn *pgxpool.Pool, prefix string, sc faultScenario, n int, bin string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	// One job in twenty-five fails permanently: a 400 on every submission (as
	// a bad request gets, even when a worker dies before recording the first)
	// or a vendor-failed job.
	permanent := map[string]string{}
	var scen []string
	for i := range n {
		ref := fmt.Sprintf("%s-%03d", prefix, i)
		switch {
		case i%50 == 7:
			permanent[ref] = "BadRequest"
			scen = append(scen, fmt.Sprintf(`{"reference_id":%q,"reject_submits":400}`, ref))
		case i%50 == 31:
			permanent[ref] = "JobFailed"
			scen = append(scen, fmt.Sprintf(`{"reference_id":%q,"outcome":"failed"}`, ref))
		case sc.lose && i%5 == 0:
			mode := "reset"
			if i%10 == 0 {
				mode = "hang"
			}
			scen = append(scen, fmt.Sprintf(`{"reference_id":%q,"lose_responses":1,"lose_mode":%q}`, ref, mode))
		}
	}
	// A fresh emulator per scenario, keeping its jobs across its own outage
	// (--state-file) and its per-job behaviour (--scenarios).
	scenFile := filepath.Join(f.dir, prefix+"-scenarios.json")
	require.NoError(t, os.WriteFile(scenFile, []byte("["+strings.Join(scen, ",")+"]"), 0o644))
	if f.emulator != nil {
		f.emulator.stop(syscall.SIGTERM)
	}
	f.emulator = &proc{t: t, name: "emulator", path: filepath.Join(bin, "emulator"),
		args: append([]string{"--addr", f.emuAddr, "--api-key", apiKey, "--rate-limit", "-1", "--queued-for", "500ms", "--processing-for", "1s",
			"--state-file", filepath.Join(f.dir, prefix+"-emulator.json"), "--scenarios", scenFile, "--log-level", "warn"}, sc.emulatorArgs...),
		log: filepath.Join(f.dir, prefix+"-emulator.log")}
	f.emulator.start()
	t.Cleanup(func() { f.emulator.stop(syscall.SIGTERM) })
	require.Eventually(t, func() bool { return tcpUp(f.emuAddr) }, 10*time.Second, 50*time.Millisecond)

	var batchJobs []lipsync.Job
	for i := range n {
		ref := fmt.Sprintf("%s-%03d", prefix, i)
		batchJobs = append(batchJobs, lipsync.Job{Video: mediaURL(ref, "video"), Audio: mediaURL(ref, "audio"), ReferenceID: ref})
	}
	start := time.Now()
	run, err := jobs.SubmitBatch(ctx, lipsync.Batch{BatchID: prefix, Jobs: batchJobs, Concurrency: n, MaxPending: 50, StartsPerRun: n / 3})
	require.NoError(t, err)
	injected := make(chan struct{})
	go func() {
		defer close(injected)
		if sc.inject != nil {
			sc.inject(t, f)
		}
	}()
	res, err := waitBatch(ctx, run)
	<-injected
	wall := time.Since(start)
	require.NoError(t, err, "the batch ended")
	require.Equal(t, n, res.Total)
	require.Greater(t, res.Runs, 1, "the batch continued as new under the faults")

	st := emulatorStatsAt(t, "http://"+f.emuAddr)
	ended := map[string]string{}
	for _, o := range res.Outcomes {
		ended[o.ReferenceID] = o.Outcome + ":" + o.Reason
	}
	completed, escalated, lost, duplicates := res.Completed, 0, 0, 0
	for _, j := range batchJobs {
		ref := j.ReferenceID
		want, got := "completed", "completed"
		if r, ok := permanent[ref]; ok {
			want = "escalated:" + r
		}
		if o, ok := ended[ref]; ok {
			got = o
		}
		if got != want {
			t.Errorf("%s ended %s, want %s", ref, got, want)
		}
		if strings.HasPrefix(got, "escalated:") {
			escalated++
		}
		wantJobs := 1
		if permanent[ref] == "BadRequest" {
			wantJobs = 0
		}
		if n := st.JobsByReference[ref]; n != wantJobs {
			if n > wantJobs {
				duplicates += n - wantJobs
			} else {
				lost++
			}
			t.Errorf("%s: the emulator created %d jobs, want %d", ref, n, wantJobs)
		}
	}
	require.Equal(t, n, completed+len(res.Outcomes), "every job accounted for")
	// The database agrees with the workflows.
	var rows, done, failed, escRows, wrongEsc int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed')
		FROM lipsync_jobs WHERE reference_id LIKE $1`, prefix+"-%").Scan(&rows, &done, &failed))
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM escalations e JOIN lipsync_jobs j USING (workflow_id)
		WHERE j.reference_id LIKE $1 AND e.kind = 'failure'`, prefix+"-%").Scan(&escRows))
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT workflow_id FROM escalations WHERE kind = 'failure' AND workflow_id LIKE $1
		GROUP BY workflow_id HAVING count(*) <> 1) x`, "lipsync-"+prefix+"-%").Scan(&wrongEsc))
	require.Equal(t, n, rows, "one row per job")
	require.Equal(t, completed, done, "completed rows")
	require.Equal(t, escalated, failed, "failed rows")
	require.Equal(t, len(permanent), escRows, "one escalation per permanent failure, none for transient ones")
	require.Zero(t, wrongEsc)
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %s |", sc.name, n, completed, escalated, duplicates, lost, wall.Round(time.Second))
}

// waitBatch waits for the batch to end, riding out the frontend's own
// restarts under the long poll.
func waitBatch(ctx context.Context, run *lipsync.BatchRun) (lipsync.BatchResult, error) {
	for {
		res, err := run.Wait(ctx)
		if err == nil || ctx.Err() != nil {
			return res, err
		}
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			return res, err // the batch itself failed
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func tcpUp(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func emulatorStatsAt(t *testing.T, base string) emulatorStats {
	s := &stack{t: t, emulatorURL: base}
	return s.stats()
}
