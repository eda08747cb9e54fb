// Command worker runs the lip-sync Temporal worker: it connects to Temporal
// and PostgreSQL, applies the database migrations, and executes the
// lip-sync workflow and its activities until SIGINT or SIGTERM.
//
//	worker           run the worker
//	worker migrate   apply the database migrations and exit
//
// Configuration comes from the environment (see the README). Exit status: 0
// clean stop; 1 a runtime failure; 2 bad configuration or usage, reported
// before anything connects anywhere.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/config"
	"github.com/chamelaion-lipsync/worker/internal/tclient"
	"github.com/chamelaion-lipsync/worker/metrics"
	"github.com/chamelaion-lipsync/worker/store"
	"github.com/chamelaion-lipsync/worker/workflows"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// errConfig marks configuration and usage errors (exit status 2).
var errConfig = errors.New("configuration")

func run(ctx context.Context, args []string, stderr io.Writer) int {
	err := runE(ctx, args, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errConfig):
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 1
	}
}

func runE(ctx context.Context, args []string, stderr io.Writer) error {
	command := "run"
	if len(args) > 0 {
		command = args[0]
	}
	switch command {
	case "run", "migrate":
	case "-h", "--help", "help":
		fmt.Fprintln(stderr, "usage: worker [run|migrate]   (configuration from the environment; see README)")
		return nil
	default:
		return fmt.Errorf("%w: unknown command %q (want run or migrate)", errConfig, command)
	}
	cfg, err := config.Load()
	if err == nil {
		err = cfg.ValidateWorker()
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errConfig, err)
	}
	logger := newLogger(cfg.Log, stderr)

	st, err := store.Open(ctx, cfg.Database.URL)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer st.Close()
	from, to, err := st.Migrate(ctx)
	if err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	logger.Info("database migrated", "from_version", from, "to_version", to)
	if command == "migrate" {
		return nil
	}
	return runWorker(ctx, cfg, logger, st)
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// runWorker runs the three workers (workflows and database activities on
// the main task queue; rate-limited submissions and status checks on their
// own queues) until ctx ends.
func runWorker(ctx context.Context, cfg config.Config, logger *slog.Logger, st *store.Store) error {
	m, err := metrics.New()
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	defer m.Close()
	api, err := chamelaion.New(chamelaion.Options{
		BaseURL:    cfg.API.BaseURL,
		APIKey:     cfg.API.Key,
		AuthScheme: chamelaion.AuthScheme(cfg.API.AuthScheme),
		Timeout:    cfg.API.RequestTimeout,
		Observe:    m.ObserveAPIRequest,
		// Checked by config too; the client refuses on its own as well.
		AllowInsecureHTTP: cfg.API.AllowHTTP,
	})
	if err != nil {
		return fmt.Errorf("%w: API client: %v", errConfig, err)
	}
	tc, err := tclient.Dial(ctx, cfg, logger, m.TemporalHandler())
	if err != nil {
		return err
	}
	defer tc.Close()
	if cfg.Worker.MetricsAddr != "off" {
		stop, err := serveOps(cfg.Worker.MetricsAddr, m, tc, st, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	if cfg.Worker.ProfileAddr != "off" {
		stop, err := serveProfiles(cfg.Worker.ProfileAddr, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	if err := ensureSearchAttributes(ctx, tc, cfg.Temporal.Namespace, logger); err != nil {
		return err
	}

	warnAtStartUp(cfg, logger)
	// Memory grows with the workflows cached (about 53 KB each with a
	// job on a timer); one evicted is replayed from history when it runs.
	worker.SetStickyWorkflowCacheSize(cfg.Worker.WorkflowCacheSize)

	acts := &activities.Activities{
		API:        api,
		Media:      activities.MediaRoot{Dir: cfg.Worker.MediaRoot, MaxBytes: cfg.Worker.MediaMaxBytes},
		Store:      st,
		Logger:     logger,
		WebhookURL: cfg.Notify.WebhookURL,
		HTTPClient: &http.Client{Timeout: cfg.Notify.Timeout},
		WebUIURL:   cfg.Temporal.WebUIURL,
		Namespace:  cfg.Temporal.Namespace,
		Metrics:    m,
		Workflows:  activities.TemporalInspector{Client: tc},
		// A retried submission looks for the earlier attempt's request only
		// once that request can no longer be in flight.
		SubmitSettle: cfg.API.RequestTimeout,
		// The task queue paces submissions; the send log makes sure no
		// rolling minute holds more than the budget however late an
		// activity sends after its dispatch.
		SendBudget: cfg.API.SendBudgetPerMinute(),
	}
	wfs := &workflows.Workflows{Defaults: workflows.SettingsFromConfig(cfg)}

	mainWorker := worker.New(tc, cfg.Temporal.TaskQueue, worker.Options{
		WorkerStopTimeout: cfg.Worker.ShutdownTimeout,
	})
	mainWorker.RegisterWorkflowWithOptions(wfs.LipSync, workflow.RegisterOptions{Name: workflows.WorkflowName})
	mainWorker.RegisterWorkflowWithOptions(wfs.Batch, workflow.RegisterOptions{Name: workflows.BatchWorkflowName})
	mainWorker.RegisterActivity(acts.RecordJob)
	// Status checks of runs recorded before the status queue existed are
	// still scheduled here.
	mainWorker.RegisterActivity(acts.CheckStatus)
	mainWorker.RegisterActivity(acts.Escalate)
	mainWorker.RegisterActivity(acts.NotifyHuman)
	mainWorker.RegisterActivity(acts.RecordDecision)
	mainWorker.RegisterActivity(acts.RecordNotSubmitted)
	mainWorker.RegisterActivity(acts.LoadBatchJobs) // batches that began before LoadBatchPage
	mainWorker.RegisterActivity(acts.LoadBatchPage)
	mainWorker.RegisterActivity(acts.ReconcileJobs)
	mainWorker.RegisterActivity(acts.EndJob)
	mainWorker.RegisterActivity(acts.DescribeWorkflow)
	mainWorker.RegisterActivity(acts.ActiveHolds)
	mainWorker.RegisterActivity(acts.PlanPolls)
	// What the API activities read but PostgreSQL could not record.
	mainWorker.RegisterActivity(acts.RecordProgress)

	// Every generation call goes through the submit queue, every status
	// read through the status queue; the server enforces each queue's
	// activity rate across all workers polling it, so more workers never
	// mean more requests.
	submitQueue := workflows.SubmitTaskQueue(cfg.Temporal.TaskQueue)
	submit := worker.New(tc, submitQueue, worker.Options{
		DisableWorkflowWorker:        true,
		TaskQueueActivitiesPerSecond: cfg.API.SubmitRatePerSecond(),
		WorkerStopTimeout:            cfg.Worker.ShutdownTimeout,
	})
	submit.RegisterActivity(acts.Submit)
	statusQueue := workflows.StatusTaskQueue(cfg.Temporal.TaskQueue)
	status := worker.New(tc, statusQueue, worker.Options{
		DisableWorkflowWorker:        true,
		TaskQueueActivitiesPerSecond: float64(cfg.API.StatusRateLimitPerMinute) / 60,
		WorkerStopTimeout:            cfg.Worker.ShutdownTimeout,
	})
	status.RegisterActivity(acts.CheckStatus)

	for _, w := range []struct {
		queue string
		w     worker.Worker
	}{{cfg.Temporal.TaskQueue, mainWorker}, {submitQueue, submit}, {statusQueue, status}} {
		if err := w.w.Start(); err != nil {
			return fmt.Errorf("start worker on %s: %w", w.queue, err)
		}
		defer w.w.Stop()
	}
	logger.Info("worker started", "config", cfg.String(), "submit_task_queue", submitQueue,
		"submit_rate_per_second", cfg.API.SubmitRatePerSecond(), "status_task_queue", statusQueue)
	<-ctx.Done()
	logger.Info("stopping: in-flight activities get the shutdown timeout to finish", "timeout", cfg.Worker.ShutdownTimeout)
	return nil
}
