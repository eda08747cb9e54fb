package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ClaimAccountHold raises the owner's hold on the account unless a hold
// for one of reasons already stands, which it returns instead (created =
// false). Concurrent claims of one account are serialised (a transaction
// advisory lock), so that of many jobs meeting the same revoked key at
// once exactly one raises the hold and escalates; the others wait on it.
func (s *Store) ClaimAccountHold(ctx context.Context, h NewHold, reasons []string) (AccountHold, bool, error) {
	if h.Owner == "" {
		return AccountHold{}, false, fmt.Errorf("store: claim account hold: the hold needs an owner")
	}
	if h.Account == "" {
		h.Account = DefaultAccount
	}
	var held AccountHold
	created := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('account_holds/' || $1))`, h.Account); err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, `
			SELECT account, owner_workflow_id, reason, http_status, message, batch_id, escalation_id, since
			FROM account_holds WHERE account = $1 AND reason = ANY($2)
			ORDER BY since, owner_workflow_id LIMIT 1`, h.Account, reasons)
		cur, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[AccountHold])
		if err == nil {
			held = cur
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		rows, _ = tx.Query(ctx, `
			INSERT INTO account_holds (account, owner_workflow_id, reason, http_status, message, batch_id, escalation_id)
			VALUES ($1, $2, $3, NULLIF($4, 0), $5, NULLIF($6, ''), NULLIF($7, 0))
			ON CONFLICT (account, owner_workflow_id) DO UPDATE SET reason = account_holds.reason
			RETURNING account, owner_workflow_id, reason, http_status, message, batch_id, escalation_id, since`,
			h.Account, h.Owner, h.Reason, h.HTTPStatus, h.Message, h.BatchID, h.EscalationID)
		held, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[AccountHold])
		created = err == nil
		return err
	})
	if err != nil {
		return AccountHold{}, false, fmt.Errorf("store: claim a hold on %s for %s: %w", h.Account, h.Owner, err)
	}
	return held, created, nil
}
