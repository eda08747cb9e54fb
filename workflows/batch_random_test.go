package workflows

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/chamelaion"
)

var (
	batchSeeds   = flag.Int("batch.seeds", 0, "how many random batch schedules TestBatchRandomSchedules runs (0 = 300, or 40 with -short)")
	batchAnswers = flag.Int("batch.answers", 4, "at most this many answers an operator sends to one pause in TestBatchRandomSchedules")
	batchSeed    = flag.Uint64("batch.seed", 0, "run only this seed of TestBatchRandomSchedules (a failing seed prints itself)")
)

// TestBatchRandomSchedules drives the real batch workflow with seeded
// random schedules of what its jobs tell it, and checks after each that
// the batch behaved. Jobs are simulated at the protocol level (a stub
// child workflow records the start and the batch's answers; the schedule
// sends the job's signals), so that a schedule can do what real jobs do
// rarely: signals in any order and twice, many in the workflow task that
// continues the batch as new, jobs escalated before they were submitted,
// jobs cancelled or terminated without a word, account-wide pauses
// answered by bursts of concurrent and conflicting decisions, pauses behind
// another batch's account hold, aborts, batches read page by page from a
// file.
//
// After every schedule: the batch ends, and no later than its last job
// settled (completed, abandoned, not submitted, cancelled, or escalated and
// waiting for a human) plus the reconciliation's delay; every job appears
// exactly once in the result, with the outcome the schedule gave it;
// pending starts never exceed MaxPending nor jobs in flight Concurrency;
// each pause is escalated and notified once and answered once; no workflow
// task fails.
//
// A failing case names its seed: go test -run TestBatchRandomSchedules ./workflows -batch.seed=N
func TestBatchRandomSchedules(t *testing.T) {
	if *batchSeed != 0 {
		runBatchSim(t, *batchSeed)
		return
	}
	n := 300
	if testing.Short() {
		n = 40
	}
	if *batchSeeds > 0 {
		n = *batchSeeds
	}
	for seed := uint64(1); seed <= uint64(n); seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			runBatchSim(t, seed)
		})
	}
}

// What a simulated job does once started.
type simFate int

const (
	fateComplete   simFate = iota // submitted, processing, done completed
	fateVendorFail                // submitted, then escalated (JobFailed)
	fateRefused                   // escalated before submission (400)
	fateQuota                     // its submission runs the quota out: blocked
	fateCancel                    // submitted, then cancelled (done cancelled)
	fateTerminate                 // submitted, then terminated: never a word more
)

// What a human does with an escalated job.
type simHuman int

const (
	humanNone    simHuman = iota // never answers in the batch's lifetime
	humanAbandon                 // done abandoned
	humanRetry                   // retrying, submitted, done completed
)

type simJob struct {
	ref   string
	fate  simFate
	human simHuman
	dup   bool
	// legacy jobs do not number their events (jobs started before the
	// batch got numbered events).
	legacy bool
	seq    int
	// started counts the batch's starts of the job.
	started   int
	startedAt time.Time
	// What the batch has been told (the harness's view, at delivery).
	submitted  bool
	escalated  bool
	retrying   bool
	retryingAt time.Time
	blocked    bool
	final      string // the outcome of the delivered done event
	terminated time.Time
	// settledAt is when the job settled, as delivered.
	settledAt time.Time
	// notSubmittedByBatch: the batch recorded it as not submitted without
	// starting it (an abort).
	notSubmittedByBatch bool
	decisions           []AccountDecision
	// prev is the job as it was before the events delivered at lastAt.
	prev   *simJob
	lastAt time.Time
}

// expected is the outcome the batch must report for the job, or a problem
// if the batch should not have ended.
func (j *simJob) expected() (string, string) {
	switch {
	case j.final != "":
		return j.final, ""
	case j.escalated && !j.retrying:
		return OutcomeEscalated, ""
	case !j.terminated.IsZero():
		return OutcomeCancelled, ""
	case j.notSubmittedByBatch:
		return OutcomeNotSubmitted, ""
	case j.started == 0:
		return "", fmt.Sprintf("%s was never started and the batch was not aborted", j.ref)
	}
	return "", fmt.Sprintf("the batch ended while %s had not settled (submitted=%v blocked=%v retrying=%v)", j.ref, j.submitted, j.blocked, j.retrying)
}

