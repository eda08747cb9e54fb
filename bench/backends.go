package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chamelaion-lipsync/worker/internal/localcluster"
)

// clusterTaskQueue is this worker's task queue on the cluster: the one
// whose submit and status queues deploy/temporal-dynamicconfig.yaml gives
// one partition.
const clusterTaskQueue = "lipsync"

// backendRow is one Temporal backend's figures: the throughput phase of the
// timer sample and of this worker, and the rate phase of this worker.
type backendRow struct {
	Backend string
	// Start is the time to start the backend (PostgreSQL included for
	// the cluster).
	Start       time.Duration
	Timer, Ours loadRow
	Rate        rateRow
	// TimerServer and OursServer are the CPU time of each server
	// process over the timer sample's and this worker's throughput runs.
	TimerServer, OursServer []procCPU
	// TimerCommits and OursCommits are the transactions the cluster's
	// PostgreSQL committed per job over those runs (0 on the dev server).
	TimerCommits, OursCommits float64
	// TimerMachine and OursMachine are how the whole machine's CPU was
	// spent over those runs.
	TimerMachine, OursMachine machineCPU
	// TimerSupport and OursSupport are the CPU time of the other
	// processes of the run: this benchmark (the starts, the in-process
	// emulator) and the worker's PostgreSQL.
	TimerSupport, OursSupport []procCPU
}

// machineCPU is the machine's CPU time over a run, in cores (1.0 = one core
// for the whole run), from /proc/stat.
type machineCPU struct {
	Busy, IOWait, Idle float64
}

// procCPU is one process's CPU time over a run.
type procCPU struct {
	Name string
	CPU  time.Duration
}

// backendsPhase measures the bare timer sample and this worker on each
// backend in turn, each freshly started on this machine: jobs per second
// and CPU (the throughput phase's measurement), where the server spends its
// CPU, and this worker's use of the submission budget (the rate phase's).
func (b *bench) backendsPhase(ctx context.Context) ([]backendRow, error) {
	var rows []backendRow
	for _, backend := range []string{backendDev, backendCluster} {
		row, err := measureBackend(ctx, b.cfg, b.log, backend)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", backend, err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func measureBackend(ctx context.Context, cfg benchConfig, log *slog.Logger, backend string) (backendRow, error) {
	row := backendRow{Backend: backend}
	t0 := time.Now()
	nb, err := newBench(ctx, cfg, log, backend)
	if err != nil {
		return row, err
	}
	row.Start = time.Since(t0)
	failed := true
	defer func() { nb.close(failed) }()
	log.Info("backend started", "backend", backend, "took", row.Start.Round(time.Millisecond))
	for _, strategy := range []string{stratTimer, stratOurs} {
		acct := "tp-" + shortName(strategy)
		emu, err := nb.emulatorFor([]string{acct}, -1, nil, time.Nanosecond, time.Nanosecond)
		if err != nil {
			return row, err
		}
		before, err := nb.s.serverCPU()
		if err != nil {
			emu.close()
			return row, err
		}
		commitsBefore, err := nb.s.temporalCommits(ctx)
		if err != nil {
			emu.close()
			return row, err
		}
		machineBefore, err := readProcStat()
		if err != nil {
			emu.close()
			return row, err
		}
		supportBefore, err := nb.s.supportCPU()
		if err != nil {
			emu.close()
			return row, err
		}
		lr, err := nb.runLoad(ctx, strategy, acct, emu, cfg.ThroughputJobs, cfg.scaled(10*time.Second), func() bool {
			return detected(emu, acct) >= cfg.ThroughputJobs
		})
		emu.close()
		if err != nil {
			return row, err
		}
		after, err := nb.s.serverCPU()
		if err != nil {
			return row, err
		}
		machineAfter, err := readProcStat()
		if err != nil {
			return row, err
		}
		supportAfter, err := nb.s.supportCPU()
		if err != nil {
			return row, err
		}
		support := cpuDelta(supportBefore, supportAfter)
		commitsAfter, err := nb.s.temporalCommits(ctx)
		if err != nil {
			return row, err
		}
		machine := machineAfter.since(machineBefore)
		used := cpuDelta(before, after)
		commits := float64(commitsAfter-commitsBefore) / float64(lr.Jobs)
		log.Info("backend throughput", "backend", backend, "strategy", strategy, "jobs_per_second", fmt.Sprintf("%.1f", lr.PerSecond))
		if strategy == stratTimer {
			row.Timer, row.TimerServer, row.TimerCommits, row.TimerMachine, row.TimerSupport = lr, used, commits, machine, support
		} else {
			row.Ours, row.OursServer, row.OursCommits, row.OursMachine, row.OursSupport = lr, used, commits, machine, support
		}
	}
	nb.loadStrategies = []string{stratOurs}
	rates, err := nb.ratePhase(ctx)
	if err != nil {
		return row, err
	}
	row.Rate = rates[0]
	failed = false
	return row, nil
}

// serverCPU reads the CPU time each server process has used so far: the
// dev server, or each service of the cluster and its PostgreSQL (the
// postmaster and its backends, ended ones included).
func (s *stack) serverCPU() ([]procCPU, error) {
	if s.cluster == nil {
		_, port, err := net.SplitHostPort(s.address)
		if err != nil {
			return nil, err
		}
		pid, err := findProcess(func(args []string) bool {
			return strings.Contains(strings.Join(args, " "), "start-dev") && hasArgs(args, "--port", port)
		})
		if err != nil {
			return nil, fmt.Errorf("the dev server's process: %w", err)
		}
		cpu, err := processCPU(pid, false)
		return []procCPU{{Name: "dev server (all services, SQLite)", CPU: cpu}}, err
	}
	var out []procCPU
	for _, svc := range localcluster.Services() {
		cpu, err := processCPU(s.cluster.PID(svc), false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", svc, err)
		}
		out = append(out, procCPU{Name: string(svc), CPU: cpu})
	}
	pidFile, err := os.ReadFile(filepath.Join(s.temporalPGDir, "data", "postmaster.pid"))
	if err != nil {
		return nil, fmt.Errorf("the cluster's PostgreSQL: %w", err)
	}
	first, _, _ := strings.Cut(string(pidFile), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return nil, fmt.Errorf("postmaster.pid: %w", err)
	}
	cpu, err := processCPU(pid, true)
	return append(out, procCPU{Name: "PostgreSQL", CPU: cpu}), err
}

// temporalCommits reads how many transactions the cluster's PostgreSQL
// has committed so far (0 on the dev server).
func (s *stack) temporalCommits(ctx context.Context) (int64, error) {
	if s.temporalPG == nil {
		return 0, nil
	}
	conn, err := pgx.Connect(ctx, s.temporalPG.URL("postgres"))
	if err != nil {
		return 0, fmt.Errorf("the cluster's PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, `SELECT sum(xact_commit)::bigint FROM pg_stat_database WHERE datname IN ('temporal', 'temporal_visibility')`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("the cluster's PostgreSQL: count commits: %w", err)
	}
	return n, nil
}

// supportCPU reads the CPU time this benchmark's process and the worker's
// PostgreSQL (the server and its backends) have used so far.
func (s *stack) supportCPU() ([]procCPU, error) {
	self, err := processCPU(os.Getpid(), false)
	if err != nil {
		return nil, err
	}
	port := strconv.Itoa(s.pg.Port())
	pid, err := findProcess(func(args []string) bool {
		return strings.HasSuffix(args[0], "postgres") && hasArgs(args, "-p", port)
	})
	if err != nil {
		return nil, fmt.Errorf("the worker's PostgreSQL: %w", err)
	}
	pg, err := processCPU(pid, true)
	return []procCPU{{Name: "benchmark", CPU: self}, {Name: "worker's PostgreSQL", CPU: pg}}, err
}

// cpuDelta subtracts two readings of the same processes.
func cpuDelta(before, after []procCPU) []procCPU {
	out := make([]procCPU, len(after))
	for i, a := range after {
		out[i] = a
		if i < len(before) && before[i].Name == a.Name {
			out[i].CPU -= before[i].CPU
		}
	}
	return out
}

// findProcess returns the one process whose arguments match.
func findProcess(match func(args []string) bool) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		if match(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")) {
			return pid, nil
		}
	}
	return 0, errors.New("not found")
}

