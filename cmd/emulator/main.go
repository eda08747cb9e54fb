// Command emulator serves the Chamelaion API emulator (package emulator) on
// a local address, for the local stack, demos and integration tests.
//
//	emulator --help
//
// Every flag has an environment variable fallback (EMULATOR_*). It prints
// "emulator listening on http://ADDR/api" once ready and stops cleanly on
// SIGINT or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chamelaion-lipsync/worker/emulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "emulator: %v\n", err)
		os.Exit(2)
	}
}

// env returns the variable's value or def.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", env("EMULATOR_ADDR", "127.0.0.1:8090"), "listen address (EMULATOR_ADDR)")
	// The tokens are secrets: --help never shows them (the default is
	// read after parsing).
	keys := fs.String("api-key", "", "accepted tokens, comma-separated, each token[=name] (EMULATOR_API_KEYS; default emulator-key)")
	rate := fs.String("rate-limit", env("EMULATOR_RATE_LIMIT_PER_MINUTE", "60"), "generation requests per rolling minute per token; -1 disables (EMULATOR_RATE_LIMIT_PER_MINUTE)")
	quota := fs.String("token-quota", env("EMULATOR_TOKEN_QUOTA", "0"), "jobs a token may create before 412 token limit reached; 0 = unlimited (EMULATOR_TOKEN_QUOTA)")
	queued := fs.String("queued-for", env("EMULATOR_QUEUED_FOR", "2s"), "how long a job stays queued; ignored with --durations (EMULATOR_QUEUED_FOR)")
	processing := fs.String("processing-for", env("EMULATOR_PROCESSING_FOR", "5s"), "how long a job stays processing; ignored with --durations (EMULATOR_PROCESSING_FOR)")
	durations := fs.String("durations", env("EMULATOR_DURATIONS", ""), "draw each job's queue and processing times from a seeded model instead of\n"+
		"--queued-for and --processing-for: comma-separated key=value, keys\n"+
		"queue-median, processing-median (required; each time is median·exp(sigma·Z), Z standard normal),\n"+
		"queue-sigma, processing-sigma (>= 0; default 0 = always the median),\n"+
		"max (cap on queue+processing, the queue time gives way first; default 0 = no cap),\n"+
		"scale (multiplies the drawn times after the cap; 0.05 runs 20x faster; default 1),\n"+
		"seed (default 0); the n-th job of every account gets the n-th draw. Example:\n"+
		durationsExample+" (EMULATOR_DURATIONS)")
	tsPrecision := fs.String("timestamp-precision", env("EMULATOR_TIMESTAMP_PRECISION", "1s"), "precision of the API's created_at, started_at and finished_at: 1s or more writes\n"+
		"whole seconds, as the vendor does; below 1s (e.g. 1ms) truncates to it and writes\n"+
		"fractional seconds (EMULATOR_TIMESTAMP_PRECISION)")
	faultRate := fs.String("fault-rate", env("EMULATOR_FAULT_RATE", "0"), "share of API requests answered with a random fault, 0..1 (EMULATOR_FAULT_RATE)")
	faultStatuses := fs.String("fault-statuses", env("EMULATOR_FAULT_STATUSES", "429,500,503,504"), "statuses random faults draw from (EMULATOR_FAULT_STATUSES)")
	slowRate := fs.String("slow-rate", env("EMULATOR_SLOW_RATE", "0"), "share of API requests delayed by --slow-delay, 0..1 (EMULATOR_SLOW_RATE)")
	slowDelay := fs.String("slow-delay", env("EMULATOR_SLOW_DELAY", "3s"), "delay of slow requests (EMULATOR_SLOW_DELAY)")
	seed := fs.String("fault-seed", env("EMULATOR_FAULT_SEED", "1"), "seed of the random faults (EMULATOR_FAULT_SEED)")
	scenarios := fs.String("scenarios", env("EMULATOR_SCENARIOS", ""), "JSON file with an array of per-job scenarios to preload (EMULATOR_SCENARIOS)")
	stateFile := fs.String("state-file", env("EMULATOR_STATE_FILE", ""), "keep the jobs in this file across restarts: loaded at start, saved on SIGINT/SIGTERM (EMULATOR_STATE_FILE)")
	logLevel := fs.String("log-level", env("EMULATOR_LOG_LEVEL", "info"), "debug, info, warn or error (EMULATOR_LOG_LEVEL)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: emulator [flags]\n\nServes an emulator of the Chamelaion lip-sync API under /api, and its control\nendpoints under /_emulator (scenarios, stats, jobs, reset). See package emulator's\ndocumentation for scenario examples.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var cfg emulator.Config
	var err error
	cfg.APIKeys = map[string]string{}
	if *keys == "" {
		*keys = env("EMULATOR_API_KEYS", "emulator-key")
	}
	for _, item := range strings.Split(*keys, ",") {
		tok, name, _ := strings.Cut(strings.TrimSpace(item), "=")
		if tok == "" {
			continue
		}
		if name == "" {
			name = "emulator"
		}
		cfg.APIKeys[tok] = name
	}
	parsers := []struct {
		flag string
		err  error
	}{}
	check := func(flag string, err error) {
		if err != nil {
			parsers = append(parsers, struct {
				flag string
				err  error
			}{flag, err})
		}
	}
	cfg.RateLimitPerMinute, err = strconv.Atoi(*rate)
	check("--rate-limit", err)
	cfg.TokenQuota, err = strconv.Atoi(*quota)
	check("--token-quota", err)
	cfg.QueuedFor, err = time.ParseDuration(*queued)
	check("--queued-for", err)
	cfg.ProcessingFor, err = time.ParseDuration(*processing)
	check("--processing-for", err)
	cfg.Durations, err = parseDurations(*durations)
	check("--durations", err)
	cfg.TimestampPrecision, err = time.ParseDuration(*tsPrecision)
	check("--timestamp-precision", err)
	cfg.Faults.Rate, err = strconv.ParseFloat(*faultRate, 64)
	check("--fault-rate", err)
	cfg.Faults.SlowRate, err = strconv.ParseFloat(*slowRate, 64)
	check("--slow-rate", err)
	cfg.Faults.SlowDelay, err = time.ParseDuration(*slowDelay)
	check("--slow-delay", err)
	cfg.Faults.Seed, err = strconv.ParseInt(*seed, 10, 64)
	check("--fault-seed", err)
	for _, s := range strings.Split(*faultStatuses, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		check("--fault-statuses", err)
		cfg.Faults.Statuses = append(cfg.Faults.Statuses, n)
	}
	var level slog.Level
	check("--log-level", level.UnmarshalText([]byte(*logLevel)))
	if len(parsers) > 0 {
		return fmt.Errorf("%s: %v", parsers[0].flag, parsers[0].err)
	}
	if cfg.QueuedFor == 0 {
		cfg.QueuedFor = time.Nanosecond
	}
	if cfg.ProcessingFor == 0 {
		cfg.ProcessingFor = time.Nanosecond
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	emu, err := emulator.New(cfg)
	if err != nil {
		return err
	}
	if *scenarios != "" {
		b, err := os.ReadFile(*scenarios)
		if err != nil {
			return fmt.Errorf("--scenarios: %w", err)
		}
		var list []emulator.Scenario
		if err := json.Unmarshal(b, &list); err != nil {
			return fmt.Errorf("--scenarios %s: %w", *scenarios, err)
		}
		for _, s := range list {
			if err := emu.SetScenario(s); err != nil {
				return fmt.Errorf("--scenarios %s: %w", *scenarios, err)
			}
		}
	}
	if *stateFile != "" {
		if err := emu.LoadState(*stateFile); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	srv := &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "emulator listening on http://%s/api\n", ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	if *stateFile != "" {
		return emu.SaveState(*stateFile)
	}
	return nil
}

// durationsExample is a --durations value: a real-looking workload run 20
// times faster than real time.
const durationsExample = "queue-median=75s,queue-sigma=1.3,processing-median=45s,processing-sigma=0.3,max=30m,scale=0.05,seed=1"

// parseDurations reads the --durations flag: comma-separated key=value
// pairs (see the flag's help). An empty value means no model (nil). Errors
// name the offending key.
func parseDurations(s string) (*emulator.DurationModel, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var m emulator.DurationModel
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		key, value, ok := strings.Cut(item, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok {
			return nil, fmt.Errorf("%q: want key=value", item)
		}
		if seen[key] {
			return nil, fmt.Errorf("%s: given twice", key)
		}
		seen[key] = true
		var err error
		switch key {
		case "queue-median":
			m.QueueMedian, err = parsePositiveDuration(value)
		case "processing-median":
			m.ProcessingMedian, err = parsePositiveDuration(value)
		case "max":
			m.Max, err = time.ParseDuration(value)
			if err == nil && m.Max < 0 {
				err = fmt.Errorf("%s is negative", value)
			}
		case "queue-sigma":
			m.QueueSigma, err = parseNonNegativeFloat(value)
		case "processing-sigma":
			m.ProcessingSigma, err = parseNonNegativeFloat(value)
		case "scale":
			m.Scale, err = parseNonNegativeFloat(value)
		case "seed":
			m.Seed, err = strconv.ParseInt(value, 10, 64)
		default:
			return nil, fmt.Errorf("unknown key %q (want queue-median, queue-sigma, processing-median, processing-sigma, max, scale or seed)", key)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	for _, key := range []string{"queue-median", "processing-median"} {
		if !seen[key] {
			return nil, fmt.Errorf("%s is required", key)
		}
	}
	return &m, nil
}

// parsePositiveDuration parses a duration that must be > 0.
func parsePositiveDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s is not positive", s)
	}
	return d, nil
}

// parseNonNegativeFloat parses a finite number >= 0.
func parseNonNegativeFloat(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	if !(f >= 0) || math.IsInf(f, 1) {
		return 0, fmt.Errorf("%s is not a finite number >= 0", s)
	}
	return f, nil
}
