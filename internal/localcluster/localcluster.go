// Package localcluster runs the Temporal server as production runs it, for
// the integration tests, the local stack (`make run CLUSTER=1`) and the
// benchmark: the server built from the version pinned in
// tools/temporal-server, persisting to PostgreSQL with SQL visibility, each
// of its four services (history, matching, frontend, worker) in its own
// process, optionally with the Web UI in a fifth.
//
// Nothing here is specific to the tests: the services read the server's own
// configuration template (config/docker.yaml of the pinned release, the one
// the temporalio/server image renders from its environment) with the
// variables deploy/ sets, and the cluster is set up by the files deploy/
// ships: temporal-schema.sh (databases and schemas), temporal-namespace.sh
// (namespace and search attributes) and temporal-dynamicconfig.yaml (one
// partition for the rate-limited task queues).
package localcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/chamelaion-lipsync/worker/deploy"
	"github.com/chamelaion-lipsync/worker/internal/localtemporal"
)

// ServerVersion is the pinned Temporal server version; it must match
// tools/temporal-server/go.mod (the CLI of localtemporal.CLIVersion embeds
// the same server).
const ServerVersion = "v1.29.1"

// DefaultHistoryShards is the number of history shards of a new cluster.
// A cluster's shard count is fixed when its databases are created.
const DefaultHistoryShards = 4

// Service names one of the server's services.
type Service string

// The server's services, each run in its own process.
const (
	History  Service = "history"
	Matching Service = "matching"
	Frontend Service = "frontend"
	Worker   Service = "worker"
)

// Services lists the server's services in the order they start: history
// first, since the first service to start records the cluster's metadata
// and two racing to do it fail.
func Services() []Service { return []Service{History, Matching, Frontend, Worker} }

// BinDir returns the folder holding the server binaries and configuration
// templates that scripts/build-temporal-server.sh builds: $TEMPORAL_SERVER_DIR
// when set, else the cached build, else it builds them (about 5 minutes the
// first time).
func BinDir(ctx context.Context) (string, error) {
	if d := os.Getenv("TEMPORAL_SERVER_DIR"); d != "" {
		if err := checkBinDir(d); err != nil {
			return "", fmt.Errorf("TEMPORAL_SERVER_DIR=%s: %w", d, err)
		}
		return d, nil
	}
	if d := cachedBinDir(); d != "" && checkBinDir(d) == nil {
		return d, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", fmt.Errorf("the Temporal server is not built and %w; run scripts/build-temporal-server.sh or set TEMPORAL_SERVER_DIR", err)
	}
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "build-temporal-server.sh"))
	cmd.Dir = root
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build the Temporal server: %w", err)
	}
	d := strings.TrimSpace(stdout.String())
	return d, checkBinDir(d)
}

// checkBinDir says whether dir holds what the cluster runs.
func checkBinDir(dir string) error {
	for _, f := range []string{"temporal-server", "temporal-sql-tool", "temporal-ui-server", "config/docker.yaml", "ui-config/docker.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("incomplete server build: %w", err)
		}
	}
	return nil
}

// cachedBinDir is where scripts/build-temporal-server.sh puts the build.
func cachedBinDir() string {
	dir := os.Getenv("LIPSYNC_CACHE_DIR")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".cache", "lipsync")
	}
	return filepath.Join(dir, "temporal-server-"+ServerVersion)
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

// Postgres is the PostgreSQL server the cluster persists to. The user must
// be allowed to create databases.
type Postgres struct {
	Host     string
	Port     int
	User     string
	Password string
}

// PostgresFromURL reads the server, user and password of a PostgreSQL URL
// (its database and parameters are ignored).
func PostgresFromURL(raw string) (Postgres, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Postgres{}, fmt.Errorf("localcluster: PostgreSQL URL: %w", err)
	}
	pg := Postgres{Host: u.Hostname(), Port: 5432, User: u.User.Username()}
	pg.Password, _ = u.User.Password()
	if p := u.Port(); p != "" {
		if pg.Port, err = strconv.Atoi(p); err != nil {
			return Postgres{}, fmt.Errorf("localcluster: PostgreSQL URL port %q: %w", p, err)
		}
	}
	if pg.Host == "" || pg.User == "" {
		return Postgres{}, errors.New("localcluster: the PostgreSQL URL must name a host and a user")
	}
	return pg, nil
}

