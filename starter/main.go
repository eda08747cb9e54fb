// Command starter hands lip-sync jobs to the worker through Temporal.
//
//	starter submit --video-url URL --audio-url URL [--reference-id ID]
//	               [--disable-active-speaker-detection] [--wait]
//	starter status --reference-id ID
//	starter resolve <reference-id> retry|resume|abandon
//	starter batch --file jobs.csv|jobs.jsonl [--batch-id ID] [--concurrency N] [--wait] [--skip-invalid]
//	starter batch-status <batch-id>
//	starter batch-resolve <batch-id> resume|abort
//	starter holds [release <owner-workflow-id>]
//
// It reads TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and TEMPORAL_TASK_QUEUE from
// the environment. Exit status: 0 success; 1 the job ended escalated or
// Temporal failed; 2 bad usage or configuration.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/chamelaion-lipsync/worker/config"
	"github.com/chamelaion-lipsync/worker/internal/tclient"
	"github.com/chamelaion-lipsync/worker/lipsync"
	"github.com/chamelaion-lipsync/worker/workflows"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage:
  starter submit --video-url URL --audio-url URL [--reference-id ID]
                 [--disable-active-speaker-detection] [--wait]
  starter submit --media-from FILE|- ...   (the URLs from a file or standard
                 input, out of sight of ps: lines video_url=URL, audio_url=URL)
  starter status --reference-id ID
  starter resolve <reference-id> retry|resume|abandon [--note TEXT] [--by NAME]
  starter batch --file jobs.csv|jobs.jsonl [--batch-id ID] [--concurrency N]
                [--max-pending N] [--wait] [--skip-invalid] [--results FILE]
  starter batch-status <batch-id>
  starter batch-resolve <batch-id> resume|abort [--note TEXT] [--by NAME]
  starter holds [release <owner-workflow-id> [--account NAME]]

