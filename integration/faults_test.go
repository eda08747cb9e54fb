//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
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
	t.Cleanup(func() {
		if os.Getenv("LIPSYNC_FAULT_KEEP") == "" {
			_ = os.RemoveAll(dir)
		} else {
			t.Logf("kept %s", dir)
		}
	})
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
	// LIPSYNC_FAULT_SCENARIOS picks scenarios by substrings of their
	// names, separated by | ("" = all).
	only := os.Getenv("LIPSYNC_FAULT_SCENARIOS")
	picked := func(name string) bool {
		return only == "" || slices.ContainsFunc(strings.Split(only, "|"), func(s string) bool { return strings.Contains(name, s) })
	}
	for si, sc := range scenarios {
		if !picked(sc.name) {
			continue
		}
		ok := t.Run(sc.name, func(t *testing.T) {
			row := runFaultScenario(t, f, jobsClient, conn, fmt.Sprintf("s%d", si), sc, jobs, bin)
			table = append(table, row)
		})
		if !ok {
			break
		}
	}
	for si, sc := range exactnessScenarios(workerEnv) {
		if !picked(sc.name) {
			continue
		}
		ok := t.Run(sc.name, func(t *testing.T) {
			row := runExactnessScenario(t, f, jobsClient, conn, fmt.Sprintf("x%d", si), sc, jobs, bin)
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

// exactnessScenario is a scenario of issue 13: a path where a job used to
// pay for a second vendor job, or escalate for a failure that was not its
// own, and that a human (or the end of an outage) must now resolve with
// one vendor job per reference_id and one escalation where one is due.
type exactnessScenario struct {
	name string
	// workerEnv is the workers' environment for the scenario.
	workerEnv []string
	// emulatorArgs are extra emulator flags.
	emulatorArgs []string
	// batch runs the jobs as one batch; otherwise each on its own.
	batch bool
	// scenario is the emulator scenario of job i ("" = none).
	scenario func(i int, ref string) string
	// act breaks and mends things while the jobs run, and answers the
	// escalations; it returns when every answer is given.
	act func(t *testing.T, x *exactnessRun)
	// escalations are the escalations due, by kind, for the whole run.
	escalations map[string]int
}

// exactnessRun is one scenario's run, for its act.
type exactnessRun struct {
	ctx    context.Context
	f      *faultStack
	jobs   *lipsync.Client
	conn   *pgxpool.Pool
	prefix string
	n      int
}

// escalations counts the run's escalations of a kind (of its jobs, and of
// its batch for kind account).
func (x *exactnessRun) escalations(t *testing.T, kind string) int {
	var n int
	require.NoError(t, x.conn.QueryRow(x.ctx, `SELECT count(*) FROM escalations WHERE kind = $1 AND (workflow_id LIKE $2 OR workflow_id = $3)`,
		kind, "lipsync-"+x.prefix+"-%", "batch-"+x.prefix).Scan(&n))
	return n
}

// waitFor polls cond until it holds or the scenario's time runs out.
func (x *exactnessRun) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if x.ctx.Err() != nil {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// requests reads the emulator's log of the requests naming ref.
func (x *exactnessRun) requests(t *testing.T, ref string) []requestRecord {
	s := &stack{t: t, emulatorURL: "http://" + x.f.emuAddr}
	return s.requests(ref)
}

// emulatorPut sends a control request to the emulator.
func (x *exactnessRun) emulatorPut(t *testing.T, method, path, body string) {
	req, err := http.NewRequest(method, "http://"+x.f.emuAddr+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 300, "%s %s", method, path)
}

func exactnessScenarios(base []string) []exactnessScenario {
	answered := append(slices.Clone(base), "ESCALATION_DECISION_WAIT=30m")
	return []exactnessScenario{
		{
			// Every submission's answer is lost after its job was created,
			// and every lookup fails until the retry budget (8 s) runs out:
			// each job escalates as RetriesExhausted. The outage ends and a
			// human answers retry: the new submission finds the job the
			// lost answer created and adopts it.
			name:      "retries exhausted after a lost answer, then retry",
			workerEnv: append(slices.Clone(answered), "RETRY_MAX_ELAPSED=8s"),
			scenario: func(_ int, ref string) string {
				return fmt.Sprintf(`{"reference_id":%q,"lose_responses":1,"list_faults":[%s]}`, ref, strings.TrimSuffix(strings.Repeat("503,", 100), ","))
			},
			act: func(t *testing.T, x *exactnessRun) {
				x.waitFor(t, "every job escalated", func() bool { return x.escalations(t, "failure") == x.n })
				x.emulatorPut(t, http.MethodDelete, "/_emulator/scenarios", "")
				for i := range x.n {
					ref := fmt.Sprintf("%s-%03d", x.prefix, i)
					_, err := x.jobs.Resolve(x.ctx, ref, lipsync.Decision{Action: "retry", By: "fault-suite"})
					require.NoError(t, err, ref)
				}
			},
			escalations: map[string]int{"failure": -1},
		},
		{
			// One of the first jobs loses its submission's answer, and the
			// lookup of its retry is refused with 401 (the key rejected for
			// a moment): an account-wide failure. The batch pauses once
			// (every other submission is held back); a human resumes it;
			// the job looks first and adopts what its lost answer created.
			name: "lookup refused with 401 in a batch, then resume", workerEnv: answered, batch: true,
			scenario: func(i int, ref string) string {
				if i != 3 {
					return ""
				}
				return fmt.Sprintf(`{"reference_id":%q,"lose_responses":1,"list_faults":[{"status":401,"body":"{\"error\":\"invalid token\"}"}]}`, ref)
			},
			act: func(t *testing.T, x *exactnessRun) {
				for _, i := range []int{3} {
					ref := fmt.Sprintf("%s-%03d", x.prefix, i)
					x.waitFor(t, ref+"'s lookup refused", func() bool {
						for _, r := range x.requests(t, ref) {
							if r.Endpoint == "GET /v1/lipsync/requests" && r.Status == 401 {
								return true
							}
						}
						return false
					})
				}
				x.waitFor(t, "the batch's account escalation", func() bool { return x.escalations(t, "account") == 1 })
				// A human answers once every job started and not submitted
				// is held back: a submission refused by the hold just before
				// the answer would tell the batch after it and pause it anew
				// (a race of the batch's pause, reported; a human takes
				// longer than the test).
				x.waitFor(t, "every pending job held back", func() bool {
					p, err := x.jobs.BatchProgress(x.ctx, x.prefix)
					return err == nil && p.Pending > 0 && p.Blocked == p.Pending
				})
				// The row is written before the batch takes the escalation in.
				x.waitFor(t, "the batch to take the resume", func() bool {
					return x.jobs.ResolveBatch(x.ctx, x.prefix, lipsync.BatchDecision{Action: "resume", By: "fault-suite"}) == nil
				})
			},
			escalations: map[string]int{"account": 1},
		},
		{
			// PostgreSQL is down for 2 minutes while every job is being
			// polled, with an API retry budget of 60 s: the database's
			// failures spend none of it; the jobs wait and complete.
			name:         "PostgreSQL down 2 minutes while the jobs are polled",
			workerEnv:    append(slices.Clone(base), "RETRY_MAX_ELAPSED=60s"),
			emulatorArgs: []string{"--processing-for", "150s"},
			batch:        true,
			act: func(t *testing.T, x *exactnessRun) {
				x.waitFor(t, "every job submitted", func() bool { return emulatorStatsAt(t, "http://"+x.f.emuAddr).JobsCreated == x.n })
				time.Sleep(3 * time.Second)
				require.NoError(t, x.f.pg.Stop(context.Background()))
				time.Sleep(2 * time.Minute)
				require.NoError(t, x.f.pg.Restart(context.Background()))
			},
			escalations: map[string]int{},
		},
		{
			// The key is revoked while every job is being polled: one job
			// meets the 401, holds the account and escalates it once; the
			// others' checks wait on the hold. The key is restored and a
			// human answers resume: every job polls on to its end.
			name:         "key revoked while polling, restored, resumed",
			workerEnv:    answered,
			emulatorArgs: []string{"--processing-for", "40s"},
			act: func(t *testing.T, x *exactnessRun) {
				x.waitFor(t, "every job submitted", func() bool { return emulatorStatsAt(t, "http://"+x.f.emuAddr).JobsCreated == x.n })
				time.Sleep(3 * time.Second)
				x.emulatorPut(t, http.MethodPut, "/_emulator/keys", `{"revoked":true}`)
				x.waitFor(t, "the account escalation", func() bool { return x.escalations(t, "account") == 1 })
				time.Sleep(10 * time.Second) // the other jobs meet the hold
				x.emulatorPut(t, http.MethodPut, "/_emulator/keys", `{"revoked":false}`)
				var owner string
				require.NoError(t, x.conn.QueryRow(x.ctx, `SELECT workflow_id FROM escalations WHERE kind = 'account' AND workflow_id LIKE $1`, "lipsync-"+x.prefix+"-%").Scan(&owner))
				_, err := x.jobs.Resolve(x.ctx, owner, lipsync.Decision{Action: "resume", By: "fault-suite", Note: "key restored"})
				require.NoError(t, err)
			},
			escalations: map[string]int{"account": 1},
		},
	}
}

// runExactnessScenario runs one scenario of issue 13 and returns its table
// row: every job completes, with one vendor job per reference_id, the
// escalations due and no other, and every row completed.
func runExactnessScenario(t *testing.T, f *faultStack, jobs *lipsync.Client, conn *pgxpool.Pool, prefix string, sc exactnessScenario, n int, bin string) string {
	ctx, cancel := context.WithTimeout(context.Background(), envDuration("LIPSYNC_FAULT_SCENARIO_TIMEOUT", 15*time.Minute))
	defer cancel()
	for _, w := range f.workers {
		w.stop(syscall.SIGTERM)
		w.env = slices.Clone(sc.workerEnv)
		w.start()
	}
	// The workers migrate the database as they start.
	require.Eventually(t, func() bool {
		_, err := conn.Exec(ctx, `SELECT 1 FROM escalations LIMIT 1`)
		return err == nil
	}, time.Minute, 200*time.Millisecond)
	var scen []string
	var refs []string
	for i := range n {
		ref := fmt.Sprintf("%s-%03d", prefix, i)
		refs = append(refs, ref)
		if sc.scenario != nil {
			if js := sc.scenario(i, ref); js != "" {
				scen = append(scen, js)
			}
		}
	}
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

	start := time.Now()
	ended := make(chan map[string]string, 1)
	if sc.batch {
		var batchJobs []lipsync.Job
		for _, ref := range refs {
			batchJobs = append(batchJobs, lipsync.Job{Video: mediaURL(ref, "video"), Audio: mediaURL(ref, "audio"), ReferenceID: ref})
		}
		run, err := jobs.SubmitBatch(ctx, lipsync.Batch{BatchID: prefix, Jobs: batchJobs, Concurrency: n, MaxPending: 50})
		require.NoError(t, err)
		go func() {
			out := map[string]string{}
			res, err := waitBatch(ctx, run)
			if err != nil {
				out["batch"] = err.Error()
			}
			for _, o := range res.Outcomes {
				out[o.ReferenceID] = o.Outcome + ": " + o.Reason + ": " + o.Message
			}
			ended <- out
		}()
	} else {
		go func() {
			var mu sync.Mutex
			out := map[string]string{}
			parallel(refs, func(ref string) {
				run, err := jobs.Submit(ctx, lipsync.Job{Video: mediaURL(ref, "video"), Audio: mediaURL(ref, "audio"), ReferenceID: ref})
				if err == nil {
					_, err = run.Wait(ctx)
				}
				if err != nil {
					mu.Lock()
					out[ref] = err.Error()
					mu.Unlock()
				}
			})
			ended <- out
		}()
	}
	x := &exactnessRun{ctx: ctx, f: f, jobs: jobs, conn: conn, prefix: prefix, n: n}
	if sc.act != nil {
		sc.act(t, x)
	}
	var failed map[string]string
	select {
	case failed = <-ended:
	case <-ctx.Done():
		rows, _ := conn.Query(context.Background(), `SELECT workflow_id, kind, reason, COALESCE(resolution, '') FROM escalations WHERE workflow_id LIKE $1 OR workflow_id = $2`,
			"lipsync-"+prefix+"-%", "batch-"+prefix)
		for rows.Next() {
			var id, kind, reason, res string
			_ = rows.Scan(&id, &kind, &reason, &res)
			t.Logf("escalation: %s %s %s %s", id, kind, reason, res)
		}
		rows.Close()
		if sc.batch {
			p, err := jobs.BatchProgress(context.Background(), prefix)
			t.Logf("batch progress: %+v %v", p, err)
		}
		t.Fatalf("the jobs did not end: %v", ctx.Err())
	}
	wall := time.Since(start)
	require.Empty(t, failed, "every job completes")

	st := emulatorStatsAt(t, "http://"+f.emuAddr)
	duplicates, lost := 0, 0
	for _, ref := range refs {
		switch got := st.JobsByReference[ref]; {
		case got > 1:
			duplicates += got - 1
			t.Errorf("%s: the emulator created %d jobs", ref, got)
		case got == 0:
			lost++
			t.Errorf("%s: the emulator created no job", ref)
		}
	}
	var rows, done int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'completed') FROM lipsync_jobs WHERE reference_id LIKE $1`,
		prefix+"-%").Scan(&rows, &done))
	require.Equal(t, n, rows, "one row per job")
	require.Equal(t, n, done, "every row completed: none left in a wrong state")
	for _, kind := range []string{"failure", "account", "stuck"} {
		want, got := sc.escalations[kind], x.escalations(t, kind)
		if want < 0 {
			want = n // one per job
		}
		require.Equal(t, want, got, "%s escalations", kind)
	}
	var holds int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM account_holds`).Scan(&holds))
	require.Zero(t, holds, "no hold outlives its answer")
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %s |", sc.name, n, done, x.escalations(t, "failure")+x.escalations(t, "account"), duplicates, lost, wall.Round(time.Second))
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}
