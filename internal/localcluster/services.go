package localcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// process is one child process of the cluster.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// spawn starts a binary with its output appended to logPath.
func spawn(name, path string, args, env []string, logPath string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The services die with their parent, even a killed one, and live in
	// their own process group (a terminal's Ctrl-C goes to the parent,
	// which stops them in order).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("localcluster: start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logFile.Close(); close(p.done) }()
	return p, nil
}

// signal sends sig and waits for the process to exit, killing it after
// grace.
func (p *process) signal(sig syscall.Signal, grace time.Duration) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited says whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startServices starts history, waits until it has recorded the cluster's
// metadata (its gRPC port listens), then the other services, and waits for
// every one to be ready.
func (c *Cluster) startServices(ctx context.Context) error {
	if err := c.spawnService(History); err != nil {
		return err
	}
	if err := c.waitFor(ctx, History, 90*time.Second, func(ctx context.Context) error {
		return dialTCP(ctx, c.port(History))
	}); err != nil {
		return err
	}
	for _, svc := range Services()[1:] {
		if err := c.spawnService(svc); err != nil {
			return err
		}
	}
	errs := make([]error, len(Services()))
	var wg sync.WaitGroup
	for i, svc := range Services() {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.waitReady(ctx, svc) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// spawnService starts one service's process.
func (c *Cluster) spawnService(svc Service) error {
	args := []string{"--root", c.opts.BinDir, "--config", "config", "--env", "docker", "--allow-no-auth", "start", "--service", string(svc)}
	p, err := spawn(string(svc), filepath.Join(c.opts.BinDir, "temporal-server"), args, c.env, c.logPath(svc))
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.procs[svc] = p
	c.mu.Unlock()
	c.log.Info("started Temporal service", "service", svc, "pid", p.cmd.Process.Pid)
	return nil
}

// healthService is the gRPC health-check name each service reports
// SERVING under once it serves (history after it has acquired its
// shards); the worker service has none.
func healthService(svc Service) string {
	switch svc {
	case History:
		return "temporal.api.workflowservice.v1.HistoryService"
	case Matching:
		return "temporal.api.workflowservice.v1.MatchingService"
	case Frontend:
		return "temporal.api.workflowservice.v1.WorkflowService"
	}
	return ""
}

// port is the port a service's readiness is checked on.
func (c *Cluster) port(svc Service) int {
	switch svc {
	case History:
		return c.ports.HistoryGRPC
	case Matching:
		return c.ports.MatchingGRPC
	case Frontend:
		return c.ports.FrontendGRPC
	default:
		return c.ports.WorkerMembership
	}
}

// waitReady waits until a service serves: its gRPC health check says
// SERVING, or for the worker service, its membership port listens.
func (c *Cluster) waitReady(ctx context.Context, svc Service) error {
	check := func(ctx context.Context) error { return dialTCP(ctx, c.port(svc)) }
	if name := healthService(svc); name != "" {
		check = func(ctx context.Context) error { return c.checkHealth(ctx, c.port(svc), name) }
	}
	return c.waitFor(ctx, svc, 2*time.Minute, check)
}

// waitFor polls check until it succeeds, the service exits or timeout
// passes.
func (c *Cluster) waitFor(ctx context.Context, svc Service, timeout time.Duration, check func(context.Context) error) error {
	c.mu.Lock()
	p := c.procs[svc]
	c.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := check(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("localcluster: %s not ready within %s: %v\n%s", svc, timeout, err, tailFile(c.logPath(svc)))
		}
		select {
		case <-p.done:
			return fmt.Errorf("localcluster: %s exited during start-up:\n%s", svc, tailFile(c.logPath(svc)))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Cluster) checkHealth(ctx context.Context, port int, name string) error {
	conn, err := grpc.NewClient(net.JoinHostPort(c.opts.IP, strconv.Itoa(port)), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: name})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%s is %s", name, resp.GetStatus())
	}
	return nil
}

func dialTCP(ctx context.Context, port int) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return conn.Close()
}

func (c *Cluster) logPath(svc Service) string {
	return filepath.Join(c.opts.Dir, "logs", string(svc)+".log")
}

// Kill ends a service's process with SIGKILL, as a crashed host, and
// returns once it has exited. Its clients see it gone at once.
func (c *Cluster) Kill(svc Service) error {
	c.mu.Lock()
	p := c.procs[svc]
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("localcluster: no %s service", svc)
	}
	c.log.Info("killing Temporal service", "service", svc, "pid", p.cmd.Process.Pid)
	p.signal(syscall.SIGKILL, 10*time.Second)
	return nil
}

// StartService starts a service again, on the same ports, after Kill, and
// returns once it serves.
func (c *Cluster) StartService(ctx context.Context, svc Service) error {
	c.mu.Lock()
	p := c.procs[svc]
	c.mu.Unlock()
	if p != nil && !p.exited() {
		return fmt.Errorf("localcluster: %s is running", svc)
	}
	if err := c.spawnService(svc); err != nil {
		return err
	}
	return c.waitReady(ctx, svc)
}

// Stop ends the Web UI and every service (SIGTERM, then SIGKILL after 10s)
// and removes the cluster's folder when Start made it. Stopping a stopped
// cluster is a no-op.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	procs := make([]*process, 0, len(c.procs)+1)
	if c.ui != nil {
		procs = append(procs, c.ui)
	}
	for _, svc := range Services() {
		if p := c.procs[svc]; p != nil {
			procs = append(procs, p)
		}
	}
	c.procs, c.ui = map[Service]*process{}, nil
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.signal(syscall.SIGTERM, 10*time.Second) }()
	}
	wg.Wait()
	c.cleanup()
	return nil
}

// PID is the process id of a service (0 when it is not running).
func (c *Cluster) PID(svc Service) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[svc]; p != nil && !p.exited() {
		return p.cmd.Process.Pid
	}
	return 0
}

// LogTail returns the end of a service's log, for test failures.
func (c *Cluster) LogTail(svc Service) string { return tailFile(c.logPath(svc)) }
