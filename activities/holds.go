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
// workflow that raised it. The submitting workflow's own hold never holds
// it back (it would wait on itself for ever).
func (a *Activities) checkAccountHold(ctx context.Context, self string) error {
	h, err := a.activeHold(ctx, store.DefaultAccount, self)
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
// runs and is not self, or nil.
func (a *Activities) activeHold(ctx context.Context, account, self string) (*store.AccountHold, error) {
	holds, err := a.liveHolds(ctx, account)
	if err != nil {
		return nil, err
	}
	for i := range holds {
		if holds[i].Owner != self {
			return &holds[i], nil
		}
	}
	return nil, nil
}

// liveHolds lists the holds on the account whose owners still run, oldest
// first, releasing the holds of owners that have ended by any path.
func (a *Activities) liveHolds(ctx context.Context, account string) ([]store.AccountHold, error) {
	holds, err := a.Store.AccountHolds(ctx, account)
	if err != nil {
		return nil, storeError("read account holds", err)
	}
	if a.Workflows == nil {
		return holds, nil
	}
	live := holds[:0]
	for _, h := range holds {
		end, err := a.Workflows.WorkflowEnd(ctx, h.Owner)
		if err != nil {
			// Temporal unreachable: the hold stands (failing safe).
			a.logger().Warn("could not tell whether a hold's owner runs; the hold stands", "owner", h.Owner, "error", err)
			live = append(live, h)
			continue
		}
		if end.Running() {
			live = append(live, h)
			continue
		}
		if _, err := a.Store.ReleaseHold(ctx, h.Account, h.Owner); err != nil {
			return nil, storeError("release an ended owner's hold", err)
		}
		a.logger().Warn("account hold released: its owner has ended", "account", h.Account, "owner", h.Owner,
			"owner_status", end.Status, "reason", h.Reason, "since", h.Since)
	}
	return live, nil
}

// HoldInfo is an account hold in force, as a batch sees it.
type HoldInfo struct {
	Owner      string
	Reason     string
	HTTPStatus int    `json:",omitempty"`
	Message    string `json:",omitempty"`
}

// ActiveHolds lists the holds in force on the account whose owners still
// run (the holds of owners that have ended are released on the way): a
// batch whose job was held back by another owner's hold waits for that
// hold rather than raising its own.
func (a *Activities) ActiveHolds(ctx context.Context) ([]HoldInfo, error) {
	holds, err := a.liveHolds(ctx, store.DefaultAccount)
	if err != nil {
		return nil, err
	}
	out := make([]HoldInfo, 0, len(holds))
	for _, h := range holds {
		info := HoldInfo{Owner: h.Owner, Reason: h.Reason, Message: h.Message}
		if h.HTTPStatus != nil {
			info.HTTPStatus = *h.HTTPStatus
		}
		out = append(out, info)
	}
	return out, nil
}
