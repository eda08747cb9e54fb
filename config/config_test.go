package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadDefaults(t *testing.T) {
	c, err := Load()
	require.NoError(t, err)
	require.Equal(t, "https://api.chamelaion.com/api", c.API.BaseURL)
	require.Equal(t, "bearer", c.API.AuthScheme)
	require.Equal(t, 30*time.Second, c.API.RequestTimeout)
	require.Equal(t, 60, c.API.RateLimitPerMinute)
	require.Equal(t, "localhost:7233", c.Temporal.Address)
	require.Equal(t, "default", c.Temporal.Namespace)
	require.Equal(t, "lipsync", c.Temporal.TaskQueue)
	require.Equal(t, 5*time.Second, c.Jobs.PollInitialInterval)
	require.Equal(t, time.Minute, c.Jobs.PollMaxInterval)
	require.Equal(t, 2.0, c.Jobs.PollBackoffCoefficient)
	require.Equal(t, 10*time.Minute, c.Jobs.StuckAfter)
	require.Equal(t, 24*time.Hour, c.Jobs.Deadline)
	require.NoError(t, c.ValidateStarter())

	var cerr *Error
	require.ErrorAs(t, c.ValidateWorker(), &cerr)
	require.Equal(t, "CHAMELAION_API_KEY", cerr.Variable)
}

func TestLoadReadsEveryContractName(t *testing.T) {
	t.Setenv("CHAMELAION_API_KEY", "k")
	t.Setenv("CHAMELAION_BASE_URL", "http://127.0.0.1:8090/api")
	t.Setenv("CHAMELAION_AUTH_SCHEME", "x-api-key")
	t.Setenv("DATABASE_URL", "postgres://u:p@localhost:5432/db")
	t.Setenv("TEMPORAL_ADDRESS", "temporal:7233")
	t.Setenv("TEMPORAL_NAMESPACE", "lipsync-prod")
	t.Setenv("TEMPORAL_TASK_QUEUE", "q")
	t.Setenv("JOB_STUCK_AFTER", "15m")
	c, err := Load()
	require.NoError(t, err)
	require.NoError(t, c.ValidateWorker())
	require.Equal(t, "k", c.API.Key)
	require.Equal(t, "http://127.0.0.1:8090/api", c.API.BaseURL)
	require.Equal(t, "x-api-key", c.API.AuthScheme)
	require.Equal(t, "postgres://u:p@localhost:5432/db", c.Database.URL)
	require.Equal(t, "temporal:7233", c.Temporal.Address)
	require.Equal(t, "lipsync-prod", c.Temporal.Namespace)
	require.Equal(t, "q", c.Temporal.TaskQueue)
	require.Equal(t, 15*time.Minute, c.Jobs.StuckAfter)
}

