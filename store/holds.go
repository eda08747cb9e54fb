package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultAccount names the account of a worker that serves one.
const DefaultAccount = "default"

// AccountHold is an account-wide failure that stops every submission of
// the account until its owner's human answers it (or the owner ends).
type AccountHold struct {
	Account string `db:"account"`
	// Owner is the workflow that raised the hold: a batch, or a job that
	// met the failure while polling.
	Owner        string    `db:"owner_workflow_id"`
	Reason       string    `db:"reason"`
	HTTPStatus   *int      `db:"http_status"`
	Message      string    `db:"message"`
	BatchID      *string   `db:"batch_id"`
	EscalationID *int64    `db:"escalation_id"`
	Since        time.Time `db:"since"`
}

// NewHold is a hold to raise.
type NewHold struct {
	// Account defaults to DefaultAccount.
	Account string
	// Owner is the workflow raising the hold. Required.
	Owner        string
	Reason       string
	HTTPStatus   int
	Message      string
	BatchID      string
	EscalationID int64
}

// HoldAccount raises the owner's hold on the account. Raising it again is
// a no-op (the first hold of an owner wins); it reports whether this call
// created it.
func (s *Store) HoldAccount(ctx context.Context, h NewHold) (bool, error) {
	if h.Owner == "" {
		return false, fmt.Errorf("store: hold account: the hold needs an owner")
	}
	if h.Account == "" {
		h.Account = DefaultAccount
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO account_holds (account, owner_workflow_id, reason, http_status, message, batch_id, escalation_id)
		VALUES ($1, $2, $3, NULLIF($4, 0), $5, NULLIF($6, ''), NULLIF($7, 0))
		ON CONFLICT (account, owner_workflow_id) DO NOTHING`,
		h.Account, h.Owner, h.Reason, h.HTTPStatus, h.Message, h.BatchID, h.EscalationID)
	if err != nil {
		return false, fmt.Errorf("store: hold account %s for %s: %w", h.Account, h.Owner, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseHold releases the owner's hold on the account ("" = the default
// account) and reports whether there was one. Other owners' holds stay.
func (s *Store) ReleaseHold(ctx context.Context, account, owner string) (bool, error) {
	if account == "" {
		account = DefaultAccount
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM account_holds WHERE account = $1 AND owner_workflow_id = $2`, account, owner)
	if err != nil {
		return false, fmt.Errorf("store: release the hold of %s on %s: %w", owner, account, err)
	}
	return tag.RowsAffected() > 0, nil
}

// AccountHolds lists the holds on the account ("" = every account), oldest
// first.
func (s *Store) AccountHolds(ctx context.Context, account string) ([]AccountHold, error) {
	rows, _ := s.pool.Query(ctx, `
		SELECT account, owner_workflow_id, reason, http_status, message, batch_id, escalation_id, since
		FROM account_holds WHERE $1 = '' OR account = $1 ORDER BY since, owner_workflow_id`, account)
	holds, err := pgx.CollectRows(rows, pgx.RowToStructByName[AccountHold])
	if err != nil {
		return nil, fmt.Errorf("store: list account holds: %w", err)
	}
	return holds, nil
}
