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

// TestFaults runs batches of jobs while breaking the parts under them, and
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
	// A fresh emulator per scenario, keeping its jobs across its own outage.
	if f.emulator != nil {
		f.emulator.stop(syscall.SIGTERM)
	}
	f.emulator = &proc{t: t, name: "emulator", path: filepath.Join(bin, "emulator"),
		args: append([]string{"--addr", f.emuAddr, "--api-key", apiKey, "--rate-limit", "-1", "--queued-for", "500ms", "--processing-for", "1s",
			"--state-file", filepath.Join(f.dir, prefix+"-emulator.json"), "--log-level", "warn"}, sc.emulatorArgs...),
		log: filepath.Join(f.dir, prefix+"-emulator.log")}
	f.emulator.start()
	t.Cleanup(func() { f.emulator.stop(syscall.SIGTERM) })
	require.Eventually(t, func() bool { return tcpUp(f.emuAddr) }, 10*time.Second, 50*time.Millisecond)

	// One job in twenty-five fails permanently (412 or vendor-failed).
	permanent := map[string]string{}
	var scen []string
	for i := range n {
		ref := fmt.Sprintf("%s-%03d", prefix, i)
		switch {
		case i%50 == 7:
			permanent[ref] = "QuotaExceeded"
			scen = append(scen, fmt.Sprintf(`{"reference_id":%q,"submit_faults":[412]}`, ref))
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
	putScenarios(t, "http://"+f.emuAddr, "["+strings.Join(scen, ",")+"]")

	start := time.Now()
	injected := make(chan struct{})
	go func() {
		defer close(injected)
		if sc.inject != nil {
			sc.inject(t, f)
		}
	}()
	type outcome struct {
		ref    string
		status string // completed | escalated:<reason> | lost:<error>
	}
	results := make(chan outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		ref := fmt.Sprintf("%s-%03d", prefix, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- outcome{ref, runFaultJob(ctx, jobs, ref)}
		}()
	}
	wg.Wait()
	<-injected
	close(results)
	wall := time.Since(start)

	st := emulatorStatsAt(t, "http://"+f.emuAddr)
	completed, escalated, lost, duplicates := 0, 0, 0, 0
	for o := range results {
		want := "completed"
		if r, ok := permanent[o.ref]; ok {
			want = "escalated:" + r
		}
		switch {
		case strings.HasPrefix(o.status, "lost"):
			lost++
			t.Errorf("%s: %s", o.ref, o.status)
			continue
		case o.status != want:
			t.Errorf("%s ended %s, want %s", o.ref, o.status, want)
		}
		if o.status == "completed" {
			completed++
		} else {
			escalated++
		}
		wantJobs := 1
		if permanent[o.ref] == "QuotaExceeded" {
			wantJobs = 0
		}
		if got := st.JobsByReference[o.ref]; got != wantJobs {
			if got > wantJobs {
				duplicates += got - wantJobs
			}
			t.Errorf("%s: the emulator created %d jobs, want %d", o.ref, got, wantJobs)
		}
	}
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

// runFaultJob submits one job and waits for its end, riding out the
// frontend's own restarts.
func runFaultJob(ctx context.Context, jobs *lipsync.Client, ref string) string {
	job := lipsync.Job{Video: mediaURL(ref, "video"), Audio: mediaURL(ref, "audio"), ReferenceID: ref}
	var run *lipsync.Run
	var err error
	for {
		if run, err = jobs.Submit(ctx, job); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		return "lost: submit: " + err.Error()
	}
	for {
		_, err = run.Wait(ctx)
		if err == nil {
			return "completed"
		}
		if esc, ok := lipsync.EscalationOf(err); ok {
			return "escalated:" + esc.Reason
		}
		if ctx.Err() != nil {
			return "lost: " + err.Error()
		}
		// The frontend restarted under the long poll: wait again.
		var appErr interface{ Error() string }
		if errors.As(err, &appErr) && strings.Contains(err.Error(), "workflow execution error") {
			return "lost: " + err.Error()
		}
		time.Sleep(500 * time.Millisecond)
		run = jobs.Attach(ctx, ref)
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

func putScenarios(t *testing.T, base, body string) {
	s := &stack{t: t, emulatorURL: base}
	s.scenarios(body)
}

func emulatorStatsAt(t *testing.T, base string) emulatorStats {
	s := &stack{t: t, emulatorURL: base}
	return s.stats()
}
