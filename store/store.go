// Package store keeps the job records in PostgreSQL (pgx/v5): one row per
// job in lipsync_jobs, its status transitions in lipsync_job_events, and
// escalations in escalations. Every write is an idempotent upsert, so that
// activity retries and workflow replays never duplicate or regress a row.
package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chamelaion-lipsync/worker/migrations"
)

// ErrNotFound is returned when no row matches.
var ErrNotFound = errors.New("store: not found")

// ErrStaleExecution is returned for a write of an execution of a job's
// workflow whose row a later execution has taken over: the writer has
// ended, and what it would write is no longer true of the row.
var ErrStaleExecution = errors.New("store: the job's row belongs to a later execution")

// Status is a job's state in lipsync_jobs.
type Status string

// The job statuses, in the order a job moves through them.
const (
	StatusPending    Status = "pending"
	StatusSubmitted  Status = "submitted"
	StatusQueued     Status = "queued"
	StatusProcessing Status = "processing"
	StatusCompleted  Status = "completed"
	StatusFailed     Status = "failed"
	StatusAbandoned  Status = "abandoned"
	// StatusNotSubmitted: the job's batch was aborted before the job was
	// accepted by the vendor.
	StatusNotSubmitted Status = "not_submitted"
)

// rank orders statuses: a write never moves a job to a lower rank within
// one attempt.
func (s Status) rank() int {
	switch s {
	case StatusPending:
		return 0
	case StatusSubmitted:
		return 1
	case StatusQueued:
		return 2
	case StatusProcessing:
		return 3
	case StatusCompleted, StatusFailed, StatusNotSubmitted:
		return 4
	case StatusAbandoned, StatusCancelled:
		return 5
	}
	return -1
}

// rankSQL is rank in SQL, of the column status (kept beside rank: the
// store's tests write every status through both).
const rankSQL = `CASE status
	WHEN 'pending' THEN 0 WHEN 'submitted' THEN 1 WHEN 'queued' THEN 2 WHEN 'processing' THEN 3
	WHEN 'completed' THEN 4 WHEN 'failed' THEN 4 WHEN 'not_submitted' THEN 4
	WHEN 'abandoned' THEN 5 WHEN 'cancelled' THEN 5 ELSE -1 END`

// Terminal says whether the status ends an attempt.
func (s Status) Terminal() bool { return s.rank() >= 4 }

// Store is the job store. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to PostgreSQL and checks the connection. Pool settings may
// ride in the URL (pool_max_conns and the like).
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("store: parse DATABASE_URL: %s", scrub(err.Error()))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect: %s", scrub(err.Error()))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect to %s:%d: %s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, scrub(err.Error()))
	}
	return &Store{pool: pool}, nil
}

var (
	passwordParam = regexp.MustCompile(`(?i)(password=)\S+`)
	passwordInURL = regexp.MustCompile(`(://[^:/@\s]*:)[^@\s]*@`)
)

// scrub removes passwords from a driver message (a DSN may be echoed).
func scrub(s string) string {
	s = passwordParam.ReplaceAllString(s, "${1}xxxxx")
	return passwordInURL.ReplaceAllString(s, "${1}xxxxx@")
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks the connection.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("store: ping: %s", scrub(err.Error()))
	}
	return nil
}

// Migrate applies the embedded migrations and reports the schema versions
// before and after.
func (s *Store) Migrate(ctx context.Context) (from, to int32, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("store: migrate: %w", err)
	}
	defer conn.Release()
	return migrations.Apply(ctx, conn.Conn())
}

// NewJob is a job as first recorded.
type NewJob struct {
	WorkflowID  string
	ReferenceID string
	BatchID     string
	// VideoSource and AudioSource are media locations with their query
	// strings removed (the caller redacts).
	VideoSource string
	AudioSource string
	// ExecutionID names the execution of the job's workflow recording it,
	// and Attempt the attempt it starts ("" = unnamed, see RecordJob).
	ExecutionID string
	Attempt     int
}

