package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConfigurationErrorsExitTwoBeforeConnecting: a missing or malformed
// value is one line naming the variable, exit status 2, and nothing is
// dialled (the addresses below would hang or fail differently if they were).
func TestConfigurationErrorsExitTwoBeforeConnecting(t *testing.T) {
	cases := []struct {
		env      map[string]string
		variable string
	}{
		{map[string]string{"CHAMELAION_API_KEY": ""}, "CHAMELAION_API_KEY"},
		{map[string]string{"CHAMELAION_API_KEY": "k", "DATABASE_URL": ""}, "DATABASE_URL"},
		{map[string]string{"CHAMELAION_API_KEY": "k", "DATABASE_URL": "postgres://10.255.255.1/db", "POLL_MAX_INTERVAL": "fast"}, "POLL_MAX_INTERVAL"},
		{map[string]string{"CHAMELAION_API_KEY": "k-SECRET", "DATABASE_URL": "postgres://u:PW@10.255.255.1/db", "CHAMELAION_AUTH_SCHEME": "basic"}, "CHAMELAION_AUTH_SCHEME"},
	}
	for _, tc := range cases {
		t.Run(tc.variable, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stderr bytes.Buffer
			code := run(context.Background(), nil, &stderr)
			require.Equal(t, 2, code)
			out := strings.TrimSpace(stderr.String())
			require.NotContains(t, out, "\n", "one line")
			require.Contains(t, out, tc.variable)
			require.NotContains(t, out, "SECRET")
			require.NotContains(t, out, "PW")
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	var stderr bytes.Buffer
	require.Equal(t, 2, run(context.Background(), []string{"serve"}, &stderr))
	require.Contains(t, stderr.String(), "unknown command")
}