// settled says whether the job needs nothing more of the batch.
func (j *simJob) settled() bool {
	return j.final != "" || (j.escalated && !j.retrying) || !j.terminated.IsZero() || j.notSubmittedByBatch
}

type simEvent struct {
	at  time.Time
	seq int
	ev  BatchJobEvent
	job *simJob
}

type batchSim struct {
	t    *testing.T
	seed uint64
	mu   sync.Mutex
	rng  *rand.Rand
	in   BatchInput
	jobs map[string]*simJob
	// order is the jobs in input order.
	order  []*simJob
	events []simEvent
	seq    int
	quota  bool // the account's quota is out
	// Another batch holds the account from foreignFrom to foreignTo.
	foreignFrom, foreignTo time.Time
	env                    *testsuite.TestWorkflowEnvironment
	done                   bool
	endedAt                time.Time
	// Invariant bookkeeping.
	violations       []string
	accountEscs      map[int]int    // pause number -> escalations
	notified         map[int64]int  // escalation id -> notifications
	answered         map[int64]bool // escalation id -> an answer was accepted
	accepted         map[int64]int
	pendingNow       int
	activeNow        int
	maxPendingSeen   int
	maxActiveSeen    int
	runs             int
	reconcileAfter   time.Duration
	lastProgress     BatchProgress
	lastProgressOK   bool
	rogueAccepted    int
	operatorAnswered map[int64]bool
	trace            []string
}

// tracef notes what happened, for a failing seed's report.
func (s *batchSim) tracef(at time.Time, format string, args ...any) {
	s.trace = append(s.trace, at.Format("15:04:05")+" "+fmt.Sprintf(format, args...))
}

func (s *batchSim) failf(format string, args ...any) {
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
}

