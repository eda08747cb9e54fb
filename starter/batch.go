package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/batchfile"
	"github.com/chamelaion-lipsync/worker/config"
	"github.com/chamelaion-lipsync/worker/lipsync"
	"github.com/chamelaion-lipsync/worker/workflows"
)

// batchOptions are the flags of `starter batch`.
type batchOptions struct {
	file        string
	batchID     string
	concurrency int
	maxPending  int
	wait        bool
	skipInvalid bool
	results     string
	interval    time.Duration
	workerFile  string
}

func batch(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("batch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o batchOptions
	fs.StringVar(&o.file, "file", "", "the jobs: a .csv or .jsonl file (required; format in the README)")
	fs.StringVar(&o.batchID, "batch-id", "", "the batch's id (default: derived from the file's content, so the same file is never started twice)")
	fs.IntVar(&o.concurrency, "concurrency", workflows.DefaultBatchConcurrency, "jobs in flight at once (started, not ended)")
	fs.IntVar(&o.maxPending, "max-pending", workflows.DefaultBatchMaxPending, "jobs started and not yet accepted by the vendor at once")
	fs.BoolVar(&o.wait, "wait", false, "show progress until the batch ends, then write the results file and print a summary")
	fs.BoolVar(&o.skipInvalid, "skip-invalid", false, "list invalid rows and run the rest (default: refuse the whole batch)")
	fs.StringVar(&o.results, "results", "", "with --wait, the results file (default: <batch-id>.results.csv)")
	fs.DurationVar(&o.interval, "progress-interval", 0, "with --wait, how often progress is shown (default 1s on a terminal, 15s otherwise)")
	fs.StringVar(&o.workerFile, "worker-file", "", "the file's absolute path as the workers see it (shared storage): the workers read the jobs page by page instead of the batch carrying them; for batches over about 5,000 jobs")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: batch: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: batch: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if o.file == "" {
		return fmt.Errorf("%w: batch: --file is required", errUsage)
	}
	if o.concurrency < 1 {
		return fmt.Errorf("%w: batch: --concurrency must be at least 1, got %d", errUsage, o.concurrency)
	}
	if o.maxPending < 1 {
		return fmt.Errorf("%w: batch: --max-pending must be at least 1, got %d", errUsage, o.maxPending)
	}
	if o.interval < 0 {
		return fmt.Errorf("%w: batch: --progress-interval must not be negative", errUsage)
	}
	if o.workerFile != "" && !filepath.IsAbs(o.workerFile) {
		return fmt.Errorf("%w: batch: --worker-file must be an absolute path, got %q", errUsage, o.workerFile)
	}
	in, refs, err := readBatch(o, stderr)
	if err != nil {
		return err
	}
	c, err := dial(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	jobs := lipsync.NewClient(c, cfg.Temporal.TaskQueue)
	run, err := jobs.SubmitBatch(ctx, in)
	if err != nil {
		if errors.Is(err, lipsync.ErrInvalidJob) {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		return err
	}
	if run.Attached {
		fmt.Fprintf(stderr, "batch %s exists already: attached to it, nothing new started\n", in.BatchID)
	} else {
		fmt.Fprintf(stderr, "batch %s started: %d jobs, %d at a time\n", in.BatchID, len(refs), in.Concurrency)
	}
	fmt.Fprintln(stdout, run.WorkflowID)
	if !o.wait {
		fmt.Fprintf(stderr, "follow it with: starter batch-status %s\n", in.BatchID)
		return nil
	}
	res, err := waitWithProgress(ctx, run, stderr, o.interval)
	if err != nil {
		return err
	}
	outcomes, err := jobs.BatchOutcomes(ctx, res, refs)
	if err != nil {
		return err
	}
	path := o.results
	if path == "" {
		path = in.BatchID + ".results.csv"
	}
	if err := writeResults(path, outcomes); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "batch %s: %d jobs: %d completed, %d escalated, %d abandoned, %d not submitted, %d duplicate; results in %s\n",
		res.BatchID, res.Total, res.Completed, res.Escalated, res.Abandoned, res.NotSubmitted, res.Duplicate, path)
	if res.Completed != res.Total {
		return fmt.Errorf("batch %s: %d of %d jobs did not complete (see %s)", res.BatchID, res.Total-res.Completed, res.Total, path)
	}
	return nil
}

// readBatch reads and checks the whole file before anything starts, and
// returns the batch and its reference_ids in order.
func readBatch(o batchOptions, stderr io.Writer) (lipsync.Batch, []string, error) {
	raw, err := os.ReadFile(o.file)
	if err != nil {
		return lipsync.Batch{}, nil, fmt.Errorf("%w: batch: %v", errUsage, err)
	}
	format, err := batchfile.FormatOf(o.file)
	if err != nil {
		return lipsync.Batch{}, nil, fmt.Errorf("%w: batch: %v", errUsage, err)
	}
	res, err := batchfile.Parse(strings.NewReader(string(raw)), format, func(j batchfile.Job) error {
		return workflows.ValidateInput(toInput(j))
	})
	if err != nil {
		return lipsync.Batch{}, nil, fmt.Errorf("%w: batch: %v", errUsage, err)
	}
	if len(res.Defects) > 0 {
		ferr := &batchfile.Error{Name: o.file, Defects: res.Defects}
		if !o.skipInvalid || len(res.Jobs) == 0 {
			return lipsync.Batch{}, nil, fmt.Errorf("%w: batch refused, nothing started: %v", errUsage, ferr)
		}
		fmt.Fprintf(stderr, "skipping invalid rows (--skip-invalid): %v\n", ferr)
	}
	in := lipsync.Batch{BatchID: o.batchID, Concurrency: o.concurrency, MaxPending: o.maxPending}
	sum := sha256.Sum256(raw)
	if o.workerFile != "" {
		in.Source = &activities.BatchSource{Path: o.workerFile, SHA256: hex.EncodeToString(sum[:]), Jobs: len(res.Jobs), SkipInvalid: o.skipInvalid}
	} else {
		for _, j := range res.Jobs {
			in.Jobs = append(in.Jobs, toInput(j))
		}
	}
	if in.BatchID == "" {
		name := strings.TrimSuffix(filepath.Base(o.file), filepath.Ext(o.file))
		in.BatchID = sanitizeID(name) + "-" + hex.EncodeToString(sum[:6])
	}
	if err := workflows.ValidateReferenceID(in.BatchID); err != nil {
		return lipsync.Batch{}, nil, fmt.Errorf("%w: batch: --batch-id: %v", errUsage, err)
	}
	refs := make([]string, len(res.Jobs))
	for i, j := range res.Jobs {
		refs[i] = j.ReferenceID
	}
	return in, refs, nil
}

func toInput(j batchfile.Job) workflows.LipSyncInput {
	return workflows.LipSyncInput{
		ReferenceID:                   j.ReferenceID,
		Video:                         j.VideoURL,
		Audio:                         j.AudioURL,
		DisableActiveSpeakerDetection: j.DisableActiveSpeakerDetection,
	}
}

// sanitizeID keeps the characters a batch id may hold.
func sanitizeID(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '-'
	}, s)
	if len(s) > 100 {
		s = s[:100]
	}
	if s == "" {
		s = "batch"
	}
	return s
}

