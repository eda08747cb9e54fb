// Command localstack runs the whole product on one machine, for a first look
// and for demos: a PostgreSQL cluster and a Temporal dev server (with its
// Web UI) that it owns under .stack/, the Chamelaion emulator, the worker,
// and a demo batch of jobs with a mix of outcomes. Ctrl-C stops everything
// it started; running it again reuses what it built and the data it kept.
//
//	go run ./cmd/localstack            (what `make run` does)
//	go run ./cmd/localstack --no-demo  (the stack only)
//	go run ./cmd/localstack --cluster  (`make run CLUSTER=1`: Temporal as
//	                                    production runs it, see below)
//
// With --cluster, Temporal is the server as deploy/ describes it instead of
// the dev server: PostgreSQL persistence (the stack's PostgreSQL, databases
// temporal and temporal_visibility) with SQL visibility, the history,
// matching, frontend and worker services each in its own process, and the
// Web UI server against the frontend (internal/localcluster). The first run
// builds the pinned server (about 5 minutes).
//
// Set CHAMELAION_BASE_URL and CHAMELAION_API_KEY to point the worker at the
// real API instead of the emulator (the demo is then skipped).
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/codec"
	"github.com/chamelaion-lipsync/worker/internal/localcluster"
	"github.com/chamelaion-lipsync/worker/internal/localpg"
	"github.com/chamelaion-lipsync/worker/internal/localtemporal"
	"github.com/chamelaion-lipsync/worker/lipsync"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "localstack: %v\n", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	dir          string
	temporalPort int
	uiPort       int
	emulatorAddr string
	codecAddr    string
	metricsAddr  string
	demo         bool
	cluster      bool
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("localstack", flag.ContinueOnError)
	fs.StringVar(&o.dir, "dir", ".stack", "folder for the stack's binaries, data and logs (kept between runs)")
	fs.IntVar(&o.temporalPort, "temporal-port", 7233, "Temporal frontend port")
	fs.IntVar(&o.uiPort, "ui-port", 8233, "Temporal Web UI port")
	fs.StringVar(&o.emulatorAddr, "emulator-addr", "127.0.0.1:8090", "emulator listen address")
	fs.StringVar(&o.codecAddr, "codec-addr", "127.0.0.1:8081", "codec server listen address")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "127.0.0.1:9090", "the worker's /metrics and /healthz address")
	fs.BoolVar(&o.demo, "demo", true, "submit the demo jobs")
	fs.BoolVar(&o.cluster, "cluster", false, "run Temporal as production does (PostgreSQL, one process per service) instead of the dev server")
	noDemo := fs.Bool("no-demo", false, "do not submit the demo jobs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *noDemo {
		o.demo = false
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	// The stack's folder stays traversable (the postgres user reaches its
	// data under it when the stack runs as root); the logs hold job ids,
	// request ids and server messages: the stack's user's only.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(dir, "logs"), 0o700); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	step(out, "building the worker, starter and emulator")
	bin := filepath.Join(dir, "bin")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin+"/", "./worker", "./starter", "./cmd/emulator")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w", err)
	}

	step(out, "starting PostgreSQL (data in %s)", filepath.Join(dir, "pg"))
	pg, err := localpg.Start(ctx, localpg.Options{Dir: filepath.Join(dir, "pg"), Logger: logger})
	if err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	defer func() { _ = pg.Stop(context.Background()) }()
	dbURL, err := pg.CreateDatabase(ctx, "lipsync")
	if err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}

	keys, payloadCodec, err := codecKeys(filepath.Join(dir, "codec.keys"))
	if err != nil {
		return err
	}
	codecURL := "http://" + o.codecAddr
	if host, _, err := net.SplitHostPort(o.codecAddr); err != nil || !chamelaion.IsLoopback(host) {
		return fmt.Errorf("--codec-addr must be a loopback address such as 127.0.0.1:8081: the stack's codec server decodes without a token")
	}
	step(out, "starting the codec server on %s (histories are encrypted; the Web UI decrypts through it)", codecURL)
	codecLn, err := net.Listen("tcp", o.codecAddr)
	if err != nil {
		return fmt.Errorf("codec server: %w", err)
	}
	uiOrigins := []string{fmt.Sprintf("http://127.0.0.1:%d", o.uiPort), fmt.Sprintf("http://localhost:%d", o.uiPort)}
	// On the operator's machine only: decode without a token for the
	// local Web UI (which has no token to pass), never encode; the Host
	// and Origin checks keep other web pages out.
	codecHandler, err := codec.HTTPHandler(payloadCodec, codec.HTTPOptions{
		InsecureNoAuth: true, Origins: uiOrigins, Hosts: codec.DefaultHosts(codecLn.Addr().String()),
	})
	if err != nil {
		codecLn.Close()
		return fmt.Errorf("codec server: %w", err)
	}
	codecSrv := &http.Server{Handler: codecHandler, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	go func() { _ = codecSrv.Serve(codecLn) }()
	defer codecSrv.Close()

	tsrv, err := startTemporal(ctx, out, o, dir, pg, codecURL, logger)
	if err != nil {
		return fmt.Errorf("Temporal: %w", err)
	}
	defer tsrv.stop()

	var procs processes
	defer procs.stopAll()

	baseURL := os.Getenv("CHAMELAION_BASE_URL")
	apiKey := os.Getenv("CHAMELAION_API_KEY")
	realAPI := baseURL != "" && apiKey != ""
	if !realAPI {
		step(out, "starting the Chamelaion emulator on %s", o.emulatorAddr)
		baseURL = "http://" + o.emulatorAddr + "/api"
		apiKey = "emulator-key"
		if err := procs.start(ctx, filepath.Join(bin, "emulator"), nil, filepath.Join(dir, "logs", "emulator.log"), "emulator listening on",
			"--addr", o.emulatorAddr, "--api-key", apiKey+"=local-demo", "--queued-for", "3s", "--processing-for", "8s"); err != nil {
			return err
		}
	} else {
		step(out, "using the real API at %s", baseURL)
	}

	step(out, "starting the worker")
	workerEnv := []string{
		"CHAMELAION_BASE_URL=" + baseURL,
		"CHAMELAION_API_KEY=" + apiKey,
		"DATABASE_URL=" + dbURL,
		"TEMPORAL_ADDRESS=" + tsrv.Address,
		"TEMPORAL_WEB_UI_URL=" + tsrv.UIURL,
		"LOG_FORMAT=text",
		"PAYLOAD_ENCRYPTION_KEYS=" + keys,
		"METRICS_ADDR=" + o.metricsAddr,
	}
	if !realAPI {
		workerEnv = append(workerEnv, "POLL_INITIAL_INTERVAL=2s", "POLL_MAX_INTERVAL=10s", "JOB_STUCK_AFTER=20s")
	}
	if err := procs.start(ctx, filepath.Join(bin, "worker"), workerEnv, filepath.Join(dir, "logs", "worker.log"), "worker started"); err != nil {
		return err
	}

	fmt.Fprintf(out, `
The stack is running. Ctrl-C stops everything.
  Temporal Web UI   %s/namespaces/default/workflows
  Temporal address  %s   (%s)
  PostgreSQL        %s   (PGPASSWORD=$(cat %s) psql "%s")
  Chamelaion API    %s
  Codec server      %s   (payloads are encrypted; keys in %s)
  Worker metrics    http://%s/metrics   (alive: /livez, ready: /readyz)
  Logs              %s
  Submit a job      PAYLOAD_ENCRYPTION_KEYS=$(cat %s) TEMPORAL_ADDRESS=%s %s submit --wait --video-url https://example.com/v.mp4 --audio-url https://example.com/a.wav

`, tsrv.UIURL, tsrv.Address, tsrv.about, pg.RedactedURL("lipsync"), pg.PasswordFile(), pg.RedactedURL("lipsync"), baseURL, codecURL, filepath.Join(dir, "codec.keys"), o.metricsAddr, filepath.Join(dir, "logs"),
		filepath.Join(dir, "codec.keys"), tsrv.Address, filepath.Join(bin, "starter"))

	if o.demo && !realAPI {
		if err := demo(ctx, out, tsrv.Address, "http://"+o.emulatorAddr, tsrv.UIURL, payloadCodec); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("demo: %w", err)
		}
	}
	<-ctx.Done()
	step(out, "stopping")
	return nil
}

