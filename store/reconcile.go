package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// StatusCancelled: the job's workflow was cancelled or terminated (or
// timed out) before the job ended.
const StatusCancelled Status = "cancelled"

// MarkJobEnded ends a job whose workflow ended without ending its row (a
// cancelled or terminated workflow): a row still in flight (pending,
// submitted, queued, processing), or failed and waiting for a human's
// answer (an unanswered failure escalation of its attempt), moves to
// status with the reason, and that escalation is closed as cancelled; a
// row that has ended otherwise, or does not exist, is left alone. It
// reports whether it wrote.
func (s *Store) MarkJobEnded(ctx context.Context, workflowID string, status Status, reason, message string) (bool, error) {
	if !status.Terminal() {
		return false, fmt.Errorf("store: end job %s: %q is not a final status", workflowID, status)
	}
	written := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var attempt int
		err := tx.QueryRow(ctx, `
			UPDATE lipsync_jobs j SET status = $2, error_type = $3, error_message = $4, finished_at = now(), updated_at = now()
			WHERE j.workflow_id = $1 AND (j.status IN ('pending', 'submitted', 'queued', 'processing') OR (j.status = 'failed' AND EXISTS (
				SELECT 1 FROM escalations e WHERE e.workflow_id = j.workflow_id AND e.attempt = j.attempt AND e.kind = 'failure' AND e.resolved_at IS NULL)))
			RETURNING attempt`, workflowID, status, reason, message).Scan(&attempt)
		if err == pgx.ErrNoRows {
			return nil
		}
		if err != nil {
			return err
		}
		written = true
		if _, err := tx.Exec(ctx, `
			UPDATE escalations SET resolved_at = now(), resolution = 'cancelled', resolved_by = 'worker', resolution_note = $3
			WHERE workflow_id = $1 AND attempt = $2 AND kind = 'failure' AND resolved_at IS NULL`, workflowID, attempt, reason+": "+message); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO lipsync_job_events (workflow_id, attempt, status, message)
			VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, workflowID, attempt, status, reason+": "+message)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: end job %s: %w", workflowID, err)
	}
	return written, nil
}
