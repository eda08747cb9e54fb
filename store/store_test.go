package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chamelaion-lipsync/worker/internal/localpg"
	"github.com/chamelaion-lipsync/worker/migrations"
	"github.com/chamelaion-lipsync/worker/store"
)

func TestMain(m *testing.M) { os.Exit(localpg.MainWithPostgres(m)) }

func open(t testing.TB) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, localpg.NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(st.Close)
	_, _, err = st.Migrate(ctx)
	require.NoError(t, err)
	return st
}

func TestMigrationsUpTwiceDownAndUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := localpg.NewDatabase(t)
	st, err := store.Open(ctx, url)
	require.NoError(t, err)
	defer st.Close()
	latest, err := migrations.Latest()
	require.NoError(t, err)
	from, to, err := st.Migrate(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(0), from)
	require.Equal(t, latest, to)
	from, to, err = st.Migrate(ctx)
	require.NoError(t, err, "a second run is a no-op")
	require.Equal(t, latest, from)
	require.Equal(t, latest, to)

	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, to, err = migrations.ApplyTo(ctx, conn, 0)
	require.NoError(t, err)
	require.Equal(t, int32(0), to)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_name IN ('lipsync_jobs','lipsync_job_events','escalations')`).Scan(&n))
	require.Zero(t, n)
	_, to, err = migrations.Apply(ctx, conn)
	require.NoError(t, err)
	require.Equal(t, latest, to)
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_name IN ('lipsync_jobs','lipsync_job_events','escalations')`).Scan(&n))
	require.Equal(t, 3, n)
}

func TestConcurrentMigrateIsSafe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := localpg.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := store.Open(ctx, url)
			if err != nil {
				errs <- err
				return
			}
			defer st.Close()
			_, _, err = st.Migrate(ctx)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func newJob(id string) store.NewJob {
	return store.NewJob{WorkflowID: id, ReferenceID: "ref-" + id, VideoSource: "https://v/x.mp4", AudioSource: "https://a/x.wav"}
}

func statuses(t *testing.T, st *store.Store, id string) []string {
	evs, err := st.ListJobEvents(context.Background(), id)
	require.NoError(t, err)
	var out []string
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%d:%s", e.Attempt, e.Status))
	}
	return out
}

func TestRecordJobIsIdempotent(t *testing.T) {
	t.Parallel()
	st := open(t)
	ctx := context.Background()
	require.NoError(t, st.RecordJob(ctx, newJob("wf-1")))
	require.NoError(t, st.RecordJob(ctx, newJob("wf-1")))
	j, err := st.GetJob(ctx, "wf-1")
	require.NoError(t, err)
	require.Equal(t, store.StatusPending, j.Status)
	require.Equal(t, 1, j.Attempt)
	require.Nil(t, j.BatchID)
	require.Equal(t, []string{"1:pending"}, statuses(t, st, "wf-1"))
	counts, err := st.CountJobsByStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, map[store.Status]int{store.StatusPending: 1}, counts)
}

