package localpg

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestClusterRequiresItsPassword: a local user who does not hold the
// password (kept at 0600 beside the data) cannot connect, as superuser or
// otherwise; the URL the cluster hands out connects; logs name no password.
func TestClusterRequiresItsPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Fast: true})
	require.NoError(t, err)
	defer func() { _ = c.Close(context.Background()) }()

	st, err := os.Stat(c.PasswordFile())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	pw, err := os.ReadFile(c.PasswordFile())
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(strings.TrimSpace(string(pw))), 32)
	require.NotContains(t, c.RedactedURL("postgres"), strings.TrimSpace(string(pw)))

	for _, url := range []string{c.RedactedURL("postgres"), strings.Replace(c.URL("postgres"), strings.TrimSpace(string(pw)), "guess", 1)} {
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			conn.Close(ctx)
		}
		require.Error(t, err, "connected without the password")
	}
	dbURL, err := c.CreateDatabase(ctx, "app")
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	conn.Close(ctx)

	// The cluster restarts with the same password.
	require.NoError(t, c.Restart(ctx))
	conn, err = pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	conn.Close(ctx)
}