// Options configures a cluster.
type Options struct {
	// BinDir holds the server build ("" = BinDir(ctx)).
	BinDir string
	// CLIPath is the Temporal CLI, which runs the namespace set-up (""
	// = localtemporal.CLIPath(ctx)).
	CLIPath string
	// Postgres is where the server keeps its state, in the databases
	// temporal and temporal_visibility (created when missing). Required.
	Postgres Postgres
	// Dir holds the cluster's configuration files and logs ("" = a new
	// temporary folder, removed by Stop).
	Dir string
	// IP to bind. Defaults to 127.0.0.1.
	IP string
	// Port is the frontend's gRPC port (0 = a free one). The services'
	// internal ports are always free ones.
	Port int
	// Headless leaves out the Web UI.
	Headless bool
	// UIPort is the Web UI's port (0 = a free one).
	UIPort int
	// UICodecEndpoint points the Web UI at a codec server ("" = none).
	UICodecEndpoint string
	// HistoryShards of a new cluster. Defaults to DefaultHistoryShards.
	HistoryShards int
	// Namespace to create. Defaults to "default".
	Namespace string
	// LogLevel of the services. Defaults to "warn".
	LogLevel string
	// Logger receives progress lines (nil = discard).
	Logger *slog.Logger
}

// Ports are a cluster's listening ports.
type Ports struct {
	FrontendGRPC, FrontendHTTP, FrontendMembership int
	HistoryGRPC, HistoryMembership                 int
	MatchingGRPC, MatchingMembership               int
	WorkerGRPC, WorkerMembership                   int
}

// Cluster is a running cluster.
type Cluster struct {
	// Address is the frontend's host:port.
	Address string
	// UIURL is the Web UI's base URL ("" when headless).
	UIURL string

	opts    Options
	ports   Ports
	env     []string
	tempDir string
	log     *slog.Logger

	mu    sync.Mutex
	procs map[Service]*process
	ui    *process
}