func TestUpdateJobNeverRegresses(t *testing.T) {
	t.Parallel()
	st := open(t)
	ctx := context.Background()
	require.NoError(t, st.RecordJob(ctx, newJob("wf-2")))
	now := time.Now().UTC().Truncate(time.Microsecond)
	apply := func(u store.JobUpdate) bool {
		u.WorkflowID = "wf-2"
		ok, err := st.UpdateJob(ctx, u)
		require.NoError(t, err)
		return ok
	}
	require.True(t, apply(store.JobUpdate{Attempt: 1, Status: store.StatusSubmitted, RequestID: "req-1", SubmittedAt: &now}))
	require.True(t, apply(store.JobUpdate{Attempt: 1, Status: store.StatusQueued, StatusChecks: 1}))
	require.True(t, apply(store.JobUpdate{Attempt: 1, Status: store.StatusQueued, StatusChecks: 2}), "same non-terminal status refreshes")
	require.True(t, apply(store.JobUpdate{Attempt: 1, Status: store.StatusProcessing, StatusChecks: 3, StartedAt: &now}))
	require.True(t, apply(store.JobUpdate{Attempt: 1, Status: store.StatusCompleted, StatusChecks: 4, OutputURL: "https://o/x.mp4", FinishedAt: &now}))
	require.False(t, apply(store.JobUpdate{Attempt: 1, Status: store.StatusProcessing, StatusChecks: 9}), "a late processing never overwrites completed")
	require.False(t, apply(store.JobUpdate{Attempt: 1, Status: store.StatusCompleted, StatusChecks: 4}), "a retried terminal write is a no-op")
	require.False(t, apply(store.JobUpdate{Attempt: 1, Status: store.StatusFailed, ErrorMessage: "late"}), "the first terminal status wins")

	j, err := st.GetJob(ctx, "wf-2")
	require.NoError(t, err)
	require.Equal(t, store.StatusCompleted, j.Status)
	require.Equal(t, "req-1", *j.RequestID)
	require.Equal(t, "https://o/x.mp4", *j.OutputURL)
	require.Equal(t, 4, j.StatusChecks)
	require.Nil(t, j.ErrorMessage)
	require.Equal(t, now, j.SubmittedAt.UTC())
	require.Equal(t, []string{"1:pending", "1:submitted", "1:queued", "1:processing", "1:completed"}, statuses(t, st, "wf-2"))

	// A resubmission (a higher attempt) moves on from a terminal status.
	require.True(t, apply(store.JobUpdate{Attempt: 2, Status: store.StatusSubmitted, RequestID: "req-2"}))
	require.False(t, apply(store.JobUpdate{Attempt: 1, Status: store.StatusProcessing}), "an older attempt is stale")
	j, err = st.GetJob(ctx, "wf-2")
	require.NoError(t, err)
	require.Equal(t, 2, j.Attempt)
	require.Equal(t, store.StatusSubmitted, j.Status)
	require.Equal(t, "req-2", *j.RequestID)
}

func TestUpdateUnknownJob(t *testing.T) {
	t.Parallel()
	st := open(t)
	_, err := st.UpdateJob(context.Background(), store.JobUpdate{WorkflowID: "nope", Attempt: 1, Status: store.StatusQueued})
	require.True(t, errors.Is(err, store.ErrNotFound))
	_, err = st.GetJob(context.Background(), "nope")
	require.True(t, errors.Is(err, store.ErrNotFound))
	_, err = st.UpdateJob(context.Background(), store.JobUpdate{WorkflowID: "nope", Status: "weird"})
	require.ErrorContains(t, err, "unknown status")
}

func TestEscalationsAreRecordedOnce(t *testing.T) {
	t.Parallel()
	st := open(t)
	ctx := context.Background()
	require.NoError(t, st.RecordJob(ctx, newJob("wf-3")))
	e := store.NewEscalation{Key: "wf-3/1/failure", WorkflowID: "wf-3", Attempt: 1, Kind: "failure", Reason: "QuotaExceeded", HTTPStatus: 412, Message: "token limit reached", WebUIURL: "http://ui/wf-3"}
	first, created, err := st.RecordEscalation(ctx, e)
	require.NoError(t, err)
	require.True(t, created)
	second, created, err := st.RecordEscalation(ctx, e)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first.ID, second.ID)
	require.Equal(t, 412, *first.HTTPStatus)

	require.NoError(t, st.MarkEscalationNotified(ctx, first.ID, "webhook answered HTTP 502"))
	escs, err := st.ListEscalations(ctx, "wf-3")
	require.NoError(t, err)
	require.Len(t, escs, 1)
	require.Nil(t, escs[0].NotifiedAt)
	require.Equal(t, "webhook answered HTTP 502", *escs[0].NotifyError)
	require.NoError(t, st.MarkEscalationNotified(ctx, first.ID, ""))
	require.NoError(t, st.MarkEscalationNotified(ctx, first.ID, ""))
	escs, err = st.ListEscalations(ctx, "")
	require.NoError(t, err)
	require.NotNil(t, escs[0].NotifiedAt)
	require.Nil(t, escs[0].NotifyError)
	require.ErrorIs(t, st.MarkEscalationNotified(ctx, 999, ""), store.ErrNotFound)

	_, _, err = st.RecordEscalation(ctx, store.NewEscalation{Key: "k", WorkflowID: "wf-3", Kind: "weird", Reason: "x", Message: "m", WebUIURL: "u"})
	require.Error(t, err, "the kind is constrained")
}

