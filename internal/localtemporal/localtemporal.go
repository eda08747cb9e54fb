// Package localtemporal runs the Temporal dev server (the Temporal CLI's
// `server start-dev`, with its Web UI) for the tests and the local stack.
// The CLI is built from the version pinned in tools/temporal, once, into a
// cache folder; nothing is downloaded but Go modules.
package localtemporal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
)

// CLIVersion is the pinned Temporal CLI version (server 1.29.1, UI 2.42.1);
// it must match tools/temporal/go.mod.
const CLIVersion = "v1.5.1"

// CLIPath returns the Temporal CLI binary: $TEMPORAL_CLI when set, else the
// cached build, else it builds it with scripts/build-temporal.sh (about 3
// minutes the first time).
func CLIPath(ctx context.Context) (string, error) {
	if p := os.Getenv("TEMPORAL_CLI"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("TEMPORAL_CLI=%s: %w", p, err)
		}
		return p, nil
	}
	if p := cachedCLI(); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	root, err := repoRoot()
	if err != nil {
		return "", fmt.Errorf("the Temporal CLI is not built and %w; run scripts/build-temporal.sh or set TEMPORAL_CLI", err)
	}
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "build-temporal.sh"))
	cmd.Dir = root
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build the Temporal CLI: %w", err)
	}
	return strings.TrimSpace(stdout.String()), nil
}

// cachedCLI is where scripts/build-temporal.sh puts the binary.
func cachedCLI() string {
	dir := os.Getenv("LIPSYNC_CACHE_DIR")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".cache", "lipsync")
	}
	return filepath.Join(dir, "temporal-"+CLIVersion)
}

// repoRoot finds the module root by walking up from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/chamelaion-lipsync/worker\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the repository root is not above the working directory")
		}
		dir = parent
	}
}

// Options configures a dev server.
type Options struct {
	// CLIPath is the Temporal CLI ("" = CLIPath(ctx)).
	CLIPath string
	// DBFile keeps the server's state across restarts ("" = in memory).
	DBFile string
	// IP to bind. Defaults to 127.0.0.1.
	IP string
	// Port and UIPort (0 = free ports). The UI is off when Headless.
	Port   int
	UIPort int
	// Headless disables the Web UI.
	Headless bool
	// UICodecEndpoint points the Web UI at a codec server ("" = none).
	UICodecEndpoint string
	// Namespaces to create besides "default".
	Namespaces []string
	// SearchAttributes to register: name → type (Keyword, Text, Int,
	// Double, Bool, Datetime, KeywordList).
	SearchAttributes map[string]string
	// DynamicConfig values: key → JSON value. Unless set here, task queues
	// get one read and one write partition (SinglePartitionConfig), so
	// that a task queue's activity rate limit is enforced by one limiter:
	// with the default four partitions each applies its own share, and
	// the rate the worker asked for is not met.
	DynamicConfig map[string]string
	// LogFile receives the server's output ("" = a temporary file).
	LogFile string
	// Logger receives progress lines (nil = discard).
	Logger *slog.Logger
}

// Server is a running dev server.
type Server struct {
	// Address is the frontend's host:port.
	Address string
	// UIURL is the Web UI's base URL ("" when headless).
	UIURL string
	opts  Options
	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	// logFrom is where the latest start's output begins in the log file.
	logFrom int64
}

// SinglePartitionConfig is the dynamic configuration that gives every task
// queue one partition. A production cluster can scope the same settings to
// the rate-limited queues alone (see deploy/README.md).
func SinglePartitionConfig() map[string]string {
	return map[string]string{
		"matching.numTaskqueueReadPartitions":  "1",
		"matching.numTaskqueueWritePartitions": "1",
	}
}

// Start starts the dev server and returns once its frontend answers.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.CLIPath == "" {
		p, err := CLIPath(ctx)
		if err != nil {
			return nil, err
		}
		opts.CLIPath = p
	}
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	dc := map[string]string{}
	maps.Copy(dc, SinglePartitionConfig())
	maps.Copy(dc, opts.DynamicConfig)
	opts.DynamicConfig = dc
	if opts.LogFile == "" {
		f, err := os.CreateTemp("", "temporal-dev-*.log")
		if err != nil {
			return nil, err
		}
		f.Close()
		opts.LogFile = f.Name()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// Ports this function chooses are free when it looks, not when the
	// server binds them: another process (a test beside this one) may take
	// one in between, or one of the ports the server picks for itself, and
	// the server exits at once. Then it tries again, on other ports where it
	// chooses them.
	choosePort, chooseUIPort := opts.Port == 0, !opts.Headless && opts.UIPort == 0
	for attempt := 1; ; attempt++ {
		s, err := start(ctx, opts, choosePort, chooseUIPort)
		if err == nil || !errors.Is(err, errExitedAtStart) || attempt == startAttempts {
			return s, err
		}
		opts.Logger.Warn("the dev server exited during start-up; trying other ports", "attempt", attempt, "error", err)
	}
}

