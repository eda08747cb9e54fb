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

	"github.com/chamelaion-lipsync/worker/metrics"
	"github.com/chamelaion-lipsync/worker/store"
)

// serveOps serves /metrics and /healthz on addr until the returned stop
// function is called.
func serveOps(addr string, m *metrics.Metrics, tc client.Client, st *store.Store, logger *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		report := map[string]string{"temporal": "ok", "postgres": "ok"}
		status := http.StatusOK
		if _, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
			report["temporal"], status = "unreachable: "+err.Error(), http.StatusServiceUnavailable
		}
		if err := st.Ping(ctx); err != nil {
			report["postgres"], status = "unreachable: "+err.Error(), http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(report)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDR: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server stopped", "error", err)
		}
	}()
	logger.Info("serving /metrics and /healthz", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
