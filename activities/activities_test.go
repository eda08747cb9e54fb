package activities_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/chamelaion-lipsync/worker/activities"
	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/emulator"
	"github.com/chamelaion-lipsync/worker/internal/localpg"
	"github.com/chamelaion-lipsync/worker/store"
	"github.com/chamelaion-lipsync/worker/workflows"
)

func TestMain(m *testing.M) { os.Exit(localpg.MainWithPostgres(m)) }

const testKey = "sk-test-SECRET-7781"

// quiet discards the logs of the SDK and the activities.
var quiet = slog.New(slog.DiscardHandler)

// fixture is the real activities wired to a real store (a fresh database)
// and the emulator, inside a time-skipping workflow environment whose clock
// the emulator shares, so a job's lifecycle follows workflow time.
type fixture struct {
	t     *testing.T
	env   *testsuite.TestWorkflowEnvironment
	emu   *emulator.Emulator
	store *store.Store
	acts  *activities.Activities
	// wfs holds the job defaults the next run starts from.
	wfs *workflows.Workflows
	// mu guards env, which newEnv replaces (the emulator reads its clock).
	mu sync.Mutex
}

func newFixture(t *testing.T, faults ...emulator.RandomFaults) *fixture {
	t.Helper()
	st := migratedStore(t)
	f := &fixture{t: t, store: st}
	cfg := emulator.Config{
		APIKeys:       map[string]string{testKey: "test"},
		QueuedFor:     20 * time.Second,
		ProcessingFor: time.Minute,
		Clock:         func() time.Time { return f.currentEnv().Now() },
	}
	if len(faults) > 0 {
		cfg.Faults = faults[0]
	}
	emu, err := emulator.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	api, err := chamelaion.New(chamelaion.Options{BaseURL: srv.URL + "/api", APIKey: testKey, Timeout: 2 * time.Second})
	require.NoError(t, err)
	acts := &activities.Activities{API: api, Store: st, Logger: quiet, WebUIURL: "http://ui.example:8233", Namespace: "default"}
	f.emu, f.acts = emu, acts
	f.wfs = &workflows.Workflows{Defaults: workflows.Settings{
		Poll:            workflows.PollSchedule{Initial: 5 * time.Second, Max: time.Minute, Coefficient: 2},
		StuckAfter:      10 * time.Minute,
		Deadline:        24 * time.Hour,
		RequestTimeout:  2 * time.Second,
		RetryInitial:    time.Second,
		RetryMax:        time.Minute,
		RetryMaxElapsed: 30 * time.Minute,
		NotifyTimeout:   5 * time.Second,
		MaxPollsPerRun:  200,
		SubmitTaskQueue: "lipsync-submit",
	}}
	f.newEnv()
	return f
}

// migratedStore is a store on a fresh, migrated database.
func migratedStore(t *testing.T) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, localpg.NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(st.Close)
	_, _, err = st.Migrate(ctx)
	require.NoError(t, err)
	return st
}

// newEnv gives the fixture a fresh workflow environment (a new execution
// of the test workflow ID), its clock an hour past the previous one's; the
// store, the emulator and the activities stay.
func (f *fixture) newEnv() {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(quiet))
	env := suite.NewTestWorkflowEnvironment()
	env.SetTestTimeout(2 * time.Minute)
	f.mu.Lock()
	if f.env != nil {
		env.SetStartTime(f.env.Now().Add(time.Hour))
	}
	f.env = env
	f.mu.Unlock()
	env.RegisterWorkflowWithOptions(f.wfs.LipSync, workflow.RegisterOptions{Name: workflows.WorkflowName})
	env.RegisterActivity(f.acts)
}

func (f *fixture) currentEnv() *testsuite.TestWorkflowEnvironment {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.env
}

func (f *fixture) run(ref string) (workflows.LipSyncResult, error) {
	f.env.ExecuteWorkflow(workflows.WorkflowName, workflows.LipSyncInput{
		Video:       "https://cdn.example.com/" + ref + ".mp4?X-Amz-Signature=SIGSECRET",
		Audio:       "https://cdn.example.com/" + ref + ".wav?X-Amz-Signature=SIGSECRET",
		ReferenceID: ref,
	})
	require.True(f.t, f.env.IsWorkflowCompleted())
	if err := f.env.GetWorkflowError(); err != nil {
		return workflows.LipSyncResult{}, err
	}
	var res workflows.LipSyncResult
	require.NoError(f.t, f.env.GetWorkflowResult(&res))
	return res, nil
}

