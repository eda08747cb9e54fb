package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/chamelaion-lipsync/worker/internal/readyline"
)

// processes are the child processes the stack started; stopAll ends them.
type processes struct {
	cmds []*exec.Cmd
}

// start runs a binary with its output appended to logPath and waits until
// a line of that output contains ready.
func (p *processes) start(ctx context.Context, path string, env []string, logPath, ready string, args ...string) error {
	if err := privateLog(logPath); err != nil {
		return err
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	// The children die with the stack, even if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(logFile, pw)
	cmd.Stderr = io.MultiWriter(logFile, pw)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", path, err)
	}
	p.cmds = append(p.cmds, cmd)
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		logFile.Close()
		exited <- err
	}()
	found := readyline.Watch(pr, ready)
	select {
	case <-found:
		return nil
	case err := <-exited:
		return fmt.Errorf("%s exited before it was ready (%v); see %s", path, err, logPath)
	case <-time.After(90 * time.Second):
		return fmt.Errorf("%s not ready after 90s; see %s", path, logPath)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// privateLog creates a log file readable by its owner only, or narrows
// the mode of one that exists (O_CREATE keeps an existing file's mode).
func privateLog(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	err = f.Chmod(0o600)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// stopAll sends SIGTERM to every child, newest first, and waits up to 30s
// for each before killing it.
func (p *processes) stopAll() {
	for i := len(p.cmds) - 1; i >= 0; i-- {
		cmd := p.cmds[i]
		if cmd.ProcessState != nil {
			continue
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = cmd.Process.Kill()
	}
}

// putScenarios installs per-job behaviour in the emulator.
func putScenarios(ctx context.Context, emulatorURL, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, emulatorURL+"/_emulator/scenarios", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("install demo scenarios: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("install demo scenarios: HTTP %d: %s", resp.StatusCode, b)
	}
	return nil
}
