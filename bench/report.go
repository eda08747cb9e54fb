package main

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/chamelaion-lipsync/worker/bench/plot"
	"github.com/chamelaion-lipsync/worker/internal/localcluster"
)

// report is everything one run measured.
type report struct {
	cfg        benchConfig
	quick      bool
	command    string // the command line, when not the default
	commit     string // the commit measured, read when the run started
	started    time.Time
	wall       time.Duration
	rate       []rateRow
	polling    []pollRow
	throughput []loadRow
	inflight   []loadRow
	backends   []backendRow
}

// percentile is the nearest-rank percentile q of ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := sortedDurations(ds)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// rateOf returns the span from the first to the last time, the mean
// number of times in a rolling minute while they lasted (the minutes
// starting every 100 ms from the first time until a minute before the
// last; just the first minute when they all fit in one), and the most
// times in any rolling minute. Under a per-minute limit the mean never
// exceeds the limit; a batch that keeps the budget busy reaches it.
func rateOf(times []time.Time) (span time.Duration, perMinute float64, maxInMinute int) {
	if len(times) == 0 {
		return 0, 0, 0
	}
	ts := slices.Clone(times)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	span = ts[len(ts)-1].Sub(ts[0])
	in := func(from time.Time) int {
		i, _ := slices.BinarySearchFunc(ts, from, func(a, t time.Time) int { return a.Compare(t) })
		j, _ := slices.BinarySearchFunc(ts, from.Add(time.Minute), func(a, t time.Time) int { return a.Compare(t) })
		return j - i
	}
	sum, n := 0, 0
	for t := ts[0]; n == 0 || !t.Add(time.Minute).After(ts[len(ts)-1]); t = t.Add(100 * time.Millisecond) {
		sum += in(t)
		n++
	}
	for _, t := range ts {
		maxInMinute = max(maxInMinute, in(t))
	}
	return span, float64(sum) / float64(n), maxInMinute
}