func TestErrorsNeverShowThePassword(t *testing.T) {
	t.Parallel()
	_, err := store.Open(context.Background(), "postgres://app:DBPASSWORD@127.0.0.1:1/db?connect_timeout=1")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "DBPASSWORD")
}

func TestSurvivesAServerRestart(t *testing.T) {
	ctx := context.Background()
	c, err := localpg.Start(ctx, localpg.Options{Fast: true})
	require.NoError(t, err)
	defer c.Close(ctx)
	url, err := c.CreateDatabase(ctx, "restart")
	require.NoError(t, err)
	st, err := store.Open(ctx, url)
	require.NoError(t, err)
	defer st.Close()
	_, _, err = st.Migrate(ctx)
	require.NoError(t, err)
	require.NoError(t, st.RecordJob(ctx, newJob("wf-r")))
	require.NoError(t, c.Restart(ctx))
	require.Eventually(t, func() bool { return st.Ping(ctx) == nil }, 10*time.Second, 50*time.Millisecond, "the pool reconnects")
	j, err := st.GetJob(ctx, "wf-r")
	require.NoError(t, err)
	require.Equal(t, store.StatusPending, j.Status)
}

// BenchmarkUpdateJob moves jobs through their statuses, one update at a time.
func BenchmarkUpdateJob(b *testing.B) {
	st := open(b)
	ctx := context.Background()
	order := []store.Status{store.StatusSubmitted, store.StatusQueued, store.StatusProcessing, store.StatusCompleted}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprint("bench-", i/len(order))
		if i%len(order) == 0 {
			if err := st.RecordJob(ctx, newJob(id)); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := st.UpdateJob(ctx, store.JobUpdate{WorkflowID: id, Attempt: 1, Status: order[i%len(order)], StatusChecks: i}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}

func TestRecordNotSubmitted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := open(t)
	// A job blocked before submission (pending), one accepted (submitted),
	// and one never started (no row).
	require.NoError(t, st.RecordJob(ctx, newJob("wf-pending")))
	require.NoError(t, st.RecordJob(ctx, newJob("wf-submitted")))
	_, err := st.UpdateJob(ctx, store.JobUpdate{WorkflowID: "wf-submitted", Attempt: 1, Status: store.StatusSubmitted, RequestID: "r"})
	require.NoError(t, err)
	jobs := []store.NewJob{newJob("wf-pending"), newJob("wf-submitted"), newJob("wf-never")}
	for i := range 2 { // twice: the second is a no-op
		n, err := st.RecordNotSubmitted(ctx, jobs, "batch aborted after QuotaExceeded")
		require.NoError(t, err)
		require.Equal(t, []int{2, 0}[i], n)
	}
	for id, want := range map[string]store.Status{"wf-pending": store.StatusNotSubmitted, "wf-submitted": store.StatusSubmitted, "wf-never": store.StatusNotSubmitted} {
		j, err := st.GetJob(ctx, id)
		require.NoError(t, err)
		require.Equal(t, want, j.Status, id)
	}
	require.Equal(t, []string{"1:pending", "1:not_submitted"}, statuses(t, st, "wf-pending"))
	require.Equal(t, []string{"1:not_submitted"}, statuses(t, st, "wf-never"))
	// A late update never revives a job recorded as not submitted.
	applied, err := st.UpdateJob(ctx, store.JobUpdate{WorkflowID: "wf-never", Attempt: 1, Status: store.StatusQueued})
	require.NoError(t, err)
	require.False(t, applied)
}

func TestAccountEscalationNamesTheBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := open(t)
	e := store.NewEscalation{Key: "batch-b1/1/account", WorkflowID: "batch-b1", Attempt: 1, Kind: "account",
		Reason: "QuotaExceeded", HTTPStatus: 412, Message: "token quota exhausted", BatchID: "b1"}
	first, created, err := st.RecordEscalation(ctx, e)
	require.NoError(t, err)
	require.True(t, created)
	again, created, err := st.RecordEscalation(ctx, e)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first.ID, again.ID)
	require.Equal(t, "b1", *again.BatchID)
	require.NoError(t, st.ResolveEscalation(ctx, "batch-b1", 1, "resume", "ops", "plan upgraded"))
	escs, err := st.ListEscalations(ctx, "batch-b1")
	require.NoError(t, err)
	require.Len(t, escs, 1)
	require.Equal(t, "resume", *escs[0].Resolution)
}

