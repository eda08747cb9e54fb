package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/chamelaion-lipsync/worker/codec"
	"github.com/chamelaion-lipsync/worker/emulator"
	"github.com/chamelaion-lipsync/worker/lipsync"
)

// benchConfig sizes a run.
type benchConfig struct {
	// Scale is real time per vendor time: 0.05 runs jobs 20x faster.
	Scale float64
	// RateLimit is the account's generation requests per real minute in
	// the rate phase; RateJobs the batch size there.
	RateLimit, RateJobs int
	// RateFaultEvery injects faults in the rate phase: of every
	// RateFaultEvery jobs, one's first submission is answered 503 and
	// another's 429 with Retry-After: 2 (0 = none).
	RateFaultEvery int
	// LatencyJobs per strategy and setting, started evenly over Arrivals
	// (real time).
	LatencyJobs int
	Arrivals    time.Duration
	// Intervals are the fixed poll intervals of the vendor loop and the
	// timer sample; RetryIntervals those of the activity-retry sample;
	// Targets our target latencies (all vendor time).
	Intervals, RetryIntervals, Targets []time.Duration
	// ThroughputJobs per strategy with an instant emulator; InFlightJobs
	// of ours waiting on timers; WarmupJobs completed before the polling
	// phase, for our worker to learn from.
	ThroughputJobs, InFlightJobs, WarmupJobs int
	// ThroughputRounds is how many times the throughput phase runs each
	// strategy, taking turns.
	ThroughputRounds int
	// MaxDuration caps a job's queue wait plus processing (vendor time).
	MaxDuration time.Duration
	// ClusterFastPG turns off the durability of the cluster's PostgreSQL
	// (fsync, synchronous commit) in the backends phase: an experiment on
	// where the cluster's time goes, not a deployment anyone should run.
	ClusterFastPG bool
}

func fullConfig() benchConfig {
	return benchConfig{
		// Temporal fires no timer sooner than a second after it is set, so
		// the shortest interval measured (5s) must be at least a second of
		// real time: 4x faster than real time, not more.
		Scale: 0.25, RateLimit: 300, RateJobs: 600, RateFaultEvery: 20, LatencyJobs: 50, Arrivals: time.Minute,
		Intervals:      []time.Duration{5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute},
		RetryIntervals: []time.Duration{10 * time.Second, time.Minute},
		Targets:        []time.Duration{4 * time.Second, 8 * time.Second, 25 * time.Second, 50 * time.Second},
		ThroughputJobs: 300, ThroughputRounds: 3, InFlightJobs: 1000, WarmupJobs: 60, MaxDuration: 20 * time.Minute,
	}
}

func quickConfig() benchConfig {
	c := fullConfig()
	c.RateLimit, c.RateJobs, c.LatencyJobs, c.Arrivals = 120, 180, 20, 20*time.Second
	c.ThroughputJobs, c.InFlightJobs, c.WarmupJobs, c.MaxDuration = 100, 200, 30, 4*time.Minute
	c.ThroughputRounds = 1
	return c
}

// settings are the settings a strategy runs at in the polling phase.
func (c benchConfig) settings(strategy string) []time.Duration {
	switch strategy {
	case stratNaive, stratTimer:
		return c.Intervals
	case stratOurs:
		return c.Targets
	}
	return c.RetryIntervals
}

// workload is the job durations of the polling phase, in vendor time
// before scaling: a queue wait that depends on the vendor's traffic
// (log-normal, median 75s, sigma 1.3) and a processing time that depends
// on the video (log-normal, median 45s, sigma 0.3), at most MaxDuration in
// all (20 minutes). The total's median is about 2 minutes.
func (c benchConfig) workload(seed int64) emulator.DurationModel {
	return emulator.DurationModel{
		QueueMedian: 75 * time.Second, QueueSigma: 1.3,
		ProcessingMedian: 45 * time.Second, ProcessingSigma: 0.3,
		Max: c.MaxDuration, Scale: c.Scale, Seed: seed,
	}
}

func (c benchConfig) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * c.Scale)
}

// Strategy names, as the report shows them.
const (
	stratNaive = "vendor docs loop"
	stratTimer = "Temporal timer sample"
	stratRetry = "Temporal activity-retry sample"
	stratOurs  = "this worker"
)

var strategies = []string{stratNaive, stratTimer, stratRetry, stratOurs}

// bench holds what every phase shares.
type bench struct {
	cfg   benchConfig
	log   *slog.Logger
	s     *stack
	plain client.Client // for the sample strategies and histories
	ours  client.Client // with the payload codec the worker uses
	keys  string        // PAYLOAD_ENCRYPTION_KEYS
	// sampleProcs are the running workers of the sample strategies.
	sampleProcs []*proc
	// loadStrategies are the strategies of the throughput and memory
	// phases.
	loadStrategies []string
	// profileDir, when set, receives this worker's profiles from the
	// throughput and memory phases (--profile).
	profileDir string
}