func runBatchSim(t *testing.T, seed uint64) {
	s := &batchSim{
		t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, seed*7919)),
		jobs: map[string]*simJob{}, accountEscs: map[int]int{}, notified: map[int64]int{},
		answered: map[int64]bool{}, accepted: map[int64]int{}, operatorAnswered: map[int64]bool{},
	}
	n := 5 + s.rng.IntN(40)
	s.in = BatchInput{
		BatchID:      fmt.Sprintf("sim-%d", seed),
		Concurrency:  1 + s.rng.IntN(12),
		MaxPending:   1 + s.rng.IntN(6),
		StartsPerRun: 2 + s.rng.IntN(12),
	}
	if s.rng.IntN(4) == 0 {
		s.in.StartsPerRun = 1000
	}
	for i := range n {
		// Jobs number their events, so the batch drops duplicates and
		// stale ones; legacy jobs (started by an earlier release) do not,
		// and Temporal delivers their signals once and in order.
		j := &simJob{ref: fmt.Sprintf("s%d-%03d", seed, i), legacy: s.rng.IntN(4) == 0}
		j.dup = !j.legacy && s.rng.IntN(4) == 0
		switch r := s.rng.IntN(100); {
		case r < 55:
			j.fate = fateComplete
		case r < 65:
			j.fate = fateVendorFail
		case r < 75:
			j.fate = fateRefused
		case r < 83:
			j.fate = fateQuota
		case r < 91:
			j.fate = fateCancel
		default:
			j.fate = fateTerminate
		}
		j.human = simHuman(s.rng.IntN(3))
		s.jobs[j.ref] = j
		s.order = append(s.order, j)
		s.in.Jobs = append(s.in.Jobs, LipSyncInput{ReferenceID: j.ref, Video: "https://cdn.example.com/v.mp4?X-Amz-Signature=SIG", Audio: "https://cdn.example.com/a.wav"})
	}
	s.reconcileAfter = 10 * time.Minute
	if s.rng.IntN(4) == 0 {
		// The workers read the jobs from a file, a few at a time.
		s.in.Source = &activities.BatchSource{Path: "/shared/sim.csv", SHA256: strings.Repeat("ab", 32), Jobs: n}
		s.in.Jobs = nil
		s.in.PageSize = 2 + s.rng.IntN(8)
	}
	if s.rng.IntN(4) == 0 {
		start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
		s.foreignFrom = start.Add(time.Duration(s.rng.IntN(20)) * time.Minute)
		s.foreignTo = s.foreignFrom.Add(time.Duration(1+s.rng.IntN(40)) * time.Minute)
	}
	t.Logf("seed %d: %d jobs, concurrency %d, max pending %d, starts per run %d, from a file %v (reproduce: go test -run TestBatchRandomSchedules ./workflows -batch.seed=%d)",
		seed, n, s.in.Concurrency, s.in.MaxPending, s.in.StartsPerRun, s.in.Source != nil, seed)

	in := s.in
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	var res BatchResult
	for run := 1; ; run++ {
		if run > 200 {
			s.failf("the batch continued as new more than 200 times")
			break
		}
		s.runs = run
		env := s.newEnv(start)
		env.ExecuteWorkflow(BatchWorkflowName, in)
		start = env.Now()
		if !env.IsWorkflowCompleted() {
			s.failf("run %d did not complete", run)
			break
		}
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			var next BatchInput
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
				s.failf("decode the continued input: %v", err)
				break
			}
			in = next
			continue
		}
		if err != nil {
			if strings.Contains(err.Error(), "deadline exceeded") {
				s.failf("run %d never ended (a job's end was lost or a slot leaked): %v; last progress %+v", run, err, s.lastProgress)
			} else {
				s.failf("run %d failed: %v", run, err)
			}
			break
		}
		if err := env.GetWorkflowResult(&res); err != nil {
			s.failf("decode the result: %v", err)
			break
		}
		s.mu.Lock()
		s.done, s.endedAt = true, start
		s.mu.Unlock()
		s.check(res)
		break
	}
	if len(s.violations) > 0 {
		if testing.Verbose() || *batchSeed != 0 {
			t.Logf("trace:\n  %s", strings.Join(s.trace, "\n  "))
		}
		t.Fatalf("seed %d (go test -run TestBatchRandomSchedules ./workflows -batch.seed=%d):\n  %s", seed, seed, strings.Join(s.violations, "\n  "))
	}
}