// TestAccountHoldsBelongToTheirOwners: each workflow holds the account on
// its own; releasing one owner's hold leaves the others standing (before
// owners, one batch's resume lifted the hold another batch relied on).
func TestAccountHoldsBelongToTheirOwners(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := open(t)
	holds, err := st.AccountHolds(ctx, "")
	require.NoError(t, err)
	require.Empty(t, holds)
	_, err = st.HoldAccount(ctx, store.NewHold{Reason: "QuotaExceeded"})
	require.ErrorContains(t, err, "needs an owner")

	created, err := st.HoldAccount(ctx, store.NewHold{Owner: "batch-b1", Reason: "QuotaExceeded", HTTPStatus: 412, Message: "token quota exhausted", BatchID: "b1", EscalationID: 7})
	require.NoError(t, err)
	require.True(t, created)
	created, err = st.HoldAccount(ctx, store.NewHold{Owner: "batch-b1", Reason: "Unauthorized", HTTPStatus: 401, Message: "later"})
	require.NoError(t, err)
	require.False(t, created, "an owner's second hold is a no-op")
	created, err = st.HoldAccount(ctx, store.NewHold{Owner: "batch-b2", Reason: "QuotaExceeded", HTTPStatus: 412, Message: "seen too", BatchID: "b2"})
	require.NoError(t, err)
	require.True(t, created)

	holds, err = st.AccountHolds(ctx, store.DefaultAccount)
	require.NoError(t, err)
	require.Len(t, holds, 2)
	require.Equal(t, "batch-b1", holds[0].Owner)
	require.Equal(t, "QuotaExceeded", holds[0].Reason)
	require.Equal(t, "b1", *holds[0].BatchID)
	require.Equal(t, int64(7), *holds[0].EscalationID)

	released, err := st.ReleaseHold(ctx, "", "batch-b1")
	require.NoError(t, err)
	require.True(t, released)
	holds, err = st.AccountHolds(ctx, "")
	require.NoError(t, err)
	require.Len(t, holds, 1, "b2's hold stands after b1's answer")
	require.Equal(t, "batch-b2", holds[0].Owner)
	released, err = st.ReleaseHold(ctx, "", "batch-b1")
	require.NoError(t, err)
	require.False(t, released)
	other, err := st.AccountHolds(ctx, "other-account")
	require.NoError(t, err)
	require.Empty(t, other)
}

