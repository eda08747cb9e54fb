// Package localpg runs a throwaway PostgreSQL cluster from the machine's
// server binaries, for the tests and the local stack. Running as root, it
// runs initdb and pg_ctl as the postgres user (initdb refuses root).
//
// The cluster authenticates every connection with a password
// (scram-sha-256): a random one, generated when the cluster is created and
// kept beside its data directory in a file of mode 0600, so that other
// users of the machine cannot connect as its superuser (who could run
// commands as the cluster's owner with COPY ... TO PROGRAM).
package localpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoBinaries says the server binaries are missing and how to get them.
var ErrNoBinaries = errors.New("PostgreSQL server binaries not found: apt-get install postgresql (Debian/Ubuntu), or set PG_BINDIR to the folder holding initdb and pg_ctl")

// Options configures a cluster.
type Options struct {
	// Dir is the parent folder of the data directory ("" = a new temporary
	// folder, removed by Close). An existing cluster there is reused.
	Dir string
	// Port is the TCP port on 127.0.0.1 (0 = a free one; a reused cluster
	// keeps the port it was started with last, if free).
	Port int
	// Fast turns off durability (fsync, synchronous commit, full-page
	// writes): right for tests, wrong for data you want to keep.
	Fast bool
	// Logger receives progress lines (nil = discard).
	Logger *slog.Logger
}

// Cluster is a running PostgreSQL server.
type Cluster struct {
	bin     string
	dataDir string
	port    int
	tempDir string // removed by Close when set
	pwFile  string // the superuser's password, mode 0600
	pw      string
	fast    bool
	log     *slog.Logger
	mu      sync.Mutex
	running bool
}

// BinDir finds the folder holding initdb: $PG_BINDIR, else the newest
// /usr/lib/postgresql/*/bin, else the PATH.
func BinDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("PG_BINDIR=%s has no initdb: %w", d, ErrNoBinaries)
		}
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool { return pgVersion(matches[i]) > pgVersion(matches[j]) })
	if len(matches) > 0 {
		return filepath.Dir(matches[0]), nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNoBinaries
}

func pgVersion(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

// Start initialises the cluster if its data directory is new, starts it,
// and returns once it accepts connections.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, fast: opts.Fast, log: opts.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	parent := opts.Dir
	if parent == "" {
		if parent, err = os.MkdirTemp("", "lipsync-pg-"); err != nil {
			return nil, fmt.Errorf("localpg: %w", err)
		}
		c.tempDir = parent
	}
	if parent, err = filepath.Abs(parent); err != nil {
		return nil, fmt.Errorf("localpg: %w", err)
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("localpg: %w", err)
	}
	// The postgres user must reach the data directory.
	if err := os.Chmod(parent, 0o755); err != nil {
		return nil, fmt.Errorf("localpg: %w", err)
	}
	if os.Geteuid() == 0 {
		if err := checkTraversable(parent); err != nil {
			c.cleanup()
			return nil, err
		}
	}
	c.dataDir = filepath.Join(parent, "data")
	c.pwFile = filepath.Join(parent, "password")
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.newPassword(); err != nil {
			c.cleanup()
			return nil, err
		}
		if err := c.initdb(ctx); err != nil {
			c.cleanup()
			return nil, err
		}
	} else if err := c.readPassword(); err != nil {
		c.cleanup()
		return nil, err
	}
	c.port = opts.Port
	if c.port == 0 {
		if b, err := os.ReadFile(filepath.Join(parent, "port")); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && portFree(p) {
				c.port = p
			}
		}
	}
	if c.port == 0 {
		if c.port, err = freePort(); err != nil {
			c.cleanup()
			return nil, fmt.Errorf("localpg: %w", err)
		}
	}
	_ = os.WriteFile(filepath.Join(parent, "port"), []byte(strconv.Itoa(c.port)), 0o644)
	if err := c.start(ctx); err != nil {
		c.cleanup()
		return nil, err
	}
	return c, nil
}

// newPassword generates the superuser's password and keeps it in pwFile
// (0600).
func (c *Cluster) newPassword() error {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	c.pw = hex.EncodeToString(b)
	if err := os.WriteFile(c.pwFile, []byte(c.pw+"\n"), 0o600); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	return os.Chmod(c.pwFile, 0o600)
}

// readPassword reads the password of an existing cluster. A cluster made
// before passwords (it trusted every local user) gets one: see
// requirePassword.
func (c *Cluster) readPassword() error {
	b, err := os.ReadFile(c.pwFile)
	if errors.Is(err, os.ErrNotExist) {
		return c.newPassword() // set on the server by requirePassword
	}
	if err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	c.pw = strings.TrimSpace(string(b))
	return nil
}