// perBucket counts the times in consecutive buckets from the first.
func perBucket(times []time.Time, bucket time.Duration) []int {
	if len(times) == 0 {
		return nil
	}
	first := slices.MinFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	var out []int
	for _, t := range times {
		i := int(t.Sub(first) / bucket)
		for len(out) <= i {
			out = append(out, 0)
		}
		out[i]++
	}
	return out
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// machine describes where the run happened.
func machine() string {
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
				mem = fmt.Sprintf(", %.1f GiB memory", float64(kb)/(1<<20))
			}
		}
	}
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = " (" + strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":")) + ")"
				break
			}
		}
	}
	return fmt.Sprintf("%d cores%s%s, %s/%s, %s", runtime.NumCPU(), model, mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	// Only changes to the code change what was measured (the report
	// itself goes to docs/).
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", "*.go", "go.mod", "go.sum", "*.sql").Output(); err == nil && len(st) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

// workloadStats describes the polling phase's job durations (vendor time).
func (r *report) workloadStats() string {
	m := r.cfg.workload(1)
	m.Scale = 1
	var total, queue, proc []time.Duration
	for n := range r.cfg.LatencyJobs {
		q, p := m.Draw(n)
		total, queue, proc = append(total, q+p), append(queue, q), append(proc, p)
	}
	f := func(ds []time.Duration) string {
		return fmt.Sprintf("median %s, p95 %s, max %s", percentile(ds, 0.5).Round(time.Second), percentile(ds, 0.95).Round(time.Second), percentile(ds, 1).Round(time.Second))
	}
	return fmt.Sprintf("total %s (queued %s; processing %s)", f(total), f(queue), f(proc))
}

func (r *report) markdown() string {
	c := r.cfg
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	cmd := "make bench"
	if r.quick {
		cmd = "go run ./bench --quick"
	}
	if r.command != "" {
		cmd = r.command
	}
	p("# Benchmarks: this worker against the alternatives")
	p("")
	p("Measured side by side in one run of `%s` on %s, commit %s, %s; the run took %s.",
		cmd, machine(), r.commit, r.started.UTC().Format("2006-01-02 15:04 MST"), r.wall.Round(time.Second))
	p("Every strategy runs in its own process against the same emulator, Temporal dev server (CLI v1.5.1) and PostgreSQL 15.")
	p("Time is scaled: in the polling, throughput and memory phases jobs and poll intervals run %g times faster than the vendor's (a 2-minute job takes %s; not faster, because Temporal fires no timer sooner than one second after it is set, and the shortest interval compared, 5 s, must stay above that); latencies and settings below are in vendor time.",
		1/c.Scale, c.scaled(2*time.Minute))
	p("")
	p("Strategies: **%s** (sleep and poll at a fixed interval, retry 429 after 1-2-4 s, then give up; no idempotency); **%s** (a workflow sleeping on a durable timer between status activities); **%s** (one status activity that fails until the job is done, retried by the server at the interval); **%s** as shipped (separate rate-limited submit and status queues, learned poll plan, PostgreSQL records, payload encryption).",
		stratNaive, stratTimer, stratRetry, stratOurs)
	p("")
	if len(r.rate) > 0 {
		r.rateSection(p)
	}
	if len(r.polling) > 0 {
		r.pollingSection(p)
	}
	if len(r.throughput) > 0 {
		r.throughputSection(p)
	}
	if len(r.inflight) > 0 {
		r.inflightSection(p)
	}
	if len(r.backends) > 0 {
		r.backendsSection(p)
	}
	return b.String()
}

func (r *report) rateSection(p func(string, ...any)) {
	c := r.cfg
	p("## 1. Submission budget")
	p("")
	p("One batch of %d jobs per strategy, each on its own account, against a limit of %d generation requests per rolling minute (%.1f minutes of budget; the limit and its one-minute window run in real time, and so do the 1-2-4 s backoffs; every job is queued 1 s and processed 1 s, so that status checks hardly compete with submissions). Submissions per minute = the mean number accepted in a rolling minute while the batch was being submitted (minutes starting every 100 ms from the first acceptance to a minute before the last); budget use = that ÷ the limit, at most 1 by construction. Ours ran alone (the batch command with its defaults); the other three together, each starting its whole batch at once as its source does, stopped %s after starting.",
		c.RateJobs, c.RateLimit, float64(c.RateJobs)/float64(c.RateLimit), secs(r.rateDeadline()))
	p("")
	if c.RateFaultEvery > 0 {
		p("")
		p("Injected faults, as the vendor sends them: the first submission of one job in %d is answered 503 and of another 429 with `Retry-After: 2` (%.0f%% of the jobs, each fault counted against the limit as the vendor counts every request it answers but those its limiter refuses). Over the whole span (from the first accepted submission to the last, the batch's tail included): accepted/min = accepted submissions ÷ span; budget use = (accepted submissions + injected faults answered) ÷ span ÷ the limit.",
			c.RateFaultEvery, 200/float64(c.RateFaultEvery))
	}
	p("")
	p("| strategy | accepted | never submitted | submissions/min | budget use | whole span | accepted/min over it | budget use over it | most in a rolling minute | 429 answers | share of generation requests answered 429 |")
	p("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, x := range r.rate {
		share := 0.0
		if x.Generate > 0 {
			share = float64(x.Limited) / float64(x.Generate)
		}
		p("| %s | %d / %d | %d | %.1f | %.3f | %s | %.1f | %.3f | %d | %d of %d | %.1f%% |", x.Strategy, x.Accepted, x.Jobs, x.Lost, x.PerMinute, x.Use,
			secs(x.Span), x.SpanPerMinute, x.SpanUse, x.MaxRollingMinute, x.Limited, x.Generate, share*100)
	}
	p("")
}

func (r *report) pollingSection(p func(string, ...any)) {
	c := r.cfg
	p("## 2–4. Status calls, detection latency and Temporal history per job")
	p("")
	p("%d jobs per strategy and setting, started evenly over %s (real time), all settings at once; every account gets the same sequence of durations: %s. Calls = status reads per job the emulator answered; latency = from the emulator's finish time to the first read that showed the job finished. For this worker the setting is `POLL_TARGET_LATENCY` P, with `POLL_MAX_INTERVAL=2m` (the default 1m would cap the plan's gap while a job is queued at the largest P) (its plan is learned from %d warm-up jobs the worker completed just before, with processing times drawn from the same distribution with another seed); for the others it is the fixed interval. The vendor loop polls with no orchestration overhead (and no durability); the timer sample is the same fixed-interval polling through Temporal, with the overhead every Temporal strategy pays (a workflow task and an activity task between the timer firing and the request, about 0.1 s of real time here, 0.4 s of vendor time at this scale).",
		c.LatencyJobs, c.Arrivals, r.workloadStats(), c.WarmupJobs)
	p("")
	p("| strategy | setting | detected | status calls / job | latency median | latency p95 | history events / job | longest job's events |")
	p("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, x := range r.polling {
		ev, mx := "—", "—"
		if x.Strategy != stratNaive {
			ev, mx = fmt.Sprintf("%.0f", x.Events), fmt.Sprint(x.MaxEvent)
		}
		p("| %s | %s | %d / %d | %.1f | %s | %s | %s | %s |", x.Strategy, x.Setting, x.Detected, x.Jobs, x.Calls, secs(x.Median), secs(x.P95), ev, mx)
	}
	p("")
	p("![status calls per job against p95 detection latency](benchmarks-latency.svg)")
	p("")
	for _, line := range r.dominance() {
		p("- %s", line)
	}
	p("")
	r.eventsAtSameLatency(p)
}

// eventsAtSameLatency compares, setting by setting, this worker's history
// events per job with the timer sample's at the same p95 detection
// latency: the timer sample's events at that latency are read off the
// line through its two settings around it (its events fall as its
// interval, and so its latency, grows). Outside the sample's range the
// nearest setting's events are taken: below its fastest that favours the
// sample, above its slowest this worker (the report shows both p95s).
func (r *report) eventsAtSameLatency(p func(string, ...any)) {
	var timer []pollRow
	for _, x := range r.polling {
		if x.Strategy == stratTimer && x.Events > 0 {
			timer = append(timer, x)
		}
	}
	slices.SortFunc(timer, func(a, b pollRow) int { return cmp.Compare(a.P95, b.P95) })
	if len(timer) < 2 {
		return
	}
	p("History events per job against the timer sample's at the same p95 detection latency (issue 16's goal: no more):")
	p("")
	p("| this worker's setting | p95 latency | events / job | timer sample's events at that p95 | ratio | goal |")
	p("| --- | --- | --- | --- | --- | --- |")
	for _, x := range r.polling {
		if x.Strategy != stratOurs {
			continue
		}
		at := timerEventsAt(timer, x.P95)
		verdict := "met"
		if x.Events > at {
			verdict = "not met"
		}
		p("| P=%s | %s | %.0f | %.0f | %.2f | %s |", x.Setting, secs(x.P95), x.Events, at, x.Events/at, verdict)
	}
	p("")
}

// timerEventsAt interpolates the timer sample's events per job at a p95
// latency, from its rows sorted by p95 (clamped at both ends).
func timerEventsAt(rows []pollRow, p95 time.Duration) float64 {
	if p95 <= rows[0].P95 {
		return rows[0].Events
	}
	for i := 1; i < len(rows); i++ {
		lo, hi := rows[i-1], rows[i]
		if p95 <= hi.P95 {
			f := float64(p95-lo.P95) / float64(hi.P95-lo.P95)
			return lo.Events + f*(hi.Events-lo.Events)
		}
	}
	return rows[len(rows)-1].Events
}

func (r *report) throughputSection(p func(string, ...any)) {
	c := r.cfg
	p("## 5. Orchestration throughput and overhead")
	p("")
	p("Each strategy alone, %d jobs started at once, an emulator that finishes every job at once and no rate limit; CPU and peak memory are the strategy's own process (for ours the worker; the Temporal server and PostgreSQL are not counted). The strategies took turns, %d rounds each; a row is the strategy's median round (jobs/s and CPU each the median, peak memory the highest, events from the first round).", c.ThroughputJobs, max(c.ThroughputRounds, 1))
	p("")
	p("| strategy | jobs | wall | jobs/s | jobs/s of each round | CPU s per 1,000 jobs | peak RSS | history events / job |")
	p("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, x := range r.throughput {
		events := "—"
		if x.Events > 0 {
			events = fmt.Sprintf("%.1f", x.Events)
		}
		var each []string
		for _, v := range x.Rounds {
			each = append(each, fmt.Sprintf("%.1f", v))
		}
		p("| %s | %d | %s | %.1f | %s | %.1f | %s | %s |", x.Strategy, x.Jobs, secs(x.Wall), x.PerSecond, strings.Join(each, ", "), x.CPU.Seconds()*1000/float64(x.Jobs), mib(x.PeakRSS), events)
	}
	p("")
	r.throughputRatios(p)
	r.eventKindsTable(p)
}

// throughputRatios prints this worker's figures as ratios to the timer
// sample's, against issue 16's goals.
func (r *report) throughputRatios(p func(string, ...any)) {
	var ours, timer *loadRow
	for i := range r.throughput {
		switch r.throughput[i].Strategy {
		case stratOurs:
			ours = &r.throughput[i]
		case stratTimer:
			timer = &r.throughput[i]
		}
	}
	if ours == nil || timer == nil || timer.PerSecond == 0 || timer.CPU == 0 {
		return
	}
	perJob := func(x *loadRow) float64 { return x.CPU.Seconds() / float64(x.Jobs) }
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "not met"
	}
	rate, cpu := ours.PerSecond/timer.PerSecond, perJob(ours)/perJob(timer)
	p("This worker against the timer sample (goal in brackets):")
	p("")
	p("| measure | ratio | goal |")
	p("| --- | --- | --- |")
	p("| jobs per second | %.2f | at least 0.90: %s |", rate, verdict(rate >= 0.9))
	p("| worker CPU per job | %.2f | at most 1.20: %s |", cpu, verdict(cpu <= 1.2))
	if ours.Events > 0 && timer.Events > 0 {
		p("| history events per job (jobs that finish at once) | %.2f | — (see the polling phase for events at the same latency) |", ours.Events/timer.Events)
	}
	p("")
}