// TestMarkJobEndedEndsOnlyRowsInFlight: a cancelled or terminated job's
// row moves to cancelled; a row that ended stays as it ended.
func TestMarkJobEndedEndsOnlyRowsInFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := open(t)
	require.NoError(t, st.RecordJob(ctx, newJob("wf-run")))
	require.NoError(t, st.RecordJob(ctx, newJob("wf-done")))
	_, err := st.UpdateJob(ctx, store.JobUpdate{WorkflowID: "wf-done", Attempt: 1, Status: store.StatusCompleted, RequestID: "r1", OutputURL: "https://out/1"})
	require.NoError(t, err)

	wrote, err := st.MarkJobEnded(ctx, "wf-run", store.StatusCancelled, "Terminated", "terminated by an operator")
	require.NoError(t, err)
	require.True(t, wrote)
	j, err := st.GetJob(ctx, "wf-run")
	require.NoError(t, err)
	require.Equal(t, store.StatusCancelled, j.Status)
	require.Equal(t, "Terminated", *j.ErrorType)
	require.NotNil(t, j.FinishedAt)
	applied, err := st.UpdateJob(ctx, store.JobUpdate{WorkflowID: "wf-run", Attempt: 1, Status: store.StatusQueued})
	require.NoError(t, err)
	require.False(t, applied, "a late status never reopens a cancelled row")

	wrote, err = st.MarkJobEnded(ctx, "wf-done", store.StatusCancelled, "Terminated", "late")
	require.NoError(t, err)
	require.False(t, wrote)
	j, err = st.GetJob(ctx, "wf-done")
	require.NoError(t, err)
	require.Equal(t, store.StatusCompleted, j.Status)
	// A job cancelled while it waited for a human: its row and its
	// escalation end (before, batch-status listed it as waiting forever).
	require.NoError(t, st.RecordJob(ctx, newJob("wf-waiting")))
	_, err = st.UpdateJob(ctx, store.JobUpdate{WorkflowID: "wf-waiting", Attempt: 1, Status: store.StatusFailed, ErrorType: "BadRequest"})
	require.NoError(t, err)
	_, _, err = st.RecordEscalation(ctx, store.NewEscalation{Key: "wf-waiting/1/failure", WorkflowID: "wf-waiting", Attempt: 1, Kind: "failure", Reason: "BadRequest", Message: "invalid video url"})
	require.NoError(t, err)
	wrote, err = st.MarkJobEnded(ctx, "wf-waiting", store.StatusCancelled, "Terminated", "terminated by an operator")
	require.NoError(t, err)
	require.True(t, wrote)
	j, err = st.GetJob(ctx, "wf-waiting")
	require.NoError(t, err)
	require.Equal(t, store.StatusCancelled, j.Status)
	escs, err := st.ListEscalations(ctx, "wf-waiting")
	require.NoError(t, err)
	require.Equal(t, "cancelled", *escs[0].Resolution)
	wrote, err = st.MarkJobEnded(ctx, "wf-none", store.StatusCancelled, "Terminated", "no row")
	require.NoError(t, err)
	require.False(t, wrote)
	_, err = st.MarkJobEnded(ctx, "wf-run", store.StatusQueued, "x", "y")
	require.Error(t, err)
}

func TestRecentProcessingTimes(t *testing.T) {
	t.Parallel()
	st := open(t)
	ctx := context.Background()
	base := time.Date(2026, 4, 7, 10, 0, 0, 0, time.UTC)
	for i := range 5 {
		id := fmt.Sprintf("wf-%d", i)
		require.NoError(t, st.RecordJob(ctx, newJob(id)))
		started := base.Add(time.Duration(i) * time.Minute)
		finished := started.Add(time.Duration(10*(i+1))*time.Second + 250*time.Millisecond)
		status := store.StatusCompleted
		if i == 4 {
			status = store.StatusFailed // not a processing time the plan learns from
		}
		_, err := st.UpdateJob(ctx, store.JobUpdate{WorkflowID: id, Attempt: 1, Status: status, RequestID: "r" + id, StartedAt: &started, FinishedAt: &finished})
		require.NoError(t, err)
	}
	got, err := st.RecentProcessingTimes(ctx, 3)
	require.NoError(t, err)
	require.Equal(t, []time.Duration{40250 * time.Millisecond, 30250 * time.Millisecond, 20250 * time.Millisecond}, got, "newest completed first")
}