func newBench(ctx context.Context, cfg benchConfig, log *slog.Logger, backend string) (*bench, error) {
	s, err := startStack(ctx, log, backend, cfg.ClusterFastPG)
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, log: log, s: s}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	b.keys = "bench:" + base64.StdEncoding.EncodeToString(key)
	cdc, err := codec.ParseKeys(b.keys, "")
	if err != nil {
		b.close(true)
		return nil, err
	}
	quiet := tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	if b.plain, err = client.Dial(client.Options{HostPort: s.address, Logger: quiet}); err != nil {
		b.close(true)
		return nil, err
	}
	b.ours, err = client.Dial(client.Options{HostPort: s.address, Logger: quiet,
		DataConverter: cdc.DataConverter(), FailureConverter: cdc.FailureConverter()})
	if err != nil {
		b.close(true)
		return nil, err
	}
	return b, nil
}

// close stops everything; after a failure it keeps the logs.
func (b *bench) close(failed bool) {
	if b.plain != nil {
		b.plain.Close()
	}
	if b.ours != nil {
		b.ours.Close()
	}
	b.s.close(failed)
}

// emulatorFor starts an emulator knowing the accounts.
func (b *bench) emulatorFor(accounts []string, rateLimit int, durations *emulator.DurationModel, queued, processing time.Duration) (*emulatorServer, error) {
	keys := map[string]string{}
	for _, a := range accounts {
		keys[apiKey(a)] = a
	}
	return startEmulator(emulator.Config{
		APIKeys: keys, RateLimitPerMinute: rateLimit, Durations: durations,
		QueuedFor: queued, ProcessingFor: processing, TimestampPrecision: time.Millisecond,
	})
}

// oursWorker starts the product's worker for one account on its own task
// queue, configured for the scaled time.
func (b *bench) oursWorker(ctx context.Context, account, baseURL string, env ...string) (*proc, string, error) {
	queue := "bench-" + account
	if b.s.backend == backendCluster {
		// The queue whose submit and status queues the shipped dynamic
		// configuration gives one partition (one worker of ours runs at
		// a time on the cluster).
		queue = clusterTaskQueue
	}
	c := b.cfg
	full := append([]string{
		"CHAMELAION_API_KEY=" + apiKey(account),
		"CHAMELAION_BASE_URL=" + baseURL,
		"DATABASE_URL=" + b.s.databaseURL,
		"TEMPORAL_ADDRESS=" + b.s.address,
		"TEMPORAL_TASK_QUEUE=" + queue,
		"PAYLOAD_ENCRYPTION_KEYS=" + b.keys,
		"METRICS_ADDR=off",
		// The defaults, in scaled time.
		"POLL_INITIAL_INTERVAL=" + c.scaled(5*time.Second).String(),
		"POLL_MAX_INTERVAL=" + c.scaled(time.Minute).String(),
		"POLL_TARGET_LATENCY=" + c.scaled(30*time.Second).String(),
		"JOB_STUCK_AFTER=" + c.scaled(10*time.Minute).String(),
		fmt.Sprintf("CHAMELAION_RATE_LIMIT_PER_MINUTE=%d", int(60/c.Scale)),
		fmt.Sprintf("CHAMELAION_STATUS_RATE_LIMIT_PER_MINUTE=%d", int(600/c.Scale)),
	}, env...)
	p, err := b.s.startProc(ctx, account, b.s.workerBin, full, `"msg":"worker started"`)
	return p, queue, err
}

// strategyWorker starts the process hosting the two Temporal samples.
func (b *bench) strategyWorker(ctx context.Context, account, baseURL string) (*proc, string, error) {
	queue := "bench-" + account
	p, err := b.s.startProc(ctx, account, b.s.selfBin, []string{
		envBaseURL + "=" + baseURL, envTemporal + "=" + b.s.address,
		envTaskQueue + "=" + queue, envAccount + "=" + account,
	}, "strategy worker started", "strategy-worker")
	return p, queue, err
}

// naive starts the vendor documentation's loop for one account.
func (b *bench) naive(ctx context.Context, account, baseURL string, o naiveOptions) (*proc, error) {
	return b.s.startProc(ctx, account, b.s.selfBin, []string{envBaseURL + "=" + baseURL, envAccount + "=" + account},
		"naive started", "naive", "--jobs", fmt.Sprint(o.Jobs), "--prefix", account, "--arrivals", o.Arrivals.String(),
		"--interval", o.Interval.String(), "--backoff", o.Backoff.String(), "--deadline", o.Deadline.String())
}

// naiveResult reads the loop's result once it exited.
func (b *bench) naiveResult(p *proc) (naiveResult, error) {
	<-p.done
	out, err := os.ReadFile(filepath.Join(b.s.dir, p.name+".log"))
	if err != nil {
		return naiveResult{}, err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			var r naiveResult
			err := json.Unmarshal([]byte(rest), &r)
			return r, err
		}
	}
	return naiveResult{}, fmt.Errorf("%s printed no result", p.name)
}

func ref(account string, i int) string { return fmt.Sprintf("%s-%05d", account, i) }

