package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// serveProfiles serves Go's profiles (/debug/pprof/) on addr, on a
// listener of their own so that exposing /metrics never exposes them,
// until the returned stop function is called.
func serveProfiles(addr string, logger *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("PROFILE_ADDR: listen on %s: %w", addr, err)
	}
	// No write timeout: a CPU profile answers after the seconds it asks.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	logger.Info("serving Go's profiles on /debug/pprof/ (PROFILE_ADDR)", "addr", ln.Addr().String())
	return serveUntilStopped(srv, ln, logger, "profile server"), nil
}
