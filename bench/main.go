// Command bench measures the worker against the alternatives a user would
// otherwise write, side by side on the emulator with scaled time: the
// vendor documentation's polling loop, Temporal's periodic (timer) and
// infrequent (activity retry) polling samples, and the worker as shipped.
// It starts every part itself (PostgreSQL, the Temporal dev server, the
// emulator, the worker processes), prints a Markdown report and writes it,
// with a chart of status calls per job against detection latency, under
// docs/.
//
//	go run ./bench                      # the full run (make bench)
//	go run ./bench --quick              # a small run, to try it out
//
// The same binary runs the comparison strategies as separate processes
// (so that each one's CPU time and memory are its own):
//
//	bench strategy-worker   Temporal worker of the two sample strategies
//	bench naive             the vendor documentation's loop
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/chamelaion-lipsync/worker/chamelaion"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var err error
	mode := ""
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "strategy-worker":
		err = strategyWorker(ctx)
	case "naive":
		err = naiveMain(ctx, os.Args[2:])
	default:
		err = benchMain(ctx, log, os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// Environment of the strategy processes.
const (
	envBaseURL   = "BENCH_BASE_URL"
	envTemporal  = "BENCH_TEMPORAL_ADDRESS"
	envTaskQueue = "BENCH_TASK_QUEUE"
	envAccount   = "BENCH_ACCOUNT"
)

// apiKey is the emulator token of a benchmark account (the emulator maps
// it back to the account's name).
func apiKey(account string) string { return "bench-key-" + account }

func apiClient(account string) (*chamelaion.Client, error) {
	return chamelaion.New(chamelaion.Options{BaseURL: os.Getenv(envBaseURL), APIKey: apiKey(account), Timeout: 10 * time.Second})
}

// strategyWorker hosts the two Temporal sample strategies for one account.
func strategyWorker(ctx context.Context) error {
	api, err := apiClient(os.Getenv(envAccount))
	if err != nil {
		return err
	}
	tc, err := client.Dial(client.Options{HostPort: os.Getenv(envTemporal), Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return fmt.Errorf("connect to Temporal: %w", err)
	}
	defer tc.Close()
	w := worker.New(tc, os.Getenv(envTaskQueue), worker.Options{})
	w.RegisterWorkflowWithOptions(TimerPolling, workflow.RegisterOptions{Name: timerWorkflowName})
	w.RegisterWorkflowWithOptions(RetryPolling, workflow.RegisterOptions{Name: retryWorkflowName})
	w.RegisterActivity(&PollActivities{API: api})
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Stop()
	fmt.Println("strategy worker started")
	<-ctx.Done()
	return nil
}

// naiveMain runs the vendor documentation's loop and prints its result as
// one JSON line prefixed "RESULT ".
func naiveMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("naive", flag.ContinueOnError)
	var o naiveOptions
	fs.IntVar(&o.Jobs, "jobs", 100, "jobs to run")
	fs.StringVar(&o.Prefix, "prefix", "naive", "reference_id prefix")
	fs.DurationVar(&o.Arrivals, "arrivals", 0, "start the jobs evenly over this window")
	fs.DurationVar(&o.Interval, "interval", time.Second, "sleep between status checks")
	fs.DurationVar(&o.Backoff, "backoff", time.Second, "first wait after a 429 (then 2x, 4x)")
	fs.DurationVar(&o.Deadline, "deadline", 10*time.Minute, "give up on everything after this")
	if err := fs.Parse(args); err != nil {
		return err
	}
	api, err := apiClient(os.Getenv(envAccount))
	if err != nil {
		return err
	}
	fmt.Println("naive started")
	res := runNaive(ctx, api, o)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		res.CPUSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		res.MaxRSS = ru.Maxrss << 10
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Println("RESULT " + string(b))
	return nil
}

// errUsage reports a bad flag.
var errUsage = errors.New("usage: go run ./bench [--quick] [--out FILE] [--svg FILE]")