// asPostgres builds a command that runs as the postgres user when this
// process is root.
func (c *Cluster) asPostgres(ctx context.Context, name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	if os.Geteuid() == 0 {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.CommandContext(ctx, path, args...)
}

func (c *Cluster) initdb(ctx context.Context) error {
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("localpg: running as root needs a postgres user (apt-get install postgresql creates it): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(c.dataDir, uid, gid); err != nil {
			return fmt.Errorf("localpg: %w", err)
		}
	}
	c.log.Info("initialising PostgreSQL cluster", "dir", c.dataDir)
	// initdb reads the password from a file the postgres user can read,
	// removed at once.
	pw, err := os.CreateTemp("", "localpg-pw-")
	if err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	defer os.Remove(pw.Name())
	_, err = pw.WriteString(c.pw + "\n")
	if cerr := pw.Close(); err == nil {
		err = cerr
	}
	if err == nil && os.Geteuid() == 0 {
		err = chownToPostgres(pw.Name())
	}
	if err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	cmd := c.asPostgres(ctx, "initdb", "-D", c.dataDir, "-U", "postgres", "--auth=scram-sha-256", "--pwfile="+pw.Name(),
		"--encoding=UTF8", "--locale=C", "--no-instructions")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("localpg: initdb: %w: %s", err, tail(out))
	}
	return nil
}

func chownToPostgres(path string) error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(path, uid, gid)
}

// hbaConf authenticates every connection with a password.
const hbaConf = `# Written by localpg: every connection needs the password (scram-sha-256).
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
host  all all ::1/128 scram-sha-256
`

// requirePassword turns a cluster made before passwords (trust for every
// local user) into one that requires the password: it sets the password
// while the server still trusts, then rewrites pg_hba.conf and reloads.
func (c *Cluster) requirePassword(ctx context.Context) error {
	hba := filepath.Join(c.dataDir, "pg_hba.conf")
	b, err := os.ReadFile(hba)
	if err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	if string(b) == hbaConf {
		return nil
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("localpg: connect to set the password: %w", err)
	}
	_, err = conn.Exec(ctx, "ALTER ROLE postgres PASSWORD "+quoteLiteral(c.pw))
	if err == nil {
		err = os.WriteFile(hba, []byte(hbaConf), 0o600)
	}
	if err == nil {
		_, err = conn.Exec(ctx, "SELECT pg_reload_conf()")
	}
	_ = conn.Close(ctx)
	if err != nil {
		return fmt.Errorf("localpg: require a password: %w", err)
	}
	c.log.Info("PostgreSQL now requires the password", "password_file", c.pwFile)
	return nil
}

// quoteLiteral quotes s as an SQL string literal (s is hex here).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (c *Cluster) start(ctx context.Context) error {
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s -c max_connections=200", c.port, c.dataDir)
	if c.fast {
		opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	}
	logFile := filepath.Join(c.dataDir, "server.log")
	cmd := c.asPostgres(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", c.dataDir, "-l", logFile, "-o", opts)
	if out, err := cmd.CombinedOutput(); err != nil {
		logTail, _ := os.ReadFile(logFile)
		return fmt.Errorf("localpg: pg_ctl start: %w: %s %s", err, tail(out), tail(logTail))
	}
	c.mu.Lock()
	c.running = true
	c.mu.Unlock()
	// pg_ctl -w waits for the server; confirm over TCP as clients will.
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			if err := c.requirePassword(ctx); err != nil {
				return err
			}
			c.log.Info("PostgreSQL ready", "url", c.RedactedURL("postgres"), "password_file", c.pwFile)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("localpg: server started but refuses connections: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// URL is the connection URL of a database on the cluster, with the
// superuser's password in it: a secret.
func (c *Cluster) URL(database string) string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", url.QueryEscape(c.pw), c.port, database)
}

// RedactedURL is URL without the password, fit for a log or a terminal.
func (c *Cluster) RedactedURL(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, database)
}

// PasswordFile is the file (mode 0600) holding the superuser's password.
func (c *Cluster) PasswordFile() string { return c.pwFile }

// Port is the cluster's TCP port.
func (c *Cluster) Port() int { return c.port }

// CreateDatabase creates a database (if it does not exist) and returns its
// URL.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("localpg: connect: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", fmt.Errorf("localpg: look up database %s: %w", name, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", fmt.Errorf("localpg: create database %s: %w", name, err)
		}
	}
	return c.URL(name), nil
}

// Stop stops the server (fast shutdown). Stopping a stopped cluster is a
// no-op.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return nil
	}
	cmd := c.asPostgres(ctx, "pg_ctl", "stop", "-w", "-m", "fast", "-D", c.dataDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("localpg: pg_ctl stop: %w: %s", err, tail(out))
	}
	c.running = false
	return nil
}

// Restart stops and starts the server on the same port and data.
func (c *Cluster) Restart(ctx context.Context) error {
	if err := c.Stop(ctx); err != nil {
		return err
	}
	return c.start(ctx)
}

// Close stops the server and removes the data when Start created the
// folder.
func (c *Cluster) Close(ctx context.Context) error {
	err := c.Stop(ctx)
	c.cleanup()
	return err
}

func (c *Cluster) cleanup() {
	if c.tempDir != "" {
		_ = os.RemoveAll(c.tempDir)
	}
}

// checkTraversable fails when an ancestor of dir is closed to other users:
// the postgres user could not reach its data directory.
func checkTraversable(dir string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("localpg: %w", err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("localpg: the postgres user cannot reach %s: %s is closed to other users (chmod o+x it, or choose another folder)", dir, d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}
