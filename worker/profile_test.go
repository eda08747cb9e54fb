package main

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/chamelaion-lipsync/worker/config"
)

// TestProfilesAreServedOnTheirOwnAddress: PROFILE_ADDR serves the heap
// profile and the index, and nothing else of the worker.
func TestProfilesAreServedOnTheirOwnAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	stop, err := serveProfiles(addr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	get := func(path string) (int, string) {
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "heap") {
		t.Fatalf("index: %d %.200q", code, body)
	}
	if code, body := get("/debug/pprof/heap?debug=1"); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Fatalf("heap: %d %.200q", code, body)
	}
	if code, _ := get("/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics on the profile address: %d, want 404", code)
	}
}

// TestProfilesServedBeyondThisMachineAreWarnedOf: PROFILE_ADDR on every
// interface or a routable address is warned of at start-up; loopback and
// off are not.
func TestProfilesServedBeyondThisMachineAreWarnedOf(t *testing.T) {
	for addr, warned := range map[string]bool{"0.0.0.0:6060": true, ":6060": true, "10.1.2.3:6060": true, "127.0.0.1:6060": false, "off": false} {
		var buf bytes.Buffer
		var cfg config.Config
		cfg.Worker.ProfileAddr, cfg.Worker.MetricsAddr = addr, "127.0.0.1:9090"
		warnAtStartUp(cfg, slog.New(slog.NewTextHandler(&buf, nil)))
		if got := strings.Contains(buf.String(), "PROFILE_ADDR"); got != warned {
			t.Errorf("PROFILE_ADDR=%s: warned %v, want %v (%s)", addr, got, warned, buf.String())
		}
	}
}