// newEnv is one run's environment: the real batch workflow, a stub job
// workflow, the activities the batch calls, and the schedule's clock.
func (s *batchSim) newEnv(start time.Time) *testsuite.TestWorkflowEnvironment {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(simLogger()))
	env := suite.NewTestWorkflowEnvironment()
	env.SetStartTime(start)
	env.SetDetachedChildWait(false)
	env.SetTestTimeout(time.Minute)
	env.SetWorkflowRunTimeout(20 * 24 * time.Hour)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: BatchWorkflowID(s.in.BatchID)})
	if s.rng.IntN(6) == 0 {
		env.SetContinueAsNewSuggested(true)
	}
	s.env = env
	wfs := &Workflows{Defaults: testSettings()}
	env.RegisterWorkflowWithOptions(wfs.Batch, workflow.RegisterOptions{Name: BatchWorkflowName})
	env.RegisterWorkflowWithOptions(s.stubJob, workflow.RegisterOptions{Name: WorkflowName})
	env.RegisterActivity(&activities.Activities{})
	env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_, workflowID, _, signal string, arg any) error {
			d, ok := arg.(AccountDecision)
			if signal != SignalAccountDecision || !ok {
				return fmt.Errorf("unexpected signal %s to %s", signal, workflowID)
			}
			s.onDecision(strings.TrimPrefix(workflowID, WorkflowIDPrefix), d, s.nowOf())
			return nil
		})
	env.OnActivity(a.Escalate, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.EscalateInput) (activities.EscalateResult, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if in.Kind != activities.KindAccount {
			s.failf("the batch escalated a %s", in.Kind)
		}
		s.accountEscs[in.Attempt]++
		return activities.EscalateResult{EscalationID: int64(in.Attempt), Created: s.accountEscs[in.Attempt] == 1}, nil
	})
	env.OnActivity(a.NotifyHuman, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.NotifyInput) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.notified[in.EscalationID]++
		return nil
	})
	env.OnActivity(a.RecordDecision, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(a.ActiveHolds, mock.Anything).Return(func(context.Context) ([]activities.HoldInfo, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if now := s.nowOf(); !now.Before(s.foreignFrom) && now.Before(s.foreignTo) {
			return []activities.HoldInfo{{Owner: "batch-other", Reason: chamelaion.TypeQuotaExceeded, HTTPStatus: 412}}, nil
		}
		return nil, nil
	})
	env.OnActivity(a.RecordNotSubmitted, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.NotSubmittedInput) (int, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, r := range in.Jobs {
			j := s.jobs[r.ReferenceID]
			if j == nil {
				s.failf("recorded an unknown job %s as not submitted", r.ReferenceID)
				continue
			}
			if j.started > 0 {
				s.failf("recorded %s as never submitted although it was started", r.ReferenceID)
			}
			if !j.notSubmittedByBatch {
				j.notSubmittedByBatch = true
				j.settledAt = s.nowOf()
			}
		}
		return len(in.Jobs), nil
	})
	s.registerReconcile(env)
	env.OnActivity(a.LoadBatchPage, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.LoadBatchPageInput) (activities.LoadBatchPageResult, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		from := in.From
		if in.Cursor.Checked() {
			from = in.Cursor.Read
		}
		end := min(from+in.Limit, len(s.order))
		res := activities.LoadBatchPageResult{Next: activities.SourceCursor{Read: end, Offset: int64(end) * 100, Line: end + 2, Size: 1}}
		for _, j := range s.order[from:end] {
			res.Jobs = append(res.Jobs, activities.BatchJob{ReferenceID: j.ref, Video: "https://cdn.example.com/v.mp4?X-Amz-Signature=SIG", Audio: "https://cdn.example.com/a.wav"})
		}
		return res, nil
	})
	env.RegisterDelayedCallback(s.tick, time.Second)
	return env
}

// nowOf is the current run's clock.
func (s *batchSim) nowOf() time.Time { return s.env.Now() }

// stubJob is a started job: it records its start and every answer of the
// batch. It never ends (the schedule speaks for it).
func (s *batchSim) stubJob(ctx workflow.Context, in LipSyncInput) (LipSyncResult, error) {
	s.onStart(in.ReferenceID, workflow.Now(ctx))
	ch := workflow.GetSignalChannel(ctx, SignalAccountDecision)
	for {
		var d AccountDecision
		ch.Receive(ctx, &d)
		s.onDecision(in.ReferenceID, d, workflow.Now(ctx))
	}
}

// grid draws a delay on a coarse grid, so that many signals land in one
// workflow task (and in the task that continues the batch as new).
func (s *batchSim) grid() time.Duration {
	return time.Duration(s.rng.IntN(4)) * 30 * time.Second
}

// send schedules an event of a job (twice if the job duplicates).
func (s *batchSim) send(j *simJob, at time.Time, ev BatchJobEvent) {
	ev.ReferenceID = j.ref
	if !j.legacy {
		j.seq++
		ev.Seq = j.seq
	}
	s.seq++
	s.events = append(s.events, simEvent{at: at, seq: s.seq, ev: ev, job: j})
	if j.dup {
		s.seq++
		s.events = append(s.events, simEvent{at: at.Add(time.Duration(s.rng.IntN(2)) * 30 * time.Second), seq: s.seq, ev: ev, job: j})
	}
}