// TestANewAttemptKeepsNothingOfTheEarlierOne: a later attempt's completed
// row carries no earlier attempt's error, request or checks.
func TestANewAttemptKeepsNothingOfTheEarlierOne(t *testing.T) {
	t.Parallel()
	st := open(t)
	ctx := context.Background()
	require.NoError(t, st.RecordJob(ctx, newJob("wf-a")))
	now := time.Now().UTC()
	_, err := st.UpdateJob(ctx, store.JobUpdate{WorkflowID: "wf-a", Attempt: 1, Status: store.StatusSubmitted, RequestID: "req-1", SubmittedAt: &now})
	require.NoError(t, err)
	_, err = st.UpdateJob(ctx, store.JobUpdate{WorkflowID: "wf-a", Attempt: 1, Status: store.StatusFailed, StatusChecks: 7, ErrorType: "JobFailed", ErrorMessage: "no face", HTTPStatus: 0, StartedAt: &now, FinishedAt: &now})
	require.NoError(t, err)
	_, err = st.UpdateJob(ctx, store.JobUpdate{WorkflowID: "wf-a", Attempt: 2, Status: store.StatusSubmitted, RequestID: "req-2"})
	require.NoError(t, err)
	_, err = st.UpdateJob(ctx, store.JobUpdate{WorkflowID: "wf-a", Attempt: 2, Status: store.StatusCompleted, StatusChecks: 2, OutputURL: "https://o/2.mp4"})
	require.NoError(t, err)
	j, err := st.GetJob(ctx, "wf-a")
	require.NoError(t, err)
	require.Equal(t, store.StatusCompleted, j.Status)
	require.Nil(t, j.ErrorType, "the first attempt's error is not the second's")
	require.Nil(t, j.ErrorMessage)
	require.Nil(t, j.StartedAt)
	require.Equal(t, 2, j.StatusChecks)
	require.Equal(t, "req-2", *j.RequestID)
}

// TestANewExecutionTakesTheRowOver: a reference_id run again after its job
// ended resets the row for its own attempts; the earlier execution's
// events stay, its escalations too (answered as expired when nobody had),
// and their keys are free for the new execution.
func TestANewExecutionTakesTheRowOver(t *testing.T) {
	t.Parallel()
	st := open(t)
	ctx := context.Background()
	first, second := newJob("wf-x"), newJob("wf-x")
	first.ExecutionID, first.Attempt = "exec-1", 1
	second.ExecutionID, second.Attempt = "exec-2", 1
	require.NoError(t, st.RecordJob(ctx, first))
	require.NoError(t, st.RecordJob(ctx, first), "retried: a no-op")
	_, err := st.UpdateJob(ctx, store.JobUpdate{WorkflowID: "wf-x", ExecutionID: "exec-1", Attempt: 1, Status: store.StatusSubmitted, RequestID: "req-1"})
	require.NoError(t, err)
	_, err = st.UpdateJob(ctx, store.JobUpdate{WorkflowID: "wf-x", ExecutionID: "exec-1", Attempt: 1, Status: store.StatusFailed, ErrorType: "JobFailed", ErrorMessage: "no face"})
	require.NoError(t, err)
	e := store.NewEscalation{Key: "wf-x/1/failure", WorkflowID: "wf-x", Attempt: 1, Kind: "failure", Reason: "JobFailed", Message: "no face", WebUIURL: "u"}
	_, created, err := st.RecordEscalation(ctx, e)
	require.NoError(t, err)
	require.True(t, created)

	require.NoError(t, st.RecordJob(ctx, second))
	require.NoError(t, st.RecordJob(ctx, second), "retried: a no-op")
	j, err := st.GetJob(ctx, "wf-x")
	require.NoError(t, err)
	require.Equal(t, store.StatusPending, j.Status)
	require.Equal(t, 1, j.Attempt)
	require.Equal(t, "exec-2", *j.ExecutionID)
	require.Nil(t, j.RequestID)
	require.Nil(t, j.ErrorMessage)
	applied, err := st.UpdateJob(ctx, store.JobUpdate{WorkflowID: "wf-x", ExecutionID: "exec-1", Attempt: 1, Status: store.StatusCompleted, OutputURL: "https://o/late.mp4"})
	require.NoError(t, err)
	require.False(t, applied, "a late write of the ended execution is stale")
	_, err = st.UpdateJob(ctx, store.JobUpdate{WorkflowID: "wf-x", ExecutionID: "exec-2", Attempt: 1, Status: store.StatusSubmitted, RequestID: "req-2"})
	require.NoError(t, err)

	esc, created, err := st.RecordEscalation(ctx, e)
	require.NoError(t, err)
	require.True(t, created, "the new execution's first escalation is a row of its own")
	escs, err := st.ListEscalations(ctx, "wf-x")
	require.NoError(t, err)
	require.Len(t, escs, 2)
	require.Equal(t, "expired", *escs[0].Resolution, "the ended execution's unanswered escalation")
	require.NotEqual(t, esc.Key, escs[0].Key)
	require.NoError(t, st.ResolveEscalation(ctx, "wf-x", 1, "abandon", "ops", "n"))
	escs, err = st.ListEscalations(ctx, "wf-x")
	require.NoError(t, err)
	require.Equal(t, "abandon", *escs[1].Resolution, "the answer goes to the new execution's escalation")
	require.Equal(t, "expired", *escs[0].Resolution)

	require.Equal(t, []string{"1:pending", "1:submitted", "1:failed", "1:pending", "1:submitted"}, statuses(t, st, "wf-x"))
	earlier, err := st.EarlierRequestIDs(ctx, "wf-x", "exec-2", 1)
	require.NoError(t, err)
	require.Equal(t, []string{"req-1"}, earlier, "the earlier execution's request, not this attempt's own")
	earlier, err = st.EarlierRequestIDs(ctx, "wf-x", "exec-2", 2)
	require.NoError(t, err)
	require.Equal(t, []string{"req-1", "req-2"}, earlier)

	// A human's retry in the same execution: the row starts attempt 2.
	second.Attempt = 2
	require.NoError(t, st.RecordJob(ctx, second))
	j, err = st.GetJob(ctx, "wf-x")
	require.NoError(t, err)
	require.Equal(t, 2, j.Attempt)
	require.Equal(t, store.StatusPending, j.Status)
	require.Nil(t, j.RequestID)
}