// eventKindsTable writes the throughput phase's history events per job by
// kind, a column per Temporal strategy.
func (r *report) eventKindsTable(p func(string, ...any)) {
	var cols []loadRow
	for _, x := range r.throughput {
		if x.Events > 0 {
			cols = append(cols, x)
		}
	}
	if len(cols) == 0 {
		return
	}
	p("History events per job by kind (the mean over the first %d jobs of each):", historySample)
	p("")
	head, rule := "| kind |", "| --- |"
	for _, x := range cols {
		head += " " + x.Strategy + " |"
		rule += " --- |"
	}
	p("%s", head)
	p("%s", rule)
	for _, k := range eventKinds {
		line, any := "| "+k+" |", false
		for _, x := range cols {
			line += fmt.Sprintf(" %.1f |", x.EventKinds[k])
			any = any || x.EventKinds[k] > 0
		}
		if any {
			p("%s", line)
		}
	}
	p("")
}

func (r *report) inflightSection(p func(string, ...any)) {
	c := r.cfg
	p("## 6. Memory with jobs in flight")
	p("")
	p("This worker with %d jobs in flight: the vendor keeps them queued and each waits on a 10-minute timer (`POLL_INITIAL_INTERVAL=10m`). The time to start them is bound by the dev server, which persists to SQLite through one connection (about one core). `make bench-memory` runs the same with 10,000 jobs (about 9 minutes).", c.InFlightJobs)
	p("")
	p("| strategy | jobs in flight | time to start them | RSS | peak RSS |")
	p("| --- | --- | --- | --- | --- |")
	for _, x := range r.inflight {
		p("| %s | %d | %s | %s | %s |", x.Strategy, x.Jobs, secs(x.Wall), mib(x.RSS), mib(x.PeakRSS))
	}
	p("")
}

