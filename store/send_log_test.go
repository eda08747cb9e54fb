package store_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestReserveSendKeepsEveryWindowWithinTheLimit: twenty reservations race
// (goroutines sharing the database, as workers do) for a budget of 5
// per 2 s; each waits as told and asks again. No window of 2 s holds more
// than 5 sends, and every request gets its slot.
func TestReserveSendKeepsEveryWindowWithinTheLimit(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	const limit, window, n = 5, 2 * time.Second, 20
	var mu sync.Mutex
	var sent []time.Time
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				wait, err := st.ReserveSend(ctx, "acct", limit, window)
				if err != nil {
					t.Error(err)
					return
				}
				if wait == 0 {
					mu.Lock()
					sent = append(sent, time.Now())
					mu.Unlock()
					return
				}
				require.LessOrEqual(t, wait, window+time.Millisecond)
				time.Sleep(wait)
			}
		})
	}
	wg.Wait()
	require.Len(t, sent, n)
	slices.SortFunc(sent, func(a, b time.Time) int { return a.Compare(b) })
	for i := range sent {
		j := i
		for j < len(sent) && sent[j].Sub(sent[i]) < window-50*time.Millisecond {
			j++
		}
		require.LessOrEqual(t, j-i, limit, "sends within %s of %s", window, sent[i])
	}
	// Another account has a budget of its own.
	wait, err := st.ReserveSend(ctx, "other", limit, window)
	require.NoError(t, err)
	require.Zero(t, wait)
	_, err = st.ReserveSend(ctx, "acct", 0, window)
	require.Error(t, err)
}

// TestACancelledReservationLeavesNothingHeld: reservations whose context
// ends mid-way (the batch sent, its answer not read) leave no lock or
// open transaction behind: the next reservation gets its slot at once,
// and the failed ones reserved nothing the window counts twice.
func TestACancelledReservationLeavesNothingHeld(t *testing.T) {
	st := open(t)
	for i := range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*100*time.Microsecond)
		_, _ = st.ReserveSend(ctx, "cancelled", 1000, time.Minute)
		cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wait, err := st.ReserveSend(ctx, "cancelled", 1000, time.Minute)
	require.NoError(t, err)
	require.Zero(t, wait)
	// A budget of one per minute: whatever the cancelled ones reserved,
	// a second reservation now must wait.
	wait, err = st.ReserveSend(ctx, "cancelled", 1, time.Minute)
	require.NoError(t, err)
	require.Positive(t, wait)
}