Environment: TEMPORAL_ADDRESS (localhost:7233), TEMPORAL_NAMESPACE (default),
TEMPORAL_TASK_QUEUE (lipsync); DATABASE_URL for holds, and for batch-status
of a batch that has ended (how its jobs stand since).
`

// stdin is where --media-from - reads (a variable for the tests).
var stdin io.Reader = os.Stdin

// readMediaURLs reads "video_url=URL" and "audio_url=URL" lines from a
// file, or from standard input for "-". Its errors never repeat a value.
func readMediaURLs(from string) (video, audio string, err error) {
	var r io.Reader = stdin
	if from != "-" {
		f, err := os.Open(from)
		if err != nil {
			return "", "", err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 64<<10+1))
	if err != nil {
		return "", "", err
	}
	if len(b) > 64<<10 {
		return "", "", errors.New("more than 64 KiB")
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		switch name = strings.TrimSpace(name); {
		case !ok:
			return "", "", fmt.Errorf("line %d: want video_url=URL or audio_url=URL", i+1)
		case name == "video_url" && video == "":
			video = strings.TrimSpace(value)
		case name == "audio_url" && audio == "":
			audio = strings.TrimSpace(value)
		case name == "video_url" || name == "audio_url":
			return "", "", fmt.Errorf("line %d: %s given twice", i+1, name)
		default:
			return "", "", fmt.Errorf("line %d: unknown name (want video_url or audio_url)", i+1)
		}
	}
	if video == "" || audio == "" {
		return "", "", errors.New("want both video_url and audio_url")
	}
	return video, audio, nil
}

// errUsage marks errors of the command line (exit status 2).
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cfg, err := config.Load()
	if err == nil {
		err = cfg.ValidateStarter()
	}
	if err != nil {
		fmt.Fprintf(stderr, "starter: configuration: %v\n", err)
		return 2
	}
	var cmd func(context.Context, config.Config, []string, io.Writer, io.Writer) error
	switch args[0] {
	case "submit":
		cmd = submit
	case "status":
		cmd = status
	case "resolve":
		cmd = resolve
	case "batch":
		cmd = batch
	case "batch-status":
		cmd = batchStatus
	case "batch-resolve":
		cmd = batchResolve
	case "holds":
		cmd = holds
	default:
		fmt.Fprintf(stderr, "starter: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if args[0] == "submit" || args[0] == "batch" {
		warnClearHistories(cfg, stderr)
	}
	err = cmd(ctx, cfg, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "starter: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "starter: %v\n", err)
		return 1
	}
}

// warnClearHistories says, before jobs with media URLs are started, that
// their histories will hold the URLs in the clear (unless
// PAYLOAD_ENCRYPTION=off says that is intended).
func warnClearHistories(cfg config.Config, stderr io.Writer) {
	if w := cfg.ClearHistoriesWarning(); w != "" {
		fmt.Fprintf(stderr, "starter: warning: %s\n", w)
	}
}

func dial(ctx context.Context, cfg config.Config, stderr io.Writer) (client.Client, error) {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return tclient.Dial(ctx, cfg, logger, nil)
}

func submit(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var job lipsync.Job
	var wait bool
	fs.StringVar(&job.Video, "video-url", "", "video URL (http/https) or file:///absolute/path the worker uploads (required)")
	fs.StringVar(&job.Audio, "audio-url", "", "audio URL (http/https) or file:///absolute/path the worker uploads (required)")
	fs.StringVar(&job.ReferenceID, "reference-id", "", "your identifier of the job, unique per job (default: a random UUID)")
	fs.BoolVar(&job.DisableActiveSpeakerDetection, "disable-active-speaker-detection", false, "use the vendor's max-face mode")
	fs.StringVar(&job.BatchID, "batch-id", "", "group this job with others (optional)")
	fs.DurationVar(&job.Deadline, "deadline", 0, "override JOB_DEADLINE for this job (e.g. 2h)")
	fs.BoolVar(&wait, "wait", false, "wait for the job to end and print its result as JSON")
	mediaFrom := fs.String("media-from", "", "read the media URLs from this file, or from standard input with -, instead of the command line,\n"+
		"where ps shows pre-signed URLs (and their credentials) to every user for as long as the starter runs:\n"+
		"one line video_url=URL and one line audio_url=URL (# comments allowed); keep the file mode 0600")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: submit: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: submit: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *mediaFrom != "" {
		if job.Video != "" || job.Audio != "" {
			return fmt.Errorf("%w: submit: give the media URLs either with --media-from or as flags, not both", errUsage)
		}
		var err error
		if job.Video, job.Audio, err = readMediaURLs(*mediaFrom); err != nil {
			return fmt.Errorf("%w: submit: --media-from: %v", errUsage, err)
		}
	}
	if job.Video == "" || job.Audio == "" {
		return fmt.Errorf("%w: submit: --video-url and --audio-url are required (or --media-from FILE|-)", errUsage)
	}
	if err := workflows.ValidateNewJob(job); err != nil {
		return fmt.Errorf("%w: submit: %v", errUsage, err)
	}
	c, err := dial(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	jobs := lipsync.NewClient(c, cfg.Temporal.TaskQueue)
	run, err := jobs.Submit(ctx, job)
	if err != nil {
		if errors.Is(err, lipsync.ErrInvalidJob) {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		return err
	}
	if run.Attached {
		fmt.Fprintf(stderr, "attached to the existing job %s\n", run.WorkflowID)
	}
	fmt.Fprintln(stdout, run.WorkflowID)
	if !wait {
		return nil
	}
	res, err := run.WaitUntilSettled(ctx)
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	var waiting *lipsync.WaitingForDecisionError
	if errors.As(err, &waiting) {
		_ = enc.Encode(struct {
			WorkflowID         string
			Escalated          string
			Message            string
			WaitingForDecision bool
			Resolve            string
		}{run.WorkflowID, waiting.Status.Escalated, waiting.Status.LastError, true,
			fmt.Sprintf("starter resolve %s retry|resume|abandon --note TEXT", run.ReferenceID)})
		return fmt.Errorf("job %s escalated: %s: %s (waiting for a decision)", run.WorkflowID, waiting.Status.Escalated, waiting.Status.LastError)
	}
	if err != nil {
		if esc, ok := lipsync.EscalationOf(err); ok {
			_ = enc.Encode(struct {
				WorkflowID string
				Escalated  lipsync.Escalation
			}{run.WorkflowID, esc})
			return fmt.Errorf("job %s escalated: %s: %s", run.WorkflowID, esc.Reason, esc.Message)
		}
		return err
	}
	fmt.Fprintln(stderr, describe(res))
	// The result as the wire contract spells it: its duration reads 3m15s.
	return enc.Encode(res)
}

// describe says in one line how a completed job went.
func describe(res lipsync.Result) string {
	runs := ""
	if res.Runs > 1 {
		runs = fmt.Sprintf(" over %d workflow runs", res.Runs)
	}
	adopted := ""
	if res.Adopted {
		adopted = " (the request of an unanswered submission, adopted)"
	}
	return fmt.Sprintf("job %s completed in %s%s: submitted %s after it started, %d status checks%s",
		res.ReferenceID, readable(res.Duration), adopted, readable(res.SubmittedAt.Sub(res.StartedAt)), res.StatusChecks, runs)
}

// readable writes a duration as a person reads it: 850ms, 5s, 1m30s, 2h5m.
func readable(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	case d >= time.Second:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}

func status(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ref := fs.String("reference-id", "", "the job's reference_id (required)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: status: %v", errUsage, err)
	}
	if *ref == "" {
		return fmt.Errorf("%w: status: --reference-id is required", errUsage)
	}
	c, err := dial(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := lipsync.NewClient(c, cfg.Temporal.TaskQueue).Status(ctx, *ref)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(st)
}

func resolve(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	job, action, note, by, err := decisionArgs("resolve", "<reference-id|workflow-id> retry|resume|abandon", args, stderr)
	if err != nil {
		return err
	}
	d := lipsync.Decision{Action: action, Note: note, By: by}
	if err := workflows.ValidateDecision(d); err != nil {
		return fmt.Errorf("%w: resolve: %v", errUsage, err)
	}
	c, err := dial(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := lipsync.NewClient(c, cfg.Temporal.TaskQueue).Resolve(ctx, job, d)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s accepted for attempt %d\n", job, res.Action, res.Attempt)
	return nil
}

// decisionArgs parses "<id> <action> [--note TEXT] [--by NAME]", the
// arguments of resolve and batch-resolve.
func decisionArgs(command, want string, args []string, stderr io.Writer) (id, action, note, by string, err error) {
	if len(args) < 2 || strings.HasPrefix(args[0], "-") || strings.HasPrefix(args[1], "-") {
		return "", "", "", "", fmt.Errorf("%w: %s: want %s [--note TEXT] [--by NAME]", errUsage, command, want)
	}
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&note, "note", "", "why (recorded with the decision)")
	fs.StringVar(&by, "by", defaultActor(), "who decides (recorded with the decision)")
	if err := fs.Parse(args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", "", "", "", err
		}
		return "", "", "", "", fmt.Errorf("%w: %s: %v", errUsage, command, err)
	}
	if fs.NArg() > 0 {
		return "", "", "", "", fmt.Errorf("%w: %s: unexpected argument %q", errUsage, command, fs.Arg(0))
	}
	return args[0], args[1], note, by, nil
}

// defaultActor names the person running the starter.
func defaultActor() string {
	u := os.Getenv("USER")
	if u == "" {
		u = "unknown"
	}
	host, _ := os.Hostname()
	return u + "@" + host + " (starter)"
}
