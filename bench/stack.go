package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chamelaion-lipsync/worker/emulator"
	"github.com/chamelaion-lipsync/worker/internal/localcluster"
	"github.com/chamelaion-lipsync/worker/internal/localpg"
	"github.com/chamelaion-lipsync/worker/internal/localtemporal"
	"github.com/chamelaion-lipsync/worker/internal/readyline"
)

// stack is the real parts every phase runs against: PostgreSQL, Temporal
// (the dev server, or the cluster), and the binaries.
type stack struct {
	dir         string
	log         *slog.Logger
	pg          *localpg.Cluster
	databaseURL string
	backend     string                // backendDev or backendCluster
	address     string                // Temporal's frontend
	temporal    *localtemporal.Server // the dev server (nil on the cluster)
	cluster     *localcluster.Cluster // the cluster (nil on the dev server)
	temporalPG  *localpg.Cluster      // the cluster's own PostgreSQL
	// temporalPGDir holds its data (removed by close).
	temporalPGDir string
	workerBin     string // the product's worker, built as shipped
	selfBin       string // this benchmark, for its worker and naive modes
}

// Temporal backends.
const (
	// backendDev is the CLI's dev server: one process, SQLite.
	backendDev = "dev"
	// backendCluster is the production server: PostgreSQL persistence
	// and SQL visibility, each service in its own process
	// (internal/localcluster).
	backendCluster = "cluster"
)

// startStack starts PostgreSQL and the backend; fastPG turns off the
// durability of the cluster's own PostgreSQL.
func startStack(ctx context.Context, log *slog.Logger, backend string, fastPG bool) (*stack, error) {
	dir, err := os.MkdirTemp("", "lipsync-bench-")
	if err != nil {
		return nil, err
	}
	s := &stack{dir: dir, log: log, backend: backend}
	s.workerBin = filepath.Join(dir, "worker")
	build := exec.CommandContext(ctx, "go", "build", "-o", s.workerBin, "./worker")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the worker (run from the repository root): %v\n%s", err, out)
	}
	if s.selfBin, err = os.Executable(); err != nil {
		return nil, err
	}
	if s.pg, err = localpg.Start(ctx, localpg.Options{Fast: true}); err != nil {
		return nil, fmt.Errorf("start PostgreSQL: %w", err)
	}
	if s.databaseURL, err = s.pg.CreateDatabase(ctx, "lipsync"); err != nil {
		return nil, err
	}
	if backend == backendCluster {
		return s, s.startCluster(ctx, fastPG)
	}
	if s.temporal, err = localtemporal.Start(ctx, localtemporal.Options{Headless: true, LogFile: filepath.Join(dir, "temporal.log")}); err != nil {
		return nil, fmt.Errorf("start Temporal dev server: %w", err)
	}
	s.address = s.temporal.Address
	return s, nil
}

// startCluster starts the cluster on a PostgreSQL server of its own, so
// that its CPU is counted apart from the worker's database, with durable
// commits as in production unless fastPG.
func (s *stack) startCluster(ctx context.Context, fastPG bool) error {
	// Its own folder: the benchmark's is closed to the postgres user.
	pgDir, err := os.MkdirTemp("", "lipsync-bench-pg-")
	if err != nil {
		return err
	}
	s.temporalPGDir = pgDir
	if s.temporalPG, err = localpg.Start(ctx, localpg.Options{Dir: pgDir, Fast: fastPG}); err != nil {
		return fmt.Errorf("start the cluster's PostgreSQL: %w", err)
	}
	pg, err := localcluster.PostgresFromURL(s.temporalPG.URL("postgres"))
	if err != nil {
		return err
	}
	if s.cluster, err = localcluster.Start(ctx, localcluster.Options{Postgres: pg, Dir: filepath.Join(s.dir, "cluster"), Headless: true, Logger: s.log}); err != nil {
		return fmt.Errorf("start the Temporal cluster: %w", err)
	}
	s.address = s.cluster.Address
	return nil
}

// close stops the servers and removes the logs, unless keep.
func (s *stack) close(keep bool) {
	if s.temporal != nil {
		_ = s.temporal.Stop()
	}
	if s.cluster != nil {
		_ = s.cluster.Stop()
	}
	if s.temporalPG != nil {
		_ = s.temporalPG.Close(context.Background())
	}
	if s.temporalPGDir != "" {
		_ = os.RemoveAll(s.temporalPGDir)
	}
	if s.pg != nil {
		_ = s.pg.Close(context.Background())
	}
	if keep {
		s.log.Info("logs kept", "dir", s.dir)
		return
	}
	_ = os.RemoveAll(s.dir)
}

// emulatorServer is an in-process emulator on a loopback port.
type emulatorServer struct {
	*emulator.Emulator
	url string // the API base URL
	srv *http.Server
}

func startEmulator(cfg emulator.Config) (*emulatorServer, error) {
	e, err := emulator.New(cfg)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return &emulatorServer{Emulator: e, url: "http://" + l.Addr().String() + "/api", srv: srv}, nil
}

func (e *emulatorServer) close() { _ = e.srv.Close() }

// proc is a started process whose CPU time and memory are measured.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// startProc runs bin until stop, waiting for a line of its output that
// contains ready.
func (s *stack) startProc(ctx context.Context, name, bin string, env []string, ready string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logFile, err := os.Create(filepath.Join(s.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(logFile, pw)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = pw.Close(); _ = logFile.Close(); close(p.done) }()
	found := readyline.Watch(pr, ready)
	select {
	case <-found:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready; see %s", name, filepath.Join(s.dir, name+".log"))
	case <-time.After(90 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s not ready after 90s; see %s", name, filepath.Join(s.dir, name+".log"))
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// stop ends the process (SIGTERM, then SIGKILL after 20s).
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// usage is a process's resource use so far.
type usage struct {
	CPU     time.Duration // user + system
	RSS     int64         // resident set now, bytes
	PeakRSS int64         // high-water mark, bytes
}

// usage reads /proc for the process.
func (p *proc) usage() (usage, error) {
	pid := p.cmd.Process.Pid
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return usage{}, err
	}
	// Fields after the command name (which is in parentheses).
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if len(fields) < 13 {
		return usage{}, errors.New("short /proc stat")
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	u := usage{CPU: time.Duration(utime+stime) * time.Second / ticks}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return usage{}, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			u.RSS = kb << 10
		case "VmHWM":
			u.PeakRSS = kb << 10
		}
	}
	return u, nil
}