func (r *report) rateDeadline() time.Duration {
	return time.Duration((float64(r.cfg.RateJobs)/float64(r.cfg.RateLimit) + 0.5) * float64(time.Minute))
}

// chart plots status calls per job against p95 latency, one series per
// strategy.
func (r *report) chart() ([]byte, error) {
	var series []plot.Series
	for _, strategy := range strategies {
		s := plot.Series{Name: strategy, Dashed: strategy != stratOurs}
		for _, x := range r.polling {
			if x.Strategy != strategy || x.Detected == 0 || x.P95 <= 0 {
				continue
			}
			label := x.Setting.String()
			if strategy == stratOurs {
				label = "P=" + label
			}
			s.Points = append(s.Points, plot.Point{X: x.Calls, Y: x.P95.Seconds(), Label: label})
		}
		if len(s.Points) > 0 {
			series = append(series, s)
		}
	}
	return plot.Chart{
		Title:  "Status calls per job vs p95 detection latency",
		XLabel: "status calls per job", YLabel: "p95 detection latency (s, vendor time)",
		LogX: true, LogY: true,
		Note:   fmt.Sprintf("lower left is better; %d jobs per point; commit %s; %d cores", r.cfg.LatencyJobs, r.commit, runtime.NumCPU()),
		Series: series,
	}.SVG()
}

