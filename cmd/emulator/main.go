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
	keys := fs.String("api-key", env("EMULATOR_API_KEYS", "emulator-key"), "accepted tokens, comma-separated, each token[=name] (EMULATOR_API_KEYS)")
	rate := fs.String("rate-limit", env("EMULATOR_RATE_LIMIT_PER_MINUTE", "60"), "generation requests per rolling minute per token; -1 disables (EMULATOR_RATE_LIMIT_PER_MINUTE)")
	quota := fs.String("token-quota", env("EMULATOR_TOKEN_QUOTA", "0"), "jobs a token may create before 412 token limit reached; 0 = unlimited (EMULATOR_TOKEN_QUOTA)")
	queued := fs.String("queued-for", env("EMULATOR_QUEUED_FOR", "2s"), "how long a job stays queued (EMULATOR_QUEUED_FOR)")
	processing := fs.String("processing-for", env("EMULATOR_PROCESSING_FOR", "5s"), "how long a job stays processing (EMULATOR_PROCESSING_FOR)")
	faultRate := fs.String("fault-rate", env("EMULATOR_FAULT_RATE", "0"), "share of API requests answered with a random fault, 0..1 (EMULATOR_FAULT_RATE)")
	faultStatuses := fs.String("fault-statuses", env("EMULATOR_FAULT_STATUSES", "429,500,503,504"), "statuses random faults draw from (EMULATOR_FAULT_STATUSES)")
	slowRate := fs.String("slow-rate", env("EMULATOR_SLOW_RATE", "0"), "share of API requests delayed by --slow-delay, 0..1 (EMULATOR_SLOW_RATE)")
	slowDelay := fs.String("slow-delay", env("EMULATOR_SLOW_DELAY", "3s"), "delay of slow requests (EMULATOR_SLOW_DELAY)")
	seed := fs.String("fault-seed", env("EMULATOR_FAULT_SEED", "1"), "seed of the random faults (EMULATOR_FAULT_SEED)")
	scenarios := fs.String("scenarios", env("EMULATOR_SCENARIOS", ""), "JSON file with an array of per-job scenarios to preload (EMULATOR_SCENARIOS)")
	stateFile := fs.String("state-file", env("EMULATOR_STATE_FILE", ""), "keep the jobs in this file across restarts: loaded at start, saved on SIGINT/SIGTERM (EMULATOR_STATE_FILE)")
	logLevel := fs.String("log-level", env("EMULATOR_LOG_LEVEL", "info"), "debug, info, warn or error (EMULATOR_LOG_LEVEL)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: emulator [flags]\n\nServes an emulator of the Chamelaion lip-sync API under /api, and its control\nendpoints under /_emulator (scenarios, stats, reset). See package emulator's\ndocumentation for scenario examples.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var cfg emulator.Config
	var err error
	cfg.APIKeys = map[string]string{}
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
