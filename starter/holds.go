package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/chamelaion-lipsync/worker/config"
	"github.com/chamelaion-lipsync/worker/store"
)

// holds lists the account holds in force, or releases one:
//
//	starter holds
//	starter holds release <owner-workflow-id> [--account NAME]
//
// A hold belongs to the workflow that raised it and ends with its answer or
// its end; releasing it by hand is for an owner that will not answer (the
// next submission would release the hold of an owner that has ended
// anyway). It reads DATABASE_URL.
func holds(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) == 0:
	case args[0] == "release" && (len(args) == 2 || (len(args) == 4 && args[2] == "--account")) && !strings.HasPrefix(args[1], "-"):
	default:
		return fmt.Errorf("%w: holds: want no argument (list) or release <owner-workflow-id> [--account NAME]", errUsage)
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%w: holds: %v", errUsage, err)
	}
	defer st.Close()
	if len(args) == 0 {
		hs, err := st.AccountHolds(ctx, "")
		if err != nil {
			return err
		}
		if len(hs) == 0 {
			fmt.Fprintln(stderr, "no account hold: submissions go on")
		}
		for _, h := range hs {
			fmt.Fprintf(stderr, "account %s held by %s since %s: %s: %s (release: starter holds release %s)\n",
				h.Account, h.Owner, h.Since.UTC().Format(time.RFC3339), h.Reason, h.Message, h.Owner)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(hs)
	}
	account := store.DefaultAccount
	if len(args) == 4 {
		account = args[3]
	}
	released, err := st.ReleaseHold(ctx, account, args[1])
	if err != nil {
		return err
	}
	if !released {
		return fmt.Errorf("no hold of %s on account %s (list them with: starter holds)", args[1], account)
	}
	fmt.Fprintf(stdout, "released the hold of %s on account %s\n", args[1], account)
	return nil
}