// startSample starts job i of a sample strategy.
func (b *bench) startSample(ctx context.Context, workflowName, queue, account string, i int, interval time.Duration) error {
	r := ref(account, i)
	_, err := b.plain.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "bench-" + r, TaskQueue: queue},
		workflowName, PollInput{ReferenceID: r, Interval: interval})
	return err
}

// startOurs starts job i of our worker, as a backend service would.
func (b *bench) startOurs(ctx context.Context, queue, account string, i int) error {
	r := ref(account, i)
	_, err := lipsync.NewClient(b.ours, queue).Submit(ctx, lipsync.Job{Video: mediaURL(r, "video"), Audio: mediaURL(r, "audio"), ReferenceID: r})
	return err
}

// startAll runs start(i) for i < n, spread evenly over window (all at once
// when 0), with at most 32 starts in flight.
func startAll(ctx context.Context, n int, window time.Duration, start func(i int) error) error {
	sem := make(chan struct{}, 32)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		if window > 0 && !sleepUntil(ctx, t0.Add(time.Duration(float64(window)*float64(i)/float64(n)))) {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := start(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// waitFor polls cond every second until it holds or the deadline passes.
func waitFor(ctx context.Context, deadline time.Duration, cond func() bool) bool {
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) || !sleepUntil(ctx, time.Now().Add(time.Second)) {
			return false
		}
	}
	return true
}

// jobsOf returns an account's jobs.
func jobsOf(all []emulator.JobRecord, account string) []emulator.JobRecord {
	var out []emulator.JobRecord
	for _, j := range all {
		if j.Account == account {
			out = append(out, j)
		}
	}
	return out
}

// detected counts an account's jobs whose end was read.
func detected(e *emulatorServer, account string) int {
	n := 0
	for _, j := range jobsOf(e.Jobs(), account) {
		if j.FirstTerminalReadAt != nil {
			n++
		}
	}
	return n
}

// historyEvents sums the history events of every run of a workflow,
// following continue-as-new back to the first run.
func historyEvents(ctx context.Context, tc client.Client, workflowID string) (int, error) {
	kinds, err := historyEventKinds(ctx, tc, workflowID)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, n := range kinds {
		total += n
	}
	return total, nil
}

// historyEventKinds counts the history events of every run of a workflow
// by kind (eventKind), following continue-as-new back to the first run.
func historyEventKinds(ctx context.Context, tc client.Client, workflowID string) (map[string]int, error) {
	kinds, run := map[string]int{}, ""
	for {
		it := tc.GetWorkflowHistory(ctx, workflowID, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		prev := ""
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return nil, fmt.Errorf("history of %s: %w", workflowID, err)
			}
			if a := ev.GetWorkflowExecutionStartedEventAttributes(); a != nil {
				prev = a.GetContinuedExecutionRunId()
			}
			kinds[eventKind(ev.GetEventType())]++
		}
		if prev == "" {
			return kinds, nil
		}
		run = prev
	}
}

// Kinds of history events, as the throughput phase counts them.
const (
	kindWorkflowTask = "workflow task"
	kindActivity     = "activity task"
	kindTimer        = "timer"
	kindMarker       = "marker (version, side effect, local activity)"
	kindUpsert       = "search-attribute upsert"
	kindSignal       = "signal"
	kindLifecycle    = "execution (start, end, update)"
	kindOther        = "other"
)

// eventKinds lists the kinds in the report's order.
var eventKinds = []string{kindWorkflowTask, kindActivity, kindTimer, kindMarker, kindUpsert, kindSignal, kindLifecycle, kindOther}

// eventKind groups an event type: the three events of a workflow task are
// one kind, those of an activity another, and so on.
func eventKind(t enumspb.EventType) string {
	name := t.String() // WorkflowTaskScheduled, ActivityTaskStarted, ...
	switch {
	case strings.HasPrefix(name, "WorkflowTask"):
		return kindWorkflowTask
	case strings.HasPrefix(name, "ActivityTask"):
		return kindActivity
	case strings.HasPrefix(name, "Timer"):
		return kindTimer
	case t == enumspb.EVENT_TYPE_MARKER_RECORDED:
		return kindMarker
	case t == enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
		return kindUpsert
	case strings.Contains(name, "Signal"):
		return kindSignal
	case strings.HasPrefix(name, "WorkflowExecution"):
		return kindLifecycle
	}
	return kindOther
}

// terminateOpen ends the open workflows of the given IDs (a phase's
// leftovers must not load the next phase).
func (b *bench) terminateOpen(ctx context.Context, ids []string) {
	_ = startAll(ctx, len(ids), 0, func(i int) error {
		err := b.plain.TerminateWorkflow(ctx, ids[i], "", "benchmark phase ended")
		if err != nil && !isNotFoundOrDone(err) {
			b.log.Warn("terminate", "workflow", ids[i], "error", err)
		}
		return nil
	})
}

func isNotFoundOrDone(err error) bool {
	s := err.Error()
	return strings.Contains(s, "not found") || strings.Contains(s, "already completed")
}

var errIncomplete = errors.New("phase did not finish in time")

func sortedDurations(ds []time.Duration) []time.Duration {
	out := slices.Clone(ds)
	slices.Sort(out)
	return out
}