func (s *batchSim) onStart(ref string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[ref]
	if j == nil {
		s.failf("started an unknown job %s", ref)
		return
	}
	j.started++
	if j.started > 1 {
		s.failf("%s started %d times", ref, j.started)
		return
	}
	if j.notSubmittedByBatch {
		s.failf("%s started after it was recorded as not submitted", ref)
	}
	// A human's retry delivered at this instant may have reached the
	// batch after it decided this start: the batch cannot refuse a retry.
	justRetried := 0
	for _, o := range s.order {
		if o.retryingAt.Equal(now) && o.final == "" && !(o.escalated && !o.retrying) {
			justRetried++
		}
	}
	if s.pendingNow-justRetried >= s.in.MaxPending {
		s.failf("%s started with %d jobs pending (max %d)", ref, s.pendingNow, s.in.MaxPending)
	}
	if s.activeNow-justRetried >= s.in.Concurrency {
		s.failf("%s started with %d jobs in flight (concurrency %d)", ref, s.activeNow, s.in.Concurrency)
	}
	j.startedAt = now
	s.tracef(now, "start %s (fate %d human %d legacy %v dup %v)", ref, j.fate, j.human, j.legacy, j.dup)
	s.recount()
	s.submitAt(j, now.Add(s.grid()))
}

// submitAt schedules what the job's submission meets.
func (s *batchSim) submitAt(j *simJob, at time.Time) {
	if !at.Before(s.foreignFrom) && at.Before(s.foreignTo) {
		// Refused by the other batch's hold: nothing sent.
		s.send(j, at, BatchJobEvent{Event: EventBlocked, Reason: chamelaion.TypeQuotaExceeded, HTTPStatus: 412, Message: "submissions are held"})
		return
	}
	if s.quota || j.fate == fateQuota {
		if j.fate == fateQuota {
			j.fate = fateComplete // it completes once the quota is back
			s.quota = true
		}
		s.send(j, at, BatchJobEvent{Event: EventBlocked, Reason: chamelaion.TypeQuotaExceeded, HTTPStatus: 412, Message: "token limit reached"})
		return
	}
	switch j.fate {
	case fateRefused:
		s.send(j, at, BatchJobEvent{Event: EventEscalated, Reason: chamelaion.TypeBadRequest, HTTPStatus: 400, Message: "invalid video url"})
		s.human(j, at)
		return
	}
	s.send(j, at, BatchJobEvent{Event: EventSubmitted})
	at = at.Add(s.grid())
	switch j.fate {
	case fateComplete:
		s.send(j, at, BatchJobEvent{Event: EventProcessing})
		s.send(j, at.Add(s.grid()), BatchJobEvent{Event: EventDone, Outcome: OutcomeCompleted})
	case fateVendorFail:
		s.send(j, at, BatchJobEvent{Event: EventEscalated, Reason: ReasonJobFailed, Message: "video URL is not accessible"})
		s.human(j, at)
	case fateCancel:
		s.send(j, at, BatchJobEvent{Event: EventDone, Outcome: OutcomeCancelled, Reason: "Canceled", Message: "the job's workflow was cancelled"})
	case fateTerminate:
		j.terminated = at // from now on Temporal says it was terminated
	}
}

// human schedules a human's answer to the job's escalation.
func (s *batchSim) human(j *simJob, at time.Time) {
	at = at.Add(time.Duration(1+s.rng.IntN(6)) * time.Minute)
	switch j.human {
	case humanNone:
		// The job waits a week for an answer, then ends escalated.
		s.send(j, at.Add(7*24*time.Hour), BatchJobEvent{Event: EventDone, Outcome: OutcomeEscalated, Reason: "Expired", Message: "no decision within 168h0m0s"})
	case humanAbandon:
		s.send(j, at, BatchJobEvent{Event: EventDone, Outcome: OutcomeAbandoned, Reason: ReasonAbandoned, Message: "abandoned by ops"})
	case humanRetry:
		j.fate, j.human = fateComplete, humanNone
		s.send(j, at, BatchJobEvent{Event: EventRetrying})
		s.submitAt(j, at.Add(s.grid()))
	}
}

func (s *batchSim) onDecision(ref string, d AccountDecision, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[ref]
	if j == nil {
		s.failf("decision sent to an unknown job %s", ref)
		return
	}
	j.decisions = append(j.decisions, d)
	s.tracef(now, "told %s %s", ref, d.Action)
	if !j.blocked {
		s.failf("%s told %q although it was not blocked", ref, d.Action)
		return
	}
	j.blocked = false
	if d.Action == activities.DecisionAbort {
		s.send(j, now.Add(s.grid()), BatchJobEvent{Event: EventDone, Outcome: OutcomeNotSubmitted, Reason: ReasonNotSubmitted, Message: "batch aborted"})
		return
	}
	s.submitAt(j, now.Add(s.grid()))
}

