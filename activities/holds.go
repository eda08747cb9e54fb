package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/chamelaion-lipsync/worker/store"
)

// checkAccountHold refuses to submit while an account-wide failure waits for
// a human: the API would refuse alike, and every refused call is noise. A
// hold whose owner has ended by any path (terminated, timed out, completed
// without answering) is released here, so that no hold outlives the
// workflow that raised it.
func (a *Activities) checkAccountHold(ctx context.Context) error {
	h, err := a.activeHold(ctx, store.DefaultAccount)
	if err != nil {
		return err
	}
	if h == nil {
		return nil
	}
	status := 0
	if h.HTTPStatus != nil {
		status = *h.HTTPStatus
	}
	msg := fmt.Sprintf("submissions are held since %s after an account-wide failure (%s, raised by %s); nothing was sent. Answer the escalation to resume",
		h.Since.UTC().Format(time.RFC3339), h.Reason, h.Owner)
	return temporal.NewNonRetryableApplicationError("submit: "+msg, h.Reason, nil, ErrorDetails{StatusCode: status, Message: msg})
}

// activeHold returns the oldest hold on the account whose owner still
// runs, releasing the holds of owners that have ended; nil when none.
func (a *Activities) activeHold(ctx context.Context, account string) (*store.AccountHold, error) {
	holds, err := a.Store.AccountHolds(ctx, account)
	if err != nil {
		return nil, storeError("read account holds", err)
	}
	for _, h := range holds {
		if a.Workflows == nil {
			return &h, nil
		}
		end, err := a.Workflows.WorkflowEnd(ctx, h.Owner)
		if err != nil {
			// Temporal unreachable: the hold stands (failing safe).
			a.logger().Warn("could not tell whether a hold's owner runs; the hold stands", "owner", h.Owner, "error", err)
			return &h, nil
		}
		if end.Running() {
			return &h, nil
		}
		if _, err := a.Store.ReleaseHold(ctx, h.Account, h.Owner); err != nil {
			return nil, storeError("release an ended owner's hold", err)
		}
		a.logger().Warn("account hold released: its owner has ended", "account", h.Account, "owner", h.Owner,
			"owner_status", end.Status, "reason", h.Reason, "since", h.Since)
	}
	return nil, nil
}