// Start sets up the databases, starts every service in its own process,
// creates the namespace and registers the search attributes, starts the
// Web UI unless headless, and returns once the frontend serves.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	var err error
	if opts.BinDir == "" {
		if opts.BinDir, err = BinDir(ctx); err != nil {
			return nil, err
		}
	}
	if opts.CLIPath == "" {
		if opts.CLIPath, err = localtemporal.CLIPath(ctx); err != nil {
			return nil, err
		}
	}
	if opts.Postgres.Host == "" {
		return nil, errors.New("localcluster: Options.Postgres is required")
	}
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	if opts.HistoryShards == 0 {
		opts.HistoryShards = DefaultHistoryShards
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "warn"
	}
	c := &Cluster{opts: opts, log: opts.Logger, procs: map[Service]*process{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if opts.Dir == "" {
		if c.tempDir, err = os.MkdirTemp("", "lipsync-cluster-"); err != nil {
			return nil, fmt.Errorf("localcluster: %w", err)
		}
		c.opts.Dir = c.tempDir
	}
	if err := c.writeFiles(); err != nil {
		c.cleanup()
		return nil, err
	}
	if err := c.allocatePorts(); err != nil {
		c.cleanup()
		return nil, err
	}
	c.Address = net.JoinHostPort(opts.IP, strconv.Itoa(c.ports.FrontendGRPC))
	c.env = envList(ServerEnv(c.opts.Postgres, c.ports, c.opts.HistoryShards, c.dynamicConfigPath(), c.opts.IP, c.opts.LogLevel))

	start := time.Now()
	if err := c.validateDynamicConfig(ctx); err != nil {
		c.cleanup()
		return nil, err
	}
	if err := c.setupSchema(ctx); err != nil {
		c.cleanup()
		return nil, err
	}
	if err := c.startServices(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	if err := c.setupNamespace(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	if err := c.waitNamespace(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	if !opts.Headless {
		if err := c.startUI(ctx); err != nil {
			_ = c.Stop()
			return nil, err
		}
	}
	c.log.Info("Temporal cluster ready", "address", c.Address, "ui", c.UIURL, "took", time.Since(start).Round(time.Millisecond))
	return c, nil
}

// ServerEnv is the environment of every service process: the variables of
// the server's configuration template (config/docker.yaml, as in the
// temporalio/server image). deploy/ sets the same variables for its
// containers (go test ./deploy checks it), with the hosts and ports of its
// own network.
func ServerEnv(pg Postgres, ports Ports, shards int, dynamicConfigPath, ip, logLevel string) map[string]string {
	return map[string]string{
		"DB":             "postgres12",
		"POSTGRES_SEEDS": pg.Host,
		"DB_PORT":        strconv.Itoa(pg.Port),
		// The template reads the visibility store's port from its own
		// variable (it defaults to 5432, not to DB_PORT).
		"VISIBILITY_DB_PORT":         strconv.Itoa(pg.Port),
		"POSTGRES_USER":              pg.User,
		"POSTGRES_PWD":               pg.Password,
		"NUM_HISTORY_SHARDS":         strconv.Itoa(shards),
		"DYNAMIC_CONFIG_FILE_PATH":   dynamicConfigPath,
		"BIND_ON_IP":                 ip,
		"TEMPORAL_BROADCAST_ADDRESS": ip,
		"LOG_LEVEL":                  logLevel,
		"FRONTEND_GRPC_PORT":         strconv.Itoa(ports.FrontendGRPC),
		"FRONTEND_HTTP_PORT":         strconv.Itoa(ports.FrontendHTTP),
		"FRONTEND_MEMBERSHIP_PORT":   strconv.Itoa(ports.FrontendMembership),
		"HISTORY_GRPC_PORT":          strconv.Itoa(ports.HistoryGRPC),
		"HISTORY_MEMBERSHIP_PORT":    strconv.Itoa(ports.HistoryMembership),
		"MATCHING_GRPC_PORT":         strconv.Itoa(ports.MatchingGRPC),
		"MATCHING_MEMBERSHIP_PORT":   strconv.Itoa(ports.MatchingMembership),
		"WORKER_GRPC_PORT":           strconv.Itoa(ports.WorkerGRPC),
		"WORKER_MEMBERSHIP_PORT":     strconv.Itoa(ports.WorkerMembership),
	}
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m)+1)
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	// The server needs nothing else from ours (a TEMPORAL_* variable of
	// the worker's configuration must not leak into it).
	return append(out, "PATH="+os.Getenv("PATH"))
}

// writeFiles puts deploy/'s files in the cluster's folder.
func (c *Cluster) writeFiles() error {
	// The logs are the cluster's alone (a server log may quote what its
	// clients sent).
	logs := filepath.Join(c.opts.Dir, "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		return fmt.Errorf("localcluster: %w", err)
	}
	if err := os.Chmod(logs, 0o700); err != nil {
		return fmt.Errorf("localcluster: %w", err)
	}
	for name, content := range map[string][]byte{
		"temporal-dynamicconfig.yaml": deploy.TemporalDynamicConfig,
		"temporal-schema.sh":          deploy.TemporalSchemaScript,
		"temporal-namespace.sh":       deploy.TemporalNamespaceScript,
	} {
		if err := os.WriteFile(filepath.Join(c.opts.Dir, name), content, 0o755); err != nil {
			return fmt.Errorf("localcluster: %w", err)
		}
	}
	return nil
}

func (c *Cluster) dynamicConfigPath() string {
	return filepath.Join(c.opts.Dir, "temporal-dynamicconfig.yaml")
}

// allocatePorts reuses the ports of the cluster's last run when they are
// all free (a service that joins on other ports than the ones recorded in
// the database waits 30 s for the old members), else chooses free ones,
// and records them.
func (c *Cluster) allocatePorts() error {
	path := filepath.Join(c.opts.Dir, "ports.json")
	if b, err := os.ReadFile(path); err == nil {
		var last Ports
		if json.Unmarshal(b, &last) == nil && (c.opts.Port == 0 || c.opts.Port == last.FrontendGRPC) && portsFree(c.opts.IP, last) {
			c.ports = last
		}
	}
	if c.ports == (Ports{}) {
		if err := c.choosePorts(); err != nil {
			return err
		}
	}
	if !c.opts.Headless && c.opts.UIPort == 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(c.opts.IP, "0"))
		if err != nil {
			return fmt.Errorf("localcluster: find a free port: %w", err)
		}
		c.opts.UIPort = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
	}
	b, err := json.Marshal(c.ports)
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		return fmt.Errorf("localcluster: record the ports: %w", err)
	}
	return nil
}

// portsFree says whether every port of p can be listened on.
func portsFree(ip string, p Ports) bool {
	for _, port := range []int{p.FrontendGRPC, p.FrontendHTTP, p.FrontendMembership, p.HistoryGRPC, p.HistoryMembership,
		p.MatchingGRPC, p.MatchingMembership, p.WorkerGRPC, p.WorkerMembership} {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			return false
		}
		_ = l.Close()
	}
	return true
}

