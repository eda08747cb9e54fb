package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestProcessCPUCountsChildren(t *testing.T) {
	// A child that burns CPU, waited for: it counts with withChildren.
	before, err := processCPU(os.Getpid(), true)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	own, err := processCPU(os.Getpid(), false)
	if err != nil {
		t.Fatal(err)
	}
	all, err := processCPU(os.Getpid(), true)
	if err != nil {
		t.Fatal(err)
	}
	if all-before < 100*time.Millisecond || all <= own {
		t.Fatalf("with the child: %v → %v (own %v); want the child's CPU counted", before, all, own)
	}
	if _, err := processCPU(0, false); err == nil {
		t.Fatal("pid 0: want an error")
	}
}

func TestBackendsSection(t *testing.T) {
	r := &report{cfg: quickConfig()}
	load := func(strategy string, jobs int, wall, cpu time.Duration) loadRow {
		return loadRow{Strategy: strategy, Jobs: jobs, Wall: wall, PerSecond: float64(jobs) / wall.Seconds(), CPU: cpu}
	}
	r.backends = []backendRow{
		{Backend: backendDev, Start: 4 * time.Second, Timer: load(stratTimer, 100, 5*time.Second, time.Second), Ours: load(stratOurs, 100, 8*time.Second, 2*time.Second),
			Rate:        rateRow{PerMinute: 117.6, Use: 0.98, MaxRollingMinute: 119, Generate: 180},
			TimerServer: []procCPU{{"dev server (all services, SQLite)", 4 * time.Second}}, OursServer: []procCPU{{"dev server (all services, SQLite)", 6 * time.Second}}},
		{Backend: backendCluster, Start: 15 * time.Second, Timer: load(stratTimer, 100, 12*time.Second, time.Second), Ours: load(stratOurs, 100, 20*time.Second, 2*time.Second),
			Rate:        rateRow{PerMinute: 117.6, Use: 0.98, MaxRollingMinute: 119, Generate: 180},
			TimerServer: []procCPU{{"history", 6 * time.Second}, {"PostgreSQL", 6 * time.Second}}, OursServer: []procCPU{{"history", 8 * time.Second}, {"PostgreSQL", 6 * time.Second}},
			TimerCommits: 40, OursCommits: 90, OursMachine: machineCPU{Busy: 1.2, IOWait: 0.3, Idle: 0.5},
			OursSupport: []procCPU{{"benchmark", time.Second}, {"worker's PostgreSQL", time.Second}}},
	}
	md := r.markdown()
	for _, want := range []string{
		"## 7. The dev server and the cluster",
		"| dev | 4.0 s | 20.0 | 12.5 | 20.0 | 117.6 | 0.980 | 119 | 0 of 180 |",
		"| cluster | 15.0 s | 8.3 | 5.0 | 20.0 | 117.6 | 0.980 | 119 | 0 of 180 |",
		"| cluster | this worker | 20.0 s | 0.10 | history 0.40, PostgreSQL 0.30, **total 0.70** | benchmark 0.05, worker's PostgreSQL 0.05, **total 0.10** | 1.20 (0.30) / 0.30 / 0.50 | 90 |",
		"| dev | Temporal timer sample | 5.0 s | 0.20 | dev server (all services, SQLite) 0.80 |  | 0.00 (0.00) / 0.00 / 0.00 | — |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("missing %q in\n%s", want, md)
		}
	}
}

func TestReadProcStat(t *testing.T) {
	a, err := readProcStat()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	b, err := readProcStat()
	if err != nil {
		t.Fatal(err)
	}
	m := b.since(a)
	if total := m.Busy + m.IOWait + m.Idle; total < 0.5 || total > 64 {
		t.Fatalf("%+v: the cores add up to %.2f", m, total)
	}
}