func hasArgs(args []string, flag, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == value {
			return true
		}
	}
	return false
}

// processCPU is a process's user and system time; withChildren adds its
// ended children (those it waited for) and its live ones.
func processCPU(pid int, withChildren bool) (time.Duration, error) {
	if pid == 0 {
		return 0, errors.New("not running")
	}
	fields, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	// After the command name: state (3), ppid (4) … utime (14), stime
	// (15), cutime (16), cstime (17); fields[0] is field 3.
	ticks := atoi(fields[11]) + atoi(fields[12])
	if withChildren {
		ticks += atoi(fields[13]) + atoi(fields[14])
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return 0, err
		}
		for _, e := range entries {
			child, err := strconv.Atoi(e.Name())
			if err != nil || child == pid {
				continue
			}
			cf, err := statFields(child)
			if err != nil || atoi(cf[1]) != int64(pid) {
				continue
			}
			ticks += atoi(cf[11]) + atoi(cf[12])
		}
	}
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ticks) * time.Second / hz, nil
}

func statFields(pid int) ([]string, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 || i+2 > len(stat) {
		return nil, errors.New("malformed /proc stat")
	}
	fields := strings.Fields(string(stat[i+2:]))
	if len(fields) < 15 {
		return nil, errors.New("short /proc stat")
	}
	return fields, nil
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// procStat is the machine's cumulative CPU time, in ticks, from the first
// line of /proc/stat.
type procStat struct {
	busy, iowait, idle int64
	at                 time.Time
}

func readProcStat() (procStat, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return procStat{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return procStat{}, errors.New("unexpected /proc/stat")
	}
	// user nice system idle iowait irq softirq [steal …]
	st := procStat{idle: atoi(f[4]), iowait: atoi(f[5]), at: time.Now()}
	for i, v := range f[1:] {
		if i != 3 && i != 4 && i < 8 {
			st.busy += atoi(v)
		}
	}
	return st, nil
}

// since is the CPU spent from an earlier reading to this one, in cores.
func (s procStat) since(earlier procStat) machineCPU {
	const hz = 100 // USER_HZ on Linux
	secs := s.at.Sub(earlier.at).Seconds()
	if secs <= 0 {
		return machineCPU{}
	}
	cores := func(ticks int64) float64 { return float64(ticks) / hz / secs }
	return machineCPU{Busy: cores(s.busy - earlier.busy), IOWait: cores(s.iowait - earlier.iowait), Idle: cores(s.idle - earlier.idle)}
}
