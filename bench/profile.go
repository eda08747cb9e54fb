package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// profiler fetches this worker's profiles from its PROFILE_ADDR into a
// directory, named after the account of the phase (tp-ours: throughput,
// mem-ours: memory). A nil profiler does nothing.
type profiler struct {
	dir, name, addr string
	cpuDone         chan error
}

// newProfiler picks a free local address for the worker's profiles.
func newProfiler(dir, name string) (*profiler, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("profile directory: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	return &profiler{dir: dir, name: name, addr: addr}, nil
}

// startCPU takes a CPU profile of the next d in the background.
func (p *profiler) startCPU(ctx context.Context, d time.Duration) {
	if p == nil {
		return
	}
	p.cpuDone = make(chan error, 1)
	go func() {
		p.cpuDone <- p.fetch(ctx, fmt.Sprintf("profile?seconds=%d", int(d.Seconds())), "cpu")
	}()
}

// finish waits for the CPU profile and takes the allocations (since the
// worker started) and the heap in use now.
func (p *profiler) finish(ctx context.Context) error {
	if p == nil {
		return nil
	}
	if p.cpuDone != nil {
		if err := <-p.cpuDone; err != nil {
			return err
		}
	}
	if err := p.fetch(ctx, "allocs", "allocs"); err != nil {
		return err
	}
	return p.fetch(ctx, "heap?gc=1", "heap")
}

func (p *profiler) fetch(ctx context.Context, path, kind string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/debug/pprof/"+path, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s profile: %w", kind, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s profile: %s", kind, res.Status)
	}
	f, err := os.Create(filepath.Join(p.dir, p.name+"-"+kind+".pprof"))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return fmt.Errorf("%s profile: %w", kind, err)
	}
	return f.Close()
}