// choosePorts chooses free ports for every service.
func (c *Cluster) choosePorts() error {
	// Hold every listener until all are chosen, so no two are the same.
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	// Membership ports are stored in a smallint column: they must be below
	// 32768, where Linux never hands out ephemeral ports, so they are
	// drawn at random from 20000-32767.
	for _, p := range []*int{&c.ports.FrontendMembership, &c.ports.HistoryMembership, &c.ports.MatchingMembership, &c.ports.WorkerMembership} {
		l, err := listenBelow32768(c.opts.IP)
		if err != nil {
			return err
		}
		held = append(held, l)
		*p = l.Addr().(*net.TCPAddr).Port
	}
	ports := []*int{&c.ports.FrontendHTTP, &c.ports.HistoryGRPC, &c.ports.MatchingGRPC, &c.ports.WorkerGRPC}
	c.ports.FrontendGRPC = c.opts.Port
	if c.ports.FrontendGRPC == 0 {
		ports = append(ports, &c.ports.FrontendGRPC)
	}
	for _, p := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort(c.opts.IP, "0"))
		if err != nil {
			return fmt.Errorf("localcluster: find a free port: %w", err)
		}
		held = append(held, l)
		*p = l.Addr().(*net.TCPAddr).Port
	}
	return nil
}

// listenBelow32768 listens on a free port from 20000 to 32767.
func listenBelow32768(ip string) (net.Listener, error) {
	var err error
	for range 200 {
		var l net.Listener
		l, err = net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(20000+rand.IntN(12768))))
		if err == nil {
			return l, nil
		}
	}
	return nil, fmt.Errorf("localcluster: no free port below 32768: %w", err)
}

// validateDynamicConfig checks deploy/temporal-dynamicconfig.yaml with the
// server's own validator: a misspelt key or a value of the wrong type
// would otherwise be ignored with a warning in a log.
func (c *Cluster) validateDynamicConfig(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.opts.BinDir, "temporal-server"), "validate-dynamic-config", c.dynamicConfigPath())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("localcluster: validate the dynamic configuration: %w: %s", err, out)
	}
	// It names each file, then one indented line per problem.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, " ") {
			return fmt.Errorf("localcluster: deploy/temporal-dynamicconfig.yaml: %s", out)
		}
	}
	return nil
}

// setupSchema runs deploy/temporal-schema.sh.
func (c *Cluster) setupSchema(ctx context.Context) error {
	pg := c.opts.Postgres
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"SQL_PLUGIN=postgres12",
		"SQL_HOST=" + pg.Host,
		"SQL_PORT=" + strconv.Itoa(pg.Port),
		"SQL_USER=" + pg.User,
		"SQL_PASSWORD=" + pg.Password,
		"TEMPORAL_SQL_TOOL=" + filepath.Join(c.opts.BinDir, "temporal-sql-tool"),
	}
	return c.runScript(ctx, "temporal-schema.sh", env)
}

// setupNamespace runs deploy/temporal-namespace.sh.
func (c *Cluster) setupNamespace(ctx context.Context) error {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"TMPDIR=" + c.opts.Dir,
		// The CLI reads a profile from $HOME/.config: none here.
		"HOME=" + c.opts.Dir,
		"TEMPORAL_ADDRESS=" + c.Address,
		"TEMPORAL_NAMESPACE=" + c.opts.Namespace,
		"TEMPORAL_CLI=" + c.opts.CLIPath,
	}
	return c.runScript(ctx, "temporal-namespace.sh", env)
}

// waitNamespace waits until the matching service knows the namespace (a
// new namespace reaches each service's cache within its refresh interval,
// and a worker polling before that is refused).
func (c *Cluster) waitNamespace(ctx context.Context) error {
	tc, err := client.DialContext(ctx, client.Options{
		HostPort:  c.Address,
		Namespace: c.opts.Namespace,
		Logger:    tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		return fmt.Errorf("localcluster: connect to the frontend: %w", err)
	}
	defer tc.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := tc.DescribeTaskQueue(ctx, "localcluster-probe", enumspb.TASK_QUEUE_TYPE_WORKFLOW)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("localcluster: namespace %s not served within a minute: %w", c.opts.Namespace, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (c *Cluster) runScript(ctx context.Context, name string, env []string) error {
	logPath := filepath.Join(c.opts.Dir, "logs", strings.TrimSuffix(name, ".sh")+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("localcluster: %w", err)
	}
	defer logFile.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", filepath.Join(c.opts.Dir, name))
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	c.log.Info("running "+name, "log", logPath)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("localcluster: %s: %w\n%s", name, err, tailFile(logPath))
	}
	return nil
}

// cleanup removes the temporary folder Start made.
func (c *Cluster) cleanup() {
	if c.tempDir != "" {
		_ = os.RemoveAll(c.tempDir)
	}
}

// Ports returns the cluster's listening ports.
func (c *Cluster) Ports() Ports { return c.ports }

// Dir is the folder of the cluster's configuration and logs.
func (c *Cluster) Dir() string { return c.opts.Dir }

// Namespace is the namespace Start created.
func (c *Cluster) Namespace() string { return c.opts.Namespace }

func tailFile(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