func TestLoadRejectsBadValuesNamingTheVariable(t *testing.T) {
	cases := []struct {
		name, value string
	}{
		{"CHAMELAION_AUTH_SCHEME", "basic"},
		{"CHAMELAION_BASE_URL", "ftp://example.com"},
		{"CHAMELAION_BASE_URL", "not a url"},
		{"CHAMELAION_REQUEST_TIMEOUT", "soon"},
		{"CHAMELAION_REQUEST_TIMEOUT", "0s"},
		{"CHAMELAION_RATE_LIMIT_PER_MINUTE", "sixty"},
		{"CHAMELAION_RATE_LIMIT_PER_MINUTE", "0"},
		{"TEMPORAL_TASK_QUEUE", " "},
		{"POLL_INITIAL_INTERVAL", "-1s"},
		{"POLL_MAX_INTERVAL", "1s"},
		{"POLL_BACKOFF_COEFFICIENT", "0.5"},
		{"JOB_STUCK_AFTER", "10"},
		{"JOB_DEADLINE", "0"},
		{"MAX_POLLS_PER_RUN", "3"},
		{"LOG_LEVEL", "loud"},
		{"LOG_FORMAT", "xml"},
		{"TEMPORAL_WEB_UI_URL", "localhost:8233"},
	}
	for _, tc := range cases {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			t.Setenv(tc.name, tc.value)
			_, err := Load()
			var cerr *Error
			require.True(t, errors.As(err, &cerr), "got %v", err)
			require.Equal(t, tc.name, cerr.Variable)
			require.True(t, strings.HasPrefix(err.Error(), tc.name+": "), err.Error())
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestValidateWorker(t *testing.T) {
	cases := []struct {
		key, dbURL, variable string
	}{
		{"", "postgres://localhost/db", "CHAMELAION_API_KEY"},
		{" k", "postgres://localhost/db", "CHAMELAION_API_KEY"},
		{"k", "", "DATABASE_URL"},
		{"k", "mysql://localhost/db", "DATABASE_URL"},
	}
	for _, tc := range cases {
		t.Setenv("CHAMELAION_API_KEY", tc.key)
		t.Setenv("DATABASE_URL", tc.dbURL)
		c, err := Load()
		require.NoError(t, err)
		var cerr *Error
		require.ErrorAs(t, c.ValidateWorker(), &cerr)
		require.Equal(t, tc.variable, cerr.Variable)
	}
}

func TestSecretsNeverShown(t *testing.T) {
	t.Setenv("CHAMELAION_API_KEY", "sk-live-SECRET123")
	t.Setenv("DATABASE_URL", "postgres://app:DBPASSWORD@db:5432/lipsync?sslmode=require")
	t.Setenv("NOTIFY_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/HOOKSECRET")
	c, err := Load()
	require.NoError(t, err)
	s := c.String()
	for _, secret := range []string{"SECRET123", "DBPASSWORD", "HOOKSECRET"} {
		require.NotContains(t, s, secret)
	}
	require.Contains(t, s, "db:5432/lipsync")

	t.Setenv("NOTIFY_WEBHOOK_URL", "hooks.slack.com/services/HOOKSECRET")
	_, err = Load()
	require.Error(t, err)
	require.NotContains(t, err.Error(), "HOOKSECRET")
}

func TestRedactURL(t *testing.T) {
	require.Equal(t, "https://cdn.example.com/v.mp4", RedactURL("https://cdn.example.com/v.mp4?X-Amz-Signature=abc#frag"))
	require.Equal(t, "postgres://u:xxxxx@h/db", RedactURL("postgres://u:pw@h/db?sslmode=disable"))
	require.Equal(t, "", RedactURL(""))
	require.Equal(t, "[unparsable URL]", RedactURL("http://[::1"))
}

// TestLoadRefusesSettingsThatCannotWork: each value is valid alone, but
// not with the others, and the message says why.
func TestLoadRefusesSettingsThatCannotWork(t *testing.T) {
	cases := []struct {
		env      map[string]string
		variable string
		why      string
	}{
		{map[string]string{"RETRY_MAX_ELAPSED": "60s"}, "RETRY_MAX_ELAPSED", "3 × CHAMELAION_REQUEST_TIMEOUT"},
		{map[string]string{"CHAMELAION_REQUEST_TIMEOUT": "2m", "RETRY_MAX_ELAPSED": "5m"}, "RETRY_MAX_ELAPSED", "every transient failure"},
		{map[string]string{"JOB_STUCK_AFTER": "24h"}, "JOB_STUCK_AFTER", "shorter than JOB_DEADLINE"},
		{map[string]string{"JOB_STUCK_AFTER": "2h", "JOB_DEADLINE": "1h"}, "JOB_STUCK_AFTER", "never fire"},
	}
	for _, tc := range cases {
		t.Run(tc.variable, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := Load()
			var cerr *Error
			require.ErrorAs(t, err, &cerr)
			require.Equal(t, tc.variable, cerr.Variable)
			require.Contains(t, cerr.Error(), tc.why)
		})
	}
	t.Setenv("CHAMELAION_REQUEST_TIMEOUT", "3s")
	t.Setenv("RETRY_MAX_ELAPSED", "9s")
	t.Setenv("JOB_STUCK_AFTER", "3s")
	t.Setenv("JOB_DEADLINE", "4s")
	_, err := Load()
	require.NoError(t, err, "at the bounds")
}