// deliver applies an event to the harness's view as the batch receives it.
func (s *batchSim) deliver(e simEvent, now time.Time) {
	j := e.job
	s.tracef(now, "signal %s %s seq %d %s", j.ref, e.ev.Event, e.ev.Seq, e.ev.Outcome)
	if j.prev == nil || !j.lastAt.Equal(now) {
		prev := *j
		prev.prev = nil
		j.prev, j.lastAt = &prev, now // the job before this instant's events
	}
	switch e.ev.Event {
	case EventSubmitted:
		j.submitted = true
		j.retrying = false
	case EventEscalated:
		j.escalated = true
		if !j.settledAt.After(j.startedAt) || j.settledAt.IsZero() {
			j.settledAt = now
		}
	case EventRetrying:
		j.retrying, j.escalated, j.submitted = true, false, false
		j.retryingAt = now
		j.settledAt = time.Time{}
	case EventBlocked:
		j.blocked = true
	case EventDone:
		if j.final == "" {
			j.final = e.ev.Outcome
			if j.settledAt.IsZero() || e.ev.Outcome != OutcomeEscalated {
				j.settledAt = now
			}
		}
	}
}

// recount recomputes the jobs pending and in flight, as the batch should
// count them.
func (s *batchSim) recount() {
	s.pendingNow, s.activeNow = 0, 0
	for _, j := range s.order {
		if j.started == 0 || j.final != "" || !j.terminated.IsZero() {
			continue
		}
		if j.escalated && !j.retrying {
			continue // settled: waits for a human, holds no slot
		}
		s.activeNow++
		if !j.submitted && !j.retrying {
			s.pendingNow++
		}
	}
	s.maxPendingSeen = max(s.maxPendingSeen, s.pendingNow)
	s.maxActiveSeen = max(s.maxActiveSeen, s.activeNow)
}

// tick delivers the events due, answers pauses as an impatient operator
// would, and schedules itself again.
func (s *batchSim) tick() {
	env := s.env
	now := env.Now()
	// The batch has taken in every event delivered so far: check it and
	// answer what it asks before delivering more.
	s.operate()
	s.mu.Lock()
	sort.SliceStable(s.events, func(a, b int) bool {
		if !s.events[a].at.Equal(s.events[b].at) {
			return s.events[a].at.Before(s.events[b].at)
		}
		return s.events[a].seq < s.events[b].seq
	})
	s.mu.Unlock()
	// The events due: one workflow task each (the harness's view changes
	// with each delivery, no sooner), or now and then all of them in one
	// task, as a busy batch takes them in.
	s.mu.Lock()
	oneTask := s.rng.IntN(2) == 0
	s.mu.Unlock()
	for !env.IsWorkflowCompleted() {
		s.mu.Lock()
		if len(s.events) == 0 || s.events[0].at.After(now) {
			s.mu.Unlock()
			break
		}
		e := s.events[0]
		s.events = s.events[1:]
		last := len(s.events) == 0 || s.events[0].at.After(now)
		s.deliver(e, now)
		s.recount()
		s.mu.Unlock()
		if oneTask && !last {
			env.SignalWorkflowSkippingWorkflowTask(SignalBatchJob, e.ev)
		} else {
			env.SignalWorkflow(SignalBatchJob, e.ev)
		}
	}
	s.mu.Lock()
	next := 10 * time.Minute
	if len(s.events) > 0 {
		next = min(next, max(s.events[0].at.Sub(now), time.Second))
	}
	next = min(next, 30*time.Second+time.Duration(s.rng.IntN(3))*time.Second)
	s.mu.Unlock()
	env.RegisterDelayedCallback(s.tick, next)
}