// workflowID is the test environment's default workflow ID.
const workflowID = "default-test-workflow-id"

func TestJobCompletesAndIsRecorded(t *testing.T) {
	f := newFixture(t)
	res, err := f.run("ok-1")
	require.NoError(t, err)
	require.Equal(t, "completed", res.Status)
	require.False(t, res.Adopted)
	// Queued 20s + processing 60s, seen by a 5s-doubling schedule.
	require.GreaterOrEqual(t, res.Duration, 80*time.Second)

	job, err := f.store.GetJob(context.Background(), workflowID)
	require.NoError(t, err)
	require.Equal(t, store.StatusCompleted, job.Status)
	require.Equal(t, res.RequestID, *job.RequestID)
	require.Equal(t, res.OutputURL, *job.OutputURL)
	require.Equal(t, res.StatusChecks, job.StatusChecks)
	require.Equal(t, "https://cdn.example.com/ok-1.mp4", job.VideoSource, "query strings are not stored")

	events, err := f.store.ListJobEvents(context.Background(), workflowID)
	require.NoError(t, err)
	var statuses []string
	for _, e := range events {
		statuses = append(statuses, string(e.Status))
	}
	require.Equal(t, []string{"pending", "submitted", "queued", "processing", "completed"}, statuses)
	require.Equal(t, 1, f.emu.Stats().JobsByReferenceID["ok-1"])
}

func TestLostSubmissionResponseIsAdoptedNotDuplicated(t *testing.T) {
	for _, mode := range []string{"reset", "hang"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t)
			require.NoError(t, f.emu.SetScenario(emulator.Scenario{ReferenceID: "lost", LoseResponses: 1, LoseMode: mode}))
			res, err := f.run("lost")
			require.NoError(t, err)
			require.True(t, res.Adopted)
			st := f.emu.Stats()
			require.Equal(t, 1, st.JobsByReferenceID["lost"], "exactly one vendor job")
			require.Equal(t, 1, st.LostResponses)
		})
	}
}

// TestSlowSubmissionLandingAfterTheTimeoutIsAdoptedNotDuplicated: the
// server is still processing a submission when the client's 2 s timeout
// gives up, and creates the job 3.5 s after the request (seed 1 draws: the
// submission slow, the next two requests fast). The retried attempt waits
// for it to land (SubmitSettle) and adopts it rather than creating a second
// job; without the wait it listed too early and created two (found by the
// fault suite with slow answers).
func TestSlowSubmissionLandingAfterTheTimeoutIsAdoptedNotDuplicated(t *testing.T) {
	// Timeline: the request at 0, its timeout at 2 s, the retry at once
	// (the test environment skips the backoff), the job created at 3.5 s.
	// Without the wait the retry looks at about 2 s; with a 3 s wait, at 5 s.
	for _, settle := range []time.Duration{0, 3 * time.Second} {
		t.Run(fmt.Sprint("settle ", settle), func(t *testing.T) {
			f := newFixture(t, emulator.RandomFaults{SlowRate: 0.5, SlowDelay: 3500 * time.Millisecond, Seed: 1})
			f.acts.SubmitSettle = settle
			res, err := f.run("slow")
			require.NoError(t, err)
			created := f.emu.Stats().JobsByReferenceID["slow"]
			if settle == 0 {
				require.Equal(t, 2, created, "without the wait the retry submits a second job")
				return
			}
			require.True(t, res.Adopted)
			require.Equal(t, 1, created, "exactly one vendor job")
		})
	}
}

func TestRateLimitAndServerErrorsAreRetriedNotEscalated(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.emu.SetScenario(emulator.Scenario{
		ReferenceID:  "flaky",
		SubmitFaults: []emulator.Fault{{Status: 429, Headers: map[string]string{"Retry-After": "3"}}, {Status: 503}, {Status: 500}},
		StatusFaults: []emulator.Fault{{Status: 504}},
	}))
	res, err := f.run("flaky")
	require.NoError(t, err)
	require.Equal(t, "completed", res.Status)
	escs, err := f.store.ListEscalations(context.Background(), workflowID)
	require.NoError(t, err)
	require.Empty(t, escs)
	require.Equal(t, 1, f.emu.Stats().JobsByReferenceID["flaky"])
}

