package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/chamelaion-lipsync/worker/metrics"
)

type downTemporal struct{}

func (downTemporal) CheckHealth(context.Context, *client.CheckHealthRequest) (*client.CheckHealthResponse, error) {
	return nil, errors.New("connection refused")
}

type downStore struct{}

func (downStore) Ping(context.Context) error {
	return errors.New("failed to connect to postgres://lipsync:DBPASSWORD@db:5432/lipsync: refused")
}

// TestLivenessSurvivesADependencyOutage: with Temporal and PostgreSQL
// down, the process is alive (/livez 200, so Kubernetes does not restart
// it) but not ready (/readyz and /healthz 503, naming both), and the
// readiness report never carries the database password.
func TestLivenessSurvivesADependencyOutage(t *testing.T) {
	m, err := metrics.New()
	require.NoError(t, err)
	defer m.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	stop, err := serveOps(addr, m, downTemporal{}, downStore{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer stop()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, _ := get("/livez")
	require.Equal(t, http.StatusOK, code)
	for _, path := range []string{"/readyz", "/healthz"} {
		code, body := get(path)
		require.Equal(t, http.StatusServiceUnavailable, code, path)
		require.Contains(t, body, `"temporal":"unreachable`)
		require.Contains(t, body, `"postgres":"unreachable`)
		require.NotContains(t, body, "DBPASSWORD")
	}
}
