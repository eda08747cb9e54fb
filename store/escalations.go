package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// NewEscalation is an escalation to record.
type NewEscalation struct {
	// Key makes the write idempotent: one row per key, however often the
	// write is retried.
	Key        string
	WorkflowID string
	Attempt    int
	// Kind is "failure", "stuck" or "account" (an account-wide failure
	// met by a batch; WorkflowID is then the batch's workflow).
	Kind       string
	Reason     string
	HTTPStatus int
	Message    string
	WebUIURL   string
	// BatchID names the batch of an account-wide escalation.
	BatchID string
	// ExecutionID, when set, names the execution of the job's workflow
	// that escalates: if a later execution has taken the job's row over,
	// the escalation is refused with ErrStaleExecution (an ended
	// execution's late write never stands as its successor's).
	ExecutionID string
}

// Escalation is one row of escalations.
type Escalation struct {
	ID          int64      `db:"id"`
	Key         string     `db:"escalation_key"`
	WorkflowID  string     `db:"workflow_id"`
	Attempt     int        `db:"attempt"`
	Kind        string     `db:"kind"`
	Reason      string     `db:"reason"`
	HTTPStatus  *int       `db:"http_status"`
	Message     string     `db:"message"`
	WebUIURL    string     `db:"web_ui_url"`
	CreatedAt   time.Time  `db:"created_at"`
	NotifiedAt  *time.Time `db:"notified_at"`
	NotifyError *string    `db:"notify_error"`
	// BatchID names the batch of an account-wide escalation.
	BatchID *string `db:"batch_id"`
	// The human's answer, if any: retry, abandon, or expired (no answer in
	// time); resume or abort for an account-wide escalation.
	ResolvedAt     *time.Time `db:"resolved_at"`
	Resolution     *string    `db:"resolution"`
	ResolvedBy     *string    `db:"resolved_by"`
	ResolutionNote *string    `db:"resolution_note"`
}

// ResolveEscalation records the answer to a failure escalation of one
// attempt of a job, or to an account-wide escalation of a batch. The first answer wins; recording it again is a no-op.
func (s *Store) ResolveEscalation(ctx context.Context, workflowID string, attempt int, resolution, by, note string) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE escalations SET resolved_at = now(), resolution = $3, resolved_by = NULLIF($4, ''), resolution_note = NULLIF($5, '')
		WHERE workflow_id = $1 AND attempt = $2 AND kind IN ('failure', 'account') AND resolved_at IS NULL`,
		workflowID, max(attempt, 1), resolution, by, note)
	if err != nil {
		return fmt.Errorf("store: resolve escalation of %s: %w", workflowID, err)
	}
	return nil
}

// RecordEscalation inserts the escalation unless one with its key exists,
// and returns the row and whether this call created it.
func (s *Store) RecordEscalation(ctx context.Context, e NewEscalation) (Escalation, bool, error) {
	if e.ExecutionID == "" {
		return s.recordEscalation(ctx, s.pool, e)
	}
	var esc Escalation
	var created bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The row's lock orders this write with RecordJob's takeover: a
		// takeover either sees the escalation (and marks it as the
		// earlier execution's) or has already happened and refuses it.
		var exec *string
		err := tx.QueryRow(ctx, `SELECT execution_id FROM lipsync_jobs WHERE workflow_id = $1 FOR SHARE`, e.WorkflowID).Scan(&exec)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		case exec == nil || *exec != e.ExecutionID:
			return ErrStaleExecution
		}
		esc, created, err = s.recordEscalation(ctx, tx, e)
		return err
	})
	if errors.Is(err, ErrStaleExecution) {
		return Escalation{}, false, fmt.Errorf("store: record escalation %s of execution %s: %w", e.Key, e.ExecutionID, err)
	}
	if err != nil {
		return Escalation{}, false, fmt.Errorf("store: record escalation %s: %w", e.Key, err)
	}
	return esc, created, nil
}

// querier is what recordEscalation needs of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func (s *Store) recordEscalation(ctx context.Context, q querier, e NewEscalation) (Escalation, bool, error) {
	rows, _ := q.Query(ctx, `
		INSERT INTO escalations (escalation_key, workflow_id, attempt, kind, reason, http_status, message, web_ui_url, batch_id)
		VALUES ($1, $2, $3, $4, $5, NULLIF($6, 0), $7, $8, NULLIF($9, ''))
		ON CONFLICT (escalation_key) DO NOTHING
		RETURNING *`,
		e.Key, e.WorkflowID, max(e.Attempt, 1), e.Kind, e.Reason, e.HTTPStatus, e.Message, e.WebUIURL, e.BatchID)
	esc, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Escalation])
	if err == nil {
		return esc, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return Escalation{}, false, fmt.Errorf("store: record escalation %s: %w", e.Key, err)
	}
	rows, _ = q.Query(ctx, `SELECT * FROM escalations WHERE escalation_key = $1`, e.Key)
	esc, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Escalation])
	if err != nil {
		return Escalation{}, false, fmt.Errorf("store: read escalation %s: %w", e.Key, err)
	}
	return esc, false, nil
}

// MarkEscalationNotified records that the escalation reached a human (or
// the last delivery error). The first successful mark wins.
func (s *Store) MarkEscalationNotified(ctx context.Context, id int64, notifyErr string) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE escalations SET
			notified_at  = CASE WHEN $2 = '' THEN now() ELSE notified_at END,
			notify_error = NULLIF($2, '')
		WHERE id = $1 AND notified_at IS NULL`, id, notifyErr)
	if err != nil {
		return fmt.Errorf("store: mark escalation %d notified: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM escalations WHERE id = $1)`, id).Scan(&exists); err != nil {
			return fmt.Errorf("store: mark escalation %d notified: %w", id, err)
		}
		if !exists {
			return fmt.Errorf("store: escalation %d: %w", id, ErrNotFound)
		}
	}
	return nil
}

// ListEscalations returns a job's escalations ("" = all), oldest first.
func (s *Store) ListEscalations(ctx context.Context, workflowID string) ([]Escalation, error) {
	rows, _ := s.pool.Query(ctx, `SELECT * FROM escalations WHERE $1 = '' OR workflow_id = $1 ORDER BY id`, workflowID)
	escs, err := pgx.CollectRows(rows, pgx.RowToStructByName[Escalation])
	if err != nil {
		return nil, fmt.Errorf("store: list escalations: %w", err)
	}
	return escs, nil
}
