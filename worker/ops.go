package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/metrics"
)

// healthChecker is the part of the Temporal client readiness reads.
type healthChecker interface {
	CheckHealth(ctx context.Context, req *client.CheckHealthRequest) (*client.CheckHealthResponse, error)
}

// pinger is the part of the store readiness reads.
type pinger interface {
	Ping(ctx context.Context) error
}

// serveOps serves /metrics, /livez, /readyz and /healthz on addr until the
// returned stop function is called.
//
// Liveness and readiness are apart: /livez answers 200 as long as the
// process serves HTTP (a restart cures nothing else), while /readyz (and
// /healthz, its older name) checks Temporal and PostgreSQL, whose outage a
// restart does not cure either: a liveness probe on it would restart every
// healthy worker through a dependency outage.
func serveOps(addr string, m *metrics.Metrics, tc healthChecker, st pinger, logger *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"process":"ok"}` + "\n"))
	})
	ready := func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		report := map[string]string{"temporal": "ok", "postgres": "ok"}
		status := http.StatusOK
		if _, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
			report["temporal"], status = "unreachable: "+chamelaion.Redact(err.Error()), http.StatusServiceUnavailable
		}
		if err := st.Ping(ctx); err != nil {
			report["postgres"], status = "unreachable: "+chamelaion.Redact(err.Error()), http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(report)
	}
	mux.HandleFunc("GET /readyz", ready)
	mux.HandleFunc("GET /healthz", ready)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDR: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 15 * time.Second, IdleTimeout: time.Minute}
	logger.Info("serving /metrics, /livez and /readyz (also /healthz)", "addr", ln.Addr().String())
	return serveUntilStopped(srv, ln, logger, "metrics server"), nil
}

// serveUntilStopped serves srv on ln in the background and returns the
// function that stops it (in-flight requests get 3 s).
func serveUntilStopped(srv *http.Server, ln net.Listener, logger *slog.Logger, what string) func() {
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(what+" stopped", "error", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
}