// RecordJob records the start of an attempt of a job, in state pending.
//
// Without an ExecutionID (the callers before executions were named) it
// inserts the row with its first event, and recording a job that exists
// is a no-op. With one, the row belongs to that execution of the job's
// workflow:
//   - no row: inserted for the attempt;
//   - the row is the execution's: an attempt above the row's resets the row
//     for it (nothing of the earlier attempt's request, output, error,
//     checks or times stays); anything else is a no-op, so retries are
//     harmless;
//   - the row is another execution's (the reference_id ran before and its
//     job ended): the new execution takes it over and resets it. The
//     earlier executions' events stay, with their execution_id; their
//     escalations stay too, their keys marked with the execution they
//     belonged to (so that the new execution's attempts escalate afresh)
//     and any left unanswered recorded as expired.
//
// Every reset appends a pending event for the attempt.
func (s *Store) RecordJob(ctx context.Context, j NewJob) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if j.ExecutionID == "" {
			tag, err := tx.Exec(ctx, `
				INSERT INTO lipsync_jobs (workflow_id, reference_id, batch_id, status, video_source, audio_source)
				VALUES ($1, $2, NULLIF($3, ''), 'pending', $4, $5)
				ON CONFLICT (workflow_id) DO NOTHING`,
				j.WorkflowID, j.ReferenceID, j.BatchID, j.VideoSource, j.AudioSource)
			if err != nil || tag.RowsAffected() == 0 {
				return err
			}
			_, err = tx.Exec(ctx, `
				INSERT INTO lipsync_job_events (workflow_id, attempt, status, message)
				VALUES ($1, 1, 'pending', 'recorded') ON CONFLICT DO NOTHING`, j.WorkflowID)
			return err
		}
		attempt := max(j.Attempt, 1)
		var cur int
		var exec *string
		err := tx.QueryRow(ctx, `SELECT attempt, execution_id FROM lipsync_jobs WHERE workflow_id = $1 FOR UPDATE`, j.WorkflowID).Scan(&cur, &exec)
		message := "recorded"
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if _, err := tx.Exec(ctx, `
				INSERT INTO lipsync_jobs (workflow_id, reference_id, batch_id, attempt, status, video_source, audio_source, execution_id)
				VALUES ($1, $2, NULLIF($3, ''), $4, 'pending', $5, $6, $7)`,
				j.WorkflowID, j.ReferenceID, j.BatchID, attempt, j.VideoSource, j.AudioSource, j.ExecutionID); err != nil {
				return err
			}
		case err != nil:
			return err
		case exec != nil && *exec == j.ExecutionID:
			if attempt <= cur {
				return nil
			}
			message = fmt.Sprintf("attempt %d", attempt)
			if err := resetJob(ctx, tx, j, attempt); err != nil {
				return err
			}
		default:
			earlier := "an earlier execution"
			if exec != nil {
				earlier = "execution " + *exec
			}
			message = fmt.Sprintf("recorded again: a new execution of the job (the earlier events belong to %s)", earlier)
			suffix := "@" + earlier
			if exec == nil {
				suffix = "@before-" + j.ExecutionID
			}
			if _, err := tx.Exec(ctx, `
				UPDATE escalations SET
					escalation_key = escalation_key || $2,
					resolved_at = COALESCE(resolved_at, now()),
					resolution = COALESCE(resolution, 'expired'),
					resolved_by = COALESCE(resolved_by, 'a new execution of the job')
				WHERE workflow_id = $1 AND escalation_key = workflow_id || '/' || attempt || '/' || kind`,
				j.WorkflowID, suffix); err != nil {
				return err
			}
			if err := resetJob(ctx, tx, j, attempt); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO lipsync_job_events (workflow_id, attempt, status, message, execution_id)
			VALUES ($1, $2, 'pending', $3, $4) ON CONFLICT DO NOTHING`, j.WorkflowID, attempt, message, j.ExecutionID)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: record job %s: %w", j.WorkflowID, err)
	}
	return nil
}

// resetJob gives the row to an attempt of an execution, in state pending.
func resetJob(ctx context.Context, tx pgx.Tx, j NewJob, attempt int) error {
	_, err := tx.Exec(ctx, `
		UPDATE lipsync_jobs SET
			execution_id = $2, attempt = $3, status = 'pending',
			reference_id = $4, batch_id = NULLIF($5, ''), video_source = $6, audio_source = $7,
			request_id = NULL, output_url = NULL, error_type = NULL, error_message = NULL, http_status = NULL,
			status_checks = 0, submitted_at = NULL, started_at = NULL, finished_at = NULL, updated_at = now()
		WHERE workflow_id = $1`,
		j.WorkflowID, j.ExecutionID, attempt, j.ReferenceID, j.BatchID, j.VideoSource, j.AudioSource)
	return err
}

// EarlierRequestIDs returns the vendor requests recorded for the job
// before the given attempt of the given execution: those of its earlier
// attempts and of earlier executions. A submission never adopts them.
func (s *Store) EarlierRequestIDs(ctx context.Context, workflowID, executionID string, attempt int) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `
		SELECT DISTINCT request_id FROM lipsync_job_events
		WHERE workflow_id = $1 AND request_id IS NOT NULL
		  AND (execution_id IS DISTINCT FROM NULLIF($2, '') OR attempt < $3)
		ORDER BY request_id`, workflowID, executionID, attempt)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: earlier requests of %s: %w", workflowID, err)
	}
	return ids, nil
}

// PriorRuns is what the job's records say of runs before a submission: a
// submission looks for a request such a run may have created before it
// sends (an execution that ended abandoned, expired, terminated or not
// submitted after a lost answer leaves no other trace).
type PriorRuns struct {
	// Earlier: the job's workflow ID ran before this execution (events of
	// another execution, or recorded before executions were named);
	// EarlierLast is when the latest of them was recorded, and
	// EarlierEnded whether it ended the row (a terminal status): when not,
	// the execution was stopped from outside (terminated, say) at a moment
	// the records do not tell.
	Earlier      bool
	EarlierLast  time.Time
	EarlierEnded bool
	// Recorded is the request the row already holds for this very
	// execution and attempt: a workflow reset to before its submission
	// ended runs the submission again, and must take that request.
	Recorded string
}

// PriorRuns reads what the job's records say of runs before the given
// attempt of the given execution submits.
func (s *Store) PriorRuns(ctx context.Context, workflowID, executionID string, attempt int) (PriorRuns, error) {
	var p PriorRuns
	var last *time.Time
	var status, recorded *string
	// One round trip: the latest event of another execution, and the
	// request this execution's attempt recorded.
	err := s.pool.QueryRow(ctx, `
		SELECT e.occurred_at, e.status,
			(SELECT request_id FROM lipsync_jobs WHERE workflow_id = $1 AND execution_id = $2 AND attempt = $3)
		FROM (SELECT 1) AS one
		LEFT JOIN LATERAL (
			SELECT occurred_at, status FROM lipsync_job_events
			WHERE workflow_id = $1 AND execution_id IS DISTINCT FROM NULLIF($2, '')
			ORDER BY occurred_at DESC, id DESC LIMIT 1
		) AS e ON true`, workflowID, executionID, max(attempt, 1)).Scan(&last, &status, &recorded)
	if err != nil {
		return PriorRuns{}, fmt.Errorf("store: earlier runs of %s: %w", workflowID, err)
	}
	if last != nil && status != nil {
		p.Earlier, p.EarlierLast, p.EarlierEnded = true, *last, Status(*status).Terminal()
	}
	if recorded != nil {
		p.Recorded = *recorded
	}
	return p, nil
}

// JobUpdate moves a job forward. Zero fields leave columns as they are.
type JobUpdate struct {
	WorkflowID string
	// ExecutionID, when set, names the execution writing: an update of
	// another execution than the row's is stale (a late write of an ended
	// execution never touches its successor's row).
	ExecutionID  string
	Attempt      int
	Status       Status
	RequestID    string
	OutputURL    string
	ErrorType    string
	ErrorMessage string
	HTTPStatus   int
	// StatusChecks is stored as the greater of the old and new counts.
	StatusChecks int
	SubmittedAt  *time.Time
	StartedAt    *time.Time
	FinishedAt   *time.Time
	// Message goes into the status-change event.
	Message string
}

// UpdateJob applies u if it moves the job forward: a higher attempt; or the
// same attempt and a status of higher rank; or the same attempt and the same
// non-terminal status (refreshing fields such as status_checks). A late
// "processing" never overwrites "completed". Within an attempt, zero fields
// leave columns as they are; a higher attempt replaces them all (nothing of
// an earlier attempt's request, output or error stays on the row). A
// status change appends one event. It returns applied=false for a stale
// update and ErrNotFound for an unknown job.
func (s *Store) UpdateJob(ctx context.Context, u JobUpdate) (applied bool, err error) {
	rank := u.Status.rank()
	if rank < 0 {
		return false, fmt.Errorf("store: update job %s: unknown status %q", u.WorkflowID, u.Status)
	}
	if u.Attempt < 1 {
		u.Attempt = 1
	}
	// One statement, one round trip: it locks the row, decides as the
	// doc comment says (cur: the row and its status's rank; ok: the row
	// if the update moves it forward), updates it and appends the event
	// of a status change. $13 is the new status's rank; "new attempt"
	// (the row keeps nothing of the earlier one) is $2 > ok.attempt.
	var found bool
	err = s.pool.QueryRow(ctx, `
		WITH cur AS (
			SELECT status, attempt, execution_id, `+rankSQL+` AS rank
			FROM lipsync_jobs WHERE workflow_id = $1 FOR UPDATE
		), ok AS (
			SELECT * FROM cur
			WHERE ($14 = '' OR cur.execution_id = $14)
			  AND ($2 > cur.attempt
			       OR ($2 = cur.attempt AND ($13 > cur.rank OR ($13 = cur.rank AND cur.status = $3 AND $13 < 4))))
		), upd AS (
			UPDATE lipsync_jobs SET
				attempt       = $2,
				status        = $3,
				request_id    = CASE WHEN $2 > ok.attempt THEN NULLIF($4, '') ELSE COALESCE(NULLIF($4, ''), lipsync_jobs.request_id) END,
				output_url    = CASE WHEN $2 > ok.attempt THEN NULLIF($5, '') ELSE COALESCE(NULLIF($5, ''), lipsync_jobs.output_url) END,
				error_type    = CASE WHEN $2 > ok.attempt THEN NULLIF($6, '') ELSE COALESCE(NULLIF($6, ''), lipsync_jobs.error_type) END,
				error_message = CASE WHEN $2 > ok.attempt THEN NULLIF($7, '') ELSE COALESCE(NULLIF($7, ''), lipsync_jobs.error_message) END,
				http_status   = CASE WHEN $2 > ok.attempt THEN NULLIF($8, 0) ELSE COALESCE(NULLIF($8, 0), lipsync_jobs.http_status) END,
				status_checks = CASE WHEN $2 > ok.attempt THEN $9 ELSE GREATEST(lipsync_jobs.status_checks, $9) END,
				submitted_at  = CASE WHEN $2 > ok.attempt THEN $10 ELSE COALESCE($10, lipsync_jobs.submitted_at) END,
				started_at    = CASE WHEN $2 > ok.attempt THEN $11 ELSE COALESCE($11, lipsync_jobs.started_at) END,
				finished_at   = CASE WHEN $2 > ok.attempt THEN $12 ELSE COALESCE($12, lipsync_jobs.finished_at) END,
				updated_at    = now()
			FROM ok
			WHERE lipsync_jobs.workflow_id = $1
			RETURNING ok.attempt AS old_attempt, ok.status AS old_status, ok.execution_id
		), event AS (
			INSERT INTO lipsync_job_events (workflow_id, attempt, status, request_id, message, execution_id)
			SELECT $1, $2, $3, NULLIF($4, ''), NULLIF($15, ''), upd.execution_id FROM upd
			WHERE $2 > upd.old_attempt OR upd.old_status <> $3
			ON CONFLICT DO NOTHING
		)
		SELECT EXISTS (SELECT 1 FROM cur), EXISTS (SELECT 1 FROM upd)`,
		u.WorkflowID, u.Attempt, string(u.Status), u.RequestID, u.OutputURL, u.ErrorType, u.ErrorMessage,
		u.HTTPStatus, u.StatusChecks, u.SubmittedAt, u.StartedAt, u.FinishedAt, rank, u.ExecutionID, u.Message).
		Scan(&found, &applied)
	if err == nil && !found {
		err = ErrNotFound
	}
	if errors.Is(err, ErrNotFound) {
		return false, fmt.Errorf("store: update job %s: %w", u.WorkflowID, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("store: update job %s: %w", u.WorkflowID, err)
	}
	return applied, nil
}

// RecordNotSubmitted records jobs of an aborted batch that the vendor never
// accepted: a job without a row gets one in status not_submitted; a job of
// the same batch still pending moves there; any other row (another batch's
// job, a standalone job, a job that moved on) is left as it is. It returns
// how many rows it wrote.
func (s *Store) RecordNotSubmitted(ctx context.Context, jobs []NewJob, reason string) (int, error) {
	written := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, j := range jobs {
			tag, err := tx.Exec(ctx, `
				INSERT INTO lipsync_jobs (workflow_id, reference_id, batch_id, status, video_source, audio_source, error_type, error_message, finished_at)
				VALUES ($1, $2, NULLIF($3, ''), 'not_submitted', $4, $5, 'NotSubmitted', $6, now())
				ON CONFLICT (workflow_id) DO UPDATE SET
					status = 'not_submitted', error_type = 'NotSubmitted', error_message = $6,
					finished_at = now(), updated_at = now()
				WHERE lipsync_jobs.status = 'pending' AND lipsync_jobs.batch_id IS NOT DISTINCT FROM NULLIF($3, '')`,
				j.WorkflowID, j.ReferenceID, j.BatchID, j.VideoSource, j.AudioSource, reason)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				continue
			}
			written++
			var attempt int
			if err := tx.QueryRow(ctx, `SELECT attempt FROM lipsync_jobs WHERE workflow_id = $1`, j.WorkflowID).Scan(&attempt); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `
				INSERT INTO lipsync_job_events (workflow_id, attempt, status, message)
				VALUES ($1, $2, 'not_submitted', $3) ON CONFLICT DO NOTHING`, j.WorkflowID, attempt, reason); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: record %d jobs not submitted: %w", len(jobs), err)
	}
	return written, nil
}

// Job is one row of lipsync_jobs.
type Job struct {
	WorkflowID   string     `db:"workflow_id"`
	ReferenceID  string     `db:"reference_id"`
	BatchID      *string    `db:"batch_id"`
	Attempt      int        `db:"attempt"`
	RequestID    *string    `db:"request_id"`
	Status       Status     `db:"status"`
	VideoSource  string     `db:"video_source"`
	AudioSource  string     `db:"audio_source"`
	OutputURL    *string    `db:"output_url"`
	ErrorType    *string    `db:"error_type"`
	ErrorMessage *string    `db:"error_message"`
	HTTPStatus   *int       `db:"http_status"`
	StatusChecks int        `db:"status_checks"`
	SubmittedAt  *time.Time `db:"submitted_at"`
	StartedAt    *time.Time `db:"started_at"`
	FinishedAt   *time.Time `db:"finished_at"`
	CreatedAt    time.Time  `db:"created_at"`
	UpdatedAt    time.Time  `db:"updated_at"`
	// ExecutionID names the execution of the job's workflow the row
	// belongs to (nil for rows recorded before executions were named).
	ExecutionID *string `db:"execution_id"`
}

// GetJob reads one job.
func (s *Store) GetJob(ctx context.Context, workflowID string) (Job, error) {
	rows, _ := s.pool.Query(ctx, `SELECT * FROM lipsync_jobs WHERE workflow_id = $1`, workflowID)
	j, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Job])
	if errors.Is(err, pgx.ErrNoRows) {
		return Job{}, fmt.Errorf("store: job %s: %w", workflowID, ErrNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("store: job %s: %w", workflowID, err)
	}
	return j, nil
}

// JobEvent is one row of lipsync_job_events.
type JobEvent struct {
	ID         int64     `db:"id"`
	WorkflowID string    `db:"workflow_id"`
	Attempt    int       `db:"attempt"`
	Status     Status    `db:"status"`
	RequestID  *string   `db:"request_id"`
	Message    *string   `db:"message"`
	OccurredAt time.Time `db:"occurred_at"`
	// ExecutionID names the execution of the job's workflow the event
	// belongs to (nil before executions were named).
	ExecutionID *string `db:"execution_id"`
}

// ListJobEvents returns a job's status transitions in order.
func (s *Store) ListJobEvents(ctx context.Context, workflowID string) ([]JobEvent, error) {
	rows, _ := s.pool.Query(ctx, `SELECT * FROM lipsync_job_events WHERE workflow_id = $1 ORDER BY id`, workflowID)
	evs, err := pgx.CollectRows(rows, pgx.RowToStructByName[JobEvent])
	if err != nil {
		return nil, fmt.Errorf("store: events of %s: %w", workflowID, err)
	}
	return evs, nil
}

// CountJobsByStatus counts the jobs in each status.
func (s *Store) CountJobsByStatus(ctx context.Context) (map[Status]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT status, count(*) FROM lipsync_jobs GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("store: count jobs: %w", err)
	}
	defer rows.Close()
	out := make(map[Status]int)
	for rows.Next() {
		var st Status
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("store: count jobs: %w", err)
		}
		out[st] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: count jobs: %w", err)
	}
	return out, nil
}

// RecentProcessingTimes returns the processing times (the vendor's
// finished_at - started_at) of the last limit completed jobs, newest first.
func (s *Store) RecentProcessingTimes(ctx context.Context, limit int) ([]time.Duration, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT EXTRACT(EPOCH FROM finished_at - started_at)::float8 FROM lipsync_jobs
		WHERE status = 'completed' AND started_at IS NOT NULL AND finished_at IS NOT NULL
		ORDER BY finished_at DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: processing times: %w", err)
	}
	secs, err := pgx.CollectRows(rows, pgx.RowTo[float64])
	if err != nil {
		return nil, fmt.Errorf("store: processing times: %w", err)
	}
	out := make([]time.Duration, len(secs))
	for i, s := range secs {
		out[i] = time.Duration(s * float64(time.Second))
	}
	return out, nil
}