func TestQuotaExceededEscalatesOnceWithTheCause(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.emu.SetScenario(emulator.Scenario{ReferenceID: "quota", SubmitFaults: []emulator.Fault{{Status: 412}}}))
	_, err := f.run("quota")
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	require.Equal(t, chamelaion.TypeQuotaExceeded, appErr.Type())
	require.Contains(t, err.Error(), "token limit reached")

	ctx := context.Background()
	job, err := f.store.GetJob(ctx, workflowID)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, job.Status)
	require.Equal(t, chamelaion.TypeQuotaExceeded, *job.ErrorType)
	require.Equal(t, 412, *job.HTTPStatus)
	escs, err := f.store.ListEscalations(ctx, workflowID)
	require.NoError(t, err)
	require.Len(t, escs, 1)
	require.Equal(t, "failure", escs[0].Kind)
	require.Equal(t, 412, *escs[0].HTTPStatus)
	require.Equal(t, "http://ui.example:8233/namespaces/default/workflows/"+workflowID, escs[0].WebUIURL)
	require.NotNil(t, escs[0].NotifiedAt, "delivered (to the log) and marked")
	require.Zero(t, f.emu.Stats().JobsByReferenceID["quota"])
}

func TestEscalateIsIdempotent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	require.NoError(t, f.acts.RecordJob(ctx, activities.RecordJobInput{WorkflowID: "wf-1", ReferenceID: "r1", Video: "https://v/x", Audio: "https://a/y"}))
	var aenv testsuite.WorkflowTestSuite
	aenv.SetLogger(tlog.NewStructuredLogger(quiet))
	env := aenv.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	in := activities.EscalateInput{WorkflowID: "wf-1", ReferenceID: "r1", Attempt: 1, Kind: activities.KindFailure, Reason: "JobFailed", Message: "video URL is not accessible"}
	var first, second activities.EscalateResult
	v, err := env.ExecuteActivity(f.acts.Escalate, in)
	require.NoError(t, err)
	require.NoError(t, v.Get(&first))
	v, err = env.ExecuteActivity(f.acts.Escalate, in)
	require.NoError(t, err)
	require.NoError(t, v.Get(&second))
	require.True(t, first.Created)
	require.False(t, second.Created)
	require.Equal(t, first.EscalationID, second.EscalationID)
	escs, err := f.store.ListEscalations(ctx, "wf-1")
	require.NoError(t, err)
	require.Len(t, escs, 1)
}

func TestWebhookReceivesSlackMessageAndFailuresAreRetryable(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var mu sync.Mutex
	var bodies []map[string]any
	fail := true
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		var m map[string]any
		b, _ := io.ReadAll(r.Body)
		require.NoError(t, json.Unmarshal(b, &m))
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		bodies = append(bodies, m)
	}))
	defer hook.Close()
	f.acts.WebhookURL = hook.URL + "/services/T0/B0/HOOKSECRET"

	require.NoError(t, f.acts.RecordJob(ctx, activities.RecordJobInput{WorkflowID: "wf-2", ReferenceID: "r2", Video: "https://v/x", Audio: "https://a/y"}))
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(quiet))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	esc := activities.EscalateInput{WorkflowID: "wf-2", ReferenceID: "r2", RequestID: "req-2", Attempt: 1, Kind: activities.KindFailure, Reason: "QuotaExceeded", HTTPStatus: 412, Message: "token limit reached"}
	v, err := env.ExecuteActivity(f.acts.Escalate, esc)
	require.NoError(t, err)
	var res activities.EscalateResult
	require.NoError(t, v.Get(&res))

	notify := activities.NotifyInput{EscalationID: res.EscalationID, Escalation: esc, WebUIURL: res.WebUIURL}
	_, err = env.ExecuteActivity(f.acts.NotifyHuman, notify)
	require.Error(t, err)
	require.Contains(t, err.Error(), "502")
	require.NotContains(t, err.Error(), "HOOKSECRET")
	escs, err := f.store.ListEscalations(ctx, "wf-2")
	require.NoError(t, err)
	require.Nil(t, escs[0].NotifiedAt, "not delivered yet")

	mu.Lock()
	fail = false
	mu.Unlock()
	_, err = env.ExecuteActivity(f.acts.NotifyHuman, notify)
	require.NoError(t, err)
	require.Len(t, bodies, 1)
	text, _ := bodies[0]["text"].(string)
	require.Contains(t, text, "r2")
	require.Contains(t, text, "QuotaExceeded")
	require.Contains(t, text, "token limit reached")
	blocks, _ := json.Marshal(bodies[0]["blocks"])
	require.Contains(t, string(blocks), res.WebUIURL)
	escs, err = f.store.ListEscalations(ctx, "wf-2")
	require.NoError(t, err)
	require.NotNil(t, escs[0].NotifiedAt)
}