// TestClaimAccountHoldOnceAmongMany: of many jobs meeting a rejected key
// at once, exactly one raises the hold; the others get it.
func TestClaimAccountHoldOnceAmongMany(t *testing.T) {
	t.Parallel()
	st := open(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	owners := map[string]bool{}
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, c, err := st.ClaimAccountHold(ctx, store.NewHold{Owner: fmt.Sprint("lipsync-", i), Reason: "Unauthorized", HTTPStatus: 401, Message: "invalid token"},
				[]string{"Unauthorized", "Forbidden"})
			require.NoError(t, err)
			mu.Lock()
			defer mu.Unlock()
			if c {
				created++
			}
			owners[h.Owner] = true
		}()
	}
	wg.Wait()
	require.Equal(t, 1, created)
	require.Len(t, owners, 1, "every job got the one hold")
	holds, err := st.AccountHolds(ctx, "")
	require.NoError(t, err)
	require.Len(t, holds, 1)
}

// TestConcurrentUpdatesEndAtTheHighestStatus: racing writes of one
// attempt's statuses (late and duplicated status reads from several
// workers) leave the row at the highest status, with the most checks, and
// one event per status reached, whatever the order they commit in; a
// rank check the store keeps in Go and in SQL must agree for this.
func TestConcurrentUpdatesEndAtTheHighestStatus(t *testing.T) {
	t.Parallel()
	st := open(t)
	ctx := context.Background()
	for round := range 5 {
		id := fmt.Sprintf("wf-race-%d", round)
		require.NoError(t, st.RecordJob(ctx, newJob(id)))
		order := []store.Status{store.StatusSubmitted, store.StatusQueued, store.StatusQueued, store.StatusProcessing,
			store.StatusProcessing, store.StatusCompleted, store.StatusCompleted, store.StatusQueued}
		var wg sync.WaitGroup
		for i, status := range order {
			wg.Go(func() {
				_, err := st.UpdateJob(ctx, store.JobUpdate{WorkflowID: id, Attempt: 1, Status: status, StatusChecks: i + 1, RequestID: "req-1"})
				assert.NoError(t, err)
			})
		}
		wg.Wait()
		j, err := st.GetJob(ctx, id)
		require.NoError(t, err)
		require.Equal(t, store.StatusCompleted, j.Status)
		evs := statuses(t, st, id)
		require.Equal(t, "1:pending", evs[0])
		require.Equal(t, "1:completed", evs[len(evs)-1])
		seen := map[string]bool{}
		for _, e := range evs {
			require.False(t, seen[e], "event %s twice: %v", e, evs)
			seen[e] = true
		}
	}
}