// waitWithProgress shows the batch's progress until it ends: a bar redrawn
// in place on a terminal, plain lines otherwise.
func waitWithProgress(ctx context.Context, run *lipsync.BatchRun, w io.Writer, interval time.Duration) (lipsync.BatchResult, error) {
	tty := isTerminal(w)
	if interval == 0 {
		interval = 15 * time.Second
		if tty {
			interval = time.Second
		}
	}
	type outcome struct {
		res lipsync.BatchResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := run.Wait(ctx)
		done <- outcome{res, err}
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last := ""
	for {
		select {
		case o := <-done:
			if tty && last != "" {
				fmt.Fprintln(w)
			}
			return o.res, o.err
		case <-tick.C:
			p, err := run.Progress(ctx)
			if err != nil {
				continue // the batch may be between runs; try again
			}
			line := progressLine(p, tty)
			if tty {
				fmt.Fprintf(w, "\r%s\x1b[K", line)
			} else if line != last {
				fmt.Fprintln(w, line)
			}
			last = line
		}
	}
}

// progressLine renders progress; with a bar on a terminal.
func progressLine(p lipsync.BatchProgress, bar bool) string {
	ended := p.Completed + p.Escalated + p.Abandoned + p.NotSubmitted + p.Duplicate - inFlightEscalated(p)
	s := fmt.Sprintf("%s: %d/%d ended · %d completed · %d escalated · %d in flight (%d pending, %d queued, %d processing) · %d submitted · %d remaining",
		p.Status, ended, p.Total, p.Completed, p.Escalated, p.InFlight, p.Pending, p.Queued, p.Processing, p.Submitted, p.Remaining)
	if p.Pause != nil {
		s += fmt.Sprintf(" · PAUSED: %s: %s (answer: starter batch-resolve %s resume|abort)", p.Pause.Reason, p.Pause.Message, p.BatchID)
	}
	if !bar || p.Total == 0 {
		return s
	}
	const width = 30
	filled := ended * width / p.Total
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "] " + s
}

// inFlightEscalated is how many escalated jobs still run (waiting for a
// human), which progress counts as escalated but not ended.
func inFlightEscalated(p lipsync.BatchProgress) int {
	return p.InFlight - p.Pending - p.Queued - p.Processing
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func batchStatus(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: batch-status: want <batch-id>", errUsage)
	}
	c, err := dial(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	p, err := lipsync.NewClient(c, cfg.Temporal.TaskQueue).BatchProgress(ctx, args[0])
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, progressLine(p, false))
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

func batchResolve(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	id, action, note, by, err := decisionArgs("batch-resolve", "<batch-id> resume|abort", args, stderr)
	if err != nil {
		return err
	}
	d := lipsync.BatchDecision{Action: action, Note: note, By: by}
	if err := workflows.ValidateBatchDecision(d); err != nil {
		return fmt.Errorf("%w: batch-resolve: %v", errUsage, err)
	}
	c, err := dial(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := lipsync.NewClient(c, cfg.Temporal.TaskQueue).ResolveBatch(ctx, id, d); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "batch %s: %s accepted\n", id, action)
	return nil
}
