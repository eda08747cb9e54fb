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
	var wait time.Duration
	// Read committed, whatever the session's default: each statement
	// must see what was committed before the advisory lock was granted.
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		// One reservation of the account at a time: the count and the
		// insert must see the same log.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('lipsync.api_sends.' || $1, 0))`, account); err != nil {
			return err
		}
		secs := window.Seconds()
		if _, err := tx.Exec(ctx, `DELETE FROM api_sends WHERE account = $1 AND sent_at <= clock_timestamp() - make_interval(secs => $2)`, account, secs); err != nil {
			return err
		}
		var n int
		var oldest *time.Time
		var now time.Time
		if err := tx.QueryRow(ctx, `SELECT count(*), min(sent_at), clock_timestamp() FROM api_sends WHERE account = $1`, account).Scan(&n, &oldest, &now); err != nil {
			return err
		}
		if n >= limit && oldest != nil {
			// The oldest leaves the window at oldest+window; a little
			// later, so that the next reservation finds it gone.
			wait = max(oldest.Add(window).Sub(now), 0) + time.Millisecond
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO api_sends (account, sent_at) VALUES ($1, clock_timestamp())`, account)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: reserve a send of account %s: %w", account, err)
	}
	return wait, nil
}