func TestWebhookUnreachableNeverLeaksItsURL(t *testing.T) {
	f := newFixture(t)
	f.acts.WebhookURL = "http://127.0.0.1:1/services/HOOKSECRET"
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(quiet))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	_, err := env.ExecuteActivity(f.acts.NotifyHuman, activities.NotifyInput{EscalationID: 1, Escalation: activities.EscalateInput{WorkflowID: "wf"}})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "HOOKSECRET")
}

func TestSubmitUploadsLocalFiles(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	video := filepath.Join(dir, "v.mp4")
	audio := filepath.Join(dir, "a.wav")
	require.NoError(t, os.WriteFile(video, []byte(strings.Repeat("v", 1<<20)), 0o600))
	require.NoError(t, os.WriteFile(audio, []byte(strings.Repeat("a", 1<<10)), 0o600))
	f.acts.Media = activities.MediaRoot{Dir: dir}
	f.env.ExecuteWorkflow(workflows.WorkflowName, workflows.LipSyncInput{Video: "file://" + video, Audio: "file://" + audio, ReferenceID: "upload"})
	require.NoError(t, f.env.GetWorkflowError())
	require.Equal(t, 1, f.emu.Stats().JobsByReferenceID["upload"])

	f2 := newFixture(t)
	f2.acts.Media = activities.MediaRoot{Dir: dir}
	f2.env.ExecuteWorkflow(workflows.WorkflowName, workflows.LipSyncInput{Video: "file://" + filepath.Join(dir, "missing.mp4"), Audio: "file://" + audio, ReferenceID: "missing"})
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(f2.env.GetWorkflowError(), &appErr))
	require.Equal(t, activities.TypeMediaUnreadable, appErr.Type())
}

func TestLocalMediaPath(t *testing.T) {
	cases := []struct {
		in     string
		path   string
		isFile bool
		ok     bool
	}{
		{"https://cdn/x.mp4?sig=1", "", false, true},
		{"http://cdn/x.mp4", "", false, true},
		{"file:///data/x.mp4", "/data/x.mp4", true, true},
		{"file://relative/x.mp4", "", false, false},
		{"ftp://cdn/x", "", false, false},
		{"", "", false, false},
		{"https:///nohost", "", false, false},
		{"/data/x.mp4", "", false, false},
	}
	for _, tc := range cases {
		p, isFile, err := activities.LocalMediaPath(tc.in)
		if !tc.ok {
			require.Error(t, err, tc.in)
			require.NotContains(t, err.Error(), "sig=", tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.path, p)
		require.Equal(t, tc.isFile, isFile)
	}
}

// TestPollPlanIsLearnedFromPastJobs: with 25 past jobs that each took a
// minute of processing in the store, a job checks when a job like them
// would finish instead of backing off from 5s.
func TestPollPlanIsLearnedFromPastJobs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res, err := f.acts.PlanPolls(ctx, activities.PlanPollsInput{TargetLatency: 20 * time.Second, MaxInterval: time.Minute})
	require.NoError(t, err)
	require.Nil(t, res.Plan, "no plan without past jobs")
	base := time.Date(2026, 4, 7, 10, 0, 0, 0, time.UTC)
	for i := range 25 {
		id := fmt.Sprintf("past-%d", i)
		require.NoError(t, f.store.RecordJob(ctx, store.NewJob{WorkflowID: id, ReferenceID: id}))
		started := base.Add(time.Duration(i) * time.Minute)
		finished := started.Add(time.Minute)
		_, err := f.store.UpdateJob(ctx, store.JobUpdate{WorkflowID: id, Attempt: 1, Status: store.StatusCompleted,
			RequestID: "r-" + id, StartedAt: &started, FinishedAt: &finished})
		require.NoError(t, err)
	}
	res, err = f.acts.PlanPolls(ctx, activities.PlanPollsInput{TargetLatency: 20 * time.Second, MaxInterval: time.Minute})
	require.NoError(t, err)
	require.NotNil(t, res.Plan)
	require.Equal(t, 25, res.Samples)
	require.Equal(t, time.Minute, res.Plan.Earliest)

	// The emulator queues each job 20s, then processes it for a minute.
	f.env.ExecuteWorkflow(workflows.WorkflowName, workflows.LipSyncInput{
		Video:       "https://cdn.example.com/v.mp4",
		Audio:       "https://cdn.example.com/a.wav",
		ReferenceID: "planned",
		Poll:        &workflows.PollSchedule{TargetLatency: 20 * time.Second},
	})
	require.True(t, f.env.IsWorkflowCompleted())
	require.NoError(t, f.env.GetWorkflowError())
	var done workflows.LipSyncResult
	require.NoError(t, f.env.GetWorkflowResult(&done))
	// One check while queued (at 79.2s, the job started at 20s), one at
	// 84s, 4s after it finished; backing off from 5s would take 5 checks
	// and see it at 135s.
	require.Equal(t, 2, done.StatusChecks)
	require.Less(t, done.FinishedAt.Sub(done.SubmittedAt), 90*time.Second)
}