// startAttempts bounds the tries on other ports when the dev server exits
// during start-up.
const startAttempts = 3

// errExitedAtStart: the dev server exited before it answered.
var errExitedAtStart = errors.New("the dev server exited during start-up")

// start starts the dev server once, on free ports where asked to choose.
func start(ctx context.Context, opts Options, choosePort, chooseUIPort bool) (*Server, error) {
	var err error
	if choosePort {
		if opts.Port, err = freePort(opts.IP); err != nil {
			return nil, err
		}
	}
	if chooseUIPort {
		if opts.UIPort, err = freePort(opts.IP); err != nil {
			return nil, err
		}
	}
	s := &Server{Address: net.JoinHostPort(opts.IP, strconv.Itoa(opts.Port)), opts: opts}
	if !opts.Headless {
		s.UIURL = "http://" + net.JoinHostPort(opts.IP, strconv.Itoa(opts.UIPort))
	}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) args() []string {
	o := s.opts
	args := []string{"server", "start-dev", "--ip", o.IP, "--port", strconv.Itoa(o.Port), "--log-level", "warn"}
	if o.Headless {
		args = append(args, "--headless")
	} else {
		args = append(args, "--ui-port", strconv.Itoa(o.UIPort))
		if o.UICodecEndpoint != "" {
			args = append(args, "--ui-codec-endpoint", o.UICodecEndpoint)
		}
	}
	if o.DBFile != "" {
		args = append(args, "--db-filename", o.DBFile)
	}
	for _, ns := range o.Namespaces {
		args = append(args, "--namespace", ns)
	}
	for _, k := range sortedKeys(o.SearchAttributes) {
		args = append(args, "--search-attribute", k+"="+o.SearchAttributes[k])
	}
	for _, k := range sortedKeys(o.DynamicConfig) {
		args = append(args, "--dynamic-config-value", k+"="+o.DynamicConfig[k])
	}
	return args
}

func (s *Server) start(ctx context.Context) error {
	logFile, err := os.OpenFile(s.opts.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("localtemporal: %w", err)
	}
	// The log is appended to by every start: a failure's tail is this
	// start's output.
	if fi, err := logFile.Stat(); err == nil {
		s.mu.Lock()
		s.logFrom = fi.Size()
		s.mu.Unlock()
	}
	cmd := exec.Command(s.opts.CLIPath, s.args()...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The server dies with its parent, even a killed one.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("localtemporal: start %s: %w", s.opts.CLIPath, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	s.opts.Logger.Info("starting the Temporal dev server", "address", s.Address, "ui", s.UIURL)

	deadline := time.Now().Add(90 * time.Second)
	for {
		if err := s.ping(ctx); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			_ = s.Stop()
			return fmt.Errorf("localtemporal: the dev server did not answer within 90s: %v\n%s", err, s.logTail())
		}
		select {
		case <-done:
			s.mu.Lock()
			if s.cmd == cmd {
				s.cmd = nil // exited: nothing left to stop
			}
			s.mu.Unlock()
			return fmt.Errorf("localtemporal: %w:\n%s", errExitedAtStart, s.logTail())
		case <-ctx.Done():
			_ = s.Stop()
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ping checks that the frontend answers and the default namespace exists.
func (s *Server) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{
		HostPort: s.Address,
		Logger:   tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
	return err
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.opts.LogFile)
	s.mu.Lock()
	from := s.logFrom
	s.mu.Unlock()
	if from > 0 && from <= int64(len(b)) {
		b = b[from:]
	}
	return tail(string(b), 4000)
}

// tail is the end of a server's output, at most max bytes: from its last
// panic when it has one (the reason comes first, before a goroutine dump
// longer than max), else its last bytes.
func tail(out string, max int) string {
	if i := strings.LastIndex(out, "panic: "); i >= 0 {
		out = out[i:]
		if len(out) > max {
			out = out[:max]
		}
		return out
	}
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return out
}

// Stop ends the server (SIGTERM, then SIGKILL after 10s). Stopping a stopped
// server is a no-op.
func (s *Server) Stop() error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	return nil
}

// Restart stops and starts the server on the same ports and database file.
// A server that exits during start-up is started again (a second after),
// up to startAttempts times, as Start does.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := s.start(ctx)
		if err == nil || !errors.Is(err, errExitedAtStart) || attempt == startAttempts {
			return err
		}
		s.opts.Logger.Warn("the dev server exited during its restart; starting it again", "attempt", attempt, "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// LogTail returns the end of the server's output, for test failures.
func (s *Server) LogTail() string { return s.logTail() }

func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("localtemporal: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
