package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chamelaion-lipsync/worker/emulator"
	"github.com/chamelaion-lipsync/worker/lipsync"
	"github.com/chamelaion-lipsync/worker/workflows"
)

// benchMain runs every phase and writes the report.
func benchMain(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "a small run (about 6 minutes), to try the benchmark out")
	out := fs.String("out", "docs/benchmarks.md", "write the Markdown report here (\"\" = print only)")
	svg := fs.String("svg", "docs/benchmarks-latency.svg", "write the calls-versus-latency chart here (\"\" = none)")
	inflight := fs.Int("inflight", 0, "jobs in flight in the memory phase (0 = 1,000; 200 with --quick)")
	which := fs.String("strategies", "naive,timer,retry,ours", "the strategies of the rate and throughput phases")
	only := fs.String("phases", "rate,polling,throughput,memory,backends", "the phases to run, comma separated (a partial run writes no files)")
	profile := fs.String("profile", "", "write this worker's CPU profile (the first 10 s of the throughput phase), its allocations and its heap at the end of the throughput and memory phases to this directory")
	fastPG := fs.Bool("cluster-fast-pg", false, "turn off the durability of the cluster's PostgreSQL in the backends phase (an experiment: where does the cluster's time go?)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	cfg := fullConfig()
	if *quick {
		cfg = quickConfig()
	}
	cfg.ClusterFastPG = *fastPG
	if *inflight > 0 {
		cfg.InFlightJobs = *inflight
	}
	run := map[string]bool{}
	for _, p := range strings.Split(*only, ",") {
		run[strings.TrimSpace(p)] = true
	}
	// A partial run writes only the files it was explicitly given.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if len(run) < 5 || *which != "naive,timer,retry,ours" {
		if !set["out"] {
			*out = ""
		}
		if !set["svg"] || !run["polling"] {
			*svg = ""
		}
	}
	started := time.Now()
	b, err := newBench(ctx, cfg, log, backendDev)
	if err != nil {
		return err
	}
	b.profileDir = *profile
	failed := true
	defer func() { b.close(failed) }()
	for _, name := range strings.Split(*which, ",") {
		for _, st := range strategies {
			if shortName(st) == strings.TrimSpace(name) {
				b.loadStrategies = append(b.loadStrategies, st)
			}
		}
	}
	r := &report{cfg: cfg, started: started, quick: *quick, commit: commit()}
	if set["phases"] || set["strategies"] || set["inflight"] || set["cluster-fast-pg"] {
		r.command = "go run ./bench " + strings.Join(args, " ")
	}
	log.Info("rate phase: one batch per strategy, larger than the budget", "jobs", cfg.RateJobs, "limit_per_minute", cfg.RateLimit)
	phases := []struct {
		name, about string
		size        int
		run         func() error
	}{
		{"rate", "rate phase: one batch per strategy, larger than the budget", cfg.RateJobs, func() (err error) {
			r.rate, err = b.ratePhase(ctx)
			return err
		}},
		{"polling", "polling phase: every strategy at every setting on the same durations", cfg.LatencyJobs, func() (err error) {
			if err := b.warmup(ctx); err != nil {
				return fmt.Errorf("warm-up: %w", err)
			}
			r.polling, err = b.pollingPhase(ctx)
			return err
		}},
		{"throughput", "throughput phase: instant emulator, no rate limit", cfg.ThroughputJobs, func() (err error) {
			r.throughput, err = b.throughputPhase(ctx)
			return err
		}},
		{"memory", "memory phase: jobs in flight waiting on timers", cfg.InFlightJobs, func() (err error) {
			r.inflight, err = b.inFlightPhase(ctx)
			return err
		}},
		{"backends", "backends phase: the timer sample and this worker on the dev server, then on the cluster", cfg.ThroughputJobs, func() (err error) {
			r.backends, err = b.backendsPhase(ctx)
			return err
		}},
	}
	for _, ph := range phases {
		if !run[ph.name] {
			continue
		}
		t := time.Now()
		log.Info(ph.about, "jobs", ph.size)
		if err := ph.run(); err != nil {
			return fmt.Errorf("%s phase: %w", ph.name, err)
		}
		log.Info(ph.name+" phase done", "took", time.Since(t).Round(time.Second))
	}
	failed = false
	r.wall = time.Since(started)
	md := r.markdown()
	fmt.Println(md)
	if *svg != "" {
		chart, err := r.chart()
		if err != nil {
			return err
		}
		if err := os.WriteFile(*svg, chart, 0o644); err != nil {
			return err
		}
	}
	if *out != "" {
		return os.WriteFile(*out, []byte(md), 0o644)
	}
	return nil
}