// operate answers a pause with a burst of decisions, some duplicated, some
// conflicting, and now and then sends an answer to a batch that is not
// paused (which must be refused).
func (s *batchSim) operate() {
	env := s.env
	v, err := env.QueryWorkflow(QueryBatchProgress)
	if err != nil {
		return
	}
	var p BatchProgress
	if v.Get(&p) != nil {
		return
	}
	s.mu.Lock()
	s.lastProgress, s.lastProgressOK = p, true
	s.tracef(env.Now(), "progress %s pending %d inflight %d remaining %d completed %d waiting %d pause %v", p.Status, p.Pending, p.InFlight, p.Remaining, p.Completed, p.Waiting, p.Pause != nil)
	if p.Pending > s.in.MaxPending+s.retryingCount() {
		s.failf("progress shows %d pending (max %d) at %s: %s", p.Pending, s.in.MaxPending, env.Now().Format(time.TimeOnly), s.describePending())
	}
	var answers []BatchDecision
	var pause int64
	if p.Pause != nil && p.Pause.Escalated && p.Pause.HeldBy == "" && !s.operatorAnswered[p.Pause.EscalationID] && s.rng.IntN(3) > 0 {
		pause = p.Pause.EscalationID
		s.operatorAnswered[pause] = true
		action := activities.DecisionResume
		if s.rng.IntN(5) == 0 {
			action = activities.DecisionAbort
		}
		for range 1 + s.rng.IntN(*batchAnswers) {
			a := action
			if s.rng.IntN(4) == 0 && *batchAnswers > 1 {
				a = activities.DecisionResume
			}
			answers = append(answers, BatchDecision{Action: a, By: "ops", Note: "answered"})
		}
		s.quota = false
	} else if p.Pause == nil && s.rng.IntN(40) == 0 && *batchAnswers > 1 {
		answers = append(answers, BatchDecision{Action: activities.DecisionResume, By: "rogue"})
	}
	s.mu.Unlock()
	for i, d := range answers {
		s.tracef(env.Now(), "answer %s to pause %d", d.Action, pause)
		paused := pause
		env.UpdateWorkflow(UpdateBatchResolve, fmt.Sprintf("u-%d-%d-%d", pause, env.Now().Unix(), i), &testsuite.TestUpdateCallback{
			OnReject: func(error) {},
			OnAccept: func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				if paused == 0 {
					s.rogueAccepted++
					return
				}
				s.accepted[paused]++
			},
			OnComplete: func(any, error) {},
		}, d)
	}
}

func (s *batchSim) retryingCount() int {
	n := 0
	for _, j := range s.order {
		if j.retrying {
			n++
		}
	}
	return n
}

