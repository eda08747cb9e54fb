package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// BatchJobCounts counts a batch's jobs in each status, as their rows stand
// now (after the batch ended, a job a human answered moves on).
func (s *Store) BatchJobCounts(ctx context.Context, batchID string) (map[Status]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT status, count(*) FROM lipsync_jobs WHERE batch_id = $1 GROUP BY status`, batchID)
	if err != nil {
		return nil, fmt.Errorf("store: count jobs of batch %s: %w", batchID, err)
	}
	out := map[Status]int{}
	var st Status
	var n int
	_, err = pgx.ForEachRow(rows, []any{&st, &n}, func() error {
		out[st] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: count jobs of batch %s: %w", batchID, err)
	}
	return out, nil
}

// BatchJobsWaiting lists up to limit jobs of a batch that wait for a
// human: failed, with a failure escalation of their current attempt that
// nobody has answered.
func (s *Store) BatchJobsWaiting(ctx context.Context, batchID string, limit int) ([]Job, error) {
	rows, _ := s.pool.Query(ctx, `
		SELECT j.* FROM lipsync_jobs j
		WHERE j.batch_id = $1 AND j.status = 'failed' AND EXISTS (
			SELECT 1 FROM escalations e
			WHERE e.workflow_id = j.workflow_id AND e.attempt = j.attempt AND e.kind = 'failure' AND e.resolved_at IS NULL)
		ORDER BY j.reference_id LIMIT $2`, batchID, limit)
	jobs, err := pgx.CollectRows(rows, pgx.RowToStructByName[Job])
	if err != nil {
		return nil, fmt.Errorf("store: jobs of batch %s waiting for a human: %w", batchID, err)
	}
	return jobs, nil
}