// rateRow is one strategy's use of the submission budget.
type rateRow struct {
	Strategy          string
	Jobs, Accepted    int
	Lost              int // given up, never submitted
	Span              time.Duration
	PerMinute         float64
	Use               float64
	MaxRollingMinute  int
	Generate, Limited int
	Wall              time.Duration
	// PerFiveSeconds counts the accepted submissions in each 5 seconds.
	PerFiveSeconds []int
	// Over the batch's whole span, from its first accepted submission to
	// its last: accepted submissions per minute, and the generation
	// requests the vendor counted against the limit (the accepted ones and
	// the injected faults it answered) ÷ the limit.
	SpanPerMinute, SpanUse float64
	// Injected is the number of injected faults the strategy's requests
	// were answered with.
	Injected int
}

// ratePhase runs one batch per strategy against a budget of RateLimit per
// real minute: ours alone first (so that nothing else shares its CPU),
// then the three others at once, each on its own account.
func (b *bench) ratePhase(ctx context.Context) ([]rateRow, error) {
	c := b.cfg
	accounts := map[string]string{stratOurs: "rate-ours", stratNaive: "rate-naive", stratTimer: "rate-timer", stratRetry: "rate-retry"}
	var names []string
	for _, a := range accounts {
		names = append(names, a)
	}
	// Jobs of 1s queued and 1s processing: this phase is about
	// submissions, and short jobs keep the status checks from competing
	// with them for the dev server.
	emu, err := b.emulatorFor(names, c.RateLimit, nil, time.Second, time.Second)
	if err != nil {
		return nil, err
	}
	defer emu.close()
	// A share of 429s and 503s, as the vendor sends: the first submission
	// of one job in RateFaultEvery is answered 503, of another 429 with
	// Retry-After: 2 (each counted against the limit, as the vendor counts
	// every request it answers but those its limiter refuses).
	if err := injectRateFaults(emu, names, c); err != nil {
		return nil, err
	}
	budgetMinutes := float64(c.RateJobs) / float64(c.RateLimit)
	deadline := time.Duration((budgetMinutes + 0.5) * float64(time.Minute))
	walls := map[string]time.Duration{}
	lost := map[string]int{}

	// Ours: a batch through the product's client, the worker's own
	// CHAMELAION_RATE_LIMIT_PER_MINUTE set to the account's limit.
	// Its own database: these short jobs are not the past the polling
	// phase's worker should learn from.
	db, err := b.s.pg.CreateDatabase(ctx, "lipsync_rate")
	if err != nil {
		return nil, err
	}
	acct := accounts[stratOurs]
	w, queue, err := b.oursWorker(ctx, acct, emu.url, fmt.Sprintf("CHAMELAION_RATE_LIMIT_PER_MINUTE=%d", c.RateLimit), "DATABASE_URL="+db)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	var jobs []lipsync.Job
	for i := range c.RateJobs {
		r := ref(acct, i)
		jobs = append(jobs, lipsync.Job{Video: mediaURL(r, "video"), Audio: mediaURL(r, "audio"), ReferenceID: r})
	}
	t0 := time.Now()
	if _, err := lipsync.NewClient(b.ours, queue).SubmitBatch(ctx, lipsync.Batch{BatchID: "bench-rate", Jobs: jobs}); err != nil {
		return nil, err
	}
	waitFor(ctx, deadline, func() bool { return len(jobsOf(emu.Jobs(), acct)) >= c.RateJobs })
	walls[stratOurs] = time.Since(t0)
	lost[stratOurs] = c.RateJobs - len(jobsOf(emu.Jobs(), acct))
	// Its last jobs finish before the others start.
	waitFor(ctx, time.Minute, func() bool { return detected(emu, acct) >= len(jobsOf(emu.Jobs(), acct)) })
	w.stop()

	// The others at once, each submitting everything at once as their
	// sources show; they are stopped at the same deadline.
	others := 0
	for _, st := range b.loadStrategies {
		if st != stratOurs {
			others++
		}
	}
	if others == 0 {
		return b.rateRows(emu, accounts, walls, lost), nil
	}
	t1 := time.Now()
	naive, err := b.naive(ctx, accounts[stratNaive], emu.url, naiveOptions{Jobs: c.RateJobs, Interval: c.scaled(10 * time.Second), Backoff: time.Second, Deadline: deadline})
	if err != nil {
		return nil, err
	}
	defer naive.stop()
	var ids []string
	for _, st := range []struct {
		strategy, workflow string
	}{{stratTimer, timerWorkflowName}, {stratRetry, retryWorkflowName}} {
		acct := accounts[st.strategy]
		swq, err := b.sampleQueue(ctx, acct, emu.url)
		if err != nil {
			return nil, err
		}
		if err := startAll(ctx, c.RateJobs, 0, func(i int) error {
			return b.startSample(ctx, st.workflow, swq, acct, i, c.scaled(10*time.Second))
		}); err != nil {
			return nil, err
		}
		for i := range c.RateJobs {
			ids = append(ids, "bench-"+ref(acct, i))
		}
	}
	done := func(strategy string) bool { return len(jobsOf(emu.Jobs(), accounts[strategy])) >= c.RateJobs }
	waitFor(ctx, deadline, func() bool { return done(stratTimer) && done(stratRetry) })
	walls[stratTimer], walls[stratRetry] = time.Since(t1), time.Since(t1)
	nres, err := b.naiveResult(naive)
	if err != nil {
		return nil, err
	}
	walls[stratNaive] = time.Since(t1)
	lost[stratNaive] = nres.Lost
	b.terminateOpen(ctx, ids)
	b.stopSampleWorkers()

	return b.rateRows(emu, accounts, walls, lost), nil
}

