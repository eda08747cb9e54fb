//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/chamelaion-lipsync/worker/internal/localcluster"
	"github.com/chamelaion-lipsync/worker/internal/localpg"
	"github.com/chamelaion-lipsync/worker/lipsync"
)

// clusterFaultRateLimit is the account's generation budget per minute in
// TestFaultsCluster, for the worker and the emulator alike: low enough that
// a scenario's submissions last over a minute, so that a burst after a
// recovery would show in a rolling minute.
const clusterFaultRateLimit = 120

// TestFaultsCluster runs the fault suite's batch on the cluster backend
// while it breaks what only a cluster has: each of the history, matching
// and frontend services killed with SIGKILL mid-batch and restarted, and the
// server's PostgreSQL restarted under it. Besides the fault suite's checks
// (every job ends once with its expected outcome, one vendor job per
// reference_id, one row per job in its final state, one escalation per
// permanent failure), it checks the rate budget: no rolling minute holds
// more vendor jobs than the budget, and the emulator answered no
// submission 429. LIPSYNC_CLUSTER_FAULT_JOBS sets the jobs per scenario
// (150 by default: about 75 s of submissions at the budget).
//
// The cluster has its own PostgreSQL server, so that restarting it breaks
// the server's persistence alone (the worker's database is another
// scenario of TestFaults).
func TestFaultsCluster(t *testing.T) {
	jobs := 150
	if v := os.Getenv("LIPSYNC_CLUSTER_FAULT_JOBS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err)
		jobs = n
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "lipsync-cluster-faults-")
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

	temporalPG, err := localpg.Start(ctx, localpg.Options{Dir: filepath.Join(dir, "temporal-pg"), Fast: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = temporalPG.Close(context.Background()) })
	pgServer, err := localcluster.PostgresFromURL(temporalPG.URL("postgres"))
	require.NoError(t, err)
	cluster, err := localcluster.Start(ctx, localcluster.Options{Postgres: pgServer, Dir: filepath.Join(dir, "cluster"), Headless: true})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, svc := range localcluster.Services() {
				t.Logf("--- Temporal %s log tail ---\n%s", svc, cluster.LogTail(svc))
			}
		}
		_ = cluster.Stop()
	})
	f.emuAddr = freeAddr(t)

	workerEnv := []string{
		"CHAMELAION_API_KEY=" + apiKey,
		"CHAMELAION_BASE_URL=http://" + f.emuAddr + "/api",
		"CHAMELAION_REQUEST_TIMEOUT=2s",
		fmt.Sprintf("CHAMELAION_RATE_LIMIT_PER_MINUTE=%d", clusterFaultRateLimit),
		"CHAMELAION_STATUS_RATE_LIMIT_PER_MINUTE=6000",
		"DATABASE_URL=" + f.dbURL,
		"TEMPORAL_ADDRESS=" + cluster.Address,
		"TEMPORAL_TASK_QUEUE=" + taskQueue,
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

	tc, err := client.Dial(client.Options{HostPort: cluster.Address})
	require.NoError(t, err)
	defer tc.Close()
	jobsClient := lipsync.NewClient(tc, taskQueue)
	conn, err := pgxpool.New(ctx, f.dbURL)
	require.NoError(t, err)
	defer conn.Close()

	// kill crashes a service 20 s into the batch (its submissions are
	// under way), leaves it down 5 s, as a supervisor would, and starts it
	// again on the same ports.
	kill := func(svc localcluster.Service) func(*testing.T, *faultStack) {
		return func(t *testing.T, _ *faultStack) {
			time.Sleep(20 * time.Second)
			require.NoError(t, cluster.Kill(svc))
			time.Sleep(5 * time.Second)
			require.NoError(t, cluster.StartService(context.Background(), svc), "restart %s", svc)
		}
	}
	emulatorArgs := []string{"--rate-limit", strconv.Itoa(clusterFaultRateLimit)}
	scenarios := []faultScenario{
		{name: "history SIGKILL + restart", emulatorArgs: emulatorArgs, inject: kill(localcluster.History)},
		{name: "matching SIGKILL + restart", emulatorArgs: emulatorArgs, inject: kill(localcluster.Matching)},
		{name: "frontend SIGKILL + restart", emulatorArgs: emulatorArgs, inject: kill(localcluster.Frontend)},
		{name: "server's PostgreSQL restart", emulatorArgs: emulatorArgs, inject: func(t *testing.T, _ *faultStack) {
			time.Sleep(20 * time.Second)
			require.NoError(t, temporalPG.Restart(context.Background()))
		}},
	}
	var table []string
	for si, sc := range scenarios {
		ok := t.Run(sc.name, func(t *testing.T) {
			prefix := fmt.Sprintf("c%d", si)
			row := runFaultScenario(t, f, jobsClient, conn, prefix, sc, jobs, bin)
			budget := checkRateBudget(t, "http://"+f.emuAddr, prefix, clusterFaultRateLimit)
			table = append(table, row+budget)
		})
		if !ok {
			break
		}
	}
	t.Logf("\n| scenario | jobs | completed | escalated | duplicates | lost | wall time | most vendor jobs in a rolling minute (budget %d) | 429s |\n"+
		"| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n%s", clusterFaultRateLimit, strings.Join(table, "\n"))
}

// checkRateBudget reads when the emulator created each job of a scenario
// and checks that no rolling minute holds more than limit and that no
// generation request was answered 429. It returns the table's two extra
// cells.
func checkRateBudget(t *testing.T, emulatorURL, prefix string, limit int) string {
	t.Helper()
	resp, err := http.Get(emulatorURL + "/_emulator/jobs")
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Jobs []struct {
			ReferenceID string    `json:"reference_id"`
			CreatedAt   time.Time `json:"created_at"`
		} `json:"jobs"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	var times []time.Time
	for _, j := range body.Jobs {
		if strings.HasPrefix(j.ReferenceID, prefix+"-") {
			times = append(times, j.CreatedAt)
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	most := mostInAMinute(times)
	limited := 0
	for _, q := range emulatorStatsAt(t, emulatorURL).Requests {
		if strings.Contains(q.Endpoint, "generate") && q.Status == http.StatusTooManyRequests {
			limited += q.Count
		}
	}
	require.LessOrEqual(t, most, limit, "vendor jobs created in one rolling minute")
	require.Zero(t, limited, "submissions answered 429")
	if len(times) > 1 {
		per5 := make([]int, int(times[len(times)-1].Sub(times[0])/(5*time.Second))+1)
		for _, at := range times {
			per5[int(at.Sub(times[0])/(5*time.Second))]++
		}
		t.Logf("%d vendor jobs over %s, at most %d in a rolling minute; per 5 s: %v", len(times), times[len(times)-1].Sub(times[0]).Round(time.Second), most, per5)
	}
	return fmt.Sprintf(" %d | %d |", most, limited)
}

// mostInAMinute is the largest number of sorted times within any minute.
func mostInAMinute(times []time.Time) int {
	most := 0
	for i := range times {
		j, _ := slices.BinarySearchFunc(times, times[i].Add(time.Minute), func(a, t time.Time) int { return a.Compare(t) })
		most = max(most, j-i)
	}
	return most
}
