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
	"github.com/chamelaion-lipsync/worker/store"
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
	fmt.Fprintf(stdout, "batch %s: %d jobs: %d completed, %d escalated (%d waiting for a human), %d abandoned, %d not submitted, %d duplicate, %d cancelled; results in %s\n",
		res.BatchID, res.Total, res.Completed, res.Escalated, res.Waiting, res.Abandoned, res.NotSubmitted, res.Duplicate, res.Cancelled, path)
	if res.Waiting > 0 {
		fmt.Fprintf(stdout, "%d jobs wait for a human: each row of %s says why and how to answer (starter resolve <reference-id> retry|abandon); "+
			"their later outcome is recorded in PostgreSQL: starter batch-status %s\n", res.Waiting, path, res.BatchID)
	}
	if res.Completed != res.Total {
		return fmt.Errorf("batch %s: %d of %d jobs did not complete (see %s)", res.BatchID, res.Total-res.Completed, res.Total, path)
	}
	return nil
}

// readBatch reads and checks the whole file before anything starts, in one
// streaming pass (the digest is computed as it is read), and returns the
// batch and its reference_ids in order. Rows are checked exactly as the
// workers check the pages of a --worker-file batch.
func readBatch(o batchOptions, stderr io.Writer) (lipsync.Batch, []string, error) {
	format, err := batchfile.FormatOf(o.file)
	if err != nil {
		return lipsync.Batch{}, nil, fmt.Errorf("%w: batch: %v", errUsage, err)
	}
	f, err := os.Open(o.file)
	if err != nil {
		return lipsync.Batch{}, nil, fmt.Errorf("%w: batch: %v", errUsage, err)
	}
	defer f.Close()
	h := sha256.New()
	in := lipsync.Batch{BatchID: o.batchID, Concurrency: o.concurrency, MaxPending: o.maxPending}
	var refs []string
	var defects []batchfile.Defect
	err = batchfile.Scan(io.TeeReader(f, h), format, activities.ValidateBatchRow, func(r batchfile.Row) error {
		if r.Problem != "" {
			defects = append(defects, batchfile.Defect{Line: r.Job.Line, Problem: r.Problem})
			return nil
		}
		refs = append(refs, r.Job.ReferenceID)
		if o.workerFile == "" {
			in.Jobs = append(in.Jobs, toInput(r.Job))
		}
		return nil
	}, &defects)
	if err == nil {
		_, err = io.Copy(h, f) // the digest covers the whole file
	}
	if err != nil {
		return lipsync.Batch{}, nil, fmt.Errorf("%w: batch: %s: %v", errUsage, o.file, err)
	}
	if len(refs) == 0 && len(defects) == 0 {
		defects = append(defects, batchfile.Defect{Problem: "the file holds no jobs"})
	}
	if len(defects) > 0 {
		ferr := &batchfile.Error{Name: o.file, Defects: defects}
		switch {
		case len(defects) >= batchfile.MaxDefects:
			return lipsync.Batch{}, nil, fmt.Errorf("%w: batch refused, nothing started: %d or more invalid rows, so the rest was not read: %v", errUsage, batchfile.MaxDefects, ferr)
		case !o.skipInvalid || len(refs) == 0:
			return lipsync.Batch{}, nil, fmt.Errorf("%w: batch refused, nothing started: %v", errUsage, ferr)
		}
		fmt.Fprintf(stderr, "skipping invalid rows (--skip-invalid): %v\n", ferr)
	}
	sum := h.Sum(nil)
	if o.workerFile != "" {
		in.Source = &activities.BatchSource{Path: o.workerFile, SHA256: hex.EncodeToString(sum), Jobs: len(refs), SkipInvalid: o.skipInvalid}
	}
	if in.BatchID == "" {
		name := strings.TrimSuffix(filepath.Base(o.file), filepath.Ext(o.file))
		in.BatchID = sanitizeID(name) + "-" + hex.EncodeToString(sum[:6])
	}
	if err := workflows.ValidateReferenceID(in.BatchID); err != nil {
		return lipsync.Batch{}, nil, fmt.Errorf("%w: batch: --batch-id: %v", errUsage, err)
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
	var announced int64
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
			if pp := p.Pause; pp != nil && pp.Escalated && pp.EscalationID != announced {
				// A pause is not settled: say once what the wait is for.
				announced = pp.EscalationID
				if tty && last != "" {
					fmt.Fprintln(w)
				}
				fmt.Fprintf(w, "batch %s is paused on an account-wide failure: %s (HTTP %d): %s; %d jobs are held back and nothing more is submitted. "+
					"Still waiting: once the cause is fixed, answer with\n  starter batch-resolve %s resume\nor give up the jobs not yet submitted with\n  starter batch-resolve %s abort\n",
					p.BatchID, pp.Reason, pp.HTTPStatus, pp.Message, len(pp.Blocked), p.BatchID, p.BatchID)
				last = ""
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

// batchStatus prints a batch's progress. For a batch that has ended, and
// with DATABASE_URL set, it adds how its jobs stand now in PostgreSQL: a
// job that waited for a human when the batch settled may have been
// answered since, and its later outcome is recorded there.
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
	// Now is how the batch's jobs stand in PostgreSQL (an ended batch).
	var now *batchNow
	if p.Ended() {
		switch n, err := readBatchNow(ctx, cfg, p.BatchID); {
		case err != nil:
			fmt.Fprintf(stderr, "the batch has ended; how its jobs stand since is in PostgreSQL: %v\n", err)
		default:
			now = n
			fmt.Fprintln(stderr, n.line())
		}
	}
	out, err := withNow(p, now)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// withNow is the progress as the wire contract spells it, with how the
// jobs stand now beside it ("now", when known).
func withNow(p lipsync.BatchProgress, now *batchNow) (map[string]any, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode progress: %w", err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("encode progress: %w", err)
	}
	if now != nil {
		out["now"] = now
	}
	return out, nil
}

// batchNow is how an ended batch's jobs stand now, from PostgreSQL.
type batchNow struct {
	// Jobs counts the batch's job rows by status.
	Jobs map[store.Status]int
	// Waiting lists (up to 50) jobs still waiting for a human, each with
	// the command that answers it.
	Waiting []string `json:",omitempty"`
}

func (n *batchNow) line() string {
	var parts []string
	for _, st := range []store.Status{store.StatusCompleted, store.StatusFailed, store.StatusAbandoned, store.StatusNotSubmitted, store.StatusCancelled,
		store.StatusPending, store.StatusSubmitted, store.StatusQueued, store.StatusProcessing} {
		if c := n.Jobs[st]; c > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c, st))
		}
	}
	s := "now (PostgreSQL): " + strings.Join(parts, " · ")
	if len(n.Waiting) > 0 {
		s += fmt.Sprintf(" · waiting for a human: %d (%s)", len(n.Waiting), strings.Join(n.Waiting, "; "))
	}
	return s
}

func readBatchNow(ctx context.Context, cfg config.Config, batchID string) (*batchNow, error) {
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	counts, err := st.BatchJobCounts(ctx, batchID)
	if err != nil {
		return nil, err
	}
	waiting, err := st.BatchJobsWaiting(ctx, batchID, 50)
	if err != nil {
		return nil, err
	}
	now := &batchNow{Jobs: counts}
	for _, j := range waiting {
		reason := ""
		if j.ErrorType != nil {
			reason = *j.ErrorType
		}
		now.Waiting = append(now.Waiting, fmt.Sprintf("%s (%s): starter resolve %s retry|abandon", j.ReferenceID, reason, j.ReferenceID))
	}
	return now, nil
}

// openStore connects to PostgreSQL for the commands that read it.
func openStore(ctx context.Context, cfg config.Config) (*store.Store, error) {
	if strings.TrimSpace(cfg.Database.URL) == "" {
		return nil, errors.New("DATABASE_URL is not set")
	}
	return store.Open(ctx, cfg.Database.URL)
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