// TestARetriedSubmissionWaitsOnlyWhenItsRequestMayStillLand: the wait
// before looking for an earlier attempt's request (SubmitSettle) is for
// answers that may have been lost after the request landed. After a 429
// nothing was created: the next attempt sends when the server advised,
// without waiting and without looking. After a 503 the server answered, so
// whatever it did is done: the next attempt looks at once, without
// waiting. After a lost answer it waits, then adopts.
func TestARetriedSubmissionWaitsOnlyWhenItsRequestMayStillLand(t *testing.T) {
	const settle = 3 * time.Second
	cases := []struct {
		name     string
		scenario emulator.Scenario
		looks    int
		waits    bool
	}{
		{"429 with Retry-After", emulator.Scenario{SubmitFaults: []emulator.Fault{{Status: 429, Headers: map[string]string{"Retry-After": "2"}}}}, 0, false},
		{"503", emulator.Scenario{SubmitFaults: []emulator.Fault{{Status: 503}}}, 1, false},
		{"lost answer", emulator.Scenario{LoseResponses: 1}, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.acts.SubmitSettle = settle
			tc.scenario.ReferenceID = "advised"
			require.NoError(t, f.emu.SetScenario(tc.scenario))
			start := time.Now()
			res, err := f.run("advised")
			took := time.Since(start)
			require.NoError(t, err)
			require.Equal(t, "completed", res.Status)
			require.Equal(t, 1, f.emu.Stats().JobsByReferenceID["advised"], "exactly one vendor job")
			var gen []emulator.RequestRecord
			looks := 0
			for _, r := range f.emu.Requests("advised") {
				switch r.Endpoint {
				case emulator.EndpointGenerate:
					gen = append(gen, r)
				case emulator.EndpointListRequests:
					looks++
				}
			}
			require.Equal(t, tc.looks, looks, "lookups of an earlier request")
			if tc.waits {
				require.GreaterOrEqual(t, took, settle, "a lost answer's request may still land: the retry waits before it looks")
				return
			}
			require.Less(t, took, settle, "the retry did not wait for a request that cannot be landing")
			require.Len(t, gen, 2)
			if tc.scenario.SubmitFaults[0].Status == 429 {
				require.Equal(t, 2*time.Second, gen[1].At.Sub(gen[0].At), "sent exactly when the server advised")
			}
		})
	}
}

func TestLandingOfEachFailure(t *testing.T) {
	api := func(status int) error {
		return &chamelaion.APIError{Endpoint: "POST /v1/lipsync/generate", StatusCode: status, Message: "x"}
	}
	cases := []struct {
		name string
		err  error
		want activities.Landing
	}{
		{"429", api(429), activities.NothingCreated},
		{"408", api(408), activities.NothingCreated},
		{"400", api(400), activities.NothingCreated},
		{"412", api(412), activities.NothingCreated},
		{"500", api(500), activities.MayHaveCreated},
		{"503", api(503), activities.MayHaveCreated},
		{"502", api(502), activities.MayStillLand},
		{"504", api(504), activities.MayStillLand},
		{"timeout", &chamelaion.TransportError{Endpoint: "POST", Timeout: true, Reason: "no answer before the request timeout"}, activities.MayStillLand},
		{"reset", &chamelaion.TransportError{Endpoint: "POST", Reason: "connection reset by the server"}, activities.MayStillLand},
		{"refused", &chamelaion.TransportError{Endpoint: "POST", Reason: "connection refused"}, activities.NothingCreated},
		{"unknown host", &chamelaion.TransportError{Endpoint: "POST", Reason: "cannot resolve host api.example"}, activities.NothingCreated},
		{"untrusted 2xx", &chamelaion.ResponseError{Endpoint: "POST", StatusCode: 200, Reason: "unparsable JSON"}, activities.MayHaveCreated},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, activities.LandingOf(tc.err), "%s (client error)", tc.name)
		require.Equal(t, tc.want, activities.LandingOf(activities.ClassifiedError("submit", tc.err)), "%s (activity error)", tc.name)
	}
}