// injectRateFaults installs the rate phase's faults for every account.
func injectRateFaults(emu *emulatorServer, accounts []string, c benchConfig) error {
	if c.RateFaultEvery <= 0 {
		return nil
	}
	for _, acct := range accounts {
		for i := range c.RateJobs {
			var f emulator.Fault
			switch i % c.RateFaultEvery {
			case c.RateFaultEvery / 4:
				f = emulator.Fault{Status: 503}
			case 3 * c.RateFaultEvery / 4:
				f = emulator.Fault{Status: 429, Headers: map[string]string{"Retry-After": "2"}}
			default:
				continue
			}
			if err := emu.SetScenario(emulator.Scenario{ReferenceID: ref(acct, i), SubmitFaults: []emulator.Fault{f}}); err != nil {
				return err
			}
		}
	}
	return nil
}

// rateRows reads each strategy's submissions from the emulator.
func (b *bench) rateRows(emu *emulatorServer, accounts map[string]string, walls map[string]time.Duration, lost map[string]int) []rateRow {
	c := b.cfg
	st := emu.Stats()
	var rows []rateRow
	for _, strategy := range b.loadStrategies {
		acct := accounts[strategy]
		js := jobsOf(emu.Jobs(), acct)
		row := rateRow{Strategy: strategy, Jobs: c.RateJobs, Accepted: len(js), Wall: walls[strategy]}
		row.Lost = lost[strategy]
		if strategy == stratTimer || strategy == stratRetry {
			row.Lost = c.RateJobs - len(js) // still retrying at the deadline
		}
		var times []time.Time
		for _, j := range js {
			times = append(times, j.CreatedAt)
		}
		row.Span, row.PerMinute, row.MaxRollingMinute = rateOf(times)
		row.PerFiveSeconds = perBucket(times, 5*time.Second)
		row.Use = row.PerMinute / float64(c.RateLimit)
		var injected429 int
		row.Injected, injected429 = injectedServed(emu, acct)
		row.Limited -= injected429 // the limiter's refusals only
		if row.Span > 0 {
			row.SpanPerMinute = float64(len(times)-1) / row.Span.Minutes()
			row.SpanUse = float64(len(times)-1+row.Injected) / row.Span.Minutes() / float64(c.RateLimit)
		}
		for _, q := range st.RequestsByAccount {
			if q.Account == acct && q.Endpoint == emulator.EndpointGenerate {
				row.Generate += q.Count
				if q.Status == 429 {
					row.Limited += q.Count
				}
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// injectedServed counts the injected faults the account's generation
// requests were answered with (all, and the 429s among them): the first
// answer to each reference_id whose scenario injects one (the emulator's
// request log).
func injectedServed(emu *emulatorServer, acct string) (n, n429 int) {
	faulted := map[string]bool{}
	for _, sc := range emu.Scenarios() {
		if strings.HasPrefix(sc.ReferenceID, acct+"-") && len(sc.SubmitFaults) > 0 {
			faulted[sc.ReferenceID] = true
		}
	}
	seen := map[string]bool{}
	for _, r := range emu.Requests("") {
		if r.Endpoint != emulator.EndpointGenerate || !faulted[r.ReferenceID] || seen[r.ReferenceID] {
			continue
		}
		seen[r.ReferenceID] = true
		switch r.Status {
		case 503:
			n++
		case 429:
			n, n429 = n+1, n429+1
		}
	}
	return n, n429
}

// pollRow is one strategy at one setting on the shared workload.
type pollRow struct {
	Strategy string
	Setting  time.Duration // poll interval, or our target latency (vendor time)
	Jobs     int
	Detected int
	Calls    float64 // status reads per detected job
	Median   time.Duration
	P95      time.Duration // detection latency, vendor time
	Events   float64       // history events per job (sum over runs)
	MaxEvent int           // the longest job's history events
}

// pollingPhase runs every strategy at every setting at once, each on its
// own account so each sees the same sequence of job durations.
func (b *bench) pollingPhase(ctx context.Context) ([]pollRow, error) {
	c := b.cfg
	type config struct {
		strategy string
		setting  time.Duration
		account  string
		queue    string
		naive    *proc
	}
	var cfgs []*config
	var names []string
	for _, strategy := range strategies {
		for _, iv := range c.settings(strategy) {
			acct := fmt.Sprintf("poll-%s-%s", shortName(strategy), iv)
			cfgs = append(cfgs, &config{strategy: strategy, setting: iv, account: acct})
			names = append(names, acct)
		}
	}
	model := c.workload(1)
	emu, err := b.emulatorFor(append(names, "poll-samples"), -1, &model, 0, 0)
	if err != nil {
		return nil, err
	}
	defer emu.close()
	deadline := c.Arrivals + c.scaled(c.MaxDuration) + 2*time.Minute
	for _, cf := range cfgs {
		switch cf.strategy {
		case stratOurs:
			// POLL_MAX_INTERVAL 2m rather than 1m: it caps the plan's
			// gap while a job is queued, which at the largest target
			// would otherwise be the cap, not the plan.
			w, q, err := b.oursWorker(ctx, cf.account, emu.url, "POLL_TARGET_LATENCY="+c.scaled(cf.setting).String(),
				"POLL_MAX_INTERVAL="+c.scaled(2*time.Minute).String())
			if err != nil {
				return nil, err
			}
			defer w.stop()
			cf.queue = q
		case stratTimer, stratRetry:
			q, err := b.sampleQueue(ctx, cf.account, emu.url)
			if err != nil {
				return nil, err
			}
			cf.queue = q
		}
	}
	defer b.stopSampleWorkers()
	var wg sync.WaitGroup
	errs := make(chan error, len(cfgs))
	for _, cf := range cfgs {
		if cf.strategy == stratNaive {
			p, err := b.naive(ctx, cf.account, emu.url, naiveOptions{Jobs: c.LatencyJobs, Arrivals: c.Arrivals,
				Interval: c.scaled(cf.setting), Backoff: c.scaled(time.Second), Deadline: deadline})
			if err != nil {
				return nil, err
			}
			cf.naive = p
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- startAll(ctx, c.LatencyJobs, c.Arrivals, func(i int) error {
				switch cf.strategy {
				case stratOurs:
					return b.startOurs(ctx, cf.queue, cf.account, i)
				case stratTimer:
					return b.startSample(ctx, timerWorkflowName, cf.queue, cf.account, i, c.scaled(cf.setting))
				default:
					return b.startSample(ctx, retryWorkflowName, cf.queue, cf.account, i, c.scaled(cf.setting))
				}
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return nil, err
		}
	}
	all := len(cfgs) * c.LatencyJobs
	if !waitFor(ctx, deadline, func() bool {
		n := 0
		for _, cf := range cfgs {
			n += detected(emu, cf.account)
		}
		return n >= all
	}) {
		b.log.Warn("polling phase: not every job was detected by the deadline")
	}
	var rows []pollRow
	jobs := emu.Jobs()
	for _, cf := range cfgs {
		if cf.naive != nil {
			if _, err := b.naiveResult(cf.naive); err != nil {
				return nil, err
			}
		}
		row := pollRow{Strategy: cf.strategy, Setting: cf.setting, Jobs: c.LatencyJobs}
		var lat []time.Duration
		reads := 0
		for _, j := range jobsOf(jobs, cf.account) {
			if j.FirstTerminalReadAt == nil {
				continue
			}
			row.Detected++
			reads += j.StatusReads
			lat = append(lat, time.Duration(float64(j.FirstTerminalReadAt.Sub(j.FinishedAt))/c.Scale))
		}
		if row.Detected > 0 {
			row.Calls = float64(reads) / float64(row.Detected)
			row.Median, row.P95 = percentile(lat, 0.5), percentile(lat, 0.95)
		}
		if cf.strategy != stratNaive {
			sum := 0
			for i := range c.LatencyJobs {
				id := "bench-" + ref(cf.account, i)
				if cf.strategy == stratOurs {
					id = workflows.WorkflowID(ref(cf.account, i))
				}
				n, err := historyEvents(ctx, b.plain, id)
				if err != nil {
					return nil, err
				}
				sum += n
				row.MaxEvent = max(row.MaxEvent, n)
			}
			row.Events = float64(sum) / float64(c.LatencyJobs)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// loadRow is one strategy's orchestration cost.
type loadRow struct {
	Strategy  string
	Jobs      int
	Wall      time.Duration
	PerSecond float64
	CPU       time.Duration // process CPU time over the phase
	PeakRSS   int64
	RSS       int64 // resident memory at the end (in-flight phase)
	// Events and EventKinds are the history events per job, in all and by
	// kind (throughput phase, Temporal strategies; the mean of up to
	// historySample jobs).
	Events     float64
	EventKinds map[string]float64
	// Rounds are the jobs/s of each round (throughput phase).
	Rounds []float64
}

// historySample is how many jobs' histories the throughput phase reads.
const historySample = 50

// throughputPhase runs each strategy alone with jobs that finish at once
// and no rate limit: how fast it moves jobs, at what CPU and memory cost.
// The strategies take turns for ThroughputRounds rounds (on a machine
// shared with other work one run of each swings by half) and each row
// holds its strategy's median round: jobs/s and CPU are the medians of
// their own, peak memory the highest, events the first round's.
func (b *bench) throughputPhase(ctx context.Context) ([]loadRow, error) {
	c := b.cfg
	rounds := map[string][]loadRow{}
	for round := range max(c.ThroughputRounds, 1) {
		for _, strategy := range b.loadStrategies {
			acct := fmt.Sprintf("tp%d-%s", round+1, shortName(strategy))
			emu, err := b.emulatorFor([]string{acct}, -1, nil, time.Nanosecond, time.Nanosecond)
			if err != nil {
				return nil, err
			}
			row, err := b.runLoad(ctx, strategy, acct, emu, c.ThroughputJobs, c.scaled(10*time.Second), func() bool {
				return detected(emu, acct) >= c.ThroughputJobs
			})
			emu.close()
			if err != nil {
				return nil, err
			}
			if strategy != stratNaive && round == 0 {
				if err := b.countEvents(ctx, &row, acct, min(c.ThroughputJobs, historySample)); err != nil {
					return nil, err
				}
			}
			b.log.Info("throughput round", "round", round+1, "strategy", strategy,
				"jobs_per_second", fmt.Sprintf("%.1f", row.PerSecond), "cpu_per_1000", fmt.Sprintf("%.1f", row.CPU.Seconds()*1000/float64(row.Jobs)))
			rounds[strategy] = append(rounds[strategy], row)
		}
	}
	var rows []loadRow
	for _, strategy := range b.loadStrategies {
		rows = append(rows, medianRow(rounds[strategy]))
	}
	return rows, nil
}

// medianRow folds one strategy's rounds into one row: the median jobs/s
// (with its wall), the median CPU, the highest peak memory, the first
// round's events, and every round's jobs/s.
func medianRow(rs []loadRow) loadRow {
	row := rs[0]
	byRate := slices.Clone(rs)
	slices.SortFunc(byRate, func(x, y loadRow) int { return cmp.Compare(x.PerSecond, y.PerSecond) })
	mid := byRate[len(byRate)/2]
	row.Wall, row.PerSecond = mid.Wall, mid.PerSecond
	cpus := make([]time.Duration, 0, len(rs))
	row.Rounds = nil
	for _, r := range rs {
		cpus = append(cpus, r.CPU)
		row.PeakRSS = max(row.PeakRSS, r.PeakRSS)
		row.Rounds = append(row.Rounds, r.PerSecond)
	}
	slices.Sort(cpus)
	row.CPU = cpus[len(cpus)/2]
	return row
}

// countEvents reads the histories of the first n jobs of a Temporal
// strategy and sets the row's events per job, in all and by kind.
func (b *bench) countEvents(ctx context.Context, row *loadRow, acct string, n int) error {
	row.EventKinds = map[string]float64{}
	total := 0
	for i := range n {
		id := "bench-" + ref(acct, i)
		if row.Strategy == stratOurs {
			id = workflows.WorkflowID(ref(acct, i))
		}
		kinds, err := historyEventKinds(ctx, b.plain, id)
		if err != nil {
			return err
		}
		for k, v := range kinds {
			row.EventKinds[k] += float64(v) / float64(n)
			total += v
		}
	}
	row.Events = float64(total) / float64(n)
	return nil
}

// inFlightPhase starts InFlightJobs per strategy that stay queued at the
// vendor and measures each process's memory once all wait on timers.
func (b *bench) inFlightPhase(ctx context.Context) ([]loadRow, error) {
	c := b.cfg
	var rows []loadRow
	for _, strategy := range []string{stratOurs} {
		acct := "mem-" + shortName(strategy)
		emu, err := b.emulatorFor([]string{acct}, -1, nil, 24*time.Hour, time.Nanosecond)
		if err != nil {
			return nil, err
		}
		row, err := b.runLoad(ctx, strategy, acct, emu, c.InFlightJobs, 10*time.Minute, func() bool {
			return len(jobsOf(emu.Jobs(), acct)) >= c.InFlightJobs
		})
		emu.close()
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// runLoad starts n jobs of one strategy as fast as they are taken and
// waits for done; it measures the strategy's process.
func (b *bench) runLoad(ctx context.Context, strategy, acct string, emu *emulatorServer, n int, interval time.Duration, done func() bool) (loadRow, error) {
	row := loadRow{Strategy: strategy, Jobs: n}
	var p *proc
	var queue string
	var err error
	var prof *profiler
	switch strategy {
	case stratOurs:
		env := []string{"POLL_INITIAL_INTERVAL=" + interval.String(),
			"POLL_MAX_INTERVAL=" + max(interval, b.cfg.scaled(time.Minute)).String(), "POLL_TARGET_LATENCY=0",
			"CHAMELAION_RATE_LIMIT_PER_MINUTE=6000000", "CHAMELAION_STATUS_RATE_LIMIT_PER_MINUTE=6000000"}
		if b.profileDir != "" {
			if prof, err = newProfiler(b.profileDir, acct); err != nil {
				return row, err
			}
			env = append(env, "PROFILE_ADDR="+prof.addr)
		}
		p, queue, err = b.oursWorker(ctx, acct, emu.url, env...)
	case stratTimer, stratRetry:
		p, queue, err = b.strategyWorker(ctx, acct, emu.url)
	}
	if err != nil {
		return row, err
	}
	before := usage{}
	t0 := time.Now()
	switch strategy {
	case stratNaive:
		p, err = b.naive(ctx, acct, emu.url, naiveOptions{Jobs: n, Interval: interval, Backoff: time.Second, Deadline: 30 * time.Minute})
		if err != nil {
			return row, err
		}
	default:
		if before, err = p.usage(); err != nil {
			return row, err
		}
		prof.startCPU(ctx, 10*time.Second)
		err = startAll(ctx, n, 0, func(i int) error {
			switch strategy {
			case stratOurs:
				return b.startOurs(ctx, queue, acct, i)
			case stratTimer:
				return b.startSample(ctx, timerWorkflowName, queue, acct, i, interval)
			default:
				return b.startSample(ctx, retryWorkflowName, queue, acct, i, interval)
			}
		})
		if err != nil {
			p.stop()
			return row, err
		}
	}
	ok := waitFor(ctx, 15*time.Minute, done)
	row.Wall = time.Since(t0)
	if !ok {
		p.stop()
		return row, fmt.Errorf("%s: %w", strategy, errIncomplete)
	}
	row.PerSecond = float64(n) / row.Wall.Seconds()
	// Let the last timers be set before measuring memory.
	sleepUntil(ctx, time.Now().Add(3*time.Second))
	if err := prof.finish(ctx); err != nil {
		p.stop()
		return row, err
	}
	after, err := p.usage()
	if err != nil && strategy == stratNaive {
		// The loop finished every job and exited: it reported its own use.
		res, err := b.naiveResult(p)
		if err != nil {
			return row, err
		}
		row.CPU, row.PeakRSS = time.Duration(res.CPUSeconds*float64(time.Second)), res.MaxRSS
		return row, nil
	}
	p.stop()
	if err != nil {
		return row, err
	}
	row.CPU, row.PeakRSS, row.RSS = after.CPU-before.CPU, after.PeakRSS, after.RSS
	if strategy != stratNaive && strategy != stratOurs {
		var ids []string
		for i := range n {
			ids = append(ids, "bench-"+ref(acct, i))
		}
		b.terminateOpen(ctx, ids)
	}
	return row, nil
}

// sampleQueue starts (once per account) a worker of the sample strategies
// and returns its task queue.
func (b *bench) sampleQueue(ctx context.Context, account, baseURL string) (string, error) {
	p, q, err := b.strategyWorker(ctx, account, baseURL)
	if err != nil {
		return "", err
	}
	b.sampleProcs = append(b.sampleProcs, p)
	return q, nil
}

func (b *bench) stopSampleWorkers() {
	for _, p := range b.sampleProcs {
		p.stop()
	}
	b.sampleProcs = nil
}

func shortName(strategy string) string {
	switch strategy {
	case stratNaive:
		return "naive"
	case stratTimer:
		return "timer"
	case stratRetry:
		return "retry"
	}
	return "ours"
}

// warmup runs WarmupJobs through our worker with the polling phase's
// processing times (another seed) and short queue waits, so that its
// PostgreSQL holds past jobs to learn a poll plan from, as a worker in
// service would.
func (b *bench) warmup(ctx context.Context) error {
	c := b.cfg
	model := c.workload(2)
	model.QueueMedian, model.QueueSigma = time.Second, 0
	emu, err := b.emulatorFor([]string{"warmup"}, -1, &model, 0, 0)
	if err != nil {
		return err
	}
	defer emu.close()
	w, queue, err := b.oursWorker(ctx, "warmup", emu.url)
	if err != nil {
		return err
	}
	defer w.stop()
	if err := startAll(ctx, c.WarmupJobs, 0, func(i int) error { return b.startOurs(ctx, queue, "warmup", i) }); err != nil {
		return err
	}
	if !waitFor(ctx, 3*time.Minute, func() bool { return detected(emu, "warmup") >= c.WarmupJobs }) {
		return errIncomplete
	}
	return nil
}