// check compares the batch's result with what the schedule did.
func (s *batchSim) check(res BatchResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if res.Total != len(s.order) {
		s.failf("result total %d, want %d", res.Total, len(s.order))
	}
	listed := map[string]JobOutcome{}
	for _, o := range res.Outcomes {
		if _, dup := listed[o.ReferenceID]; dup {
			s.failf("%s listed twice in the result", o.ReferenceID)
		}
		listed[o.ReferenceID] = o
	}
	var lastSettled time.Time
	completed := 0
	for _, j := range s.order {
		want, problem := j.expected()
		listedWant := want
		if want == OutcomeCompleted {
			listedWant = ""
		}
		if got := listed[j.ref].Outcome; j.prev != nil && j.lastAt.Equal(s.endedAt) && (problem != "" || got != listedWant) {
			// The event delivered at the instant the batch ended reached a
			// batch that had decided to end (on a real server the end would
			// be refused and the event taken in): judge without it.
			j = j.prev
			want, problem = j.expected()
		}
		if problem != "" {
			s.failf("%s", problem)
			continue
		}
		if want == OutcomeCompleted {
			completed++
			want = ""
		}
		settled := j.settledAt
		if !j.terminated.IsZero() && j.final == "" {
			settled = j.terminated.Add(s.reconcileAfter*5/4 + time.Minute)
		}
		if settled.After(lastSettled) {
			lastSettled = settled
		}
		got, ok := listed[j.ref]
		if want == "" {
			if ok {
				s.failf("%s completed but is listed as %s", j.ref, got.Outcome)
			}
			continue
		}
		if !ok {
			s.failf("%s (%s) is missing from the result", j.ref, want)
			continue
		}
		if got.Outcome != want {
			s.failf("%s listed as %s, want %s", j.ref, got.Outcome, want)
		}
	}
	if res.Completed != completed {
		s.failf("result completed %d, want %d", res.Completed, completed)
	}
	if n := len(listed); n+res.Completed != res.Total {
		s.failf("%d listed + %d completed != %d jobs", n, res.Completed, res.Total)
	}
	if slack := 2 * time.Minute; s.endedAt.After(lastSettled.Add(slack)) {
		s.failf("the batch ended at %s, %s after its last job settled (%s)", s.endedAt.Format(time.TimeOnly), s.endedAt.Sub(lastSettled), lastSettled.Format(time.TimeOnly))
	}
	pauses := slices.Sorted(func(yield func(int) bool) {
		for k := range s.accountEscs {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range pauses {
		if s.accountEscs[k] != 1 {
			s.failf("pause %d escalated %d times", k, s.accountEscs[k])
		}
	}
	for id, n := range s.notified {
		if n != 1 {
			s.failf("escalation %d notified %d times", id, n)
		}
	}
	for id, n := range s.accepted {
		if n != 1 {
			s.failf("pause (escalation %d) accepted %d answers", id, n)
		}
	}
	if s.rogueAccepted > 0 {
		s.failf("%d answers accepted while the batch was not paused", s.rogueAccepted)
	}
}

// registerReconcile answers the batch's questions about jobs it has not
// heard from as Temporal would: a terminated job is terminated, a job
// whose done event was delivered has ended that way, any other runs.
func (s *batchSim) registerReconcile(env *testsuite.TestWorkflowEnvironment) {
	env.OnActivity(a.ReconcileJobs, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ReconcileJobsInput) ([]activities.WorkflowEnd, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		now := s.nowOf()
		ends := make([]activities.WorkflowEnd, len(in.WorkflowIDs))
		for i, id := range in.WorkflowIDs {
			j := s.jobs[strings.TrimPrefix(id, WorkflowIDPrefix)]
			switch {
			case j == nil:
				s.failf("asked about an unknown job %s", id)
				ends[i] = activities.WorkflowEnd{Status: activities.WorkflowNotFound}
			case !j.terminated.IsZero() && !now.Before(j.terminated):
				ends[i] = activities.WorkflowEnd{Status: activities.WorkflowTerminated}
			case j.final == OutcomeCompleted:
				ends[i] = activities.WorkflowEnd{Status: activities.WorkflowCompleted}
			case j.final == OutcomeAbandoned:
				ends[i] = activities.WorkflowEnd{Status: activities.WorkflowFailed, FailureType: ReasonAbandoned}
			case j.final == OutcomeNotSubmitted:
				ends[i] = activities.WorkflowEnd{Status: activities.WorkflowFailed, FailureType: ReasonNotSubmitted}
			case j.final == OutcomeCancelled:
				ends[i] = activities.WorkflowEnd{Status: activities.WorkflowCanceled}
			case j.final == OutcomeEscalated:
				ends[i] = activities.WorkflowEnd{Status: activities.WorkflowFailed, FailureType: "Expired"}
			default:
				ends[i] = activities.WorkflowEnd{Status: activities.WorkflowRunning}
			}
		}
		return ends, nil
	})
}

// simLogger discards the workflows' logs unless BATCH_SIM_LOG is set.
func simLogger() *slog.Logger {
	if os.Getenv("BATCH_SIM_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// describePending lists the jobs the harness sees started and unsettled.
func (s *batchSim) describePending() string {
	var out []string
	for _, j := range s.order {
		if j.started > 0 && !j.settled() {
			out = append(out, fmt.Sprintf("%s{sub=%v blk=%v retry=%v esc=%v legacy=%v}", j.ref, j.submitted, j.blocked, j.retrying, j.escalated, j.legacy))
		}
	}
	return strings.Join(out, " ")
}
