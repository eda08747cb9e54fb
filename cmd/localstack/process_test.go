package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLogsAreTheStackUsersOnly: a child's log is created 0600, and one
// left world-readable by an earlier version is narrowed.
func TestLogsAreTheStackUsersOnly(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "worker.log")
	require.NoError(t, os.WriteFile(old, []byte("earlier run\n"), 0o644))
	require.NoError(t, os.Chmod(old, 0o644))
	var p processes
	defer p.stopAll()
	require.NoError(t, p.start(context.Background(), "/bin/sh", nil, old, "ready", "-c", "echo ready; exec sleep 30"))
	fresh := filepath.Join(dir, "emulator.log")
	require.NoError(t, p.start(context.Background(), "/bin/sh", nil, fresh, "ready", "-c", "echo ready; exec sleep 30"))
	for _, path := range []string{old, fresh} {
		st, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), path)
	}
}
