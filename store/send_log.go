package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ReserveSend reserves the moment to send one generation request of the
// account, so that no window (a rolling minute, say) holds more than limit
// sends of it, counted by the database's clock across every worker. It
// returns 0 when the slot is reserved (send now), or how long to wait
// before the oldest send in the window leaves it (nothing is reserved:
// ask again then).
func (s *Store) ReserveSend(ctx context.Context, account string, limit int, window time.Duration) (time.Duration, error) {
	if limit <= 0 || window <= 0 {
		return 0, fmt.Errorf("store: reserve send: limit %d per %s: both must be positive", limit, window)
	}
	if account == "" {
		account = DefaultAccount
	}
	// One round trip: the statements are sent together and run in order
	// in one transaction, read committed whatever the session's default.
	// The advisory lock makes reservations of the account one at a time;
	// the statement after it takes its snapshot once the lock is granted,
	// so it sees every reservation committed before, counts the window and
	// inserts only below the limit.
	secs := window.Seconds()
	batch := &pgx.Batch{}
	batch.Queue(`BEGIN ISOLATION LEVEL READ COMMITTED`)
	batch.Queue(`SELECT pg_advisory_xact_lock(hashtextextended('lipsync.api_sends.' || $1, 0))`, account)
	var n int
	var oldest *time.Time
	var now time.Time
	var reserved bool
	batch.Queue(`WITH gone AS (
		DELETE FROM api_sends WHERE account = $1 AND sent_at <= clock_timestamp() - make_interval(secs => $2)
	), cur AS (
		SELECT count(*) AS n, min(sent_at) AS oldest FROM api_sends
		WHERE account = $1 AND sent_at > clock_timestamp() - make_interval(secs => $2)
	), ins AS (
		INSERT INTO api_sends (account, sent_at) SELECT $1, clock_timestamp() FROM cur WHERE cur.n < $3 RETURNING 1
	)
	SELECT cur.n, cur.oldest, clock_timestamp(), EXISTS (SELECT 1 FROM ins) FROM cur`, account, secs, limit).QueryRow(func(row pgx.Row) error {
		return row.Scan(&n, &oldest, &now, &reserved)
	})
	batch.Queue(`COMMIT`)
	if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
		return 0, fmt.Errorf("store: reserve a send of account %s: %w", account, err)
	}
	if reserved || oldest == nil {
		return 0, nil
	}
	// The oldest leaves the window at oldest+window; a little later, so
	// that the next reservation finds it gone.
	return max(oldest.Add(window).Sub(now), 0) + time.Millisecond, nil
}