// temporalServer is the stack's Temporal: the dev server or the cluster.
type temporalServer struct {
	// Address is the frontend's host:port; UIURL the Web UI's base URL.
	Address, UIURL string
	// about says which Temporal this is.
	about string
	stop  func()
}

// startTemporal starts the dev server, or with --cluster the cluster on the
// stack's PostgreSQL, each with the Web UI pointed at the codec server.
func startTemporal(ctx context.Context, out io.Writer, o options, dir string, pg *localpg.Cluster, codecURL string, logger *slog.Logger) (*temporalServer, error) {
	if o.cluster {
		step(out, "starting the Temporal cluster: PostgreSQL persistence, one process per service, and the Web UI (first run builds the pinned server: about 5 minutes)")
		p, err := localcluster.PostgresFromURL(pg.URL("postgres"))
		if err != nil {
			return nil, err
		}
		c, err := localcluster.Start(ctx, localcluster.Options{
			Postgres:        p,
			Dir:             filepath.Join(dir, "cluster"),
			Port:            o.temporalPort,
			UIPort:          o.uiPort,
			UICodecEndpoint: codecURL,
			Logger:          logger,
		})
		if err != nil {
			return nil, err
		}
		about := fmt.Sprintf("server %s on PostgreSQL, history/matching/frontend/worker in their own processes; logs in %s",
			localcluster.ServerVersion, filepath.Join(c.Dir(), "logs"))
		return &temporalServer{Address: c.Address, UIURL: c.UIURL, about: about, stop: func() { _ = c.Stop() }}, nil
	}
	step(out, "starting the Temporal dev server with its Web UI (first run builds the pinned CLI: about 3 minutes)")
	if err := privateLog(filepath.Join(dir, "logs", "temporal.log")); err != nil {
		return nil, err
	}
	tsrv, err := localtemporal.Start(ctx, localtemporal.Options{
		DBFile:          filepath.Join(dir, "temporal.db"),
		Port:            o.temporalPort,
		UIPort:          o.uiPort,
		UICodecEndpoint: codecURL,
		LogFile:         filepath.Join(dir, "logs", "temporal.log"),
	})
	if err != nil {
		return nil, err
	}
	about := "the dev server, CLI " + localtemporal.CLIVersion + "; make run CLUSTER=1 runs the production server"
	return &temporalServer{Address: tsrv.Address, UIURL: tsrv.UIURL, about: about, stop: func() { _ = tsrv.Stop() }}, nil
}