// dominance says, for every fixed-interval point, whether one of our
// settings needs fewer status calls per job with no worse p95 latency.
func (r *report) dominance() []string {
	var ours []pollRow
	for _, x := range r.polling {
		if x.Strategy == stratOurs && x.Detected == x.Jobs {
			ours = append(ours, x)
		}
	}
	var out []string
	for _, x := range r.polling {
		if x.Strategy == stratOurs {
			continue
		}
		best := -1
		for i, o := range ours {
			if o.Calls < x.Calls && o.P95 <= x.P95 && (best < 0 || o.Calls < ours[best].Calls) {
				best = i
			}
		}
		if best < 0 {
			out = append(out, fmt.Sprintf("%s every %s (%.1f calls, p95 %s): **not dominated** by any of our settings.", x.Strategy, x.Setting, x.Calls, secs(x.P95)))
			continue
		}
		o := ours[best]
		out = append(out, fmt.Sprintf("%s every %s (%.1f calls, p95 %s): dominated by ours at P=%s (%.1f calls, %.2fx fewer; p95 %s).",
			x.Strategy, x.Setting, x.Calls, secs(x.P95), o.Setting, o.Calls, x.Calls/o.Calls, secs(o.P95)))
	}
	return out
}

func (r *report) backendsSection(p func(string, ...any)) {
	c := r.cfg
	durability := "durable commits, as in production"
	if c.ClusterFastPG {
		durability = "**without durability: fsync and synchronous commit off**, an experiment"
	}
	p("## 7. The dev server and the cluster")
	p("")
	p("The same measurements on each Temporal backend in turn, each started afresh for this section on the same machine: the throughput phase's (%d jobs started at once, instant jobs, no rate limit) for the bare timer sample and for this worker, and the rate phase's for this worker (%d jobs, a limit of %d per rolling minute). **Dev server**: the CLI's `server start-dev` (CLI v1.5.1, server 1.29.1), every service in one process, SQLite. **Cluster**: the server v1.29.1 as deployed (`deploy/`): PostgreSQL 15 (%s) with SQL visibility, %d history shards, history, matching, frontend and worker services each in its own process, the shipped dynamic configuration (one partition for this worker's rate-limited queues). Server CPU is each server process's CPU time over the run (PostgreSQL: the server and its backends); 1.0 core = one core busy for the whole run.",
		c.ThroughputJobs, c.RateJobs, c.RateLimit, durability, localcluster.DefaultHistoryShards)
	p("")
	p("| backend | start-up | timer sample jobs/s | this worker jobs/s | this worker CPU s per 1,000 jobs | rate phase: submissions/min | budget use | most in a rolling minute | 429 answers |")
	p("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, x := range r.backends {
		p("| %s | %s | %.1f | %.1f | %.1f | %.1f | %.3f | %d | %d of %d |", x.Backend, secs(x.Start), x.Timer.PerSecond, x.Ours.PerSecond,
			x.Ours.CPU.Seconds()*1000/float64(x.Ours.Jobs), x.Rate.PerMinute, x.Rate.Use, x.Rate.MaxRollingMinute, x.Rate.Limited, x.Rate.Generate)
	}
	p("")
	p("Where the CPU went during each throughput run (cores busy on average over the run: the strategy's own process, each server process, and the whole machine, %d cores, from /proc/stat; anything else running on the machine shows there too):", runtime.NumCPU())
	p("")
	p("| backend | strategy | wall | strategy's process | server processes | benchmark, worker's PostgreSQL | machine: busy (of which other processes) / I/O wait / idle | PostgreSQL commits per job |")
	p("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, x := range r.backends {
		for _, run := range []struct {
			load    loadRow
			server  []procCPU
			support []procCPU
			commits float64
			machine machineCPU
		}{{x.Timer, x.TimerServer, x.TimerSupport, x.TimerCommits, x.TimerMachine}, {x.Ours, x.OursServer, x.OursSupport, x.OursCommits, x.OursMachine}} {
			wall := run.load.Wall.Seconds()
			own := run.load.CPU.Seconds() / wall
			cores := func(ps []procCPU) (string, float64) {
				var parts []string
				total := 0.0
				for _, s := range ps {
					c := s.CPU.Seconds() / wall
					total += c
					parts = append(parts, fmt.Sprintf("%s %.2f", s.Name, c))
				}
				if len(ps) > 1 {
					parts = append(parts, fmt.Sprintf("**total %.2f**", total))
				}
				return strings.Join(parts, ", "), total
			}
			server, serverTotal := cores(run.server)
			support, supportTotal := cores(run.support)
			others := max(0, run.machine.Busy-own-serverTotal-supportTotal)
			commits := "—"
			if run.commits > 0 {
				commits = fmt.Sprintf("%.0f", run.commits)
			}
			p("| %s | %s | %s | %.2f | %s | %s | %.2f (%.2f) / %.2f / %.2f | %s |", x.Backend, run.load.Strategy, secs(run.load.Wall), own,
				server, support, run.machine.Busy, others, run.machine.IOWait, run.machine.Idle, commits)
		}
	}
	p("")
}