// codecKeys reads the stack's payload key from path, creating a random one
// the first time.
func codecKeys(path string) (string, *codec.Codec, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return "", nil, err
		}
		b = []byte("local:" + base64.StdEncoding.EncodeToString(raw))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return "", nil, err
		}
	} else if err != nil {
		return "", nil, err
	}
	keys := strings.TrimSpace(string(b))
	c, err := codec.ParseKeys(keys, "")
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, c, nil
}

func step(out io.Writer, format string, args ...any) {
	fmt.Fprintf(out, "==> "+format+"\n", args...)
}

// demoJob is one job of the demo batch.
type demoJob struct {
	suffix   string
	scenario string
	expect   string
}

// demo submits a small batch with a mix of outcomes and prints each as it
// ends.
func demo(ctx context.Context, out io.Writer, address, emulatorURL, uiURL string, pc *codec.Codec) error {
	run := time.Now().UTC().Format("20060102-150405")
	jobs := []demoJob{
		{"ok-1", "", "completes"},
		{"ok-2", "", "completes"},
		{"rate-limited", `"submit_faults":[{"status":429,"headers":{"Retry-After":"5"}}]`, "completes after a 429 with Retry-After: 5"},
		{"unavailable", `"submit_faults":[503,503]`, "completes after two 503s"},
		{"lost-answer", `"lose_responses":1`, "submission answer lost; the retry adopts the request instead of submitting twice"},
		{"quota", `"submit_faults":[412]`, "escalated: token limit reached (412)"},
		{"bad-media", `"outcome":"failed","error_message":"video URL is not accessible"`, "escalated: the vendor failed the job"},
		{"stuck", `"queued_for":"45s"`, "queued past JOB_STUCK_AFTER (20s): one stuck notification, then completes"},
	}
	var scen []string
	for _, j := range jobs {
		if j.scenario != "" {
			scen = append(scen, fmt.Sprintf(`{"reference_id":"demo-%s-%s",%s}`, run, j.suffix, j.scenario))
		}
	}
	if err := putScenarios(ctx, emulatorURL, "["+strings.Join(scen, ",")+"]"); err != nil {
		return err
	}
	tc, err := client.Dial(client.Options{
		HostPort:         address,
		Logger:           tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
		DataConverter:    pc.DataConverter(),
		FailureConverter: pc.FailureConverter(),
	})
	if err != nil {
		return fmt.Errorf("connect to Temporal: %w", err)
	}
	defer tc.Close()
	c := lipsync.NewClient(tc, "lipsync")
	fmt.Fprintf(out, "==> demo batch %s: %d jobs. Follow them in the Web UI: %s/namespaces/default/workflows?query=%s\n",
		run, len(jobs), uiURL, url.QueryEscape(fmt.Sprintf(`WorkflowId STARTS_WITH "lipsync-demo-%s"`, run)))
	fmt.Fprintf(out, "    stuck jobs: %s/namespaces/default/workflows?query=%s\n", uiURL,
		url.QueryEscape(`ExecutionStatus = "Running" AND LipsyncStatus = "queued"`))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, j := range jobs {
		ref := fmt.Sprintf("demo-%s-%s", run, j.suffix)
		r, err := c.Submit(ctx, lipsync.Job{
			Video:       "https://media.example.com/demo/" + j.suffix + ".mp4?X-Amz-Signature=demo",
			Audio:       "https://media.example.com/demo/" + j.suffix + ".wav?X-Amz-Signature=demo",
			ReferenceID: ref,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "    submitted %-40s expect: %s\n", r.WorkflowID, j.expect)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := r.WaitUntilSettled(ctx)
			mu.Lock()
			defer mu.Unlock()
			var waiting *lipsync.WaitingForDecisionError
			switch esc, escalated := lipsync.EscalationOf(err); {
			case errors.As(err, &waiting):
				fmt.Fprintf(out, "    done      %-40s ESCALATED %s: %s; waiting for a human: starter resolve %s retry|abandon\n",
					r.WorkflowID, waiting.Status.Escalated, waiting.Status.LastError, r.ReferenceID)
			case err == nil:
				fmt.Fprintf(out, "    done      %-40s completed after %d status checks, %s\n", r.WorkflowID, res.StatusChecks, res.Duration.Round(time.Second))
			case escalated:
				fmt.Fprintf(out, "    done      %-40s ESCALATED %s: %s\n", r.WorkflowID, esc.Reason, esc.Message)
			case ctx.Err() == nil:
				fmt.Fprintf(out, "    done      %-40s error: %v\n", r.WorkflowID, err)
			}
		}()
	}
	wg.Wait()
	if ctx.Err() == nil {
		fmt.Fprintf(out, "==> demo batch finished; escalations are in the escalations table. The stack keeps running until Ctrl-C.\n")
	}
	return nil
}
